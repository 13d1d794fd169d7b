//! The verdict of `spk messaging status`: is an Indexer alive for a
//! repository, what did its last runs do, and how far behind is it. A pure
//! function of the messages read and a clock, so every rule is unit-tested
//! here; the Kafka crate only reads the topics.
//!
//! - **alive**: some index status message about the repository (a run's, or
//!   a heartbeat naming its address) is at most `recent_past_ms` old, the
//!   window SPK's waiters use (`index_update_listener_recent_past_duration_ms`);
//! - **last completed run**: the newest `index completed`; its duration runs
//!   from its `index started` message (or its `start` second) to the
//!   completion; it was *full* when a `generate index` event for the
//!   repository arrived between the previous completed run's start and its
//!   own, *update* otherwise, *unknown* when the events read do not reach
//!   back that far;
//! - **in progress**: the newest run with `index started` or `index
//!   in-progress` and no `index completed`, if its last message is recent;
//! - **lag**: package events about the repository that arrived after the
//!   last completed run started (all those read, when there is none);
//!   *lagging* when there are more than `max_lag` and the oldest is older
//!   than `max_lag_age_ms`.

use serde::Serialize;

use crate::message::{IndexEvent, IndexStatusMessage, PackageEvent};

/// An index status message about the repository, and when it arrived.
#[derive(Debug, Clone)]
pub struct StatusSeen {
    pub msg: IndexStatusMessage,
    /// The Kafka timestamp (ms since the epoch); `start` seconds when the
    /// broker gave none.
    pub at_ms: i64,
    /// Who held the index lock, when this is a heartbeat the Indexer sent
    /// while waiting for it (our `spk-lock-holder` header).
    pub lock_holder: Option<String>,
    /// On "index completed" from our tools: what the run was (our
    /// `spk-index-run` header); SPK's own messages do not say.
    pub run_kind: Option<RunKind>,
}

/// A package event about the repository, and when it arrived.
#[derive(Debug, Clone)]
pub struct EventSeen {
    pub event: PackageEvent,
    pub package: String,
    pub at_ms: i64,
}

/// Thresholds.
#[derive(Debug, Clone, Copy)]
pub struct HealthRules {
    /// How recent a status message must be to prove an Indexer alive.
    pub recent_past_ms: i64,
    /// More pending events than this (and the oldest old enough) is lagging.
    pub max_lag: u64,
    /// Pending events younger than this are not yet lag (the Indexer waits
    /// for a quiet period before a run).
    pub max_lag_age_ms: i64,
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Alive and not lagging.
    Healthy,
    /// No status message about the repository in the recent past.
    IndexerDown,
    /// Alive, but more than `max_lag` events wait, the oldest for longer
    /// than `max_lag_age_ms`.
    Lagging,
}

/// Whether a run was a full generation or an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    Full,
    Update,
    Unknown,
}

/// One index run, from its status messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInfo {
    /// The run's `start` (seconds since the epoch).
    pub start: i64,
    /// When its `index started` arrived (else `start` seconds), ms.
    pub started_at_ms: i64,
    /// When its `index completed` arrived, ms; none while in progress.
    pub completed_at_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub kind: RunKind,
    /// Its newest message, ms.
    pub last_message_at_ms: i64,
}

/// The newest status message about the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Newest {
    pub event: String,
    pub name: String,
    pub at_ms: i64,
    pub age_ms: i64,
}

/// Package events waiting for a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lag {
    pub count: u64,
    pub oldest_age_ms: Option<i64>,
    /// Events are counted from this moment (ms): the last completed run's
    /// start, or the start of what was read.
    pub counted_from_ms: Option<i64>,
}

/// Everything `status` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub verdict: Verdict,
    pub newest: Option<Newest>,
    pub last_heartbeat_age_ms: Option<i64>,
    /// The Indexer's newest status is a heartbeat saying it waits for the
    /// index lock, held by this holder.
    pub waiting_for_lock: Option<String>,
    pub last_completed: Option<RunInfo>,
    pub in_progress: Option<RunInfo>,
    pub lag: Lag,
    pub recent_past_ms: i64,
    pub max_lag: u64,
    pub max_lag_age_ms: i64,
}

