//! Reading the topics for operators: `spk messaging tail` and `spk messaging
//! status`. Manual assignment only (no consumer group is joined, nothing is
//! committed), so watching never disturbs the Indexer or anyone else.
//! Every decision (decoding, filters, the status verdict) is in
//! `spk_messaging_core::{watch, health}`; this module only reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use spk_messaging_core::config::KafkaChannelConfig;
use spk_messaging_core::health::{self, EventSeen, Health, HealthRules, StatusSeen};
use spk_messaging_core::security::ConnectFailure;
use spk_messaging_core::watch::{decode, Decoded, TopicKind};
use spk_messaging_core::RepoTarget;

use crate::client::{consumer, metadata_or_failure, ChannelContext, ClientError};

/// Reading failed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("channel {channel:?} has no {key}; there is nothing to read")]
    NoTopic { channel: String, key: &'static str },
    #[error("cannot read topic {topic:?} from brokers {brokers} within {timeout_ms} ms: {reason}")]
    Unreachable {
        topic: String,
        brokers: String,
        timeout_ms: u64,
        reason: String,
        /// The TLS or SASL problem behind it, when that is what failed.
        failure: Option<Box<ConnectFailure>>,
    },
}

/// Where a tail starts on each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Only messages that arrive from now on.
    End,
    /// Everything the topic holds.
    Beginning,
    /// The first message at or after this time (ms since the epoch).
    Time(i64),
}

/// One message read, with its coordinates and our headers.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Kafka timestamp, ms since the epoch.
    pub timestamp_ms: Option<i64>,
    pub key: Option<String>,
    /// Every header, in order (values lossily as UTF-8).
    pub headers: Vec<(String, String)>,
    #[serde(skip)]
    pub decoded: Decoded,
    /// For a malformed message, the start of its payload (lossy UTF-8, at
    /// most [`EXCERPT_CHARS`] characters).
    pub excerpt: Option<String>,
}

/// How much of a malformed payload is shown.
pub const EXCERPT_CHARS: usize = 200;

impl Record {
    fn from_message(m: &BorrowedMessage<'_>, kind: TopicKind) -> Record {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|hd| {
                        (
                            hd.key.to_string(),
                            hd.value
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                                .unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let decoded = decode(kind, m.payload());
        let excerpt = match (&decoded, m.payload()) {
            (Decoded::Malformed(_), Some(p)) => Some(
                String::from_utf8_lossy(&p[..p.len().min(EXCERPT_CHARS * 4)])
                    .chars()
                    .take(EXCERPT_CHARS)
                    .collect(),
            ),
            _ => None,
        };
        Record {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            headers,
            decoded,
            excerpt,
        }
    }

    /// The value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn watcher(ch: &KafkaChannelConfig) -> Result<BaseConsumer<ChannelContext>, ClientError> {
    // librdkafka wants a group id even for manual assignment; this one is
    // never joined (no subscribe) and nothing is committed under it.
    let group = format!(
        "spk-watch-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    consumer(
        ch,
        &[
            ("group.id", group),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            ("fetch.wait.max.ms", "100".into()),
        ],
    )
}

struct Reader<'a> {
    ch: &'a KafkaChannelConfig,
    consumer: BaseConsumer<ChannelContext>,
    timeout: Duration,
}

