//! `cargo xtask ...`: the project's own tasks, in Rust so they run anywhere
//! cargo does.
//!
//! - `test`: every test, including the end-to-end tier against a Tansu
//!   broker this task installs (cached) and starts on a free port;
//! - `bench`: benchmarks, figures printed;
//! - `gen-repo`: a deterministic synthetic repository;
//! - `demo`: the main job on the embedded dev broker.

use anyhow::{bail, Result};

mod bench_index;
mod bench_kafka;
mod bench_ops;
mod bench_util;
mod codegen;
mod demo;
mod example_repo;
mod genrepo;
mod tansu;
mod test;
mod util;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        bail!("usage: cargo xtask <test|bench|gen-repo|demo> [args]");
    };
    match task.as_str() {
        "test" => test::run_all(rest),
        "bench" => match rest.split_first() {
            Some((w, r)) if w == "index" => bench_index::run(r),
            Some((w, r)) if w == "kafka" => bench_kafka::run(r),
            Some((w, r)) if w == "ops" => bench_ops::run(r),
            _ => {
                bench_index::run(rest)?;
                bench_kafka::run(&[])?;
                bench_ops::run(&[])
            }
        },
        "gen-repo" => genrepo::run(rest),
        "codegen" => codegen::run(rest),
        "demo" => demo::demo(),
        "example-repo" => example_repo::run(rest),
        other => {
            bail!("unknown task {other:?}; expected test, bench, gen-repo or demo (args: {rest:?})")
        }
    }
}
