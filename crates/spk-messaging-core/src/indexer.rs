//! The Indexer's decisions, as a state machine fed messages and clock ticks.
//!
//! The Kafka code (`spk-messaging-kafka::indexer`) polls the package updates
//! topic, feeds each message to [`IndexerMachine::on_message`] and the clock
//! to [`IndexerMachine::on_tick`], and carries out the [`Action`]s it gets
//! back: run the index (reporting the result with
//! [`IndexerMachine::on_run_result`]), commit offsets, send a heartbeat.
//! Every rule is here, testable without a broker or a clock
//! (see `docs/contract.md`):
//!
//! - a message about the repository ([`RepoTarget`]: name, or normalised
//!   address) adds its `name/version` to the pending set (the build is never
//!   looked at, so no build form, however unusual, drops an event; a version
//!   that cannot be read widens the update to the whole package);
//!   `generate index` makes the next run full; other repositories' and
//!   malformed messages are only committed;
//! - a run starts once events have paused for the quiet period, or once the
//!   oldest pending event has waited the maximum batching delay, whichever
//!   comes first, so a steady stream of events cannot starve indexing;
//! - a successful run commits the offsets of every message it covers; the
//!   lock busy keeps the events, sends a heartbeat at once, remembers who
//!   holds the lock, and retries `lock_sleep_seconds` later (heartbeats keep
//!   going while it waits); a failed run is retried with backoff (2 s
//!   doubling to 60 s);
//! - a heartbeat goes out every `heartbeat_freq_ms` without other status.
//!
//! Times are milliseconds on any monotonic scale chosen by the caller;
//! arithmetic saturates, so no setting can overflow.

use std::collections::{BTreeMap, BTreeSet};

use crate::about::RepoTarget;
use crate::config::{IndexConfig, IndexerConfig};
use crate::ident::{PkgIdent, PkgName, Version};
use crate::indexing::IndexScope;
use crate::message::{PackageEvent, PackageUpdateMessage};

/// The default maximum batching delay: 30 s.
pub const DEFAULT_MAX_DELAY_MS: u64 = 30_000;
/// Backoff after the first failed run; doubles per failure.
pub const BACKOFF_START_MS: u64 = 2_000;
/// The longest backoff after failed runs.
pub const BACKOFF_MAX_MS: u64 = 60_000;
/// The longest wait between attempts at a busy lock (a day), whatever
/// `lock_sleep_seconds` says.
pub const LOCK_SLEEP_MAX_MS: u64 = 86_400_000;

/// The Indexer's timings, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexerRules {
    /// Events must pause this long before a run.
    pub quiet_ms: u64,
    /// A pending event never waits longer than this for a run to start
    /// (unless a run is failing or the lock is busy).
    pub max_delay_ms: u64,
    /// A heartbeat is sent after this long without any status message.
    pub heartbeat_ms: u64,
    /// Retry a busy lock after this long (at least 1 s, at most a day).
    pub lock_sleep_ms: u64,
}

impl IndexerRules {
    /// The rules of an indexer and its repository's index settings.
    pub fn from_config(ix: &IndexerConfig, index: &IndexConfig) -> Self {
        IndexerRules {
            quiet_ms: ix.quiet_period_ms,
            max_delay_ms: ix.max_delay_ms,
            heartbeat_ms: ix.heartbeat_freq_ms.max(1),
            lock_sleep_ms: index
                .lock_sleep_seconds
                .saturating_mul(1000)
                .clamp(1000, LOCK_SLEEP_MAX_MS),
        }
    }
}

/// What one consumed message means to the Indexer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// `name/version` (or `name`) to re-read.
    Package(String),
    /// `generate index`.
    Full,
    /// About another repository.
    Other,
    /// Not a usable package update message; the reason.
    Malformed(String),
}

/// Reads one payload the way the Indexer does.
pub fn classify(payload: Option<&[u8]>, target: &RepoTarget) -> Classified {
    let Some(bytes) = payload else {
        return Classified::Malformed("empty message".into());
    };
    let msg = match PackageUpdateMessage::from_bytes(bytes) {
        Ok(m) => m,
        Err(e) => return Classified::Malformed(e.to_string()),
    };
    if !target.matches(&msg.repo_name, &msg.repo) {
        return Classified::Other;
    }
    if msg.event == PackageEvent::GenerateIndex {
        return Classified::Full;
    }
    // Only name and version matter; the build is whatever SPK wrote.
    let mut parts = msg.package.splitn(3, '/');
    let name = parts.next().unwrap_or_default();
    let name = match name.parse::<PkgName>() {
        Ok(n) => n,
        Err(e) => return Classified::Malformed(e.to_string()),
    };
    match parts.next().map(str::parse::<Version>) {
        Some(Ok(v)) => Classified::Package(format!("{name}/{v}")),
        // No version, or one we cannot read: the whole package is re-read.
        _ => Classified::Package(name.to_string()),
    }
}

