//! The Indexer service: package events in, index updates done, status out.
//!
//! One loop, one thread, so the order of what it does is easy to follow:
//!
//! - read every partition of the package updates topic, from the offsets
//!   committed by consumer group `spk-indexer-NAME` (earliest when none;
//!   auto commit off). Replicas do *not* split partitions through a group
//!   join: a join takes seconds on some brokers, and a killed member can
//!   keep its partitions until the broker expels it (Tansu 0.6 never did in
//!   our tests), stranding their events. Every replica reads everything;
//!   the index lock serializes their runs, and a run repeated by a second
//!   replica is idempotent and cheap. New partitions are picked up when the
//!   topic's metadata is refreshed;
//! - collect `name/version` of events about this repository (matched by name
//!   or by normalised address); `generate index` makes the next run full;
//!   malformed payloads are logged with topic/partition/offset and skipped;
//! - when events have paused for the quiet period, run one index update
//!   covering them all, through [`IndexRunner`]; only when it succeeded are
//!   the offsets of every message it covers committed (at-least-once);
//! - index lock busy: keep the events, send a heartbeat so waiters do not give
//!   up, try again `lock_sleep_seconds` later; a failed run is retried with
//!   backoff; broker errors are logged and librdkafka keeps reconnecting.
//!   Nothing transient ends the service;
//! - heartbeat at start-up and every `heartbeat_freq_ms` while idle;
//! - the stop flag (SIGINT/SIGTERM) is checked between steps: a run in
//!   progress finishes (the index write is atomic either way), what it
//!   covered is committed, then the service returns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use spk_messaging_core::config::{Config, IndexerConfig, KafkaChannelConfig, ResolvedRepo};
use spk_messaging_core::indexing::{IndexRunError, IndexRunner, IndexScope};
use spk_messaging_core::{
    IndexEvent, IndexStatusMessage, IndexStatusReporter, PackageEvent, PackageUpdateMessage,
    PkgIdent, RepoAddress, ReportError,
};

use crate::client::{consumer, ChannelContext, ClientError};
use crate::metrics::{self, Consumed};
use crate::producer::{ChannelProducer, Producers};
use crate::reporter::KafkaStatusReporter;

/// Why the indexer refuses to start (or stopped on a non-transient error).
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("no indexer named {name:?} is configured ({known}); add [indexers.{name}] with message_channel_name and repo_name")]
    UnknownIndexer { name: String, known: String },
    #[error("indexer {name:?}: {problem}")]
    Refused { name: String, problem: String },
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Everything a validated indexer needs.
#[derive(Debug, Clone)]
pub struct IndexerSetup {
    pub name: String,
    pub indexer: IndexerConfig,
    pub channel: KafkaChannelConfig,
    pub repo: ResolvedRepo,
    pub package_topic: String,
    pub status_topic: String,
}

/// Checks the indexer's config as SPK would refuse it, and more.
/// `lookup` finds the repository's address where the SPK config gives none
/// (spfs's config, on a site).
pub fn validate(
    cfg: &Config,
    name: &str,
    lookup: &dyn spk_messaging_core::config::AddressLookup,
) -> Result<IndexerSetup, IndexerError> {
    let refused = |problem: String| IndexerError::Refused {
        name: name.to_string(),
        problem,
    };
    let ix = cfg
        .indexers
        .get(name)
        .ok_or_else(|| IndexerError::UnknownIndexer {
            name: name.to_string(),
            known: if cfg.indexers.is_empty() {
                "none configured".into()
            } else {
                format!(
                    "configured: {}",
                    cfg.indexers.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            },
        })?;
    let ch = cfg.channel(&ix.message_channel_name).ok_or_else(|| {
        refused(format!(
            "its channel {:?} (message_channel_name) does not exist",
            ix.message_channel_name
        ))
    })?;
    let package_topic = ch.package_updates_topic_name.clone().ok_or_else(|| {
        refused(format!(
            "channel {:?} has no package_updates_topic_name",
            ch.name
        ))
    })?;
    let status_topic = ch.index_updates_topic_name.clone().ok_or_else(|| {
        refused(format!(
            "channel {:?} has no index_updates_topic_name",
            ch.name
        ))
    })?;
    if ix.repo_name == "local" {
        return Err(refused("it cannot index the `local` repository".into()));
    }
    if !ch.allows_repo(&ix.repo_name) {
        return Err(refused(format!(
            "repository {:?} is not in channel {:?}'s repo_names",
            ix.repo_name, ch.name
        )));
    }
    let repo = cfg
        .resolve_repo_with(&ix.repo_name, std::path::Path::new("/"), lookup)
        .map_err(|e| refused(e.to_string()))?;
    if !repo.config.use_index {
        return Err(refused(format!(
            "repository {:?} has use_index = false",
            ix.repo_name
        )));
    }
    Ok(IndexerSetup {
        name: name.to_string(),
        indexer: ix.clone(),
        channel: ch.clone(),
        repo,
        package_topic,
        status_topic,
    })
}

/// What the service has collected and not yet indexed.
#[derive(Debug, Default)]
struct Pending {
    full: bool,
    /// `name` or `name/version`.
    items: BTreeSet<String>,
    /// Highest offset seen per partition, committed after a successful run.
    offsets: BTreeMap<i32, i64>,
    last_event: Option<Instant>,
}

impl Pending {
    fn has_work(&self) -> bool {
        self.full || !self.items.is_empty()
    }

    fn scope(&self) -> IndexScope {
        if self.full {
            return IndexScope::Full;
        }
        IndexScope::Update(
            self.items
                .iter()
                .filter_map(|s| s.parse::<PkgIdent>().ok())
                .collect(),
        )
    }
}

/// What happened to one consumed message, for tests and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// `name/version` to re-read.
    Package(String),
    /// `generate index`.
    Full,
    /// About another repository.
    Other,
    /// Not a usable package update message; the reason.
    Malformed(String),
}

