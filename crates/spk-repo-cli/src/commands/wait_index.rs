//! `spk messaging wait-index --repo R [--since UNIX_SECONDS] [--timeout-ms T]`
//!
//! Waits until the repository's index has completed a run that started at
//! or after `--since` (default: now). Exit 0 when it has; 5 at once when no
//! indexer has said anything about the repository in the recent past; 6
//! after `index_update_listener_timeout_ms` (or `--timeout-ms`) with no new
//! message about it.

use std::time::Duration;

use anyhow::anyhow;
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
        args.timeout_ms.map(Duration::from_millis),
        args.format,
    )
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
    timeout: Option<Duration>,
    format: Format,
) -> CmdResult {
    let ch_name = &repo.config.index.update_message_channel;
    let ch = cfg.channel(ch_name).ok_or_else(|| {
        anyhow!("repository {:?}'s index.update_message_channel {ch_name:?} names no channel; there is no status to wait on", repo.name)
    })?;
    let (since, since_ms) = match since {
        Since::Seconds(s) => (s, None),
        Since::Moment(ms) => (ms.div_euclid(1000), Some(ms)),
    };
    let req = WaitRequest {
        repo_name: repo.name.clone(),
        repo_url: repo.address.to_url(),
        since,
        since_ms,
        timeout,
    };
    let report = wait_for_index(ch, &req).map_err(|e| Exit::with(exit::FAILURE, e.into()))?;
    print_report(&report, format);
    match report.outcome {
        WaitOutcome::Completed => Ok(()),
        WaitOutcome::IndexerDown => Err(Exit::code(exit::INDEXER_DOWN)),
        WaitOutcome::TimedOut => Err(Exit::code(exit::WAIT_TIMEOUT)),
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
        },
    }
}