/// What the I/O loop must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run one index generation or update, then call
    /// [`IndexerMachine::on_run_result`].
    Run(IndexScope),
    /// Commit these offsets (partition -> the next offset to read).
    Commit(BTreeMap<i32, i64>),
    /// Send an `indexer heartbeat`.
    Heartbeat,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    Done,
    /// The index write lock is held; by whom (as the lock file says).
    LockBusy(String),
    Failed(String),
}

#[derive(Debug, Clone, Default)]
struct Pending {
    full: bool,
    /// `name` or `name/version`.
    items: BTreeSet<String>,
    /// Highest offset seen per partition.
    offsets: BTreeMap<i32, i64>,
    first_event_ms: Option<u64>,
    last_event_ms: Option<u64>,
}

impl Pending {
    fn has_work(&self) -> bool {
        self.full || !self.items.is_empty()
    }

    fn scope(&self) -> IndexScope {
        if self.full {
            return IndexScope::Full;
        }
        let mut ids: Vec<PkgIdent> = self
            .items
            .iter()
            .filter_map(|s| s.parse::<PkgIdent>().ok())
            .collect();
        // A whole package covers its versions.
        let whole: BTreeSet<String> = ids
            .iter()
            .filter(|i| i.version.is_none())
            .map(|i| i.name.to_string())
            .collect();
        ids.retain(|i| i.version.is_none() || !whole.contains(i.name.as_str()));
        IndexScope::Update(ids)
    }

    /// The offsets to commit: the next offset after each one seen.
    fn commit_offsets(&self) -> BTreeMap<i32, i64> {
        self.offsets
            .iter()
            .map(|(p, o)| (*p, o.saturating_add(1)))
            .collect()
    }
}

/// The Indexer's state.
#[derive(Debug, Clone)]
pub struct IndexerMachine {
    rules: IndexerRules,
    target: RepoTarget,
    pending: Pending,
    retry_at_ms: Option<u64>,
    failures: u32,
    last_status_ms: u64,
    lock_holder: Option<String>,
    running: bool,
    /// The start-up heartbeat is still to be sent.
    greeted: bool,
}

impl IndexerMachine {
    /// A machine started at `now_ms`; the first tick sends a heartbeat.
    pub fn new(rules: IndexerRules, target: RepoTarget, now_ms: u64) -> Self {
        IndexerMachine {
            rules,
            target,
            pending: Pending::default(),
            retry_at_ms: None,
            failures: 0,
            last_status_ms: now_ms,
            lock_holder: None,
            running: false,
            greeted: false,
        }
    }

    /// One message of the package updates topic, read at `now_ms`.
    pub fn on_message(
        &mut self,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
        now_ms: u64,
    ) -> Classified {
        let at = self.pending.offsets.entry(partition).or_insert(offset);
        *at = (*at).max(offset);
        let c = classify(payload, &self.target);
        match &c {
            Classified::Package(item) => {
                self.pending.items.insert(item.clone());
                self.note_event(now_ms);
            }
            Classified::Full => {
                self.pending.full = true;
                self.note_event(now_ms);
            }
            Classified::Other | Classified::Malformed(_) => {}
        }
        c
    }

    fn note_event(&mut self, now_ms: u64) {
        self.pending.first_event_ms.get_or_insert(now_ms);
        self.pending.last_event_ms = Some(now_ms);
    }

