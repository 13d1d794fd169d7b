//! `cargo xtask bench kafka`: the messaging benchmarks, against a local Tansu
//! broker this task starts (and stops) on a free port, with the release
//! `spk` binary, as whole processes:
//!
//! - one `spk repo send-event` process, start to delivery acknowledged
//!   (it exits only after the delivery report);
//! - `spk repo send-event --from-file` with 100,000 events: events/s;
//! - both again over TLS (stunnel in front of a second Tansu, certificates
//!   made here) and the one-shot send over SASL_SSL (SCRAM-SHA-512, a third
//!   Tansu with `--authentication`): what the TLS and SASL handshakes cost;
//! - the Indexer on the 100,000-build synthetic repository: from the start
//!   of `send-event --wait` for one package to its exit on "index completed"
//!   (the quiet period is part of it by design, and shown beside it), and
//!   the Indexer's resident memory while idle and at its peak.
//!
//! Figures are medians, printed with their goals. Nothing here is a test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench_util::{create_topics, median, proc_kb, spk_ok, BrokerBench};
use anyhow::{bail, Result};

use crate::{bench_index, genrepo, tansu};

const QUIET_MS: u64 = 500;

pub fn run(args: &[String]) -> Result<()> {
    // The secured figures need stunnel and openssl: installed first, as
    // `cargo xtask test` does, rather than failing after the plain ones.
    crate::test::ensure_stunnel()?;
    let BrokerBench {
        runs,
        spk,
        work,
        tansu_bin,
        broker,
    } = BrokerBench::start("kafka", args, 10)?;
    let bootstrap = broker.bootstrap();
    create_topics(&bootstrap, &[("bench-packages", 3), ("bench-index", 1)])?;

    let repo = bench_index::ensure_repo(5000, 4, 5)?;
    let config = work.join("spk.toml");
    std::fs::write(
        &config,
        format!(
            r#"[repositories.origin]
use_index = true
address = "{repo}"
index = {{ update_message_channel = "bench" }}

[[messaging]]
kafka = {{ name = "bench", brokers = ["{bootstrap}"], repo_names = ["origin"], package_updates_topic_name = "bench-packages", index_updates_topic_name = "bench-index", index_update_listener_timeout_ms = 30000 }}

[indexers.bench]
message_channel_name = "bench"
repo_name = "origin"
quiet_period_ms = {QUIET_MS}
heartbeat_freq_ms = 30000
"#,
            repo = repo.display()
        ),
    )?;
    // The same channel with idempotence forced on, as a long-lived producer
    // has it: librdkafka's idempotent producer waits 500 ms before asking
    // for a producer id (a fixed timer at start-up), which is why one-shot
    // sends turn it off (docs/kafka.md, "Producers").
    let config_plain = work.join("spk-idempotence.toml");
    let with_props = |props: &str| -> Result<String> {
        Ok(std::fs::read_to_string(&config)?.replace(
            "index_update_listener_timeout_ms = 30000 }",
            &format!("index_update_listener_timeout_ms = 30000, properties = {{ {props} }} }}"),
        ))
    };
    std::fs::write(
        &config_plain,
        with_props(r#""enable.idempotence" = "true""#)?,
    )?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    eprintln!("bench: tansu on {bootstrap}; {runs} runs; {cores} cores");

    // 1. One send-event process, start to delivery acknowledged.
    let one = genrepo::package_name(7);
    let pkg = format!("{one}/1.0.0/3I42H3S6");
    let send_one: [&str; 8] = [
        "repo",
        "send-event",
        "--repo",
        "origin",
        "--event",
        "modified",
        "--package",
        &pkg,
    ];
    let time_sends = |config: &Path| -> Result<Vec<f64>> {
        spk_ok(&spk, config, &send_one)?; // warm-up
        (0..runs).map(|_| spk_ok(&spk, config, &send_one)).collect()
    };
    let single = time_sends(&config)?;
    let single_plain = time_sends(&config_plain)?;

    // 2. 100,000 events from a file.
    let n_events = 100_000;
    let file = work.join("events.jsonl");
    let url = format!("file:{}", repo.display());
    let mut lines = String::with_capacity(n_events * 140);
    for i in 0..n_events {
        lines.push_str(&format!(
            "{{\"event\":\"package published\",\"repo\":\"{url}\",\"repo_name\":\"origin\",\"package\":\"{}/1.{}.0/3I42H3S6\"}}\n",
            genrepo::package_name(i % 5000),
            i / 5000
        ));
    }
    std::fs::write(&file, lines)?;
    let file_s = file.to_string_lossy().to_string();
    let mut batch = Vec::new();
    for _ in 0..runs.clamp(1, 5) {
        batch.push(spk_ok(
            &spk,
            &config,
            &[
                "repo",
                "send-event",
                "--repo",
                "origin",
                "--from-file",
                &file_s,
            ],
        )?);
    }

    // 3. The same over TLS and SASL_SSL.
    let secure = secure_figures(
        &spk,
        &work,
        &tansu_bin,
        runs,
        &file_s,
        &|brokers, props| {
            Ok(with_props(props)?
                .replace(&format!("[\"{bootstrap}\"]"), &format!("[\"{brokers}\"]")))
        },
        &time_sends,
    )?;

    // 4. The Indexer on the 100,000-build repository. Its backlog (the
    //    100,000 events above, over 5,000 packages) is real work, done first.
    spk_ok(&spk, &config, &["repo", "index", "--repo", "origin"])?;
    let mut indexer = Command::new(&spk)
        .arg("--config")
        .arg(&config)
        .args(["repo", "indexer", "--name", "bench"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("indexer.log"))?)
        .spawn()?;
    let pid = indexer.id();
    let since = chrono_now_s();
    let backlog = Instant::now();
    let caught_up = Command::new(&spk)
        .arg("--config")
        .arg(&config)
        .args([
            "messaging",
            "wait-index",
            "--repo",
            "origin",
            "--since",
            &since.to_string(),
            "--timeout-ms",
            "120000",
        ])
        .stdout(Stdio::null())
        .status()?;
    if !caught_up.success() {
        let _ = indexer.kill();
        bail!(
            "the indexer did not catch up with its backlog ({caught_up}); see {}",
            work.join("indexer.log").display()
        );
    }
    let backlog_s = backlog.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = proc_kb(pid, "VmRSS:");
    let send_and_wait = [&send_one[..], &["--wait"]].concat();
    let loop_times = (0..runs)
        .map(|_| spk_ok(&spk, &config, &send_and_wait))
        .collect::<Result<Vec<f64>>>()?;
    let peak_rss = proc_kb(pid, "VmHWM:");
    let idle_after = proc_kb(pid, "VmRSS:");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = indexer.wait();
    drop(broker);

    let mb = |kb: Option<u64>| {
        kb.map(|k| format!("{:.1} MB", k as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into())
    };
    let single_ms = median(single.clone()) * 1000.0;
    let rate = n_events as f64 / median(batch.clone());
    let loop_ms = median(loop_times.clone()) * 1000.0;
    println!();
    println!(
        "Kafka and Indexer benchmarks: Tansu {} on loopback, release spk, {cores} cores",
        tansu::VERSION
    );
    println!("{:<58} {:>14}   goal", "measure", "figure");
    let row = |what: &str, fig: String, goal: &str| println!("{what:<58} {fig:>14}   {goal}");
    row(
        &format!(
            "send-event, one process to delivery (median of {})",
            single.len()
        ),
        format!("{single_ms:.1} ms"),
        "<= 25 ms",
    );
    let tls_ms = median(secure.tls_single.clone()) * 1000.0;
    let sasl_ms = median(secure.sasl_single.clone()) * 1000.0;
    row(
        &format!(
            "  the same over TLS (median of {})",
            secure.tls_single.len()
        ),
        format!("{tls_ms:.1} ms"),
        "",
    );
    row(
        &format!(
            "  the same over SASL_SSL, SCRAM-SHA-512 (median of {})",
            secure.sasl_single.len()
        ),
        format!("{sasl_ms:.1} ms"),
        "",
    );
    row(
        "  TLS handshake cost (TLS - plaintext)",
        format!("{:.1} ms", tls_ms - single_ms),
        "",
    );
    row(
        "  SASL SCRAM cost (SASL_SSL - TLS)",
        format!("{:.1} ms", sasl_ms - tls_ms),
        "",
    );
    row(
        &format!(
            "  the same with enable.idempotence=true (median of {})",
            single_plain.len()
        ),
        format!("{:.1} ms", median(single_plain.clone()) * 1000.0),
        "",
    );
    row(
        &format!(
            "send-event --from-file 100,000 events (median of {})",
            batch.len()
        ),
        format!("{rate:.0} ev/s"),
        ">= 50,000 ev/s",
    );
    row(
        &format!("  the same over TLS (median of {})", secure.tls_batch.len()),
        format!(
            "{:.0} ev/s",
            n_events as f64 / median(secure.tls_batch.clone())
        ),
        ">= 50,000 ev/s",
    );
    row(
        &format!(
            "send-event --wait to index completed (median of {})",
            loop_times.len()
        ),
        format!("{loop_ms:.0} ms"),
        &format!("quiet period ({QUIET_MS} ms) + < 1 s"),
    );
    row(
        "  of which beyond the quiet period",
        format!("{:.0} ms", loop_ms - QUIET_MS as f64),
        "< 1000 ms",
    );
    row(
        "indexer backlog: 100,000 events over 5,000 packages",
        format!("{backlog_s:.2} s"),
        "",
    );
    row("indexer resident memory, idle", mb(idle_rss), "");
    row(
        "indexer resident memory, idle after updates",
        mb(idle_after),
        "",
    );
    row(
        "indexer peak resident memory (VmHWM, incl. updates)",
        mb(peak_rss),
        "",
    );
    println!(
        "raw: tls single {:?} s; sasl single {:?} s; tls batch {:?} s",
        secure.tls_single, secure.sasl_single, secure.tls_batch
    );
    println!(
        "raw: single {:?} s; batch {:?} s; loop {:?} s",
        single
            .iter()
            .map(|x| (x * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>(),
        batch
            .iter()
            .map(|x| (x * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>(),
        loop_times
            .iter()
            .map(|x| (x * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    Ok(())
}

fn chrono_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Timings over secured connections.
struct Secure {
    tls_single: Vec<f64>,
    sasl_single: Vec<f64>,
    tls_batch: Vec<f64>,
}

/// One-shot sends over TLS and SASL_SSL and the 100,000-event file over
/// TLS, each against a Tansu of its own behind stunnel (certificates made
/// here; SCRAM user made before authentication is switched on, as Tansu 0.6
/// needs). `config_for(brokers, properties)` is the bench config with those;
/// `time_sends(config)` times the one-shot sends, as for plaintext.
fn secure_figures(
    spk: &Path,
    work: &Path,
    tansu_bin: &Path,
    runs: usize,
    events_file: &str,
    config_for: &dyn Fn(&str, &str) -> Result<String>,
    time_sends: &dyn Fn(&Path) -> Result<Vec<f64>>,
) -> Result<Secure> {
    use spk_e2e::secure::{free_port, Certs, OwnTansu, Stunnel};
    let certs = Certs::make(&work.join("certs"));
    let ca = certs.ca.display().to_string();
    let topics = |t: &OwnTansu| {
        t.admin(&["topic", "create", "bench-packages", "--partitions", "3"]);
        t.admin(&["topic", "create", "bench-index", "--partitions", "1"]);
    };

    // TLS.
    let (port, tls_port) = (free_port(), free_port());
    let tansu = OwnTansu::start_with(
        tansu_bin,
        &work.join("tls"),
        "memory://tansu/",
        port,
        tls_port,
        false,
    );
    topics(&tansu);
    let _tls = Stunnel::start_on(work, &certs.good, &certs.key, tls_port, port);
    let tls_config = work.join("spk-tls.toml");
    std::fs::write(
        &tls_config,
        config_for(
            &format!("127.0.0.1:{tls_port}"),
            &format!(r#""security.protocol" = "SSL", "ssl.ca.location" = "{ca}""#),
        )?,
    )?;
    let tls_single = time_sends(&tls_config)?;
    let mut tls_batch = Vec::new();
    for _ in 0..runs.clamp(1, 3) {
        tls_batch.push(spk_ok(
            spk,
            &tls_config,
            &[
                "repo",
                "send-event",
                "--repo",
                "origin",
                "--from-file",
                events_file,
            ],
        )?);
    }
    drop(tansu);

    // SASL_SSL with SCRAM-SHA-512.
    let (port, tls_port) = (free_port(), free_port());
    let dir = work.join("sasl");
    let setup = OwnTansu::start_with(tansu_bin, &dir, "sqlite://tansu.db", port, port, false);
    topics(&setup);
    setup.admin(&[
        "user",
        "create",
        "--mechanism",
        "scram512",
        "bench",
        "bench-password",
    ]);
    setup.stop();
    let _tansu = OwnTansu::start_with(tansu_bin, &dir, "sqlite://tansu.db", port, tls_port, true);
    let _sasl = Stunnel::start_on(work, &certs.good, &certs.key, tls_port, port);
    let sasl_config = work.join("spk-sasl.toml");
    std::fs::write(
        &sasl_config,
        config_for(
            &format!("127.0.0.1:{tls_port}"),
            &format!(
                r#""security.protocol" = "SASL_SSL", "ssl.ca.location" = "{ca}", "sasl.mechanism" = "SCRAM-SHA-512", "sasl.username" = "bench", "sasl.password" = "bench-password""#
            ),
        )?,
    )?;
    let sasl_single = time_sends(&sasl_config)?;
    Ok(Secure {
        tls_single,
        sasl_single,
        tls_batch,
    })
}
