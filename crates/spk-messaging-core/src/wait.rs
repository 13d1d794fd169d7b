//! The waiter's decisions, as a state machine fed messages and clock ticks.
//!
//! "Has the index of repository R caught up with my change?" is decided
//! here, with no network: the Kafka code (`spk-messaging-kafka::wait`) only
//! fetches partitions and watermarks, assigns them from [`start_offsets`],
//! and feeds each message it polls to [`Waiter::on_message`] and the clock
//! to [`Waiter::on_tick`], until one says [`WaitStep::Done`]. The rules
//! (see `docs/contract.md`):
//!
//! 1. every partition is read from the first message of the recent past
//!    (`index_update_listener_recent_past_duration_ms`, or `since` if
//!    earlier), and at least its last [`ALWAYS_READ_LAST`] messages, up to
//!    the watermarks fetched before reading ("caught up"); catching up must
//!    end within the broker fetch timeout;
//! 2. caught up with no message about R (by name, or normalised address:
//!    [`RepoTarget`]) younger than the recent past: the indexer is down;
//! 3. otherwise an `index completed` of R with `start > since`, or
//!    `start == since` and (when the exact moment of the change is known)
//!    its run's `index started` sent at or after that moment, ends the wait;
//! 4. no new message about R for the listener timeout: timed out;
//! 5. whatever arrives, the whole wait never exceeds the patience cap
//!    (default [`DEFAULT_PATIENCE_MS`]), so a lock held forever elsewhere,
//!    with an indexer heartbeating while it waits, cannot hang a CI step.
//!
//! All times are milliseconds since the Unix epoch, given by the caller.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::about::RepoTarget;
use crate::message::{IndexEvent, IndexStatusMessage};

/// Every partition is read at least this far back, whatever the lookup by
/// time says: some brokers (librdkafka's mock cluster) answer "end" to any
/// timestamp. Timestamps, not offsets, decide what counts as recent.
pub const ALWAYS_READ_LAST: i64 = 100;
/// How far back to read a partition when the broker cannot look offsets up
/// by time at all.
pub const LOOKBACK_WITHOUT_TIMES: i64 = 2000;
/// The default cap on a whole wait: 30 minutes.
pub const DEFAULT_PATIENCE_MS: u64 = 30 * 60 * 1000;

/// The bounds of one wait, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitRules {
    /// A message younger than this proves an indexer alive.
    pub recent_past_ms: i64,
    /// Give up after this long with no new message about the repository.
    pub listen_timeout_ms: i64,
    /// Reading the recent past must end within this long.
    pub catch_up_timeout_ms: i64,
    /// The whole wait never takes longer than this.
    pub patience_ms: i64,
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl WaitRules {
    /// The rules from a channel's settings, a `--timeout-ms` override and a
    /// `--max-wait-ms` override.
    pub fn from_channel(
        ch: &crate::config::KafkaChannelConfig,
        timeout_ms: Option<u64>,
        patience_ms: Option<u64>,
    ) -> Self {
        WaitRules {
            recent_past_ms: ms(ch.index_update_listener_recent_past_duration_ms),
            listen_timeout_ms: ms(timeout_ms.unwrap_or(ch.index_update_listener_timeout_ms)),
            catch_up_timeout_ms: ms(ch.index_update_listener_broker_fetch_timeout_ms),
            patience_ms: ms(patience_ms.unwrap_or(DEFAULT_PATIENCE_MS)),
        }
    }
}

/// A status message seen while waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// "index completed" for the repository covering the change arrived.
    Completed,
    /// No status message about the repository in the recent past.
    IndexerDown,
    /// No new message about the repository within the listener timeout.
    TimedOut,
    /// The patience cap was reached, messages or not.
    OutOfPatience,
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
    /// The patience cap that applied.
    pub patience_ms: i64,
}