    /// The clock moved to `now_ms`: the next thing to do, if any.
    pub fn on_tick(&mut self, now_ms: u64) -> Option<Action> {
        if self.running {
            return None;
        }
        if !self.greeted {
            // A heartbeat at start-up, before anything else.
            self.greeted = true;
            self.last_status_ms = now_ms;
            return Some(Action::Heartbeat);
        }
        if self.pending.has_work() {
            let quiet = self
                .pending
                .last_event_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= self.rules.quiet_ms);
            let overdue = self
                .pending
                .first_event_ms
                .is_some_and(|t| now_ms.saturating_sub(t) >= self.rules.max_delay_ms);
            let may_retry = self.retry_at_ms.is_none_or(|t| now_ms >= t);
            if (quiet || overdue) && may_retry {
                self.running = true;
                return Some(Action::Run(self.pending.scope()));
            }
        } else if !self.pending.offsets.is_empty() {
            // Only other repositories' or malformed messages: nothing to index.
            let offsets = self.pending.commit_offsets();
            self.pending.offsets.clear();
            return Some(Action::Commit(offsets));
        }
        if now_ms.saturating_sub(self.last_status_ms) >= self.rules.heartbeat_ms {
            self.last_status_ms = now_ms;
            return Some(Action::Heartbeat);
        }
        None
    }

    /// The run asked for by the last [`Action::Run`] ended at `now_ms`.
    pub fn on_run_result(&mut self, result: RunResult, now_ms: u64) -> Vec<Action> {
        self.running = false;
        self.last_status_ms = now_ms;
        match result {
            RunResult::Done => {
                let offsets = self.pending.commit_offsets();
                self.pending = Pending::default();
                self.retry_at_ms = None;
                self.failures = 0;
                self.lock_holder = None;
                vec![Action::Commit(offsets)]
            }
            RunResult::LockBusy(holder) => {
                self.lock_holder = Some(holder);
                self.retry_at_ms = Some(now_ms.saturating_add(self.rules.lock_sleep_ms));
                vec![Action::Heartbeat]
            }
            RunResult::Failed(_) => {
                self.failures = self.failures.saturating_add(1);
                self.retry_at_ms = Some(now_ms.saturating_add(self.backoff_ms()));
                Vec::new()
            }
        }
    }

    /// The wait before retrying after the failures so far.
    pub fn backoff_ms(&self) -> u64 {
        let doublings = self.failures.saturating_sub(1).min(16);
        BACKOFF_START_MS
            .saturating_mul(1u64 << doublings)
            .min(BACKOFF_MAX_MS)
    }

    /// Who holds the index lock, while the last run found it busy.
    pub fn lock_holder(&self) -> Option<&str> {
        self.lock_holder.as_deref()
    }

    /// When the next run may be tried, if it is held back.
    pub fn retry_at_ms(&self) -> Option<u64> {
        self.retry_at_ms
    }

    /// How many packages/versions wait for a run (and whether a full one).
    pub fn pending(&self) -> (usize, bool) {
        (self.pending.items.len(), self.pending.full)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::address::RepoAddress;

    const RULES: IndexerRules = IndexerRules {
        quiet_ms: 2_000,
        max_delay_ms: 30_000,
        heartbeat_ms: 60_000,
        lock_sleep_ms: 6_000,
    };

    fn origin() -> RepoTarget {
        RepoTarget::new(
            "origin",
            Some(RepoAddress::parse("/srv/origin", Path::new("/")).unwrap()),
        )
    }

    fn event(pkg: &str) -> Vec<u8> {
        format!(
            r#"{{"event":"package published","repo":"file:///srv/origin/","repo_name":"origin","package":"{pkg}"}}"#
        )
        .into_bytes()
    }

    fn scope(items: &[&str]) -> IndexScope {
        IndexScope::Update(items.iter().map(|s| s.parse().unwrap()).collect())
    }

    /// A machine past its start-up heartbeat.
    fn machine() -> IndexerMachine {
        let mut m = IndexerMachine::new(RULES, origin(), 0);
        assert_eq!(m.on_tick(0), Some(Action::Heartbeat), "start-up heartbeat");
        m
    }

    #[test]
    fn classifies_payloads() {
        let t = origin();
        let c = |s: &str| classify(Some(s.as_bytes()), &t);
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
            c(r#"{"event":"package published","repo":"x","repo_name":"origin","package":"NoT/1.0/src"}"#),
            Classified::Malformed(m) if m.contains("valid name")
        ));
        assert!(matches!(
            classify(Some(&[0xff, 0x00]), &t),
            Classified::Malformed(_)
        ));
        assert!(matches!(classify(None, &t), Classified::Malformed(_)));
    }

    #[test]
    fn no_build_form_drops_an_event() {
        let t = origin();
        for (pkg, want) in [
            ("emb/2.0/embedded", "emb/2.0"),
            ("emb/2.0/embedded[my-tool:run/1.2.0/GMTG3CXY]", "emb/2.0"),
            ("emb/2.0/embedded[pkg/1.0/3I42H3S6]", "emb/2.0"),
            (
                "emb/2.0/embedded-by-MVWWEZLEMRSWIW3NPEWXI33PNQ======",
                "emb/2.0",
            ),
            ("emb/2.0/src", "emb/2.0"),
            // The seed's illustrative digest: not a valid build, still indexed.
            ("mypkg/1.2.3/ABCDEF", "mypkg/1.2.3"),
            ("emb/2.0/whatever-a-newer-spk-writes", "emb/2.0"),
            // A version we cannot read: the whole package.
            ("emb/not.a.version/src", "emb"),
            ("emb", "emb"),
        ] {
            assert_eq!(
                classify(Some(&event(pkg)), &t),
                Classified::Package(want.into()),
                "{pkg}"
            );
        }
    }

    #[test]
    fn a_run_waits_for_the_quiet_period() {
        let mut m = machine();
        m.on_message(0, 5, Some(&event("a-pkg/1.0/src")), 1_000);
        assert_eq!(m.on_tick(2_999), None);
        m.on_message(1, 7, Some(&event("b-pkg/2.0/3I42H3S6")), 2_500);
        assert_eq!(
            m.on_tick(4_499),
            None,
            "the second event restarted the quiet period"
        );
        assert_eq!(
            m.on_tick(4_500),
            Some(Action::Run(scope(&["a-pkg/1.0", "b-pkg/2.0"])))
        );
        // Nothing else happens while the run is out.
        assert_eq!(m.on_tick(100_000), None);
        assert_eq!(
            m.on_run_result(RunResult::Done, 5_000),
            vec![Action::Commit(BTreeMap::from([(0, 6), (1, 8)]))]
        );
        assert_eq!(m.pending(), (0, false));
        assert_eq!(m.on_tick(6_000), None);
    }

    #[test]
    fn a_steady_stream_cannot_starve_indexing() {
        let mut m = machine();
        // An event every second, forever: the quiet period never comes.
        let mut now = 1_000;
        let mut offset = 0;
        let run = loop {
            m.on_message(
                0,
                offset,
                Some(&event(&format!("p{offset:03}/1.0/src"))),
                now,
            );
            offset += 1;
            if let Some(a) = m.on_tick(now) {
                break (now, a);
            }
            now += 1_000;
            assert!(now <= 40_000, "no run within the maximum delay");
        };
        assert_eq!(run.0, 31_000, "the first event waited exactly max_delay_ms");
        assert!(matches!(run.1, Action::Run(IndexScope::Update(ref v)) if v.len() == 31));
    }

    #[test]
    fn a_busy_lock_keeps_events_heartbeats_and_retries_later() {
        let mut m = machine();
        m.on_message(0, 0, Some(&event("a-pkg/1.0/src")), 0);
        assert!(matches!(m.on_tick(2_000), Some(Action::Run(_))));
        assert_eq!(
            m.on_run_result(RunResult::LockBusy("host: build7 pid: 4242".into()), 2_100),
            vec![Action::Heartbeat]
        );
        assert_eq!(m.lock_holder(), Some("host: build7 pid: 4242"));
        // A new event while waiting joins the batch.
        m.on_message(0, 1, Some(&event("c-pkg/3.0/src")), 3_000);
        assert_eq!(m.on_tick(8_099), None, "not before lock_sleep");
        assert_eq!(
            m.on_tick(8_100),
            Some(Action::Run(scope(&["a-pkg/1.0", "c-pkg/3.0"])))
        );
        assert_eq!(
            m.on_run_result(RunResult::Done, 9_000),
            vec![Action::Commit(BTreeMap::from([(0, 2)]))]
        );
        assert_eq!(m.lock_holder(), None);
    }

    #[test]
    fn heartbeats_keep_going_while_the_lock_stays_busy() {
        let rules = IndexerRules {
            heartbeat_ms: 10_000,
            lock_sleep_ms: 3_600_000,
            ..RULES
        };
        let mut m = IndexerMachine::new(rules, origin(), 0);
        assert_eq!(m.on_tick(0), Some(Action::Heartbeat));
        m.on_message(0, 0, Some(&event("a-pkg/1.0/src")), 0);
        assert!(matches!(m.on_tick(2_000), Some(Action::Run(_))));
        m.on_run_result(RunResult::LockBusy("host: h pid: 1".into()), 2_000);
        let beats: Vec<u64> = (2_001..60_000)
            .step_by(1_000)
            .filter(|t| m.on_tick(*t) == Some(Action::Heartbeat))
            .collect();
        assert_eq!(beats, [12_001, 22_001, 32_001, 42_001, 52_001]);
    }

    #[test]
    fn failures_back_off_doubling_to_a_minute_and_success_resets() {
        let mut m = machine();
        m.on_message(0, 0, Some(&event("a-pkg/1.0/src")), 0);
        let mut now = 2_000;
        let mut waits = Vec::new();
        for _ in 0..7 {
            assert!(matches!(m.on_tick(now), Some(Action::Run(_))), "at {now}");
            assert_eq!(
                m.on_run_result(RunResult::Failed("disk full".into()), now),
                vec![]
            );
            let at = m.retry_at_ms().unwrap();
            assert_eq!(m.on_tick(at - 1), None);
            waits.push(at - now);
            now = at;
        }
        assert_eq!(waits, [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]);
        assert!(matches!(m.on_tick(now), Some(Action::Run(_))));
        m.on_run_result(RunResult::Done, now);
        assert_eq!(m.backoff_ms(), BACKOFF_START_MS);
    }

    #[test]
    fn generate_index_makes_the_run_full_and_whole_packages_cover_versions() {
        let mut m = machine();
        m.on_message(0, 0, Some(&event("a-pkg/1.0/src")), 0);
        m.on_message(0, 1, Some(&event("a-pkg/bad..version/src")), 0);
        m.on_message(0, 2, Some(&event("b-pkg/1.0/src")), 0);
        assert_eq!(
            m.on_tick(2_000),
            Some(Action::Run(scope(&["a-pkg", "b-pkg/1.0"])))
        );
        m.on_run_result(RunResult::Done, 2_000);
        m.on_message(0, 3, Some(&event("c-pkg/1.0/src")), 3_000);
        let full =
            br#"{"event":"generate index","repo":"/srv/origin","repo_name":"x","package":""}"#;
        assert_eq!(m.on_message(0, 4, Some(full), 3_000), Classified::Full);
        assert_eq!(m.on_tick(5_000), Some(Action::Run(IndexScope::Full)));
    }

    #[test]
    fn other_repositories_and_malformed_messages_are_committed_at_once() {
        let mut m = machine();
        let other = br#"{"event":"package published","repo":"/srv/other","repo_name":"other","package":"a-b/1.0/src"}"#;
        assert_eq!(m.on_message(2, 9, Some(other), 0), Classified::Other);
        assert!(matches!(
            m.on_message(2, 10, Some(b"{"), 0),
            Classified::Malformed(_)
        ));
        assert_eq!(
            m.on_tick(1),
            Some(Action::Commit(BTreeMap::from([(2, 11)])))
        );
        assert_eq!(m.on_tick(2), None);
    }

    #[test]
    fn huge_settings_do_not_overflow() {
        let ix = IndexerConfig {
            heartbeat_freq_ms: u64::MAX,
            quiet_period_ms: u64::MAX,
            max_delay_ms: u64::MAX,
            ..Default::default()
        };
        let index = IndexConfig {
            lock_sleep_seconds: u64::MAX,
            ..Default::default()
        };
        let rules = IndexerRules::from_config(&ix, &index);
        assert_eq!(rules.lock_sleep_ms, LOCK_SLEEP_MAX_MS);
        let mut m = IndexerMachine::new(rules, origin(), u64::MAX - 5);
        m.on_message(0, i64::MAX, Some(&event("a-pkg/1.0/src")), u64::MAX - 4);
        assert!(!matches!(m.on_tick(u64::MAX), Some(Action::Run(_))));
        m.on_run_result(RunResult::LockBusy("h".into()), u64::MAX);
        assert_eq!(m.retry_at_ms(), Some(u64::MAX));
        m.on_run_result(RunResult::Done, u64::MAX);
        assert_eq!(
            m.on_run_result(RunResult::Done, u64::MAX),
            vec![Action::Commit(BTreeMap::new())]
        );
        let zero = IndexConfig {
            lock_sleep_seconds: 0,
            ..Default::default()
        };
        assert_eq!(IndexerRules::from_config(&ix, &zero).lock_sleep_ms, 1_000);
    }
}
