//! The Indexer service: package events in, index updates done, status out.
//!
//! Every decision (what an event is about, when to run, full or update,
//! retry, backoff, what to commit, when to send a heartbeat) is made by
//! [`spk_messaging_core::indexer::IndexerMachine`]; this module is the Kafka
//! I/O around it, in one loop on one thread:
//!
//! - read every partition of the package updates topic, from the offsets
//!   committed by consumer group `spk-indexer-NAME` (earliest when none;
//!   auto commit off). Partitions are assigned by the Indexer itself, not
//!   split through a group join: every replica reads every partition, the
//!   index lock serializes their runs, and a run repeated by a second
//!   replica is idempotent and cheap. New partitions are picked up when the
//!   topic's metadata is refreshed;
//! - feed each message and the clock to the machine, and do what it says:
//!   run the index through [`IndexRunner`], commit offsets, send a
//!   heartbeat. Status and heartbeats go where the routing rule
//!   ([`spk_messaging_core::route::route_index_status`]) sends the
//!   repository's index status, the same place `spk repo index` sends to and
//!   waiters listen on;
//! - broker errors are logged and librdkafka keeps reconnecting; nothing
//!   transient ends the service;
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
use spk_messaging_core::indexer::{Action, IndexerMachine, IndexerRules, RunResult};
use spk_messaging_core::indexing::{IndexRunError, IndexRunner};
use spk_messaging_core::route::{route_index_status, IndexRoute};
use spk_messaging_core::security::ConnectFailure;
use spk_messaging_core::{
    IndexEvent, IndexStatusMessage, IndexStatusReporter, RepoTarget, ReportError,
};

pub use spk_messaging_core::indexer::{classify, Classified};

use crate::client::{consumer, metadata_or_failure, ChannelContext, ClientError};
use crate::headers::{MessageHeaders, MessageKind, LOCK_HOLDER};
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
    /// The brokers refused the connection for a reason that waiting will
    /// not cure (a certificate, a password): the Indexer stops at start
    /// rather than retry forever; a service manager restarts it.
    #[error("indexer {name:?}: cannot connect to the brokers of channel {channel:?}: {failure}")]
    Connect {
        name: String,
        channel: String,
        failure: Box<ConnectFailure>,
    },
}

/// Everything a validated indexer needs.
#[derive(Debug, Clone)]
pub struct IndexerSetup {
    pub name: String,
    pub indexer: IndexerConfig,
    pub channel: KafkaChannelConfig,
    pub repo: ResolvedRepo,
    pub package_topic: String,
    /// The topic index status and heartbeats go to (the routing rule's
    /// answer for the repository); empty when they go nowhere.
    pub status_topic: String,
    /// The channel carrying them; `None` when nothing is sent, and
    /// `status_note` says why.
    pub status_channel: Option<KafkaChannelConfig>,
    pub status_note: Option<String>,
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
    if ch.index_updates_topic_name.is_none() {
        return Err(refused(format!(
            "channel {:?} has no index_updates_topic_name",
            ch.name
        )));
    }
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
    // Status goes where the repository's index status goes, whoever sends it.
    let (status_topic, status_channel, status_note) = match route_index_status(cfg, &repo) {
        IndexRoute::Send { channel, topic } => match cfg.channel(&channel) {
            Some(c) => (topic, Some(c.clone()), None),
            None => (
                String::new(),
                None,
                Some(format!("channel {channel:?} is not configured")),
            ),
        },
        IndexRoute::Skip { reason, .. } => (String::new(), None, Some(reason)),
    };
    Ok(IndexerSetup {
        name: name.to_string(),
        indexer: ix.clone(),
        channel: ch.clone(),
        repo,
        package_topic,
        status_topic,
        status_channel,
        status_note,
    })
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
    // A TLS or SASL failure at start is said and ends the run (exit 7/8);
    // a broker that is merely down is ridden out below.
    let errors = consumer.context().errors.clone();
    let start_timeout =
        Duration::from_millis(ch.index_update_listener_broker_fetch_timeout_ms.min(10_000));
    if let Err(no) = metadata_or_failure(
        consumer.client(),
        ch,
        &errors,
        Some(&setup.package_topic),
        start_timeout,
        &|| {
            let _ = consumer.poll(Duration::ZERO);
        },
    ) {
        match no.failure {
            Some(f) => {
                return Err(IndexerError::Connect {
                    name: setup.name.clone(),
                    channel: ch.name.clone(),
                    failure: Box::new(f),
                })
            }
            None => tracing::warn!("the brokers do not answer yet: {}; retrying", no.text()),
        }
    }
    let out = match &setup.status_channel {
        Some(sc) => Some(StatusOut {
            ch: sc,
            topic: setup.status_topic.clone(),
            key: setup.repo.name.clone(),
            producer: Mutex::new(Producers::global().get(sc)?),
            failed: AtomicBool::new(false),
            last_rebuild: Mutex::new(None),
        }),
        None => {
            tracing::warn!(
                "no index status or heartbeats will be sent (waiters will take this indexer for down): {}",
                setup.status_note.as_deref().unwrap_or("no channel")
            );
            None
        }
    };
    let repo_url = setup.repo.address.to_url();
    let obs = metrics::global();
    tracing::info!(indexer = %setup.name, group = %group, topic = %setup.package_topic, repo = %repo_url, "indexer started");

