//! What the Indexer tells monitoring systems: Prometheus metrics (encoded by
//! the `prometheus-client` crate), liveness and readiness.
//!
//! One set per process ([`global`]); the service loop in `indexer.rs` calls
//! the one-line hooks below, the `spk repo indexer --metrics-addr` server
//! encodes and answers. Every hook is a few atomic operations, so they cost
//! nothing when no one scrapes. The names are documented in
//! `docs/operations.md`.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rdkafka::consumer::Consumer;
use spk_messaging_core::config::KafkaChannelConfig;
use spk_messaging_core::indexing::{IndexRunError, IndexScope};

use crate::client::{consumer, ClientError};

type Labels = Vec<(String, String)>;

/// Every metric name this module exposes (as scraped, with `_total` on
/// counters); docs and alert rules are checked against it.
pub const METRIC_NAMES: &[&str] = &[
    "spk_indexer_events_consumed_total",
    "spk_indexer_events_ignored_total",
    "spk_indexer_events_malformed_total",
    "spk_indexer_runs_total",
    "spk_indexer_run_duration_seconds",
    "spk_indexer_pending_events",
    "spk_indexer_seconds_since_last_success",
    "spk_indexer_lock_waits_total",
    "spk_indexer_broker_errors_total",
    "spk_indexer_broker_connected",
    "spk_indexer_ready",
    "spk_indexer_replica_info",
];

/// The loop is taken to be stuck when it has not turned for this long
/// outside an index run.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);

/// What kind of message the service just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// An event about its repository (a package to re-read).
    Package,
    /// `generate index` for its repository.
    GenerateIndex,
    /// About another repository.
    Ignored,
    /// Not a usable package update message.
    Malformed,
}

/// The Indexer's metrics and health state.
#[derive(Debug)]
pub struct IndexerMetrics {
    registry: Registry,
    consumed: Family<Labels, Counter>,
    ignored: Counter,
    malformed: Counter,
    runs: Family<Labels, Counter>,
    run_duration: Histogram,
    pending: Gauge,
    since_success: Gauge<f64, AtomicU64>,
    lock_waits: Counter,
    broker_errors: Counter,
    connected_gauge: Gauge,
    ready_gauge: Gauge,
    replica: Family<Labels, Gauge>,
    born: Instant,
    last_success_ms: AtomicI64,
    last_tick_ms: AtomicI64,
    in_run: AtomicBool,
    connected: AtomicBool,
    last_run_failed: AtomicBool,
}

/// The process's metrics.
pub fn global() -> &'static IndexerMetrics {
    static M: OnceLock<IndexerMetrics> = OnceLock::new();
    M.get_or_init(IndexerMetrics::new)
}

fn now_ms(born: Instant) -> i64 {
    i64::try_from(born.elapsed().as_millis()).unwrap_or(i64::MAX)
}