impl Reader<'_> {
    fn unreachable(&self, topic: &str, reason: String) -> ObserveError {
        let reason = match self.consumer.context().errors.last() {
            Some(l) => format!("{reason}; last client errors: {l}"),
            None => reason,
        };
        ObserveError::Unreachable {
            topic: topic.to_string(),
            brokers: self.ch.brokers.join(","),
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            reason,
            failure: None,
        }
    }

    /// Partitions of `topic` and their (low, high) watermarks.
    fn partitions(&self, topic: &str) -> Result<Vec<(i32, i64, i64)>, ObserveError> {
        let errors = self.consumer.context().errors.clone();
        let md = metadata_or_failure(
            self.consumer.client(),
            self.ch,
            &errors,
            Some(topic),
            self.timeout,
            &|| {
                let _ = self.consumer.poll(Duration::ZERO);
            },
        )
        .map_err(|no| ObserveError::Unreachable {
            topic: topic.to_string(),
            brokers: self.ch.brokers.join(","),
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            reason: no.text(),
            failure: no.failure.map(Box::new),
        })?;
        let ids: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if ids.is_empty() {
            return Err(self.unreachable(topic, format!("topic {topic:?} does not exist")));
        }
        ids.into_iter()
            .map(|p| {
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(topic, p, self.timeout)
                    .map_err(|e| self.unreachable(topic, e.to_string()))?;
                Ok((p, low, high))
            })
            .collect()
    }

    /// First offsets at or after `from_ms` per partition. A broker that
    /// cannot look offsets up by time gets the last `fallback` messages.
    fn offsets_at(
        &self,
        topic: &str,
        parts: &[(i32, i64, i64)],
        from_ms: i64,
        fallback: i64,
    ) -> Result<HashMap<i32, i64>, ObserveError> {
        let mut by_time = TopicPartitionList::new();
        for (p, _, _) in parts {
            by_time
                .add_partition_offset(topic, *p, Offset::Offset(from_ms))
                .map_err(|e| self.unreachable(topic, e.to_string()))?;
        }
        let bounds: HashMap<i32, (i64, i64)> =
            parts.iter().map(|(p, l, h)| (*p, (*l, *h))).collect();
        match self.consumer.offsets_for_times(by_time, self.timeout) {
            Ok(found) => Ok(found
                .elements()
                .iter()
                .map(|e| {
                    let (low, high) = bounds.get(&e.partition()).copied().unwrap_or((0, 0));
                    let o = match e.offset() {
                        Offset::Offset(o) => o.clamp(low, high),
                        _ => high,
                    };
                    (e.partition(), o)
                })
                .collect()),
            Err(e) => {
                tracing::debug!("offsets by time unavailable ({e}); reading the last {fallback} message(s) of each partition");
                Ok(parts
                    .iter()
                    .map(|(p, low, high)| (*p, (high - fallback).max(*low)))
                    .collect())
            }
        }
    }

    /// Every message of `topic` from `starts` up to the watermarks in
    /// `parts`, through `f`.
    fn read_to_end(
        &self,
        topic: &str,
        kind: TopicKind,
        parts: &[(i32, i64, i64)],
        starts: &HashMap<i32, i64>,
        mut f: impl FnMut(Record),
    ) -> Result<(), ObserveError> {
        let mut behind: HashMap<i32, i64> = parts
            .iter()
            .filter(|(p, _, high)| starts.get(p).is_some_and(|s| s < high))
            .map(|(p, _, high)| (*p, *high))
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in behind.keys() {
            let from = starts.get(p).copied().unwrap_or_default();
            tpl.add_partition_offset(topic, *p, Offset::Offset(from))
                .map_err(|e| self.unreachable(topic, e.to_string()))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| self.unreachable(topic, e.to_string()))?;
        // A generous bound: a large backlog takes time to read, but a
        // broker that stops answering must not hang the command.
        let mut deadline = Instant::now() + self.timeout;
        while !behind.is_empty() {
            if Instant::now() > deadline {
                return Err(self.unreachable(
                    topic,
                    format!(
                        "{} partition(s) not read to their end in time",
                        behind.len()
                    ),
                ));
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(e)) => tracing::debug!("{topic}: {e}"),
                Some(Ok(m)) => {
                    deadline = Instant::now() + self.timeout;
                    let (p, o) = (m.partition(), m.offset());
                    if let Some(end) = behind.get(&p) {
                        if o + 1 >= *end {
                            behind.remove(&p);
                        }
                    }
                    f(Record::from_message(&m, kind));
                }
            }
        }
        Ok(())
    }
}

/// What `tail` follows.
#[derive(Debug, Clone)]
pub struct TailRequest {
    /// Topics and what they carry.
    pub topics: Vec<(String, TopicKind)>,
    pub start: StartAt,
}