    let clock = Instant::now();
    let now = || u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    let target = RepoTarget::new(setup.repo.name.clone(), Some(setup.repo.address.clone()));
    let mut machine = IndexerMachine::new(
        IndexerRules::from_config(&setup.indexer, &setup.repo.config.index),
        target,
        now(),
    );

    let heartbeat = |holder: Option<&str>| {
        if let Some(h) = holder {
            tracing::info!("waiting for the index lock, held by {h}; sending a heartbeat");
        }
        let Some(out) = &out else { return };
        let msg = IndexStatusMessage {
            event: IndexEvent::Heartbeat,
            repo: repo_url.clone(),
            name: setup.name.clone(),
            start: chrono::Utc::now().timestamp(),
        };
        // While the lock is busy, the heartbeat says who holds it.
        let mut headers = MessageHeaders::new(MessageKind::IndexStatus);
        if let Some(h) = holder {
            headers = headers.with(LOCK_HOLDER, h);
        }
        let reporter = out.reporter();
        if let Err(e) = reporter.inner.send_with(&msg, headers) {
            reporter.failed.store(true, Ordering::SeqCst);
            obs.broker_error();
            tracing::warn!("heartbeat not delivered: {e}");
        }
        out.recover();
    };
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
        } else {
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
                    match machine.on_message(p, o, m.payload(), now()) {
                        Classified::Package(item) => {
                            tracing::debug!(partition = p, offset = o, "event for {item}");
                            obs.consumed(Consumed::Package);
                        }
                        Classified::Full => {
                            tracing::info!(partition = p, offset = o, "generate index requested");
                            obs.consumed(Consumed::GenerateIndex);
                        }
                        Classified::Other => obs.consumed(Consumed::Ignored),
                        Classified::Malformed(why) => {
                            obs.consumed(Consumed::Malformed);
                            tracing::warn!("skipping malformed message at topic {} partition {p} offset {o}: {why}", setup.package_topic);
                        }
                    }
                    let (n, full) = machine.pending();
                    obs.pending(n, full);
                }
            }
        }

        // Do what the machine says, until it says nothing.
        let mut todo: Vec<Action> = machine.on_tick(now()).into_iter().collect();
        while let Some(action) = todo.pop() {
            match action {
                Action::Heartbeat => heartbeat(machine.lock_holder()),
                Action::Commit(offsets) => commit(&consumer, &setup.package_topic, &offsets),
                Action::Run(scope) => {
                    tracing::info!("indexing: {scope}");
                    obs.run_started();
                    let began = Instant::now();
                    let result = match &out {
                        Some(out) => {
                            let r = runner.run(&scope, &out.reporter());
                            out.recover();
                            r
                        }
                        None => runner.run(&scope, &spk_messaging_core::NullReporter),
                    };
                    obs.run_done(&scope, &result, began.elapsed());
                    let outcome = match result {
                        Ok(summary) => {
                            tracing::info!("index updated: {summary}");
                            RunResult::Done
                        }
                        Err(IndexRunError::LockBusy(holder)) => {
                            let (n, _) = machine.pending();
                            tracing::warn!("index lock busy, held by {holder}; keeping {n} event(s), retrying in {} ms and sending heartbeats meanwhile", IndexerRules::from_config(&setup.indexer, &setup.repo.config.index).lock_sleep_ms);
                            RunResult::LockBusy(holder)
                        }
                        Err(IndexRunError::Failed(why)) => {
                            tracing::error!("index update failed: {why}; retrying with backoff");
                            RunResult::Failed(why)
                        }
                    };
                    todo.extend(machine.on_run_result(outcome, now()).into_iter().rev());
                    let (n, full) = machine.pending();
                    obs.pending(n, full);
                }
            }
            if todo.is_empty() {
                todo.extend(machine.on_tick(now()));
            }
        }
    }
    tracing::info!(
        "indexer {} stopping; {} event(s) not yet indexed stay uncommitted",
        setup.name,
        machine.pending().0
    );
    if let Some(out) = &out {
        if let Err(e) = out.producer().close() {
            tracing::warn!("{e}");
        }
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
    fn report_completed(&self, msg: &IndexStatusMessage, full: bool) -> Result<(), ReportError> {
        self.inner
            .report_completed(msg, full)
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

/// Commits `offsets` (partition -> the next offset to read).
fn commit(consumer: &BaseConsumer<ChannelContext>, topic: &str, offsets: &BTreeMap<i32, i64>) {
    if offsets.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        if let Err(e) = tpl.add_partition_offset(topic, *p, Offset::Offset(*o)) {
            tracing::warn!("cannot commit partition {p}: {e}");
        }
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
        // At-least-once: the events will be seen again and re-indexed.
        tracing::warn!("commit failed ({e}); the covered events may be indexed again");
    }
}