fn runs(statuses: &[StatusSeen]) -> Vec<RunInfo> {
    let mut by_start: std::collections::BTreeMap<i64, RunInfo> = Default::default();
    for s in statuses {
        if s.msg.event == IndexEvent::Heartbeat {
            continue;
        }
        let r = by_start.entry(s.msg.start).or_insert_with(|| RunInfo {
            start: s.msg.start,
            started_at_ms: s.msg.start.saturating_mul(1000),
            completed_at_ms: None,
            duration_ms: None,
            kind: RunKind::Unknown,
            last_message_at_ms: s.at_ms,
        });
        r.last_message_at_ms = r.last_message_at_ms.max(s.at_ms);
        match s.msg.event {
            IndexEvent::Started => r.started_at_ms = s.at_ms,
            IndexEvent::Completed => {
                r.completed_at_ms = Some(r.completed_at_ms.map_or(s.at_ms, |c| c.min(s.at_ms)));
                if let Some(k) = s.run_kind {
                    r.kind = k;
                }
            }
            _ => {}
        }
    }
    let mut v: Vec<RunInfo> = by_start.into_values().collect();
    for r in &mut v {
        r.duration_ms = r.completed_at_ms.map(|c| (c - r.started_at_ms).max(0));
    }
    v
}

/// From when package events must be read: the start of the completed run
/// before the last one (to tell whether the last was full), else `fallback_ms`.
pub fn events_needed_from(statuses: &[StatusSeen], fallback_ms: i64) -> i64 {
    let done: Vec<RunInfo> = runs(statuses)
        .into_iter()
        .filter(|r| r.completed_at_ms.is_some())
        .collect();
    match done.len() {
        0 => fallback_ms,
        1 => fallback_ms.min(done[0].started_at_ms),
        n => done[n - 2].started_at_ms,
    }
}