impl Default for IndexerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl IndexerMetrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        let consumed = Family::<Labels, Counter>::default();
        let ignored = Counter::default();
        let malformed = Counter::default();
        let runs = Family::<Labels, Counter>::default();
        let run_duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        let pending = Gauge::default();
        let since_success = Gauge::<f64, AtomicU64>::default();
        let lock_waits = Counter::default();
        let broker_errors = Counter::default();
        let connected_gauge = Gauge::default();
        let ready_gauge = Gauge::default();
        let replica = Family::<Labels, Gauge>::default();
        r.register(
            "spk_indexer_events_consumed",
            "Package update messages about this Indexer's repository, by kind (package, generate-index)",
            consumed.clone(),
        );
        r.register(
            "spk_indexer_events_ignored",
            "Package update messages about other repositories",
            ignored.clone(),
        );
        r.register(
            "spk_indexer_events_malformed",
            "Messages that are not usable package updates (skipped)",
            malformed.clone(),
        );
        r.register(
            "spk_indexer_runs",
            "Index runs, by kind (full, update) and outcome (success, lock-busy, failed)",
            runs.clone(),
        );
        r.register(
            "spk_indexer_run_duration_seconds",
            "Duration of index runs that ran (success or failed)",
            run_duration.clone(),
        );
        r.register(
            "spk_indexer_pending_events",
            "Packages/versions collected and not yet indexed (a full run pending counts one)",
            pending.clone(),
        );
        r.register(
            "spk_indexer_seconds_since_last_success",
            "Seconds since the last successful run (since start-up when there was none)",
            since_success.clone(),
        );
        r.register(
            "spk_indexer_lock_waits",
            "Runs put off because the index lock was busy",
            lock_waits.clone(),
        );
        r.register(
            "spk_indexer_broker_errors",
            "Errors reading from or sending to the brokers",
            broker_errors.clone(),
        );
        r.register(
            "spk_indexer_broker_connected",
            "1 when the brokers answered the last probe",
            connected_gauge.clone(),
        );
        r.register(
            "spk_indexer_ready",
            "1 when connected and the last run did not fail (what /readyz says)",
            ready_gauge.clone(),
        );
        r.register(
            "spk_indexer_replica_info",
            "This replica: indexer name, repository, channel, host, pid, version",
            replica.clone(),
        );
        IndexerMetrics {
            registry: r,
            consumed,
            ignored,
            malformed,
            runs,
            run_duration,
            pending,
            since_success,
            lock_waits,
            broker_errors,
            connected_gauge,
            ready_gauge,
            replica,
            born: Instant::now(),
            last_success_ms: AtomicI64::new(-1),
            last_tick_ms: AtomicI64::new(0),
            in_run: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            last_run_failed: AtomicBool::new(false),
        }
    }

    /// Names this replica (once, at start-up).
    pub fn identify(&self, name: &str, repo: &str, channel: &str) {
        let (host, _) = crate::headers::sender();
        let labels = vec![
            ("name".to_string(), name.to_string()),
            ("repo".to_string(), repo.to_string()),
            ("channel".to_string(), channel.to_string()),
            ("host".to_string(), host.clone()),
            ("pid".to_string(), std::process::id().to_string()),
            ("version".to_string(), crate::headers::VERSION.to_string()),
        ];
        self.replica.get_or_create(&labels).set(1);
    }

    /// The event loop turned.
    pub fn tick(&self) {
        self.last_tick_ms
            .store(now_ms(self.born), Ordering::Relaxed);
    }

    /// A message was read and classified.
    pub fn consumed(&self, what: Consumed) {
        match what {
            Consumed::Package => self.consumed_kind("package"),
            Consumed::GenerateIndex => self.consumed_kind("generate-index"),
            Consumed::Ignored => {
                self.ignored.inc();
            }
            Consumed::Malformed => {
                self.malformed.inc();
            }
        }
    }

    fn consumed_kind(&self, kind: &str) {
        self.consumed
            .get_or_create(&vec![("kind".to_string(), kind.to_string())])
            .inc();
    }

    /// How many packages/versions wait (plus one for a pending full run).
    pub fn pending(&self, items: usize, full: bool) {
        let n = i64::try_from(items).unwrap_or(i64::MAX) + i64::from(full);
        self.pending.set(n);
    }

    /// An index run begins.
    pub fn run_started(&self) {
        self.in_run.store(true, Ordering::SeqCst);
    }

    /// An index run ended after `took`.
    pub fn run_done(
        &self,
        scope: &IndexScope,
        result: &Result<String, IndexRunError>,
        took: Duration,
    ) {
        self.in_run.store(false, Ordering::SeqCst);
        self.tick();
        let kind = match scope {
            IndexScope::Full => "full",
            _ => "update",
        };
        let outcome = match result {
            Ok(_) => {
                self.last_success_ms
                    .store(now_ms(self.born), Ordering::SeqCst);
                self.last_run_failed.store(false, Ordering::SeqCst);
                "success"
            }
            Err(IndexRunError::LockBusy(_)) => {
                self.lock_waits.inc();
                "lock-busy"
            }
            Err(IndexRunError::Failed(_)) => {
                self.last_run_failed.store(true, Ordering::SeqCst);
                "failed"
            }
        };
        if outcome != "lock-busy" {
            self.run_duration.observe(took.as_secs_f64());
        }
        self.runs
            .get_or_create(&vec![
                ("kind".to_string(), kind.to_string()),
                ("outcome".to_string(), outcome.to_string()),
            ])
            .inc();
    }

    /// A read from or a send to the brokers failed.
    pub fn broker_error(&self) {
        self.broker_errors.inc();
    }

    /// Whether the brokers answer (set by [`spawn_probe`]).
    pub fn set_connected(&self, yes: bool) {
        self.connected.store(yes, Ordering::SeqCst);
    }

    /// `/healthz`: `Ok` while the loop turns (or a run is in progress),
    /// else why not.
    pub fn healthz(&self) -> Result<(), String> {
        if self.in_run.load(Ordering::SeqCst) {
            return Ok(());
        }
        let age = now_ms(self.born) - self.last_tick_ms.load(Ordering::Relaxed);
        let max = i64::try_from(STUCK_AFTER.as_millis()).unwrap_or(i64::MAX);
        if age > max {
            return Err(format!(
                "the event loop has not turned for {} s",
                age / 1000
            ));
        }
        Ok(())
    }

    /// `/readyz`: `Ok` when connected and the last run did not fail.
    pub fn readyz(&self) -> Result<(), String> {
        let mut why = Vec::new();
        if !self.connected.load(Ordering::SeqCst) {
            why.push("the brokers do not answer");
        }
        if self.last_run_failed.load(Ordering::SeqCst) {
            why.push("the last index run failed");
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }

    /// The metrics in the Prometheus/OpenMetrics text format.
    pub fn encode(&self) -> String {
        let now = now_ms(self.born);
        let last = self.last_success_ms.load(Ordering::SeqCst);
        let since = if last < 0 { now } else { now - last };
        self.since_success.set(since as f64 / 1000.0);
        self.connected_gauge
            .set(i64::from(self.connected.load(Ordering::SeqCst)));
        self.ready_gauge.set(i64::from(self.readyz().is_ok()));
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!("cannot encode metrics: {e}");
        }
        out
    }
}

