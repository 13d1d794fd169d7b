//! `cargo xtask bench ops`: the operator tools' benchmarks, against a local
//! Tansu broker this task starts (and stops), with the release `spk` binary
//! as whole processes:
//!
//! - `spk messaging tail --from-beginning --count 50000 --format json` over
//!   a topic holding 50,000 package events, output to /dev/null: events/s,
//!   process start to exit (text format beside it);
//! - the Indexer's resident memory while idle, with `--metrics-addr` (after
//!   a few scrapes) and without.
//!
//! Figures are medians, printed with their goals. Nothing here is a test.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::bench_util::{create_topics, median, proc_kb, spk_ok, BrokerBench};
use anyhow::{bail, Context, Result};

use crate::{tansu, util};

const EVENTS: usize = 50_000;

fn scrape(addr: &str) -> Result<String> {
    let mut c = std::net::TcpStream::connect(addr)?;
    write!(c, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    Ok(s)
}

/// The Indexer's idle RSS (kB), with metrics served or not.
fn indexer_idle_rss(spk: &Path, config: &Path, work: &Path, metrics: bool) -> Result<u64> {
    let log = work.join(format!("indexer-metrics-{metrics}.log"));
    let mut cmd = Command::new(spk);
    cmd.arg("--config")
        .arg(config)
        .args(["-v", "repo", "indexer", "--name", "bench"]);
    if metrics {
        cmd.args(["--metrics-addr", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let pid = child.id();
    let result = (|| -> Result<u64> {
        // Time to read (and skip) the backlog and settle.
        std::thread::sleep(Duration::from_secs(6));
        if metrics {
            let text = std::fs::read_to_string(&log)?;
            let addr = text
                .split("metrics on http://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .context("the indexer did not print its metrics address")?
                .to_string();
            for _ in 0..5 {
                let m = scrape(&addr)?;
                if !m.contains("spk_indexer_ready") {
                    bail!("no metrics from {addr}: {m}");
                }
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        proc_kb(pid, "VmRSS:").context("cannot read the indexer's RSS")
    })();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    result
}

pub fn run(args: &[String]) -> Result<()> {
    let BrokerBench {
        runs,
        spk,
        work,
        broker,
        ..
    } = BrokerBench::start("ops", args, 5)?;
    let root = util::root();
    let bootstrap = broker.bootstrap();
    create_topics(&bootstrap, &[("ops-packages", 3), ("ops-index", 1)])?;

    // A small repository: the Indexer's idle memory is what is measured.
    let repo = work.join("origin");
    copy_dir(&root.join("examples/origin"), &repo)?;
    let other = work.join("other");
    std::fs::create_dir_all(&other)?;
    let _ = std::fs::remove_dir_all(repo.join("index"));
    let config = work.join("spk.toml");
    std::fs::write(
        &config,
        format!(
            r#"[repositories.origin]
use_index = true
address = "{repo}"
index = {{ update_message_channel = "kafka" }}

[repositories.other]
address = "{other}"

[[messaging]]
kafka = {{ name = "kafka", brokers = ["{bootstrap}"], repo_names = ["origin", "other"], package_updates_topic_name = "ops-packages", index_updates_topic_name = "ops-index" }}

[indexers.bench]
message_channel_name = "kafka"
repo_name = "origin"
heartbeat_freq_ms = 30000
"#,
            repo = repo.display(),
            other = other.display()
        ),
    )?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    eprintln!("bench ops: tansu on {bootstrap}; {runs} runs; {cores} cores");

    // 1. 50,000 events on the package topic (of another repository, so the
    //    Indexer below has nothing to do with them but skip them).
    let file = work.join("events.jsonl");
    let mut lines = String::with_capacity(EVENTS * 140);
    let url = format!("file://{}/", other.display());
    for i in 0..EVENTS {
        lines.push_str(&format!(
            "{{\"event\":\"package published\",\"repo\":\"{url}\",\"repo_name\":\"other\",\"package\":\"pkg-{}/1.{}.0/3I42H3S6\"}}\n",
            i % 1000,
            i / 1000
        ));
    }
    std::fs::write(&file, lines)?;
    let file_s = file.to_string_lossy().to_string();
    spk_ok(
        &spk,
        &config,
        &[
            "repo",
            "send-event",
            "--repo",
            "other",
            "--from-file",
            &file_s,
        ],
    )?;
    let count = EVENTS.to_string();
    let tail = |format: &str| -> Result<Vec<f64>> {
        let args = [
            "messaging",
            "tail",
            "--topic",
            "package",
            "--from-beginning",
            "--count",
            &count,
            "--format",
            format,
        ];
        spk_ok(&spk, &config, &args)?; // warm-up
        (0..runs).map(|_| spk_ok(&spk, &config, &args)).collect()
    };
    let json = tail("json")?;
    let text = tail("text")?;

    // 2. The Indexer idle, with and without metrics, after it has read
    //    (and skipped) the 50,000 events above; the index exists.
    spk_ok(&spk, &config, &["repo", "index", "--repo", "origin"])?;
    let mut with = Vec::new();
    let mut without = Vec::new();
    for _ in 0..runs.clamp(1, 3) {
        without.push(indexer_idle_rss(&spk, &config, &work, false)? as f64);
        with.push(indexer_idle_rss(&spk, &config, &work, true)? as f64);
    }
    drop(broker);

    println!();
    println!(
        "Operator tools benchmarks: Tansu {} on loopback, release spk, {cores} cores",
        tansu::VERSION
    );
    println!("{:<62} {:>14}   goal", "measure", "figure");
    let row = |what: &str, fig: String, goal: &str| println!("{what:<62} {fig:>14}   {goal}");
    row(
        &format!(
            "tail --format json, {EVENTS} events to /dev/null (median of {})",
            json.len()
        ),
        format!("{:.0} ev/s", EVENTS as f64 / median(json.clone())),
        ">= 50,000 ev/s",
    );
    row(
        &format!("  the same, whole process (median of {})", json.len()),
        format!("{:.2} s", median(json)),
        "",
    );
    row(
        &format!("tail --format text, the same (median of {})", text.len()),
        format!("{:.0} ev/s", EVENTS as f64 / median(text)),
        "",
    );
    row(
        &format!(
            "Indexer idle RSS, --metrics-addr, after 5 scrapes (median of {})",
            with.len()
        ),
        format!("{:.1} MB", median(with.clone()) / 1024.0),
        "",
    );
    row(
        &format!(
            "Indexer idle RSS without metrics (median of {})",
            without.len()
        ),
        format!("{:.1} MB", median(without) / 1024.0),
        "",
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}
