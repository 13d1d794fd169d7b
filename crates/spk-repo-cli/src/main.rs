//! `spk`: SPK repository index and messaging tools.
//!
//! Thin by design: each subcommand is a module under `commands/` that turns
//! arguments into a library call and its result into output and an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: index generation allocates and frees
/// small strings and vectors for every field of 100,000 specs on every
/// core, and glibc's allocator spent a fifth of the run's CPU on that
/// (`perf`, `_int_free`/`malloc`/`malloc_consolidate`). Built without
/// transparent huge pages (`no_thp`): with them, each fresh 2 MB of its
/// arenas was zeroed on first touch, which added 0.8 ms to every short
/// command (`spk repo ls`: 3.9 ms against 2.8 ms with glibc) and gained
/// nothing measurable on index generation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod commands;
mod exit;
mod output;
mod serve;

#[derive(Debug, Parser)]
#[command(
    name = "spk",
    version,
    about = "SPK repository index and messaging tools"
)]
struct Cli {
    /// Config file to use instead of /etc/spk.* and ~/.config/spk/spk.*
    #[arg(long, global = true, env = "SPK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log format on stderr: text, or one JSON object per line (for log
    /// shippers; the same fields).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Repository commands: index, ls, send-event, indexer.
    #[command(subcommand)]
    Repo(commands::RepoCmd),
    /// Messaging commands: check-config, schema, dev-broker, wait-index, tail, status.
    #[command(subcommand)]
    Messaging(commands::MessagingCmd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
enum LogFormat {
    #[default]
    Text,
    Json,
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => fmt.init(),
        // One object per line: timestamp, level, message and every field
        // at the top level.
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// The error and its causes, `: `-separated as `{:#}` prints them, leaving
/// out a cause whose text is already there: many errors print their source
/// in their own message, and `{:#}` would print it a second time.
fn error_text(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_format);
    let json_logs = cli.log_format == LogFormat::Json;
    let ctx = commands::Context {
        config_file: cli.config,
        json_logs,
    };
    let result = match cli.command {
        Top::Repo(c) => c.run(&ctx),
        Top::Messaging(c) => c.run(&ctx),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(err) = e.error {
                if json_logs {
                    let line = commands::json_log_line(
                        "ERROR",
                        &error_text(&err),
                        &[("exit_code", e.code.to_string())],
                    );
                    eprintln!("{line}");
                } else {
                    eprintln!("error: {}", error_text(&err));
                }
            }
            ExitCode::from(u8::try_from(e.code).unwrap_or(1))
        }
    }
}
