//! Waiting until a repository's index has caught up with a change: the
//! Kafka I/O around [`spk_messaging_core::wait::Waiter`], which makes every
//! decision (see its docs and `docs/contract.md`).
//!
//! Here: the status topic's partitions and high watermarks are fetched
//! (bounded by `index_update_listener_broker_fetch_timeout_ms`), offsets are
//! looked up by time, partitions are assigned manually (no group join,
//! which takes seconds on some brokers) from
//! [`spk_messaging_core::wait::start_offsets`], and each polled message and
//! clock tick is handed to the waiter. A consumer error that will not go away
//! by waiting (authorization, an unknown topic, failed authentication) ends
//! the wait as an error naming it, instead of turning into a timeout.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use spk_messaging_core::config::KafkaChannelConfig;
use spk_messaging_core::security::ConnectFailure;
use spk_messaging_core::wait::{start_offsets, WaitRules, WaitStep, Waiter};
use spk_messaging_core::{RepoAddress, RepoTarget};

use crate::client::{consumer, metadata_or_failure, ClientError};

pub use spk_messaging_core::wait::{Seen, WaitOutcome, WaitReport, DEFAULT_PATIENCE_MS};

/// What to wait for.
#[derive(Debug, Clone)]
pub struct WaitRequest {
    pub repo_name: String,
    /// The repository's address as a `file:` URL (heartbeats carry it).
    pub repo_url: String,
    /// Seconds since the epoch: an "index completed" must have `start >= since`.
    pub since: i64,
    /// The exact moment (ms since the epoch) of the change waited for, when
    /// known (`send-event --wait`). `start` has one-second resolution, so a
    /// run that started in the same second as `since` counts only if its
    /// "index started" message was sent at or after this moment; otherwise
    /// a run that finished just before the change would be taken for one
    /// that covers it.
    pub since_ms: Option<i64>,
    /// Overrides the channel's `index_update_listener_timeout_ms`.
    pub timeout: Option<Duration>,
    /// The cap on the whole wait (default [`DEFAULT_PATIENCE_MS`]).
    pub max_wait: Option<Duration>,
}

/// The waiter could not read the topic.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("channel {channel:?} has no index_updates_topic_name; there is nothing to wait on")]
    NoTopic { channel: String },
    #[error("cannot read topic {topic:?} from brokers {brokers} within {timeout_ms} ms: {reason}")]
    Unreachable {
        topic: String,
        brokers: String,
        timeout_ms: u64,
        reason: String,
        /// The TLS or SASL problem behind it, when that is what failed.
        failure: Option<Box<ConnectFailure>>,
    },
    #[error("reading topic {topic:?} from brokers {brokers} failed: {reason}")]
    Consumer {
        topic: String,
        brokers: String,
        reason: String,
    },
}