/// Follows `req.topics` until `stop` is set or `on_record` returns false.
/// Every message is passed on, malformed ones too (as [`Decoded::Malformed`]).
pub fn tail(
    ch: &KafkaChannelConfig,
    req: &TailRequest,
    stop: &AtomicBool,
    mut on_record: impl FnMut(Record) -> bool,
    mut on_idle: impl FnMut(),
) -> Result<(), ObserveError> {
    let r = Reader {
        ch,
        consumer: watcher(ch)?,
        timeout: Duration::from_millis(ch.index_update_listener_broker_fetch_timeout_ms),
    };
    let mut tpl = TopicPartitionList::new();
    let mut kinds: HashMap<String, TopicKind> = HashMap::new();
    for (topic, kind) in &req.topics {
        kinds.insert(topic.clone(), *kind);
        let parts = r.partitions(topic)?;
        let starts: HashMap<i32, i64> = match req.start {
            StartAt::End => parts.iter().map(|(p, _, h)| (*p, *h)).collect(),
            StartAt::Beginning => parts.iter().map(|(p, l, _)| (*p, *l)).collect(),
            StartAt::Time(ms) => r.offsets_at(topic, &parts, ms, 10_000)?,
        };
        for (p, o) in starts {
            tpl.add_partition_offset(topic, p, Offset::Offset(o))
                .map_err(|e| r.unreachable(topic, e.to_string()))?;
        }
    }
    r.consumer
        .assign(&tpl)
        .map_err(|e| r.unreachable("(all)", e.to_string()))?;
    let mut last_error: Option<Instant> = None;
    // The next offset expected per partition: a message read again (seen
    // with Tansu when following from the end of a partition) is not shown
    // twice.
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        match r.consumer.poll(Duration::from_millis(100)) {
            None => on_idle(),
            Some(Err(e)) => {
                if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!("reading: {e}; retrying");
                    last_error = Some(Instant::now());
                }
            }
            Some(Ok(m)) => {
                let at = next
                    .entry((m.topic().to_string(), m.partition()))
                    .or_insert(0);
                if m.offset() < *at {
                    tracing::debug!(
                        "{}/{}@{} read again; skipped",
                        m.topic(),
                        m.partition(),
                        m.offset()
                    );
                    continue;
                }
                *at = m.offset() + 1;
                let kind = kinds.get(m.topic()).copied().unwrap_or(TopicKind::Package);
                if !on_record(Record::from_message(&m, kind)) {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// What `status` asks.
#[derive(Debug, Clone)]
pub struct StatusRequest {
    pub target: RepoTarget,
    pub rules: HealthRules,
    /// How far back (ms) to look for the last completed run.
    pub lookback_ms: i64,
}

/// What `status` read, and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub repo: String,
    pub channel: String,
    pub status_topic: String,
    pub package_topic: Option<String>,
    pub status_messages_read: u64,
    pub package_events_read: u64,
    #[serde(flatten)]
    pub health: Health,
}

/// Reads the status topic (and the package topic, for the lag) of `ch` and
/// assesses the repository.
pub fn status(ch: &KafkaChannelConfig, req: &StatusRequest) -> Result<StatusReport, ObserveError> {
    let status_topic =
        ch.index_updates_topic_name
            .clone()
            .ok_or_else(|| ObserveError::NoTopic {
                channel: ch.name.clone(),
                key: "index_updates_topic_name",
            })?;
    let timeout = Duration::from_millis(ch.index_update_listener_broker_fetch_timeout_ms);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let from_ms = now_ms - req.lookback_ms.max(req.rules.recent_past_ms);

    let r = Reader {
        ch,
        consumer: watcher(ch)?,
        timeout,
    };
    let parts = r.partitions(&status_topic)?;
    // At least the last 100 messages, whatever the lookup by time says
    // (some brokers answer "end" to any timestamp); ages decide the rest.
    let starts: HashMap<i32, i64> = r
        .offsets_at(&status_topic, &parts, from_ms, 5_000)?
        .into_iter()
        .map(|(p, o)| {
            let floor = parts
                .iter()
                .find(|(q, _, _)| *q == p)
                .map_or(o, |(_, low, high)| (high - 100).max(*low));
            (p, o.min(floor))
        })
        .collect();
    let mut statuses = Vec::new();
    let mut status_read = 0u64;
    r.read_to_end(&status_topic, TopicKind::Index, &parts, &starts, |rec| {
        status_read += 1;
        let lock_holder = rec.header(crate::headers::LOCK_HOLDER).map(str::to_string);
        let run_kind = match rec.header(crate::headers::RUN_KIND) {
            Some("full") => Some(health::RunKind::Full),
            Some("update") => Some(health::RunKind::Update),
            _ => None,
        };
        if let Decoded::Index(m) = rec.decoded {
            if req.target.matches(&m.name, &m.repo) {
                let at_ms = rec.timestamp_ms.unwrap_or(m.start.saturating_mul(1000));
                statuses.push(StatusSeen {
                    msg: m,
                    at_ms,
                    lock_holder,
                    run_kind,
                });
            }
        }
    })?;

    let events_from = health::events_needed_from(&statuses, from_ms);
    let mut events = Vec::new();
    let mut events_read = 0u64;
    let package_topic = ch.package_updates_topic_name.clone();
    if let Some(topic) = &package_topic {
        let r = Reader {
            ch,
            consumer: watcher(ch)?,
            timeout,
        };
        let parts = r.partitions(topic)?;
        let starts = r.offsets_at(topic, &parts, events_from, 100_000)?;
        r.read_to_end(topic, TopicKind::Package, &parts, &starts, |rec| {
            events_read += 1;
            if let Decoded::Package(m) = rec.decoded {
                let at_ms = rec.timestamp_ms.unwrap_or(now_ms);
                if at_ms >= events_from && req.target.matches(&m.repo_name, &m.repo) {
                    events.push(EventSeen {
                        event: m.event,
                        package: m.package,
                        at_ms,
                    });
                }
            }
        })?;
    }
    let health = health::assess(&statuses, &events, events_from, now_ms, req.rules);
    Ok(StatusReport {
        repo: req.target.name.clone(),
        channel: ch.name.clone(),
        status_topic,
        package_topic,
        status_messages_read: status_read,
        package_events_read: events_read,
        health,
    })
}