/// What to do after a message or tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitStep {
    /// Keep polling.
    Continue,
    /// The wait is over.
    Done(WaitOutcome),
    /// The recent past could not be read in time (the broker is too slow or
    /// unreachable): an error, not a verdict on the indexer.
    Unreachable(String),
}

/// Where each partition is read from: the offset found by time (clamped to
/// the partition), but at least the last [`ALWAYS_READ_LAST`] messages;
/// [`LOOKBACK_WITHOUT_TIMES`] back when the broker could not look up by
/// time (`by_time` is `None`). Partitions the lookup did not answer for, or
/// answered with partitions not in `ends`, never make this panic: a partition
/// missing from the answer is read by the fallback rule, an unknown one is
/// ignored.
pub fn start_offsets(
    ends: &BTreeMap<i32, (i64, i64)>,
    by_time: Option<&BTreeMap<i32, Option<i64>>>,
) -> BTreeMap<i32, i64> {
    ends.iter()
        .map(|(p, &(low, high))| {
            let low = low.min(high);
            let start = match by_time.and_then(|m| m.get(p)) {
                Some(found) => {
                    let t = found.map_or(high, |o| o.clamp(low, high));
                    t.min(high.saturating_sub(ALWAYS_READ_LAST).max(low))
                }
                None if by_time.is_some() => high.saturating_sub(ALWAYS_READ_LAST).max(low),
                None => high.saturating_sub(LOOKBACK_WITHOUT_TIMES).max(low),
            };
            (*p, start)
        })
        .collect()
}

/// The waiter's state.
#[derive(Debug, Clone)]
pub struct Waiter {
    target: RepoTarget,
    since: i64,
    since_ms: Option<i64>,
    rules: WaitRules,
    began_ms: i64,
    /// Partitions not yet read up to the watermark: partition -> end.
    behind: BTreeMap<i32, i64>,
    caught_up: bool,
    deadline_ms: i64,
    catch_up_deadline_ms: i64,
    cap_ms: i64,
    /// Kafka timestamps of the "index started" messages seen, by `start`.
    started_at: HashMap<i64, i64>,
    report: WaitReport,
    done: Option<WaitOutcome>,
}

impl Waiter {
    /// A wait for an `index completed` of `target` with `start >= since`
    /// (`since_ms`: the exact moment of the change, when known), reading
    /// partitions from `starts` up to `ends`' high watermarks, beginning at
    /// `now_ms`.
    pub fn new(
        target: RepoTarget,
        since: i64,
        since_ms: Option<i64>,
        rules: WaitRules,
        ends: &BTreeMap<i32, (i64, i64)>,
        starts: &BTreeMap<i32, i64>,
        now_ms: i64,
    ) -> Self {
        let behind: BTreeMap<i32, i64> = starts
            .iter()
            .filter_map(|(p, o)| {
                let (_, high) = ends.get(p)?;
                (*o < *high).then_some((*p, *high))
            })
            .collect();
        let caught_up = behind.is_empty();
        Waiter {
            report: WaitReport {
                outcome: WaitOutcome::TimedOut,
                repo_name: target.name.clone(),
                since,
                newest_before_wait: None,
                newest_age_ms: None,
                completed: None,
                seen: Vec::new(),
                waited_ms: 0,
                patience_ms: rules.patience_ms,
            },
            target,
            since,
            since_ms,
            rules,
            began_ms: now_ms,
            behind,
            caught_up,
            deadline_ms: now_ms.saturating_add(rules.listen_timeout_ms),
            catch_up_deadline_ms: now_ms.saturating_add(rules.catch_up_timeout_ms),
            cap_ms: now_ms.saturating_add(rules.patience_ms),
            started_at: HashMap::new(),
            done: None,
        }
    }

    /// The earliest moment a message may be in the recent past, by
    /// timestamp: the start of the recent past, or `since` if earlier.
    pub fn read_from_ms(&self) -> i64 {
        self.began_ms
            .saturating_sub(self.rules.recent_past_ms)
            .min(self.since.saturating_mul(1000))
    }