/// Reads one payload the way the indexer does.
pub fn classify(payload: Option<&[u8]>, repo_name: &str, address: &RepoAddress) -> Classified {
    let Some(bytes) = payload else {
        return Classified::Malformed("empty message".into());
    };
    let msg = match PackageUpdateMessage::from_bytes(bytes) {
        Ok(m) => m,
        Err(e) => return Classified::Malformed(e.to_string()),
    };
    let same_address =
        RepoAddress::parse(&msg.repo, std::path::Path::new("/")).is_ok_and(|a| &a == address);
    if msg.repo_name != repo_name && !same_address {
        return Classified::Other;
    }
    if msg.event == PackageEvent::GenerateIndex {
        return Classified::Full;
    }
    match PkgIdent::parse_full(&msg.package) {
        Ok(id) => {
            let v = id.version.map(|v| format!("/{v}")).unwrap_or_default();
            Classified::Package(format!("{}{v}", id.name))
        }
        Err(e) => Classified::Malformed(e.to_string()),
    }
}

/// Runs the service until `stop` is set.
pub fn run(
    setup: &IndexerSetup,
    runner: &dyn IndexRunner,
    stop: &Arc<AtomicBool>,
) -> Result<(), IndexerError> {
    let ch = &setup.channel;
    let group = format!("spk-indexer-{}", setup.name);
    let consumer = consumer(
        ch,
        &[
            ("group.id", group.clone()),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            ("auto.offset.reset", "earliest".into()),
            // An event should not sit in the broker for librdkafka's default
            // 500 ms fetch wait before the quiet period even starts.
            ("fetch.wait.max.ms", "100".into()),
            (
                "session.timeout.ms",
                setup.indexer.session_timeout_ms.to_string(),
            ),
            (
                "max.poll.interval.ms",
                setup.indexer.max_polling_interval_ms.to_string(),
            ),
        ],
    )?;
    let out = StatusOut {
        ch,
        topic: setup.status_topic.clone(),
        key: setup.repo.name.clone(),
        producer: Mutex::new(Producers::global().get(ch)?),
        failed: AtomicBool::new(false),
        last_rebuild: Mutex::new(None),
    };
    let repo_url = setup.repo.address.to_url();
    let obs = metrics::global();
    tracing::info!(indexer = %setup.name, group = %group, topic = %setup.package_topic, repo = %repo_url, "indexer started");

    let heartbeat = || {
        let msg = IndexStatusMessage {
            event: IndexEvent::Heartbeat,
            repo: repo_url.clone(),
            name: setup.name.clone(),
            start: chrono::Utc::now().timestamp(),
        };
        if let Err(e) = out.reporter().report(&msg) {
            obs.broker_error();
            tracing::warn!("heartbeat not delivered: {e}");
        }
        out.recover();
    };
    heartbeat();
    let heartbeat_every = Duration::from_millis(setup.indexer.heartbeat_freq_ms);
    let quiet = Duration::from_millis(setup.indexer.quiet_period_ms);
    let lock_sleep = Duration::from_secs(setup.repo.config.index.lock_sleep_seconds.max(1));
    let mut last_status = Instant::now();
    let mut pending = Pending::default();
    let mut retry_at: Option<Instant> = None;
    let mut failures: u32 = 0;
    let mut last_poll_error: Option<Instant> = None;

    let fetch_timeout =
        Duration::from_millis(ch.index_update_listener_broker_fetch_timeout_ms.min(10_000));
    let mut assigned: BTreeSet<i32> = BTreeSet::new();
    let mut next_assign_check = Instant::now();

    while !stop.load(Ordering::SeqCst) {
        obs.tick();
        if Instant::now() >= next_assign_check {
            match assign_new_partitions(
                &consumer,
                &setup.package_topic,
                &mut assigned,
                fetch_timeout,
            ) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    "reading {n} more partition(s) of {}; {} in all",
                    setup.package_topic,
                    assigned.len()
                ),
                Err(e) => {
                    obs.broker_error();
                    tracing::warn!(
                        "cannot read the partitions of {} yet: {e}; retrying",
                        setup.package_topic
                    )
                }
            }
            // Soon while nothing is assigned (broker down at start), then now and then.
            next_assign_check = Instant::now()
                + if assigned.is_empty() {
                    Duration::from_secs(1)
                } else {
                    Duration::from_secs(30)
                };
        }
        if assigned.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            if last_status.elapsed() >= heartbeat_every {
                heartbeat();
                last_status = Instant::now();
            }
            continue;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => {
                obs.broker_error();
                // librdkafka reconnects by itself; say so now and then.
                if last_poll_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!("package updates topic: {e}; retrying");
                    last_poll_error = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Some(Ok(m)) => {
                let (p, o) = (m.partition(), m.offset());
                let at = pending.offsets.entry(p).or_insert(o);
                *at = (*at).max(o);
                match classify(m.payload(), &setup.repo.name, &setup.repo.address) {
                    Classified::Package(item) => {
                        tracing::debug!(partition = p, offset = o, "event for {item}");
                        obs.consumed(Consumed::Package);
                        pending.items.insert(item);
                        pending.last_event = Some(Instant::now());
                    }
                    Classified::Full => {
                        tracing::info!(partition = p, offset = o, "generate index requested");
                        obs.consumed(Consumed::GenerateIndex);
                        pending.full = true;
                        pending.last_event = Some(Instant::now());
                    }
                    Classified::Other => obs.consumed(Consumed::Ignored),
                    Classified::Malformed(why) => {
                        obs.consumed(Consumed::Malformed);
                        tracing::warn!("skipping malformed message at topic {} partition {p} offset {o}: {why}", setup.package_topic);
                    }
                }
                obs.pending(pending.items.len(), pending.full);
            }
        }

        let now = Instant::now();
        if pending.has_work() {
            let quiet_enough = pending
                .last_event
                .is_none_or(|t| now.duration_since(t) >= quiet);
            let may_retry = retry_at.is_none_or(|t| now >= t);
            if quiet_enough && may_retry {
                let scope = pending.scope();
                tracing::info!("indexing {scope:?}");
                let reporter = out.reporter();
                obs.run_started();
                let began = Instant::now();
                let result = runner.run(&scope, &reporter);
                obs.run_done(&scope, &result, began.elapsed());
                out.recover();
                match result {
                    Ok(summary) => {
                        tracing::info!("index updated: {summary}");
                        commit(&consumer, &setup.package_topic, &pending.offsets);
                        pending = Pending::default();
                        obs.pending(0, false);
                        retry_at = None;
                        failures = 0;
                    }
                    Err(IndexRunError::LockBusy(holder)) => {
                        tracing::warn!("index lock busy ({holder}); keeping {} event(s), retrying in {lock_sleep:?}", pending.items.len());
                        heartbeat();
                        retry_at = Some(Instant::now() + lock_sleep);
                    }
                    Err(IndexRunError::Failed(why)) => {
                        failures += 1;
                        let backoff = Duration::from_secs((1u64 << failures.min(6)).min(60));
                        tracing::error!("index update failed: {why}; retrying in {backoff:?}");
                        retry_at = Some(Instant::now() + backoff);
                    }
                }
                last_status = Instant::now();
            }
        } else if !pending.offsets.is_empty() {
            // Only other repositories' or malformed messages: nothing to index.
            commit(&consumer, &setup.package_topic, &pending.offsets);
            pending.offsets.clear();
        }
        if last_status.elapsed() >= heartbeat_every {
            heartbeat();
            last_status = Instant::now();
        }
    }
    tracing::info!(
        "indexer {} stopping; {} event(s) not yet indexed stay uncommitted",
        setup.name,
        pending.items.len()
    );
    if let Err(e) = out.producer().close() {
        tracing::warn!("{e}");
    }
    Ok(())
}

