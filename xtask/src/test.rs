//! `cargo xtask test`: every test. First the tiers that need no external
//! broker (unit, CLI, librdkafka mock cluster), then the end-to-end tier in
//! `tests/e2e`, against a Tansu broker this task starts and stops.

use std::process::Command;

use anyhow::{Context, Result};

use crate::tansu;
use crate::util::{root, run};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

pub fn run_all(args: &[String]) -> Result<()> {
    let e2e_only = args.iter().any(|a| a == "--e2e-only");
    // Anything after `--` goes to the end-to-end test binary (e.g. a filter).
    let passthrough: Vec<&String> = args.iter().skip_while(|a| *a != "--").skip(1).collect();
    if !e2e_only {
        run(cargo().args(["test", "--workspace", "--exclude", "spk-e2e"]))?;
    }
    // Install before building so a fresh machine's long install happens once.
    let bin = tansu::ensure_installed()?;
    run(cargo().args(["build", "-p", "spk-repo-cli"]))?;
    let work = root().join("target/e2e");
    let port = tansu::free_port()?;
    let broker = tansu::Broker::start(&bin, &work, "memory://tansu/", port)?;
    eprintln!("xtask: tansu listening on {}", broker.bootstrap());
    let spk = root().join("target/debug/spk");
    let result = run(cargo()
        .args(["test", "-p", "spk-e2e", "--", "--test-threads=2"])
        .args(passthrough)
        .env("SPK_E2E_BOOTSTRAP", broker.bootstrap())
        .env("SPK_E2E_SPK", &spk)
        .env("SPK_E2E_TANSU", &bin)
        .env("SPK_E2E_WORKDIR", &work));
    if result.is_err() {
        eprintln!(
            "xtask: end-to-end tests failed; tansu log tail:\n{}",
            broker.log_tail()
        );
    }
    drop(broker);
    result.context("end-to-end tier failed")
}
