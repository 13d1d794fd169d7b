//! What the benchmark tasks share: medians, topics on a bench broker,
//! timing one `spk` process, and reading a process's memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// The median (NaN for no figures).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Creates `(topic, partitions)` on `bootstrap`.
pub fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in futures::executor::block_on(admin.create_topics(&new, &opts))? {
        if let Err((t, e)) = r {
            bail!("cannot create topic {t}: {e}");
        }
    }
    Ok(())
}

/// Runs `spk --config CONFIG ARGS` (stdout to /dev/null) and fails unless it
/// succeeds; its wall-clock seconds, start to exit.
pub fn spk_ok(spk: &Path, config: &Path, args: &[&str]) -> Result<f64> {
    let t = Instant::now();
    let out = Command::new(spk)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run spk {}", args.join(" ")))?;
    let s = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "spk {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(s)
}

/// A `/proc/PID/status` memory field (`VmRSS:`, `VmHWM:`), in kB.
pub fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// What a Kafka benchmark starts from: `--runs N` (or `default_runs`), the
/// release `spk` built, a clean `target/bench/<task>` and a Tansu on a free
/// port there (stopped when this is dropped).
pub struct BrokerBench {
    pub runs: usize,
    pub spk: PathBuf,
    pub work: PathBuf,
    pub tansu_bin: PathBuf,
    pub broker: crate::tansu::Broker,
}

impl BrokerBench {
    pub fn start(task: &str, args: &[String], default_runs: usize) -> Result<BrokerBench> {
        let runs: usize = match args {
            [flag, n] if flag == "--runs" => n.parse().context("--runs needs a number")?,
            [] => default_runs,
            other => bail!("usage: cargo xtask bench {task} [--runs N]; got {other:?}"),
        };
        crate::util::run(Command::new(env!("CARGO")).args([
            "build",
            "--release",
            "-p",
            "spk-repo-cli",
        ]))?;
        let root = crate::util::root();
        let work = root.join("target/bench").join(task);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let tansu_bin = crate::tansu::ensure_installed()?;
        let broker = crate::tansu::Broker::start(
            &tansu_bin,
            &work,
            "memory://tansu/",
            crate::tansu::free_port()?,
        )?;
        Ok(BrokerBench {
            runs,
            spk: root.join("target/release/spk"),
            work,
            tansu_bin,
            broker,
        })
    }
}