/// Whether a consumer error cannot go away by waiting: the wait ends with
/// it instead of timing out.
pub fn is_fatal_consumer_error(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
        )
    )
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Waits for the repository's index to complete a run started at or after
/// `req.since`.
pub fn wait_for_index(ch: &KafkaChannelConfig, req: &WaitRequest) -> Result<WaitReport, WaitError> {
    let topic = ch
        .index_updates_topic_name
        .clone()
        .ok_or_else(|| WaitError::NoTopic {
            channel: ch.name.clone(),
        })?;
    let fetch_timeout = Duration::from_millis(ch.index_update_listener_broker_fetch_timeout_ms);
    let rules = WaitRules::from_channel(ch, req.timeout.map(millis), req.max_wait.map(millis));
    let unreachable = |reason: String| WaitError::Unreachable {
        topic: topic.clone(),
        brokers: ch.brokers.join(","),
        timeout_ms: ch.index_update_listener_broker_fetch_timeout_ms,
        reason,
        failure: None,
    };
    let target = RepoTarget::new(
        req.repo_name.clone(),
        RepoAddress::parse(&req.repo_url, Path::new("/")).ok(),
    );

    let group = format!("spk-wait-{}-{}", std::process::id(), now_ms());
    let consumer = consumer(
        ch,
        &[
            ("group.id", group),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            // Latency matters here, volume is tiny: do not let the broker
            // hold an empty fetch for librdkafka's default 500 ms.
            ("fetch.wait.max.ms", "50".into()),
            (
                "session.timeout.ms",
                ch.index_update_listener_session_timeout_ms.to_string(),
            ),
            (
                "max.poll.interval.ms",
                ch.index_update_listener_max_polling_interval_ms
                    .max(ch.index_update_listener_session_timeout_ms)
                    .to_string(),
            ),
        ],
    )?;
    let errors = consumer.context().errors.clone();
    let with_last = |e: String| match errors.last() {
        Some(l) => format!("{e}; last client errors: {l}"),
        None => e,
    };

    // Partitions and where each ends now. A TLS or SASL failure ends the
    // wait here, named.
    let md = metadata_or_failure(
        consumer.client(),
        ch,
        &errors,
        Some(&topic),
        fetch_timeout,
        &|| {
            let _ = consumer.poll(Duration::ZERO);
        },
    )
    .map_err(|no| WaitError::Unreachable {
        topic: topic.clone(),
        brokers: ch.brokers.join(","),
        timeout_ms: ch.index_update_listener_broker_fetch_timeout_ms,
        reason: no.text(),
        failure: no.failure.map(Box::new),
    })?;
    let mut topic_error = None;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .filter(|t| match t.error() {
            None => true,
            Some(e) => {
                topic_error = Some(RDKafkaErrorCode::from(e).to_string());
                false
            }
        })
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(unreachable(match topic_error {
            Some(e) => format!("the cluster reports an error for topic {topic:?}: {e}"),
            None => format!("topic {topic:?} does not exist on the cluster"),
        }));
    }
    let mut ends: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for p in &partitions {
        let w = consumer
            .fetch_watermarks(&topic, *p, fetch_timeout)
            .map_err(|e| unreachable(with_last(e.to_string())))?;
        ends.insert(*p, w);
    }

    // Where each partition is read from.
    let began = now_ms();
    let probe = Waiter::new(
        target.clone(),
        req.since,
        req.since_ms,
        rules,
        &ends,
        &BTreeMap::new(),
        began,
    );
    let mut by_time = TopicPartitionList::new();
    for p in &partitions {
        by_time
            .add_partition_offset(&topic, *p, Offset::Offset(probe.read_from_ms()))
            .map_err(|e| unreachable(e.to_string()))?;
    }
    let found: Option<BTreeMap<i32, Option<i64>>> =
        match consumer.offsets_for_times(by_time, fetch_timeout) {
            Ok(found) => Some(
                found
                    .elements()
                    .iter()
                    .map(|e| {
                        let o = match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        };
                        (e.partition(), o)
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::debug!("offsets by time unavailable ({e}); reading further back");
                None
            }
        };
    let starts = start_offsets(&ends, found.as_ref());
    let mut assign = TopicPartitionList::new();
    for (p, o) in &starts {
        assign
            .add_partition_offset(&topic, *p, Offset::Offset(*o))
            .map_err(|e| unreachable(e.to_string()))?;
    }
    consumer
        .assign(&assign)
        .map_err(|e| unreachable(with_last(e.to_string())))?;

    let mut waiter = Waiter::new(
        target,
        req.since,
        req.since_ms,
        rules,
        &ends,
        &starts,
        began,
    );
    let mut step = waiter.on_tick(now_ms());
    let mut last_error_log: Option<i64> = None;
    while step == WaitStep::Continue {
        step = match consumer.poll(Duration::from_millis(100)) {
            None => waiter.on_tick(now_ms()),
            Some(Ok(m)) => waiter.on_message(
                m.partition(),
                m.offset(),
                m.timestamp().to_millis(),
                m.payload(),
                now_ms(),
            ),
            Some(Err(e)) if is_fatal_consumer_error(&e) => {
                return Err(WaitError::Consumer {
                    topic,
                    brokers: ch.brokers.join(","),
                    reason: with_last(e.to_string()),
                });
            }
            Some(Err(e)) => {
                // Transient (a broker restarting): librdkafka retries; say so
                // now and then, and let the waiter's clock decide.
                let now = now_ms();
                if last_error_log.is_none_or(|t| now - t > 10_000) {
                    tracing::warn!("status topic {topic}: {e}; retrying");
                    last_error_log = Some(now);
                }
                waiter.on_tick(now)
            }
        };
    }
    match step {
        WaitStep::Unreachable(reason) => Err(unreachable(with_last(reason))),
        _ => Ok(waiter.report(now_ms())),
    }
}