/// Where heartbeats and run status go. A producer whose send failed is
/// replaced (at most every few seconds): after a broker outage an
/// idempotent producer can be left unable to send again (seen with a Tansu
/// restart), and a service that runs for months must not keep a dead one.
struct StatusOut<'a> {
    ch: &'a KafkaChannelConfig,
    topic: String,
    key: String,
    producer: Mutex<Arc<ChannelProducer>>,
    failed: AtomicBool,
    last_rebuild: Mutex<Option<Instant>>,
}

const REBUILD_AT_MOST_EVERY: Duration = Duration::from_secs(5);

impl StatusOut<'_> {
    fn producer(&self) -> Arc<ChannelProducer> {
        self.producer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A reporter for one run or heartbeat; a fresh one each time, so that
    /// one undelivered message does not silence the next ones.
    fn reporter(&self) -> Tracked<'_> {
        Tracked {
            inner: KafkaStatusReporter::new(self.producer(), &self.topic, &self.key),
            failed: &self.failed,
        }
    }

    /// Replaces the producer if a send failed since the last call.
    fn recover(&self) {
        if !self.failed.swap(false, Ordering::SeqCst) {
            return;
        }
        let mut last = self.last_rebuild.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < REBUILD_AT_MOST_EVERY) {
            self.failed.store(true, Ordering::SeqCst); // try again later
            return;
        }
        *last = Some(Instant::now());
        match ChannelProducer::new(self.ch) {
            Ok(p) => {
                tracing::info!(channel = %self.ch.name, "a status send failed: using a new producer");
                *self.producer.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
            }
            Err(e) => tracing::warn!("cannot make a new producer: {e}"),
        }
    }
}

