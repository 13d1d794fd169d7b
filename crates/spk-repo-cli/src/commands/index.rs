//! `spk repo index --repo R [--update PKG[/VERSION]]... [--strict]`
//!
//! Full generation, or an update of some packages and versions, under the
//! index write lock. Exit codes: 0 written; 1 failure (including spec
//! problems with `--strict`, when nothing is written); 3 the lock is held;
//! 4 the index was written but status messages were not delivered.
//!
//! Test-only hooks (slow spec reads, a pause before the rename) are read
//! from the environment by [`super::test_hooks`].

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::anyhow;
use spk_messaging_core::config::{Config, ResolvedRepo};
use spk_messaging_core::{IndexStatusReporter, PkgIdent};
use spk_repo::{run_index, IndexError, IndexRequest, IndexSummary};

use crate::exit::{self, CmdResult, Exit};
use crate::output::{print_json, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repository: a configured name, a path or a file: URL.
    #[arg(long, short = 'r', value_name = "REPO")]
    repo: String,
    /// Re-read only this package (all its versions) or package version from
    /// the repository, keeping the rest of the index; repeatable.
    #[arg(long, value_name = "PKG[/VERSION]")]
    update: Vec<PkgIdent>,
    /// Unreadable, malformed or mismatched specs are fatal (nothing is written).
    #[arg(long)]
    strict: bool,
    /// Summary format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Where this run's status messages go: the Kafka channel named by the
/// repository's `index.update_message_channel`, or nowhere, with a note
/// saying why (printed as a warning when the config looks like a mistake).
fn status_reporter(
    cfg: &Config,
    repo: &ResolvedRepo,
) -> anyhow::Result<Box<dyn IndexStatusReporter>> {
    let sink = spk_messaging_kafka::status_reporter(cfg, repo)?;
    if let spk_messaging_kafka::StatusSink::None { note, warning } = &sink {
        eprintln!("{}: {note}", if *warning { "warning" } else { "note" });
    }
    Ok(sink.into_reporter().0)
}

fn progress_bar() -> Option<spk_repo::ProgressFn> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} reading {bar:40} {pos}/{len} ({eta})")
    {
        bar.set_style(style);
    }
    Some(Arc::new(move |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
        }
    }))
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    let (cfg, resolved) = ctx.repo(&args.repo)?;
    let mut req = IndexRequest::new(
        &resolved.name,
        resolved.address.clone(),
        resolved.config.index.clone(),
    );
    req.updates = args.update;
    req.strict = args.strict;
    req.progress = progress_bar();
    super::test_hooks::apply(&mut req)?;
    // A repository that cannot be read is said before any note on status.
    spk_repo::spfs::SpfsRepo::open(resolved.address.path()).map_err(anyhow::Error::from)?;
    let reporter = status_reporter(&cfg, &resolved)?;
    let summary = match run_index(&req, reporter.as_ref()) {
        Ok(s) => s,
        Err(e @ IndexError::LockBusy { .. }) => return Err(Exit::with(exit::LOCK_BUSY, e.into())),
        Err(e) => return Err(Exit::with(exit::FAILURE, e.into())),
    };
    print_summary(&summary, args.format);
    if !summary.report_failures.is_empty() {
        for f in &summary.report_failures {
            eprintln!("error: {f}");
        }
        let connect = summary
            .report_failures
            .iter()
            .find_map(|f| f.connect.clone());
        return Err(Exit::with(
            exit::for_connect_failure(connect.as_deref()),
            anyhow!(
                "the index was written, but {} status message(s) to {} were not delivered",
                summary.report_failures.len(),
                summary.reporter
            ),
        ));
    }
    Ok(())
}

fn print_summary(s: &IndexSummary, format: Format) {
    match format {
        Format::Json => print_json(&serde_json::to_value(s).unwrap_or_default()),
        Format::Text => {
            if let Some(h) = &s.lock_taken_over {
                println!("took over the index write lock of {h}, which is no longer running");
            }
            let kept = if s.mode == spk_repo::IndexMode::Update {
                format!(" ({} kept from the old index)", s.kept)
            } else {
                String::new()
            };
            println!(
                "indexed {} ({}), {}: {} packages{kept}, {} versions, {} builds, {} deprecated, {} global vars, {} skipped in {:.2}s -> {} ({} bytes)",
                s.repo_name,
                s.repo_address,
                s.mode,
                s.counts.packages,
                s.counts.versions,
                s.counts.builds,
                s.counts.deprecated,
                s.global_vars,
                s.skipped.len(),
                s.elapsed_seconds,
                s.index_path.display(),
                s.index_bytes
            );
        }
    }
}
