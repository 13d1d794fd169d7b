//! `spk messaging check-config`: every problem of a site's config at once.
//!
//! Operators run this in CI before a config reaches machines. It loads the
//! config exactly as every other command does, so what it passes they accept.

use spk_messaging_core::config;
use spk_messaging_core::{Diagnostic, Severity};

use crate::exit::{self, CmdResult, Exit};
use crate::output::{print_json, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Fail on warnings too.
    #[arg(long)]
    strict: bool,
    /// Also check every channel live: brokers reachable, metadata, topics
    /// (only when the static checks found no errors).
    #[arg(long)]
    connect: bool,
    /// Per-broker timeout of the live checks (default: each channel's
    /// index_update_listener_broker_fetch_timeout_ms).
    #[arg(long, value_name = "MS", requires = "connect")]
    timeout_ms: Option<u64>,
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    let loaded = config::load(&ctx.load_options());
    if args.connect {
        let live = if loaded.has_errors() {
            super::connect::Live::skipped("the config has errors")
        } else {
            super::connect::run(&loaded.config, args.timeout_ms)
        };
        let mut diags = loaded.diagnostics.clone();
        diags.extend(live.diagnostics().cloned());
        return report_with(
            &loaded.config,
            &diags,
            args.format,
            args.strict,
            Some(&live),
        );
    }
    report(
        &loaded.config,
        &loaded.diagnostics,
        args.format,
        args.strict,
    )
}

pub(crate) fn report(
    cfg: &config::Config,
    diags: &[Diagnostic],
    format: Format,
    strict: bool,
) -> CmdResult {
    report_with(cfg, diags, format, strict, None)
}

fn report_with(
    cfg: &config::Config,
    diags: &[Diagnostic],
    format: Format,
    strict: bool,
    live: Option<&super::connect::Live>,
) -> CmdResult {
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    let notes = diags.len() - errors - warnings;
    let ok = errors == 0 && !(strict && warnings > 0);
    match format {
        Format::Json => {
            let mut v = serde_json::json!({
                "ok": ok,
                "sources": cfg.sources,
                "errors": errors,
                "warnings": warnings,
                "notes": notes,
                "diagnostics": diags,
            });
            if let Some(l) = live {
                v["live"] = l.to_json();
            }
            print_json(&v)
        }
        Format::Text => {
            let sources = if cfg.sources.is_empty() {
                "built-in defaults only".to_string()
            } else {
                cfg.sources.join(", ")
            };
            println!("config: {sources}");
            println!(
                "checked: {} repositories, {} channels, {} indexers",
                cfg.repositories.len(),
                cfg.messaging.len(),
                cfg.indexers.len()
            );
            if let Some(l) = live {
                l.print_text();
            }
            for d in diags {
                let mark = match d.severity {
                    Severity::Error => "[x] error  ",
                    Severity::Warning => "[!] warning",
                    Severity::Note => "[i] note   ",
                };
                let path = if d.path.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", d.path)
                };
                println!("{mark} {path}{}", d.message);
                if let Some(s) = &d.source {
                    println!("              in {s}");
                }
                if let Some(h) = &d.hint {
                    println!("              hint: {h}");
                }
            }
            println!(
                "{} {errors} error(s), {warnings} warning(s), {notes} note(s)",
                if ok { "[ok]" } else { "[failed]" }
            );
        }
    }
    if ok {
        return Ok(());
    }
    // A channel its brokers refused for TLS or SASL reasons says so in the
    // exit code too (7 or 8), as every command that talks to Kafka does.
    let connect = live.and_then(|l| l.checks.iter().find_map(|c| c.failure.clone()));
    match connect {
        Some(f) => Err(Exit::code(exit::for_connect_failure(Some(&f)))),
        None => Err(Exit::code(exit::FAILURE)),
    }
}