/// Asks the brokers for `topic`'s metadata every `every` and records
/// whether they answered, until `stop` is set. Also counts a failure as a
/// broker error.
pub fn spawn_probe(
    ch: &KafkaChannelConfig,
    topic: &str,
    metrics: &'static IndexerMetrics,
    every: Duration,
    stop: std::sync::Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, ClientError> {
    // A group id librdkafka wants; never joined, nothing committed.
    let group = format!("spk-probe-{}", std::process::id());
    let c = consumer(
        ch,
        &[("group.id", group), ("enable.auto.commit", "false".into())],
    )?;
    let topic = topic.to_string();
    let timeout = every.max(Duration::from_millis(500));
    std::thread::Builder::new()
        .name("spk-broker-probe".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let ok = c
                    .fetch_metadata(Some(&topic), timeout)
                    .map(|md| {
                        md.topics()
                            .iter()
                            .any(|t| t.name() == topic && t.error().is_none())
                    })
                    .unwrap_or(false);
                if metrics.connected.swap(ok, Ordering::SeqCst) != ok {
                    if ok {
                        tracing::info!("brokers answer again");
                    } else {
                        tracing::warn!("brokers do not answer: not ready");
                    }
                }
                if !ok {
                    metrics.broker_error();
                }
                if let Some(rest) = every.checked_sub(t.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        })
        .map_err(|e| ClientError::Create {
            channel: ch.name.clone(),
            reason: format!("cannot start the broker probe thread: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_move_the_metrics_and_every_name_is_exposed() {
        let m = IndexerMetrics::new();
        m.identify("main", "file:///srv/origin/", "kafka");
        m.tick();
        m.consumed(Consumed::Package);
        m.consumed(Consumed::Package);
        m.consumed(Consumed::GenerateIndex);
        m.consumed(Consumed::Ignored);
        m.consumed(Consumed::Malformed);
        m.pending(3, true);
        m.run_started();
        m.run_done(
            &IndexScope::Full,
            &Ok("ok".into()),
            Duration::from_millis(200),
        );
        m.run_done(
            &IndexScope::Update(vec![]),
            &Err(IndexRunError::LockBusy("x".into())),
            Duration::ZERO,
        );
        m.broker_error();
        let text = m.encode();
        for name in METRIC_NAMES {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(
            text.contains(r#"spk_indexer_events_consumed_total{kind="package"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("spk_indexer_events_ignored_total 1"),
            "{text}"
        );
        assert!(
            text.contains("spk_indexer_events_malformed_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"spk_indexer_runs_total{kind="full",outcome="success"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"spk_indexer_runs_total{kind="update",outcome="lock-busy"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("spk_indexer_run_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("spk_indexer_pending_events 4"), "{text}");
        assert!(text.contains("spk_indexer_lock_waits_total 1"), "{text}");
        assert!(text.contains(r#"name="main""#), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn ready_needs_a_connection_and_a_run_that_did_not_fail() {
        let m = IndexerMetrics::new();
        m.tick();
        assert!(m.healthz().is_ok());
        assert!(m.readyz().unwrap_err().contains("brokers"));
        m.set_connected(true);
        assert!(m.readyz().is_ok());
        m.run_done(
            &IndexScope::Update(vec![]),
            &Err(IndexRunError::Failed("disk full".into())),
            Duration::from_secs(1),
        );
        assert!(m.readyz().unwrap_err().contains("last index run failed"));
        assert!(m.encode().contains("spk_indexer_ready 0"));
        m.run_done(
            &IndexScope::Update(vec![]),
            &Ok(String::new()),
            Duration::from_secs(1),
        );
        assert!(m.readyz().is_ok());
        assert!(m.encode().contains("spk_indexer_ready 1"));
    }

    #[test]
    fn a_loop_that_stopped_turning_is_unhealthy_unless_a_run_is_on() {
        let m = IndexerMetrics::new();
        m.last_tick_ms.store(-40_000, Ordering::SeqCst);
        assert!(m.healthz().unwrap_err().contains("not turned"));
        m.run_started();
        assert!(m.healthz().is_ok());
    }
}
