//! Issue 11 end to end: `spk messaging tail`, `spk messaging status` and the
//! Indexer's /metrics, /healthz and /readyz, with the built binary against
//! Tansu. Messages are also produced with an independent producer (SPK's own
//! spellings, no headers, malformed payloads) and read back independently.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spk_e2e::secure::{free_port, OwnTansu};
use spk_e2e::*;

const BUILD: &str = "3I42H3S6";

struct Fx {
    site: Site,
    repo: PathBuf,
    pkg_topic: String,
    idx_topic: String,
    bootstrap: String,
}

/// A site with repository `origin` (and `other`), a channel `kafka` and an
/// indexer `main`; `recent_ms` is the recent-past window.
fn fixture_on(bootstrap: &str, recent_ms: u64) -> Fx {
    let site = Site::new();
    let repo = site.path().join("origin");
    new_repo(&repo);
    new_repo(&site.path().join("other"));
    write_spec(&repo, "pkg-a", "1.0.0", BUILD);
    let pkg_topic = unique("ops-pkgs");
    let idx_topic = unique("ops-idx");
    create_topics_on(bootstrap, &[&pkg_topic], 3);
    create_topics_on(bootstrap, &[&idx_topic], 1);
    site.write_config(&format!(
        r#"
[repositories.origin]
use_index = true
address = "origin"
index = {{ update_message_channel = "kafka", update_event_send_freq_ms = 300, lock_sleep_seconds = 1 }}

[repositories.other]
address = "other"

[[messaging]]
kafka = {{ name = "kafka", brokers = ["{bootstrap}"], repo_names = ["origin", "other"], package_updates_topic_name = "{pkg_topic}", index_updates_topic_name = "{idx_topic}", message_timeout_ms = 5000, producer_queue_timeout_ms = 1000, index_update_listener_recent_past_duration_ms = {recent_ms}, index_update_listener_broker_fetch_timeout_ms = 10000 }}

[indexers.main]
message_channel_name = "kafka"
repo_name = "origin"
heartbeat_freq_ms = 1000
quiet_period_ms = 300
"#
    ));
    Fx {
        site,
        repo,
        pkg_topic,
        idx_topic,
        bootstrap: bootstrap.to_string(),
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Fx {
    fn url(&self) -> String {
        spk_url(&self.repo)
    }

    fn send(&self, args: &[&str]) {
        let mut a = vec!["repo", "send-event"];
        a.extend_from_slice(args);
        let out = self.site.run(&a);
        assert!(out.status.success());
    }

    fn raw_pkg(&self, records: &[(&str, String)]) {
        let r: Vec<(&str, &[u8])> = records.iter().map(|(k, p)| (*k, p.as_bytes())).collect();
        produce_raw_on(&self.bootstrap, &self.pkg_topic, &r);
    }

    fn raw_idx(&self, records: &[(&str, String)]) {
        let r: Vec<(&str, &[u8])> = records.iter().map(|(k, p)| (*k, p.as_bytes())).collect();
        produce_raw_on(&self.bootstrap, &self.idx_topic, &r);
    }

    /// `spk messaging tail ARGS`, stopped by SIGINT after `run_for`.
    fn tail_for(&self, args: &[&str], run_for: Duration) -> (Option<i32>, String, String) {
        let child = self
            .site
            .spk()
            .args(["messaging", "tail"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(run_for);
        interrupt(&child);
        let out = child.wait_with_output().unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        eprintln!(
            "$ spk messaging tail {}\n-> {:?}\n{o}{e}",
            args.join(" "),
            out.status.code()
        );
        (out.status.code(), o, e)
    }

    /// The JSON lines of `tail --from-beginning --format json ARGS`.
    fn tail_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut a = vec!["--from-beginning", "--format", "json"];
        a.extend_from_slice(args);
        let (code, out, err) = self.tail_for(&a, Duration::from_secs(4));
        assert_eq!(code, Some(0), "Ctrl-C exits 0");
        assert!(err.contains("message(s) shown"), "summary line: {err}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn status(&self, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let mut a = vec![
            "messaging",
            "status",
            "--repo",
            "origin",
            "--format",
            "json",
        ];
        a.extend_from_slice(args);
        let out = self.site.run(&a);
        let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), v)
    }
}

/// A log file that several handles append to.
fn log_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn interrupt(child: &Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn coords(v: &[serde_json::Value]) -> BTreeSet<(String, i64, i64)> {
    v.iter()
        .map(|x| {
            (
                x["topic"].as_str().unwrap().to_string(),
                x["partition"].as_i64().unwrap(),
                x["offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn packages(v: &[serde_json::Value]) -> BTreeSet<String> {
    v.iter()
        .filter_map(|x| x["message"]["package"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn tail_shows_exactly_the_messages_sent_with_filters_and_json() {
    let fx = fixture_on(&bootstrap(), 60_000);
    let url = fx.url();
    // Ours, documented spelling, with headers.
    fx.send(&[
        "--repo",
        "origin",
        "--event",
        "published",
        "--package",
        &format!("pkg-a/1.0.0/{BUILD}"),
    ]);
    fx.send(&[
        "--repo",
        "origin",
        "--event",
        "removed",
        "--package",
        &format!("pkg-b/2.0.0/{BUILD}"),
    ]);
    // SPK's own spelling, by address in another spelling, no headers.
    fx.raw_pkg(&[
        (
            "pkg-a",
            format!(r#"{{"event":"Modified","repo":"file:{}","repo_name":"prod","package":"pkg-a/1.1.0/{BUILD}"}}"#, fx.repo.display()),
        ),
        (
            "pkg-c",
            r#"{"event":"Published","repo":"file:///srv/elsewhere/","repo_name":"other","package":"pkg-c/1.0.0/src"}"#.to_string(),
        ),
        ("bad", "this is not json".to_string()),
    ]);
    fx.raw_idx(&[
        (
            "origin",
            format!(
                r#"{{"event":"IndexerHeartbeat","repo":"{url}","name":"main","start":{}}}"#,
                now_s()
            ),
        ),
        (
            "origin",
            format!(
                r#"{{"event":"index completed","repo":"{url}","name":"origin","start":{}}}"#,
                now_s()
            ),
        ),
    ]);
    let pkgs = read_topic_on(&fx.bootstrap, &fx.pkg_topic, 5, Duration::from_secs(20));
    let idx = read_topic_on(&fx.bootstrap, &fx.idx_topic, 2, Duration::from_secs(20));
    assert_eq!((pkgs.len(), idx.len()), (5, 2));
    let mut sent: BTreeSet<(String, i64, i64)> = BTreeSet::new();
    for r in &pkgs {
        sent.insert((fx.pkg_topic.clone(), r.partition as i64, r.offset));
    }
    for r in &idx {
        sent.insert((fx.idx_topic.clone(), r.partition as i64, r.offset));
    }

    // Everything, exactly once each.
    let all = fx.tail_json(&[]);
    assert_eq!(all.len(), 7, "{all:#?}");
    assert_eq!(coords(&all), sent);
    let bad: Vec<_> = all.iter().filter(|x| x["kind"] == "malformed").collect();
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0]["error"].as_str().unwrap().contains("JSON"),
        "{}",
        bad[0]
    );
    assert_eq!(bad[0]["payload_excerpt"], "this is not json");
    // Both spellings decoded, to the documented strings.
    let modified = all
        .iter()
        .find(|x| x["message"]["package"] == format!("pkg-a/1.1.0/{BUILD}"))
        .unwrap();
    assert_eq!(modified["message"]["event"], "package modified");
    assert_eq!(modified["kind"], "package-update");
    assert!(modified["headers"].as_object().unwrap().is_empty());
    let hb = all
        .iter()
        .find(|x| x["message"]["event"] == "indexer heartbeat")
        .unwrap();
    assert_eq!(hb["kind"], "index-status");
    // Our headers, as sent.
    let published = all
        .iter()
        .find(|x| {
            x["message"]["event"] == "package published" && x["message"]["repo_name"] == "origin"
        })
        .unwrap();
    let rec = pkgs
        .iter()
        .find(|r| {
            r.offset == published["offset"].as_i64().unwrap()
                && r.partition as i64 == published["partition"].as_i64().unwrap()
        })
        .unwrap();
    for (k, v) in &rec.headers {
        assert_eq!(published["headers"][k], *v, "header {k}");
    }
    assert_eq!(published["headers"]["spk-message-kind"], "package-update");

    // Filters: repository by name (its configured address matches too).
    let origin = fx.tail_json(&["--repo", "origin"]);
    assert_eq!(
        packages(&origin),
        [
            format!("pkg-a/1.0.0/{BUILD}"),
            format!("pkg-b/2.0.0/{BUILD}"),
            format!("pkg-a/1.1.0/{BUILD}")
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        origin.len(),
        3 + 2 + 1,
        "3 events, 2 status, 1 malformed: {origin:#?}"
    );
    // By address, in another spelling.
    let by_addr = fx.tail_json(&["--repo", &format!("file:{}/", fx.repo.display())]);
    assert_eq!(coords(&by_addr), coords(&origin));
    // Package by name, and by name/version.
    let a = fx.tail_json(&["--package", "pkg-a"]);
    assert_eq!(
        packages(&a),
        [
            format!("pkg-a/1.0.0/{BUILD}"),
            format!("pkg-a/1.1.0/{BUILD}")
        ]
        .into_iter()
        .collect()
    );
    let a1 = fx.tail_json(&["--package", "pkg-a/1.1", "--topic", "package"]);
    assert_eq!(
        packages(&a1),
        [format!("pkg-a/1.1.0/{BUILD}")].into_iter().collect()
    );
    // Events, either spelling; the status topic only.
    let removed = fx.tail_json(&["--event", "removed", "--event", "Published"]);
    assert_eq!(
        packages(&removed),
        [
            format!("pkg-b/2.0.0/{BUILD}"),
            format!("pkg-a/1.0.0/{BUILD}"),
            "pkg-c/1.0.0/src".to_string()
        ]
        .into_iter()
        .collect()
    );
    let status = fx.tail_json(&["--topic", "index"]);
    assert_eq!(status.len(), 2);
    assert!(status.iter().all(|x| x["topic"] == fx.idx_topic.as_str()));

    // --count stops by itself, 0, with the summary line.
    let out = fx.site.run(&[
        "messaging",
        "tail",
        "--from-beginning",
        "--count",
        "2",
        "--topic",
        "package",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 message(s) shown"));

    // Text: one line each, with coordinates, event, repository, package, headers.
    let (_, text, _) = fx.tail_for(
        &["--from-beginning", "--package", "pkg-b"],
        Duration::from_secs(4),
    );
    // Malformed messages are always shown (nothing in them can be matched).
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(" MALFORMED "))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains(" MALFORMED ")).count(),
        1,
        "{text}"
    );
    let rb = pkgs.iter().find(|r| r.payload.contains("pkg-b")).unwrap();
    for part in [
        format!("{}/{}@{}", fx.pkg_topic, rb.partition, rb.offset),
        "package removed".to_string(),
        " origin ".to_string(),
        format!("pkg-b/2.0.0/{BUILD}"),
        format!("id={}", rb.headers["spk-message-id"]),
        "tool=".to_string(),
    ] {
        assert!(lines[0].contains(&part), "{part:?} not in {}", lines[0]);
    }

    // Following: only what arrives after the start, as it arrives.
    let child = fx
        .site
        .spk()
        .args(["messaging", "tail", "--format", "json", "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    fx.send(&[
        "--repo",
        "origin",
        "--event",
        "published",
        "--package",
        &format!("pkg-d/1.0.0/{BUILD}"),
    ]);
    fx.raw_pkg(&[("x", "{}".to_string())]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let new: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        packages(&new),
        [format!("pkg-d/1.0.0/{BUILD}")].into_iter().collect()
    );
    assert_eq!(
        new.iter().filter(|x| x["kind"] == "malformed").count(),
        1,
        "{new:#?}"
    );

    // Bad input names the flag and what would be right.
    let out = fx.site.run(&["messaging", "tail", "--event", "done"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("published"));
    let out = fx.site.run(&["messaging", "tail", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
}

#[test]
fn status_reports_down_alive_lagging_and_down_again() {
    let fx = fixture_on(&bootstrap(), 8_000);
    let url = fx.url();
    // Down: nothing on the status topic.
    let (code, v) = fx.status(&[]);
    assert_eq!(code, Some(5), "{v}");
    assert_eq!(v["verdict"], "indexer-down");

    // Alive: a fresh heartbeat (SPK's spelling), no events.
    fx.raw_idx(&[(
        "origin",
        format!(
            r#"{{"event":"IndexerHeartbeat","repo":"{url}","name":"main","start":{}}}"#,
            now_s()
        ),
    )]);
    let (code, v) = fx.status(&[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["verdict"], "healthy");
    assert!(v["last_heartbeat_age_ms"].as_i64().unwrap() < 8_000);

    // Lagging: events about origin that no run has covered.
    fx.send(&[
        "--repo",
        "origin",
        "--event",
        "published",
        "--package",
        &format!("pkg-a/1.0.0/{BUILD}"),
    ]);
    fx.send(&[
        "--repo",
        "origin",
        "--event",
        "published",
        "--package",
        &format!("pkg-b/1.0.0/{BUILD}"),
    ]);
    fx.send(&[
        "--repo",
        "other",
        "--event",
        "published",
        "--package",
        &format!("pkg-z/1.0.0/{BUILD}"),
    ]);
    fx.raw_idx(&[(
        "origin",
        format!(
            r#"{{"event":"indexer heartbeat","repo":"{url}","name":"main","start":{}}}"#,
            now_s()
        ),
    )]);
    std::thread::sleep(Duration::from_millis(1200));
    let (code, v) = fx.status(&["--max-lag-age", "1s"]);
    assert_eq!(code, Some(10), "{v}");
    assert_eq!(v["verdict"], "lagging");
    assert_eq!(
        v["lag"]["count"], 2,
        "other repositories' events are not lag: {v}"
    );
    // Thresholds: more events allowed, or a longer age.
    assert_eq!(
        fx.status(&["--max-lag-age", "1s", "--max-lag", "2"]).0,
        Some(0)
    );
    assert_eq!(fx.status(&["--max-lag-age", "10m"]).0, Some(0));

    // A real Indexer catches up: healthy, with its last run.
    let log = fx.site.path().join("indexer.log");
    let mut idx = IndexerProc {
        child: fx
            .site
            .spk()
            .args(["-v", "repo", "indexer", "--name", "main"])
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .spawn()
            .unwrap(),
        log,
    };
    let t = Instant::now();
    let v = loop {
        let (code, v) = fx.status(&["--max-lag-age", "1s"]);
        if code == Some(0) && !v["last_completed"].is_null() {
            break v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no completed run: {v}\n{}",
            idx.log_text()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(v["lag"]["count"], 0, "{v}");
    assert!(v["last_completed"]["duration_ms"].as_i64().is_some(), "{v}");
    // Our Indexer's "completed" says what the run was (a header SPK's
    // messages lack): the first run here had no index to update.
    assert_eq!(v["last_completed"]["kind"], "full", "{v}");
    // Text output says the same.
    let out = fx.site.run(&["messaging", "status", "--repo", "origin"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("origin: healthy"), "{text}");
    assert!(text.contains("last completed run: started"), "{text}");
    assert!(idx.is_running());

    // The Indexer stops: down once the recent past (8 s) has passed.
    drop(idx);
    std::thread::sleep(Duration::from_secs(9));
    let (code, v) = fx.status(&[]);
    assert_eq!(code, Some(5), "{v}");
    assert!(
        !v["last_completed"].is_null(),
        "the last run is still reported: {v}"
    );

    // Bad input.
    let out = fx.site.run(&[
        "messaging",
        "status",
        "--repo",
        "origin",
        "--max-lag-age",
        "soon",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("30s"));
}

/// A Tansu of this test's own, with storage that survives a restart.
struct OwnBroker {
    work: PathBuf,
    port: u16,
    tansu: Option<OwnTansu>,
}

impl OwnBroker {
    fn new() -> OwnBroker {
        let work =
            PathBuf::from(std::env::var("SPK_E2E_WORKDIR").unwrap_or_else(|_| "/tmp".into()))
                .join(unique("ops-broker"));
        let mut b = OwnBroker {
            work,
            port: free_port(),
            tansu: None,
        };
        b.start();
        b
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        self.tansu = Some(OwnTansu::start(
            &self.work,
            "sqlite://tansu.db",
            self.port,
            self.port,
            false,
        ));
    }

    fn stop(&mut self) {
        if let Some(t) = self.tansu.take() {
            t.stop();
        }
    }
}

/// `GET path` over plain HTTP/1.0: (status, body).
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    let code = text.get(9..12)?.parse().ok()?;
    Some((
        code,
        text.split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or_default()
            .to_string(),
    ))
}

/// The value of one sample (`name{labels}` exactly as exposed), 0 if absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn wait_until(what: &str, timeout: Duration, log: &Path, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < timeout,
            "{what} did not happen within {timeout:?}; indexer log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn metrics_move_with_events_and_runs_and_readiness_follows_the_broker() {
    let mut broker = OwnBroker::new();
    let fx = fixture_on(&broker.bootstrap(), 60_000);
    let addr = format!("127.0.0.1:{}", free_port());
    let log = fx.site.path().join("indexer-metrics.log");
    let idx = IndexerProc {
        child: fx
            .site
            .spk()
            .args([
                "-v",
                "--log-format",
                "json",
                "repo",
                "indexer",
                "--name",
                "main",
                "--metrics-addr",
                &addr,
            ])
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .spawn()
            .unwrap(),
        log: log.clone(),
    };
    let scrape = || {
        http_get(&addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };
    wait_until("a first scrape", Duration::from_secs(30), &log, || {
        sample(&scrape(), "spk_indexer_broker_connected") == 1.0
    });
    let m0 = scrape();
    assert!(
        m0.contains(r#"spk_indexer_replica_info{name="main""#),
        "{m0}"
    );
    assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);
    wait_until("ready", Duration::from_secs(30), &log, || {
        http_get(&addr, "/readyz").is_some_and(|r| r.0 == 200)
    });
    let runs0 = sample(
        &m0,
        r#"spk_indexer_runs_total{kind="update",outcome="success"}"#,
    ) + sample(
        &m0,
        r#"spk_indexer_runs_total{kind="full",outcome="success"}"#,
    );

    // Three events about origin, one about another repository, one malformed.
    write_spec(&fx.repo, "pkg-a", "2.0.0", BUILD);
    write_spec(&fx.repo, "pkg-b", "1.0.0", BUILD);
    let url = fx.url();
    fx.raw_pkg(&[
        ("pkg-a", format!(r#"{{"event":"Published","repo":"{url}","repo_name":"origin","package":"pkg-a/2.0.0/{BUILD}"}}"#)),
        ("pkg-b", format!(r#"{{"event":"package published","repo":"{url}","repo_name":"origin","package":"pkg-b/1.0.0/{BUILD}"}}"#)),
        ("pkg-a", format!(r#"{{"event":"package modified","repo":"{url}","repo_name":"origin","package":"pkg-a/1.0.0/{BUILD}"}}"#)),
        ("pkg-z", r#"{"event":"package published","repo":"file:///srv/x/","repo_name":"other","package":"pkg-z/1.0.0/src"}"#.to_string()),
        ("bad", "{not json".to_string()),
    ]);
    wait_until(
        "the run and the counters",
        Duration::from_secs(60),
        &log,
        || {
            let m = scrape();
            let runs = sample(
                &m,
                r#"spk_indexer_runs_total{kind="update",outcome="success"}"#,
            ) + sample(
                &m,
                r#"spk_indexer_runs_total{kind="full",outcome="success"}"#,
            );
            sample(&m, r#"spk_indexer_events_consumed_total{kind="package"}"#) == 3.0
                && runs > runs0
        },
    );
    let m1 = scrape();
    assert_eq!(sample(&m1, "spk_indexer_events_ignored_total"), 1.0, "{m1}");
    assert_eq!(
        sample(&m1, "spk_indexer_events_malformed_total"),
        1.0,
        "{m1}"
    );
    assert!(
        sample(&m1, "spk_indexer_run_duration_seconds_count") >= 1.0,
        "{m1}"
    );
    assert_eq!(sample(&m1, "spk_indexer_pending_events"), 0.0, "{m1}");
    assert!(
        sample(&m1, "spk_indexer_seconds_since_last_success") < 60.0,
        "{m1}"
    );
    assert!(ls_all(&fx.site, "origin", false)["pkg-a"].contains_key("2.0.0"));

    // Structured logs: one JSON object per line, with their fields.
    let text = std::fs::read_to_string(&log).unwrap();
    let started = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "indexer started")
        .unwrap_or_else(|| panic!("no JSON 'indexer started' line:\n{text}"));
    assert_eq!(started["indexer"], "main");
    assert_eq!(started["level"], "INFO");
    for line in text.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v["message"].is_string()),
            "with --log-format json every stderr line is a JSON log object: {line}"
        );
    }
    assert!(text.contains(r#""metrics_addr":"#), "{text}");

    // The broker stops: not ready (but healthy: the loop turns); back: ready.
    broker.stop();
    wait_until("/readyz 503", Duration::from_secs(40), &log, || {
        http_get(&addr, "/readyz").is_some_and(|r| r.0 == 503)
    });
    let (_, why) = http_get(&addr, "/readyz").unwrap();
    assert!(why.contains("brokers"), "{why}");
    assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);
    assert_eq!(sample(&scrape(), "spk_indexer_ready"), 0.0);
    assert!(sample(&scrape(), "spk_indexer_broker_errors_total") >= 1.0);
    broker.start();
    wait_until("/readyz 200 again", Duration::from_secs(60), &log, || {
        http_get(&addr, "/readyz").is_some_and(|r| r.0 == 200)
    });
    assert_eq!(sample(&scrape(), "spk_indexer_ready"), 1.0);
    drop(idx);
}

#[test]
fn a_bad_metrics_address_is_refused_naming_the_flag() {
    let site = Site::new();
    site.write_config("");
    let out = site.run(&[
        "repo",
        "indexer",
        "--name",
        "main",
        "--metrics-addr",
        "9464",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--metrics-addr") && err.contains("127.0.0.1:9464"),
        "{err}"
    );
}