    fn finish(&mut self, outcome: WaitOutcome) -> WaitStep {
        self.done = Some(outcome);
        self.report.outcome = outcome;
        WaitStep::Done(outcome)
    }

    /// The clock moved to `now_ms`: is the wait over?
    pub fn on_tick(&mut self, now_ms: i64) -> WaitStep {
        if let Some(o) = self.done {
            return WaitStep::Done(o);
        }
        if self.caught_up && self.report.newest_before_wait.is_none() {
            return self.finish(WaitOutcome::IndexerDown);
        }
        if now_ms >= self.cap_ms {
            return self.finish(WaitOutcome::OutOfPatience);
        }
        if !self.caught_up && now_ms > self.catch_up_deadline_ms {
            return WaitStep::Unreachable(format!(
                "could not read the recent past of {} partition(s) within {} ms",
                self.behind.len(),
                self.rules.catch_up_timeout_ms
            ));
        }
        if self.caught_up && now_ms > self.deadline_ms {
            return self.finish(WaitOutcome::TimedOut);
        }
        WaitStep::Continue
    }

    /// One message of the status topic, at `partition`/`offset`, with its
    /// Kafka timestamp and payload, read at `now_ms`.
    pub fn on_message(
        &mut self,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        payload: Option<&[u8]>,
        now_ms: i64,
    ) -> WaitStep {
        if let Some(o) = self.done {
            return WaitStep::Done(o);
        }
        if let Some(end) = self.behind.get(&partition) {
            if offset.saturating_add(1) >= *end {
                self.behind.remove(&partition);
            }
        }
        let was_caught_up = self.caught_up;
        self.caught_up = self.behind.is_empty();
        if self.caught_up && !was_caught_up {
            // The recent past is read: the listener timeout starts now.
            self.deadline_ms = now_ms.saturating_add(self.rules.listen_timeout_ms);
        }
        let Some(Ok(status)) = payload.map(IndexStatusMessage::from_bytes) else {
            return self.on_tick(now_ms);
        };
        if !self.target.matches(&status.name, &status.repo) {
            return self.on_tick(now_ms);
        }
        let seen = Seen {
            event: status.event.to_string(),
            name: status.name.clone(),
            repo: status.repo.clone(),
            start: status.start,
            partition,
            offset,
            timestamp_ms,
        };
        if !was_caught_up {
            // Part of the recent past: is it recent enough to prove life?
            let t = timestamp_ms.unwrap_or(status.start.saturating_mul(1000));
            let age = self.began_ms.saturating_sub(t);
            if age <= self.rules.recent_past_ms && self.report.newest_age_ms.is_none_or(|a| age < a)
            {
                self.report.newest_age_ms = Some(age);
                self.report.newest_before_wait = Some(seen.clone());
            }
        } else {
            self.deadline_ms = now_ms.saturating_add(self.rules.listen_timeout_ms);
            if self.report.newest_before_wait.is_none() {
                // Cannot happen (caught up with nothing recent ends the wait
                // at once), but a late message about R is life all the same.
                self.report.newest_before_wait = Some(seen.clone());
                self.report.newest_age_ms = Some(0);
            }
        }
        if status.event == IndexEvent::Started {
            if let Some(t) = timestamp_ms {
                self.started_at.insert(status.start, t);
            }
        }
        let covers = status.start > self.since
            || (status.start == self.since
                && self
                    .since_ms
                    .is_none_or(|ms| self.started_at.get(&status.start).is_some_and(|t| *t >= ms)));
        self.report.seen.push(seen.clone());
        if status.event == IndexEvent::Completed && covers {
            self.report.completed = Some(seen);
            return self.finish(WaitOutcome::Completed);
        }
        self.on_tick(now_ms)
    }

