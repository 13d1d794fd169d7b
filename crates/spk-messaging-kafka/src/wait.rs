//! Waiting until a repository's index has caught up with a change.
//!
//! As SPK's waiters do, we read the index status topic by manual assignment
//! (no consumer-group join, which takes seconds on some brokers), but we
//! decide whether an indexer is alive from what the topic *holds*, read to
//! its end with a proper timeout, not from whatever the first poll happens
//! to return:
//!
//! 1. fetch the topic's partitions and their high watermarks (bounded by
//!    `index_update_listener_broker_fetch_timeout_ms`);
//! 2. start every partition at the first message of the recent past
//!    (`index_update_listener_recent_past_duration_ms`, or `since` if
//!    earlier), found by timestamp, and at least its last 100 messages (not
//!    every broker looks offsets up by time), and read up to those
//!    watermarks; message timestamps decide what is recent;
//! 3. no message about this repository in the recent past: the indexer is
//!    down, say so at once; otherwise keep reading until an "index
//!    completed" for the repository with `start >= since` arrives, giving up
//!    after `index_update_listener_timeout_ms` with no new message about it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use spk_messaging_core::config::KafkaChannelConfig;
use spk_messaging_core::{IndexEvent, IndexStatusMessage};

use crate::client::{consumer, ClientError};

/// How far back to read a partition when the broker cannot look offsets up
/// by time.
const LOOKBACK_WITHOUT_TIMES: i64 = 2000;
/// Every partition is read at least this far back, whatever the lookup by
/// time says: some brokers (librdkafka's mock cluster) answer "end" to any
/// timestamp. Timestamps, not offsets, decide what counts as recent.
const ALWAYS_READ_LAST: i64 = 100;

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
}

/// A status message seen while waiting.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    pub event: String,
    pub name: String,
    pub repo: String,
    pub start: i64,
    pub partition: i32,
    pub offset: i64,
    /// Kafka timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// How waiting ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitOutcome {
    /// "index completed" for the repository with `start >= since` arrived.
    Completed,
    /// No status message about the repository in the recent past.
    IndexerDown,
    /// No new message about the repository within the listener timeout.
    TimedOut,
}

/// What the waiter saw.
#[derive(Debug, Clone, Serialize)]
pub struct WaitReport {
    pub outcome: WaitOutcome,
    pub repo_name: String,
    pub since: i64,
    /// The newest message about the repository before waiting began, and
    /// how old it was then.
    pub newest_before_wait: Option<Seen>,
    pub newest_age_ms: Option<i64>,
    /// The "index completed" that ended the wait.
    pub completed: Option<Seen>,
    /// Messages about the repository read while waiting.
    pub seen: Vec<Seen>,
    pub waited_ms: u64,
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
    },
}

fn about_repo(m: &IndexStatusMessage, req: &WaitRequest) -> bool {
    m.name == req.repo_name || m.repo == req.repo_url
}

