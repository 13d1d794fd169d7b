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
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    let loaded = config::load(&ctx.load_options());
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
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags.len() - errors;
    let ok = errors == 0 && !(strict && warnings > 0);
    match format {
        Format::Json => print_json(&serde_json::json!({
            "ok": ok,
            "sources": cfg.sources,
            "errors": errors,
            "warnings": warnings,
            "diagnostics": diags,
        })),
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
            for d in diags {
                let mark = match d.severity {
                    Severity::Error => "[x] error  ",
                    Severity::Warning => "[!] warning",
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
                "{} {errors} error(s), {warnings} warning(s)",
                if ok { "[ok]" } else { "[failed]" }
            );
        }
    }
    if ok {
        Ok(())
    } else {
        Err(Exit::code(exit::FAILURE))
    }
}
