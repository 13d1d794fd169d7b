//! `spk messaging status --repo R`: is an Indexer alive for R, what did its
//! last run do, is one running, and how far behind is it.
//!
//! Exit 0 healthy; 5 (`INDEXER_DOWN`) no status message about R in the
//! recent past; 10 (`LAGGING`) more than `--max-lag` package events wait, the
//! oldest for longer than `--max-lag-age`; 1 when the topics cannot be read.
//! The verdict is `spk_messaging_core::health::assess`.

use spk_messaging_core::health::{HealthRules, RunInfo, Verdict};
use spk_messaging_core::watch::parse_duration_ms;
use spk_messaging_core::RepoTarget;
use spk_messaging_kafka::observe::{status, StatusReport, StatusRequest};

use crate::exit::{self, CmdResult, Exit};
use crate::output::{print_json, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repository: a configured name, a path or a file: URL.
    #[arg(long, short = 'r', value_name = "REPO")]
    repo: String,
    /// Lagging when more than this many package events wait for a run.
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_lag: u64,
    /// ...and the oldest of them has waited longer than this (the Indexer
    /// waits for a quiet period before each run).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    max_lag_age: i64,
    /// How far back to look for the last completed run.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    lookback: i64,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

fn parse_duration(s: &str) -> Result<i64, String> {
    parse_duration_ms(s)
        .ok_or_else(|| format!("{s:?} is not a duration; write e.g. 30s, 5m, 2h, 1d or 1h30m"))
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    let (cfg, repo) = ctx.repo(&args.repo)?;
    let ch = super::status_channel(&cfg, &repo, "to read")?;
    let req = StatusRequest {
        target: RepoTarget::new(repo.name.clone(), Some(repo.address.clone())),
        rules: HealthRules {
            recent_past_ms: i64::try_from(ch.index_update_listener_recent_past_duration_ms)
                .unwrap_or(i64::MAX),
            max_lag: args.max_lag,
            max_lag_age_ms: args.max_lag_age,
        },
        lookback_ms: args.lookback,
    };
    let report = status(ch, &req).map_err(exit::for_observe_error)?;
    match args.format {
        Format::Json => print_json(&serde_json::to_value(&report).unwrap_or_default()),
        Format::Text => print_text(&report),
    }
    match report.health.verdict {
        Verdict::Healthy => Ok(()),
        Verdict::IndexerDown => Err(Exit::code(exit::INDEXER_DOWN)),
        Verdict::Lagging => Err(Exit::code(exit::LAGGING)),
    }
}

fn secs(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn run_text(r: &RunInfo) -> String {
    let kind = match r.kind {
        spk_messaging_core::health::RunKind::Full => "full",
        spk_messaging_core::health::RunKind::Update => "update",
        spk_messaging_core::health::RunKind::Unknown => "full or update (not known)",
    };
    match r.duration_ms {
        Some(d) => format!(
            "started {} (start {}), took {}, {kind}",
            when(r.started_at_ms),
            r.start,
            secs(d)
        ),
        None => format!(
            "started {} (start {}), {kind}",
            when(r.started_at_ms),
            r.start
        ),
    }
}

fn print_text(r: &StatusReport) {
    let h = &r.health;
    let verdict = match h.verdict {
        Verdict::Healthy => "healthy",
        Verdict::IndexerDown => "INDEXER DOWN",
        Verdict::Lagging => "LAGGING",
    };
    println!("{}: {verdict}", r.repo);
    match &h.newest {
        Some(n) => println!(
            "  newest status message: {} ({}), {} ago; alive within {}",
            n.event,
            n.name,
            secs(n.age_ms),
            secs(h.recent_past_ms)
        ),
        None => println!(
            "  no status message about {} on {} (channel {})",
            r.repo, r.status_topic, r.channel
        ),
    }
    if let Some(a) = h.last_heartbeat_age_ms {
        println!("  last heartbeat: {} ago", secs(a));
    }
    if let Some(holder) = &h.waiting_for_lock {
        println!(
            "  waiting for the index lock, held by {}",
            holder.replace('\n', ", ")
        );
    }
    match &h.last_completed {
        Some(c) => println!("  last completed run: {}", run_text(c)),
        None => println!("  last completed run: none found"),
    }
    if let Some(p) = &h.in_progress {
        println!("  run in progress: {}", run_text(p));
    }
    match h.lag.oldest_age_ms {
        Some(a) => println!(
            "  lag: {} package event(s) since the last completed run, oldest {} old (lagging above {} event(s) older than {})",
            h.lag.count,
            secs(a),
            h.max_lag,
            secs(h.max_lag_age_ms)
        ),
        None => println!("  lag: none"),
    }
}