/// The verdict. `statuses` and `events` are those about the repository
/// (see [`crate::RepoTarget`]); `events_read_from_ms` is where reading the
/// package topic began (what is older was not seen).
pub fn assess(
    statuses: &[StatusSeen],
    events: &[EventSeen],
    events_read_from_ms: i64,
    now_ms: i64,
    rules: HealthRules,
) -> Health {
    let newest = statuses.iter().max_by_key(|s| s.at_ms).map(|s| Newest {
        event: s.msg.event.to_string(),
        name: s.msg.name.clone(),
        at_ms: s.at_ms,
        age_ms: now_ms - s.at_ms,
    });
    let last_heartbeat_age_ms = statuses
        .iter()
        .filter(|s| s.msg.event == IndexEvent::Heartbeat)
        .map(|s| now_ms - s.at_ms)
        .min();
    let waiting_for_lock = statuses
        .iter()
        .max_by_key(|s| s.at_ms)
        .and_then(|s| s.lock_holder.clone());
    let all = runs(statuses);
    let completed: Vec<&RunInfo> = all.iter().filter(|r| r.completed_at_ms.is_some()).collect();
    let last_completed = completed.last().map(|r| {
        let mut r = (*r).clone();
        if r.kind != RunKind::Unknown {
            // The run said what it was.
            return r;
        }
        let prev_from = completed
            .len()
            .checked_sub(2)
            .map(|i| completed[i].started_at_ms);
        r.kind = match prev_from {
            Some(from) if from >= events_read_from_ms => {
                if events.iter().any(|e| {
                    e.event == PackageEvent::GenerateIndex
                        && e.at_ms > from
                        && e.at_ms <= r.started_at_ms
                }) {
                    RunKind::Full
                } else {
                    RunKind::Update
                }
            }
            _ => {
                if events.iter().any(|e| {
                    e.event == PackageEvent::GenerateIndex
                        && e.at_ms >= events_read_from_ms
                        && e.at_ms <= r.started_at_ms
                }) {
                    RunKind::Full
                } else {
                    RunKind::Unknown
                }
            }
        };
        r
    });
    let in_progress = all
        .iter()
        .rev()
        .find(|r| r.completed_at_ms.is_none())
        .filter(|r| {
            now_ms - r.last_message_at_ms <= rules.recent_past_ms
                && last_completed.as_ref().is_none_or(|c| r.start >= c.start)
        })
        .cloned();
    let counted_from = last_completed
        .as_ref()
        .map(|r| r.started_at_ms)
        .unwrap_or(events_read_from_ms);
    let pending: Vec<&EventSeen> = events.iter().filter(|e| e.at_ms > counted_from).collect();
    let lag = Lag {
        count: pending.len() as u64,
        oldest_age_ms: pending.iter().map(|e| now_ms - e.at_ms).max(),
        counted_from_ms: Some(counted_from),
    };
    let alive = newest
        .as_ref()
        .is_some_and(|n| n.age_ms <= rules.recent_past_ms);
    let verdict = if !alive {
        Verdict::IndexerDown
    } else if lag.count > rules.max_lag
        && lag.oldest_age_ms.is_some_and(|a| a > rules.max_lag_age_ms)
    {
        Verdict::Lagging
    } else {
        Verdict::Healthy
    };
    Health {
        verdict,
        newest,
        last_heartbeat_age_ms,
        waiting_for_lock,
        last_completed,
        in_progress,
        lag,
        recent_past_ms: rules.recent_past_ms,
        max_lag: rules.max_lag,
        max_lag_age_ms: rules.max_lag_age_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const RULES: HealthRules = HealthRules {
        recent_past_ms: 120_000,
        max_lag: 0,
        max_lag_age_ms: 30_000,
    };

    fn st(event: IndexEvent, start_s: i64, at_ms: i64) -> StatusSeen {
        StatusSeen {
            msg: IndexStatusMessage {
                event,
                repo: "file:///srv/origin/".into(),
                name: "origin".into(),
                start: start_s,
            },
            at_ms,
            lock_holder: None,
            run_kind: None,
        }
    }
    fn ev(event: PackageEvent, at_ms: i64) -> EventSeen {
        EventSeen {
            event,
            package: "a/1.0.0/src".into(),
            at_ms,
        }
    }
    fn run(start_ms: i64, done_ms: i64) -> Vec<StatusSeen> {
        vec![
            st(IndexEvent::Started, start_ms / 1000, start_ms),
            st(IndexEvent::InProgress, start_ms / 1000, start_ms + 10),
            st(IndexEvent::Completed, start_ms / 1000, done_ms),
        ]
    }

    #[test]
    fn nothing_read_is_down() {
        let h = assess(&[], &[], NOW - 3_600_000, NOW, RULES);
        assert_eq!(h.verdict, Verdict::IndexerDown);
        assert!(h.newest.is_none() && h.last_completed.is_none());
    }

    #[test]
    fn a_recent_heartbeat_is_alive_an_old_one_is_down() {
        let hb = |at| vec![st(IndexEvent::Heartbeat, at / 1000, at)];
        let h = assess(&hb(NOW - 5_000), &[], NOW - 3_600_000, NOW, RULES);
        assert_eq!(h.verdict, Verdict::Healthy);
        assert_eq!(h.last_heartbeat_age_ms, Some(5_000));
        let h = assess(&hb(NOW - 120_001), &[], NOW - 3_600_000, NOW, RULES);
        assert_eq!(h.verdict, Verdict::IndexerDown);
        assert_eq!(h.newest.unwrap().age_ms, 120_001);
    }

    #[test]
    fn last_completed_run_with_duration_and_kind() {
        let mut s = run(NOW - 600_000, NOW - 590_000);
        s.extend(run(NOW - 60_000, NOW - 57_500));
        s.push(st(IndexEvent::Heartbeat, 0, NOW - 1_000));
        let events = [
            ev(PackageEvent::GenerateIndex, NOW - 61_000),
            ev(PackageEvent::Published, NOW - 62_000),
        ];
        let h = assess(&s, &events, NOW - 700_000, NOW, RULES);
        let c = h.last_completed.unwrap();
        assert_eq!(c.start, (NOW - 60_000) / 1000);
        assert_eq!(c.duration_ms, Some(2_500));
        assert_eq!(c.kind, RunKind::Full);
        assert_eq!(h.verdict, Verdict::Healthy);
        assert_eq!(h.lag.count, 0);
        // Without the generate index it was an update...
        let h = assess(&s, &events[1..], NOW - 700_000, NOW, RULES);
        assert_eq!(h.last_completed.unwrap().kind, RunKind::Update);
        // ...unless the events read do not reach back to the previous run.
        let h = assess(&s, &events[1..], NOW - 100_000, NOW, RULES);
        assert_eq!(h.last_completed.unwrap().kind, RunKind::Unknown);
        assert_eq!(events_needed_from(&s, NOW - 100_000), NOW - 600_000);
    }

    #[test]
    fn events_after_the_last_run_are_lag_once_old_enough_and_many_enough() {
        let mut s = run(NOW - 300_000, NOW - 299_000);
        s.push(st(IndexEvent::Heartbeat, 0, NOW - 2_000));
        let events = [
            ev(PackageEvent::Published, NOW - 301_000), // covered by the run
            ev(PackageEvent::Published, NOW - 200_000),
            ev(PackageEvent::Removed, NOW - 10_000),
        ];
        let h = assess(&s, &events, NOW - 3_600_000, NOW, RULES);
        assert_eq!(h.lag.count, 2);
        assert_eq!(h.lag.oldest_age_ms, Some(200_000));
        assert_eq!(h.verdict, Verdict::Lagging);
        let lenient = HealthRules {
            max_lag: 2,
            ..RULES
        };
        assert_eq!(
            assess(&s, &events, NOW - 3_600_000, NOW, lenient).verdict,
            Verdict::Healthy
        );
        let young = HealthRules {
            max_lag_age_ms: 250_000,
            ..RULES
        };
        assert_eq!(
            assess(&s, &events, NOW - 3_600_000, NOW, young).verdict,
            Verdict::Healthy
        );
        // Down beats lagging.
        let h = assess(&s[..3], &events, NOW - 3_600_000, NOW, RULES);
        assert_eq!(h.verdict, Verdict::IndexerDown);
    }

    #[test]
    fn no_completed_run_counts_every_event_read() {
        let s = vec![st(IndexEvent::Heartbeat, 0, NOW - 1_000)];
        let events = [ev(PackageEvent::Published, NOW - 100_000)];
        let h = assess(&s, &events, NOW - 3_600_000, NOW, RULES);
        assert_eq!(h.lag.count, 1);
        assert_eq!(h.lag.counted_from_ms, Some(NOW - 3_600_000));
        assert_eq!(h.verdict, Verdict::Lagging);
    }

    #[test]
    fn a_run_in_progress_is_shown_while_recent() {
        let mut s = run(NOW - 300_000, NOW - 299_000);
        s.push(st(IndexEvent::Started, (NOW - 20_000) / 1000, NOW - 20_000));
        s.push(st(
            IndexEvent::InProgress,
            (NOW - 20_000) / 1000,
            NOW - 5_000,
        ));
        let h = assess(&s, &[], NOW - 3_600_000, NOW, RULES);
        let p = h.in_progress.unwrap();
        assert_eq!(p.started_at_ms, NOW - 20_000);
        assert!(p.completed_at_ms.is_none());
        assert_eq!(h.verdict, Verdict::Healthy);
        // An abandoned run (no message for longer than the recent past) is not.
        let h = assess(&s, &[], NOW - 3_600_000, NOW + 200_000, RULES);
        assert!(h.in_progress.is_none());
    }

    #[test]
    fn a_heartbeat_naming_the_lock_holder_is_reported_while_newest() {
        let mut hb = st(IndexEvent::Heartbeat, 100, 100_000);
        hb.lock_holder = Some("host: ci-7\npid: 42".into());
        let h = assess(&[hb.clone()], &[], 0, 101_000, RULES);
        assert_eq!(h.waiting_for_lock.as_deref(), Some("host: ci-7\npid: 42"));
        // A later run message means the lock was had.
        let later = st(IndexEvent::Started, 101, 101_500);
        let h = assess(&[hb, later], &[], 0, 102_000, RULES);
        assert_eq!(h.waiting_for_lock, None);
    }

    #[test]
    fn a_completed_run_that_says_its_kind_is_taken_at_its_word() {
        let mut done = st(IndexEvent::Completed, 100, 101_000);
        done.run_kind = Some(RunKind::Update);
        let h = assess(
            &[st(IndexEvent::Started, 100, 100_000), done.clone()],
            &[],
            0,
            102_000,
            RULES,
        );
        assert_eq!(h.last_completed.map(|r| r.kind), Some(RunKind::Update));
        // Without the header (SPK's run), and no events read: not known.
        done.run_kind = None;
        let h = assess(
            &[st(IndexEvent::Started, 100, 100_000), done],
            &[],
            50_000,
            102_000,
            RULES,
        );
        assert_eq!(h.last_completed.map(|r| r.kind), Some(RunKind::Unknown));
    }
}
