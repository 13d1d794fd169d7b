//! `spk messaging wait-index --repo R [--since UNIX_SECONDS] [--timeout-ms T] [--max-wait-ms M]`
//!
//! Waits until the repository's index has completed a run that started at
//! or after `--since` (default: now). Exit 0 when it has; 5 at once when no
//! indexer has said anything about the repository in the recent past; 6
//! after `index_update_listener_timeout_ms` (or `--timeout-ms`) with no new
//! message about it, or when the whole wait reached its cap (`--max-wait-ms`,
//! default 30 minutes). It listens where the routing rule
//! (`route_index_status`) says the repository's index status goes.

use std::time::Duration;

use spk_messaging_core::config::{Config, ResolvedRepo};
use spk_messaging_kafka::wait::{wait_for_index, WaitOutcome, WaitReport, WaitRequest};

use crate::exit::{self, CmdResult, Exit};
use crate::output::{print_json, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repository: a configured name, a path or a file: URL.
    #[arg(long, short = 'r', value_name = "REPO")]
    repo: String,
    /// Wait for an index run that started at or after this time (seconds
    /// since the epoch); default now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    since: Option<i64>,
    /// Give up after this long without a new status message (default: the
    /// channel's index_update_listener_timeout_ms).
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Give up after this long in all, even while status messages keep
    /// coming (e.g. heartbeats of an indexer waiting for a lock held
    /// elsewhere); default 1800000 (30 minutes).
    #[arg(long, value_name = "MS")]
    max_wait_ms: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    let (cfg, repo) = ctx.repo(&args.repo)?;
    let since = args.since.unwrap_or_else(|| chrono::Utc::now().timestamp());
    wait(
        &cfg,
        &repo,
        Since::Seconds(since),
        Bounds {
            timeout_ms: args.timeout_ms,
            max_wait_ms: args.max_wait_ms,
        },
        args.format,
    )
}

/// The bounds of a wait given on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bounds {
    /// `--timeout-ms`: no new status message for this long.
    pub timeout_ms: Option<u64>,
    /// `--max-wait-ms`: the whole wait.
    pub max_wait_ms: Option<u64>,
}

/// What to wait past.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// `--since`: any run with `start >= since`.
    Seconds(i64),
    /// The exact moment of our own sends, in ms (see `WaitRequest::since_ms`).
    Moment(i64),
}

/// Waits and reports; shared with `send-event --wait`.
pub fn wait(
    cfg: &Config,
    repo: &ResolvedRepo,
    since: Since,
    bounds: Bounds,
    format: Format,
) -> CmdResult {
    let ch = super::status_channel(cfg, repo, "to wait on")?;
    let (since, since_ms) = match since {
        Since::Seconds(s) => (s, None),
        Since::Moment(ms) => (ms.div_euclid(1000), Some(ms)),
    };
    let req = WaitRequest {
        repo_name: repo.name.clone(),
        repo_url: repo.address.to_url(),
        since,
        since_ms,
        timeout: bounds.timeout_ms.map(Duration::from_millis),
        max_wait: bounds.max_wait_ms.map(Duration::from_millis),
    };
    let report = wait_for_index(ch, &req).map_err(exit::for_wait_error)?;
    print_report(&report, format);
    match report.outcome {
        WaitOutcome::Completed => Ok(()),
        WaitOutcome::IndexerDown => Err(Exit::code(exit::INDEXER_DOWN)),
        WaitOutcome::TimedOut | WaitOutcome::OutOfPatience => Err(Exit::code(exit::WAIT_TIMEOUT)),
    }
}

fn print_report(r: &WaitReport, format: Format) {
    match format {
        Format::Json => print_json(&serde_json::to_value(r).unwrap_or_default()),
        Format::Text => match r.outcome {
            WaitOutcome::Completed => {
                let start = r.completed.as_ref().map(|c| c.start).unwrap_or_default();
                println!(
                    "index of {} completed (run started {start}, at or after {}) after {} ms",
                    r.repo_name, r.since, r.waited_ms
                );
            }
            WaitOutcome::IndexerDown => eprintln!(
                "no index status message about {} in the recent past: its indexer is taken to be down; not waiting",
                r.repo_name
            ),
            WaitOutcome::TimedOut => eprintln!(
                "gave up on {} after {} ms: no new status message within the listener timeout ({} message(s) seen, none an index completed at or after {})",
                r.repo_name,
                r.waited_ms,
                r.seen.len(),
                r.since
            ),
            WaitOutcome::OutOfPatience => eprintln!(
                "gave up on {} after {} ms: the whole wait may take at most {} ms (--max-wait-ms) ({} message(s) seen, none an index completed at or after {})",
                r.repo_name,
                r.waited_ms,
                r.patience_ms,
                r.seen.len(),
                r.since
            ),
        },
    }
}