/// Waits for the repository's index to complete a run started at or after
/// `req.since`.
pub fn wait_for_index(ch: &KafkaChannelConfig, req: &WaitRequest) -> Result<WaitReport, WaitError> {
    let began = Instant::now();
    let topic = ch
        .index_updates_topic_name
        .clone()
        .ok_or_else(|| WaitError::NoTopic {
            channel: ch.name.clone(),
        })?;
    let fetch_timeout = Duration::from_millis(ch.index_update_listener_broker_fetch_timeout_ms);
    let listen_timeout = req
        .timeout
        .unwrap_or(Duration::from_millis(ch.index_update_listener_timeout_ms));
    let unreachable = |reason: String| WaitError::Unreachable {
        topic: topic.clone(),
        brokers: ch.brokers.join(","),
        timeout_ms: ch.index_update_listener_broker_fetch_timeout_ms,
        reason,
    };

    let group = format!(
        "spk-wait-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
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

    // 1. Partitions and where each ends now.
    let md = consumer
        .fetch_metadata(Some(&topic), fetch_timeout)
        .map_err(|e| unreachable(with_last(e.to_string())))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(unreachable(format!(
            "topic {topic:?} does not exist on the cluster"
        )));
    }
    let mut ends: HashMap<i32, (i64, i64)> = HashMap::new();
    for p in &partitions {
        let w = consumer
            .fetch_watermarks(&topic, *p, fetch_timeout)
            .map_err(|e| unreachable(with_last(e.to_string())))?;
        ends.insert(*p, w);
    }

    // 2. Start at the recent past (or `since`, if earlier).
    let now_ms = chrono::Utc::now().timestamp_millis();
    let recent_ms =
        i64::try_from(ch.index_update_listener_recent_past_duration_ms).unwrap_or(i64::MAX);
    let from_ms = (now_ms - recent_ms).min(req.since.saturating_mul(1000));
    let mut by_time = TopicPartitionList::new();
    for p in &partitions {
        by_time
            .add_partition_offset(&topic, *p, Offset::Offset(from_ms))
            .map_err(|e| unreachable(e.to_string()))?;
    }
    let starts: HashMap<i32, i64> = match consumer.offsets_for_times(by_time, fetch_timeout) {
        Ok(found) => found
            .elements()
            .iter()
            .map(|e| {
                let (low, high) = ends[&e.partition()];
                let by_time = match e.offset() {
                    Offset::Offset(o) => o.clamp(low, high),
                    _ => high,
                };
                (
                    e.partition(),
                    by_time.min((high - ALWAYS_READ_LAST).max(low)),
                )
            })
            .collect(),
        Err(e) => {
            tracing::debug!("offsets by time unavailable ({e}); reading the last {LOOKBACK_WITHOUT_TIMES} messages of each partition");
            ends.iter()
                .map(|(p, (low, high))| (*p, (high - LOOKBACK_WITHOUT_TIMES).max(*low)))
                .collect()
        }
    };
    let mut assign = TopicPartitionList::new();
    for (p, o) in &starts {
        assign
            .add_partition_offset(&topic, *p, Offset::Offset(*o))
            .map_err(|e| unreachable(e.to_string()))?;
    }
    consumer
        .assign(&assign)
        .map_err(|e| unreachable(with_last(e.to_string())))?;

    let mut report = WaitReport {
        outcome: WaitOutcome::TimedOut,
        repo_name: req.repo_name.clone(),
        since: req.since,
        newest_before_wait: None,
        newest_age_ms: None,
        completed: None,
        seen: Vec::new(),
        waited_ms: 0,
    };
    // Partitions not yet read up to the watermark fetched in step 1.
    let mut behind: HashMap<i32, i64> = starts
        .iter()
        .filter(|(p, o)| **o < ends[p].1)
        .map(|(p, _)| (*p, ends[p].1))
        .collect();
    let catch_up_deadline = Instant::now() + fetch_timeout;
    let mut caught_up = behind.is_empty();
    let mut deadline = Instant::now() + listen_timeout;
    // Kafka timestamps of the "index started" messages seen, by `start`.
    let mut started_at: HashMap<i64, i64> = HashMap::new();

    loop {
        if caught_up
            && report.newest_before_wait.is_none()
            && report.outcome != WaitOutcome::Completed
        {
            // Step 3: nothing about the repository in the recent past.
            report.outcome = WaitOutcome::IndexerDown;
            break;
        }
        let now = Instant::now();
        if !caught_up && now > catch_up_deadline {
            return Err(unreachable(with_last(format!(
                "could not read the recent past of {} partition(s) in time",
                behind.len()
            ))));
        }
        if caught_up && now > deadline {
            report.outcome = WaitOutcome::TimedOut;
            break;
        }
        let Some(r) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = match r {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("status topic: {e}");
                continue;
            }
        };
        let (partition, offset) = (m.partition(), m.offset());
        if let Some(end) = behind.get(&partition) {
            if offset + 1 >= *end {
                behind.remove(&partition);
            }
        }
        let status = m.payload().map(IndexStatusMessage::from_bytes);
        let was_caught_up = caught_up;
        caught_up = behind.is_empty();
        if caught_up && !was_caught_up {
            // The recent past is read: the listener timeout starts now.
            deadline = Instant::now() + listen_timeout;
        }
        let Some(Ok(status)) = status else {
            tracing::debug!(
                partition,
                offset,
                "skipping a status message that is not SPK's format"
            );
            continue;
        };
        if !about_repo(&status, req) {
            continue;
        }
        let ts = m.timestamp().to_millis();
        let seen = Seen {
            event: status.event.to_string(),
            name: status.name.clone(),
            repo: status.repo.clone(),
            start: status.start,
            partition,
            offset,
            timestamp_ms: ts,
        };
        if !was_caught_up {
            // Part of the recent past: is it recent enough to prove life?
            let t = ts.unwrap_or(status.start.saturating_mul(1000));
            if t >= now_ms - recent_ms && report.newest_age_ms.is_none_or(|a| now_ms - t < a) {
                report.newest_age_ms = Some(now_ms - t);
                report.newest_before_wait = Some(seen.clone());
            }
        } else {
            deadline = Instant::now() + listen_timeout;
        }
        if status.event == IndexEvent::Started {
            if let Some(t) = ts {
                started_at.insert(status.start, t);
            }
        }
        let covers = status.start > req.since
            || (status.start == req.since
                && req
                    .since_ms
                    .is_none_or(|ms| started_at.get(&status.start).is_some_and(|t| *t >= ms)));
        if status.event == IndexEvent::Completed && covers {
            report.completed = Some(seen.clone());
            report.seen.push(seen);
            report.outcome = WaitOutcome::Completed;
            break;
        }
        report.seen.push(seen);
    }
    report.waited_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}