/// Sends through a [`KafkaStatusReporter`], noting any failure.
struct Tracked<'a> {
    inner: KafkaStatusReporter,
    failed: &'a AtomicBool,
}

impl IndexStatusReporter for Tracked<'_> {
    fn report(&self, msg: &IndexStatusMessage) -> Result<(), ReportError> {
        self.inner
            .report(msg)
            .inspect_err(|_| self.failed.store(true, Ordering::SeqCst))
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Assigns the partitions of `topic` not yet in `assigned`, each from the
/// group's committed offset (earliest when none). Returns how many were added.
fn assign_new_partitions(
    consumer: &BaseConsumer<ChannelContext>,
    topic: &str,
    assigned: &mut BTreeSet<i32>,
    timeout: Duration,
) -> Result<usize, rdkafka::error::KafkaError> {
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut fresh = TopicPartitionList::new();
    for t in md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
    {
        for p in t.partitions() {
            if !assigned.contains(&p.id()) {
                fresh.add_partition(topic, p.id());
            }
        }
    }
    if fresh.count() == 0 {
        return Ok(0);
    }
    let committed = consumer.committed_offsets(fresh, timeout)?;
    let mut tpl = TopicPartitionList::new();
    for e in committed.elements() {
        let from = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ => Offset::Beginning,
        };
        tpl.add_partition_offset(topic, e.partition(), from)?;
    }
    consumer.incremental_assign(&tpl)?;
    let n = tpl.count();
    for e in tpl.elements() {
        assigned.insert(e.partition());
    }
    Ok(n)
}

fn commit(consumer: &BaseConsumer<ChannelContext>, topic: &str, offsets: &BTreeMap<i32, i64>) {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        if let Err(e) = tpl.add_partition_offset(topic, *p, Offset::Offset(o + 1)) {
            tracing::warn!("cannot commit partition {p}: {e}");
        }
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
        // At-least-once: the events will be seen again and re-indexed.
        tracing::warn!("commit failed ({e}); the covered events may be indexed again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_payloads() {
        let addr = RepoAddress::parse("/srv/origin", std::path::Path::new("/")).unwrap();
        let c = |s: &str| classify(Some(s.as_bytes()), "origin", &addr);
        assert_eq!(
            c(
                r#"{"event":"package published","repo":"file:///srv/origin","repo_name":"origin","package":"my-pkg/1.0.0/3I42H3S6"}"#
            ),
            Classified::Package("my-pkg/1.0.0".into())
        );
        // SPK's own spelling, matched by address under another name.
        assert_eq!(
            c(
                r#"{"event":"Removed","repo":"file:/srv/origin/","repo_name":"prod","package":"my-pkg/1.0.0/src"}"#
            ),
            Classified::Package("my-pkg/1.0.0".into())
        );
        assert_eq!(
            c(r#"{"event":"GenerateFullIndex","repo":"x","repo_name":"origin"}"#),
            Classified::Full
        );
        assert_eq!(
            c(
                r#"{"event":"package published","repo":"file:/elsewhere","repo_name":"other","package":"a-b/1/src"}"#
            ),
            Classified::Other
        );
        assert!(matches!(c("not json"), Classified::Malformed(_)));
        assert!(matches!(
            c(r#"{"event":"package published","repo":"x","repo_name":"origin","package":"mypkg/1.2.3/ABCDEF"}"#),
            Classified::Malformed(m) if m.contains("base32")
        ));
        assert!(matches!(
            classify(Some(&[0xff, 0x00]), "origin", &addr),
            Classified::Malformed(_)
        ));
        assert!(matches!(
            classify(None, "origin", &addr),
            Classified::Malformed(_)
        ));
    }
}