    /// Whether the recent past has been read.
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// What was seen, at `now_ms`.
    pub fn report(&self, now_ms: i64) -> WaitReport {
        let mut r = self.report.clone();
        r.waited_ms = u64::try_from(now_ms.saturating_sub(self.began_ms)).unwrap_or(0);
        r
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::address::RepoAddress;

    const T0: i64 = 1_700_000_000_000; // ms
    const RULES: WaitRules = WaitRules {
        recent_past_ms: 120_000,
        listen_timeout_ms: 10_000,
        catch_up_timeout_ms: 20_000,
        patience_ms: 600_000,
    };

    fn origin() -> RepoTarget {
        RepoTarget::new(
            "origin",
            Some(RepoAddress::parse("/srv/origin", Path::new("/")).unwrap()),
        )
    }

    fn msg(event: &str, name: &str, repo: &str, start: i64) -> Vec<u8> {
        format!(r#"{{"event":"{event}","name":"{name}","repo":"{repo}","start":{start}}}"#)
            .into_bytes()
    }

    /// A waiter over one partition holding `n` messages (offsets 0..n).
    fn waiter(n: i64, since: i64, since_ms: Option<i64>) -> Waiter {
        let ends = BTreeMap::from([(0, (0, n))]);
        let starts = BTreeMap::from([(0, 0)]);
        Waiter::new(origin(), since, since_ms, RULES, &ends, &starts, T0)
    }

    #[test]
    fn nothing_recent_about_the_repository_means_the_indexer_is_down() {
        // An empty topic: down at the first tick.
        let mut w = waiter(0, T0 / 1000, None);
        assert_eq!(w.on_tick(T0), WaitStep::Done(WaitOutcome::IndexerDown));
        // Old messages, and recent ones about another repository, do not count.
        let mut w = waiter(2, T0 / 1000, None);
        let old = msg("indexer heartbeat", "ix", "file:///srv/origin/", 0);
        assert_eq!(
            w.on_message(0, 0, Some(T0 - 200_000), Some(&old), T0),
            WaitStep::Continue
        );
        let other = msg("indexer heartbeat", "ix", "file:///srv/other/", 0);
        assert_eq!(
            w.on_message(0, 1, Some(T0 - 1_000), Some(&other), T0),
            WaitStep::Done(WaitOutcome::IndexerDown)
        );
    }

    #[test]
    fn a_heartbeat_in_any_spelling_of_the_address_proves_life() {
        for repo in ["file:///srv/origin/", "file:/srv/origin", "/srv/origin"] {
            let mut w = waiter(1, T0 / 1000, None);
            let hb = msg("IndexerHeartbeat", "the-indexer", repo, T0 / 1000 - 5);
            assert_eq!(
                w.on_message(0, 0, Some(T0 - 5_000), Some(&hb), T0),
                WaitStep::Continue,
                "{repo}"
            );
            assert!(w.caught_up());
            assert_eq!(w.report(T0).newest_age_ms, Some(5_000));
        }
    }

    #[test]
    fn completed_at_or_after_since_ends_the_wait_and_older_runs_do_not() {
        let since = T0 / 1000;
        let mut w = waiter(1, since, None);
        let hb = msg("indexer heartbeat", "ix", "/srv/origin", since - 1);
        assert_eq!(
            w.on_message(0, 0, Some(T0 - 1000), Some(&hb), T0),
            WaitStep::Continue
        );
        // An older run completing: not ours.
        let old = msg("index completed", "origin", "/srv/origin", since - 3);
        assert_eq!(
            w.on_message(0, 1, Some(T0 + 100), Some(&old), T0 + 100),
            WaitStep::Continue
        );
        let ours = msg("Completed", "origin", "file:///srv/origin/", since + 1);
        assert_eq!(
            w.on_message(0, 2, Some(T0 + 2000), Some(&ours), T0 + 2000),
            WaitStep::Done(WaitOutcome::Completed)
        );
        let r = w.report(T0 + 2000);
        assert_eq!(r.completed.map(|c| c.start), Some(since + 1));
        assert_eq!(r.waited_ms, 2000);
        assert_eq!(r.seen.len(), 3);
    }

    #[test]
    fn the_same_second_counts_only_for_a_run_started_after_the_change() {
        // The change happened at T0 + 500 ms; `start` has seconds only.
        let since_ms = T0 + 500;
        let since = since_ms / 1000;
        let mut w = waiter(1, since, Some(since_ms));
        let hb = msg("indexer heartbeat", "ix", "/srv/origin", since - 1);
        w.on_message(0, 0, Some(T0 - 1000), Some(&hb), T0);
        // A run that started in the same second, before the change (T0+200).
        let started = msg("index started", "origin", "/srv/origin", since);
        assert_eq!(
            w.on_message(0, 1, Some(T0 + 200), Some(&started), T0 + 600),
            WaitStep::Continue
        );
        let done = msg("index completed", "origin", "/srv/origin", since);
        assert_eq!(
            w.on_message(0, 2, Some(T0 + 700), Some(&done), T0 + 700),
            WaitStep::Continue,
            "a run that began before the change does not cover it"
        );
        // The next run, same second again, started after the change.
        let started = msg("index started", "origin", "/srv/origin", since);
        w.on_message(0, 3, Some(T0 + 800), Some(&started), T0 + 800);
        let done = msg("index completed", "origin", "/srv/origin", since);
        assert_eq!(
            w.on_message(0, 4, Some(T0 + 900), Some(&done), T0 + 900),
            WaitStep::Done(WaitOutcome::Completed)
        );
        // Without the exact moment, the same second counts at once.
        let mut w = waiter(1, since, None);
        w.on_message(0, 0, Some(T0 - 1000), Some(&hb), T0);
        let done = msg("index completed", "origin", "/srv/origin", since);
        assert_eq!(
            w.on_message(0, 1, Some(T0 + 700), Some(&done), T0 + 700),
            WaitStep::Done(WaitOutcome::Completed)
        );
    }

    #[test]
    fn silence_times_out_and_each_message_about_the_repository_resets_it() {
        let since = T0 / 1000;
        let mut w = waiter(1, since, None);
        let hb = msg("indexer heartbeat", "ix", "/srv/origin", since);
        w.on_message(0, 0, Some(T0), Some(&hb), T0);
        assert_eq!(w.on_tick(T0 + 9_999), WaitStep::Continue);
        let prog = msg("index in-progress", "origin", "/srv/origin", since + 1);
        w.on_message(0, 1, Some(T0 + 9_000), Some(&prog), T0 + 9_000);
        assert_eq!(w.on_tick(T0 + 18_999), WaitStep::Continue);
        // Another repository's messages do not reset it.
        let other = msg("index in-progress", "other", "/srv/other", since + 1);
        w.on_message(0, 2, Some(T0 + 18_000), Some(&other), T0 + 18_000);
        assert_eq!(
            w.on_tick(T0 + 19_001),
            WaitStep::Done(WaitOutcome::TimedOut)
        );
        assert_eq!(w.report(T0 + 19_001).outcome, WaitOutcome::TimedOut);
    }

    #[test]
    fn patience_caps_a_wait_kept_alive_by_heartbeats() {
        let since = T0 / 1000;
        let rules = WaitRules {
            patience_ms: 60_000,
            ..RULES
        };
        let ends = BTreeMap::from([(0, (0, 1))]);
        let starts = BTreeMap::from([(0, 0)]);
        let mut w = Waiter::new(origin(), since, None, rules, &ends, &starts, T0);
        let mut now = T0;
        let mut offset = 0;
        let mut step = WaitStep::Continue;
        // A heartbeat every 5 s (lock held elsewhere): never a timeout.
        while step == WaitStep::Continue {
            let hb = msg("indexer heartbeat", "ix", "/srv/origin", now / 1000);
            step = w.on_message(0, offset, Some(now), Some(&hb), now);
            offset += 1;
            now += 5_000;
            assert!(now <= T0 + 65_000, "the cap did not end the wait");
        }
        assert_eq!(step, WaitStep::Done(WaitOutcome::OutOfPatience));
        assert_eq!(w.report(now).patience_ms, 60_000);
    }

    #[test]
    fn a_slow_catch_up_is_an_error_not_a_verdict() {
        let mut w = waiter(5, T0 / 1000, None);
        assert_eq!(w.on_tick(T0 + 20_000), WaitStep::Continue);
        assert!(matches!(
            w.on_tick(T0 + 20_001),
            WaitStep::Unreachable(m) if m.contains("1 partition")
        ));
    }

    #[test]
    fn malformed_payloads_are_skipped_and_still_count_towards_catching_up() {
        let mut w = waiter(2, T0 / 1000, None);
        assert_eq!(
            w.on_message(0, 0, Some(T0), Some(b"not json"), T0),
            WaitStep::Continue
        );
        assert_eq!(
            w.on_message(0, 1, Some(T0), None, T0),
            WaitStep::Done(WaitOutcome::IndexerDown)
        );
    }

    #[test]
    fn start_offsets_never_panic_and_read_the_last_messages() {
        let ends = BTreeMap::from([(0, (0, 500)), (1, (10, 20)), (2, (7, 7))]);
        // By time: partition 0 says 450 (but at least 100 back: 400),
        // partition 1 says "end" (None: at least 100 back, clamped to 10),
        // partition 2 is missing from the answer, partition 9 is unknown.
        let by_time = BTreeMap::from([(0, Some(450)), (1, None), (9, Some(3))]);
        let s = start_offsets(&ends, Some(&by_time));
        assert_eq!(s, BTreeMap::from([(0, 400), (1, 10), (2, 7)]));
        // An offset from the broker out of range is clamped.
        let by_time = BTreeMap::from([(0, Some(-5)), (1, Some(99))]);
        let s = start_offsets(&ends, Some(&by_time));
        assert_eq!(s[&0], 0);
        assert_eq!(s[&1], 10);
        // No lookup by time at all.
        let s = start_offsets(&ends, None);
        assert_eq!(s, BTreeMap::from([(0, 0), (1, 10), (2, 7)]));
        // Watermarks the wrong way round do not panic.
        let bad = BTreeMap::from([(0, (50, 10))]);
        assert_eq!(start_offsets(&bad, None)[&0], 10);
        // A start for a partition with no watermark is not waited on.
        let w = Waiter::new(
            origin(),
            0,
            None,
            RULES,
            &BTreeMap::new(),
            &BTreeMap::from([(3, 0)]),
            T0,
        );
        assert!(w.caught_up());
    }

    #[test]
    fn an_address_with_percent_spaces_and_non_ascii_matches_in_spks_form() {
        let addr = RepoAddress::parse("/srv/my repo/100%/ü", Path::new("/")).unwrap();
        let url = addr.to_url();
        assert_eq!(url, "file:///srv/my%20repo/100%25/%C3%BC/");
        let ends = BTreeMap::from([(0, (0, 1))]);
        let starts = BTreeMap::from([(0, 0)]);
        let target = RepoTarget::new("odd", Some(addr));
        let mut w = Waiter::new(target, T0 / 1000, None, RULES, &ends, &starts, T0);
        let hb = msg("indexer heartbeat", "ix", &url, T0 / 1000);
        assert_eq!(
            w.on_message(0, 0, Some(T0), Some(&hb), T0),
            WaitStep::Continue
        );
        assert!(w.report(T0).newest_before_wait.is_some());
    }

    #[test]
    fn read_from_is_the_recent_past_or_since_if_earlier() {
        let w = waiter(0, T0 / 1000, None);
        assert_eq!(w.read_from_ms(), T0 - 120_000);
        let w = waiter(0, T0 / 1000 - 600, None);
        assert_eq!(w.read_from_ms(), T0 - 600_000);
    }
}
