//! Issue 4 end to end: the built `spk` against Tansu, read back independently.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use spk_e2e::*;

const HEADERS: &[&str] = &[
    "spk-message-id",
    "spk-message-kind",
    "spk-schema-version",
    "content-type",
    "spk-sender-host",
    "spk-sender-user",
    "spk-tool-version",
];

struct Fixture {
    site: Site,
    pkg_topic: String,
    idx_topic: String,
}

fn fixture(extra_index: &str) -> Fixture {
    let site = Site::new();
    copy_tree(&example_repo(), &site.path().join("origin"));
    let pkg_topic = unique("pkgs");
    let idx_topic = unique("idx");
    create_topics(&[&pkg_topic, &idx_topic], 3);
    site.write_config(&format!(
        r#"
[repositories.origin]
use_index = true
address = "origin"
index = {{ update_message_channel = "main" {extra_index} }}

[[messaging]]
kafka = {{ name = "main", brokers = ["{b}"], repo_names = ["origin"], package_updates_topic_name = "{pkg_topic}", index_updates_topic_name = "{idx_topic}", message_timeout_ms = 5000, producer_queue_timeout_ms = 1000 }}
"#,
        b = bootstrap()
    ));
    Fixture {
        site,
        pkg_topic,
        idx_topic,
    }
}

fn assert_headers(r: &Record, kind: &str) {
    for h in HEADERS {
        assert!(
            r.headers.contains_key(*h),
            "header {h} missing: {:?}",
            r.headers
        );
    }
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["spk-message-kind"], kind);
    assert_eq!(r.headers["spk-schema-version"], "1");
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn index_emits_started_in_progress_completed_with_one_start() {
    let f = fixture(", update_event_send_freq_ms = 200");
    // Slow every spec read so generation outlasts several in-progress periods.
    let out = f
        .site
        .spk()
        .env("SPK_TEST_SLOW_SPEC_READ_MS", "100")
        .args(["repo", "index", "--repo", "origin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = f.site.path().join("origin/index/spk/index_v1.fb");
    assert!(index.is_file(), "no index written");

    let recs = read_topic(&f.idx_topic, 1000, Duration::from_secs(10));
    let events: Vec<String> = recs
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        events.first().map(String::as_str),
        Some("index started"),
        "{events:?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("index completed"),
        "{events:?}"
    );
    let in_progress = events.iter().filter(|e| *e == "index in-progress").count();
    assert_eq!(in_progress + 2, events.len(), "{events:?}");
    assert!(
        in_progress >= 2,
        "expected several in-progress messages during a slow read: {events:?}"
    );

    let repo_url = spk_url(&f.site.path().join("origin"));
    let start = recs[0].json()["start"].as_i64().unwrap();
    for r in &recs {
        let v = r.json();
        assert_eq!(
            keys(&v),
            ["event", "name", "repo", "start"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
        assert_eq!(v["repo"], serde_json::json!(repo_url));
        assert_eq!(v["name"], "origin");
        assert_eq!(
            v["start"].as_i64(),
            Some(start),
            "one start for the whole run"
        );
        assert_eq!(r.key.as_deref(), Some("origin"), "keyed by repository name");
        assert_headers(r, "index-status");
    }
    // All on one partition (one key), so offsets give the order. The first
    // delivery ("index started") includes connecting to the broker, so the
    // period is measured from the first in-progress on, with generous slack
    // for a loaded machine.
    let ts: Vec<i64> = recs.iter().map(|r| r.timestamp_ms.unwrap()).collect();
    let max_gap = ts[1..].windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        max_gap < 200 * 5,
        "in-progress gaps up to {max_gap} ms with a 200 ms period: {ts:?}"
    );
    // Nothing went to the package topic.
    assert!(read_topic(&f.pkg_topic, 1, Duration::from_secs(2)).is_empty());
}

#[test]
fn send_event_delivers_exact_json_keyed_by_package() {
    let f = fixture("");
    let out = f.site.run(&[
        "repo",
        "send-event",
        "--repo",
        "origin",
        "--event",
        "published",
        "--package",
        "my-pkg/1.2.3/3I42H3S6",
        "--package",
        "other-pkg/2.0.0/src",
        "--format",
        "json",
    ]);
    assert!(out.status.success());
    let recs = read_topic(&f.pkg_topic, 2, Duration::from_secs(10));
    assert_eq!(recs.len(), 2, "{recs:?}");
    let repo_url = spk_url(&f.site.path().join("origin"));
    let mut seen = BTreeSet::new();
    for r in &recs {
        let v = r.json();
        assert_eq!(
            keys(&v),
            ["event", "package", "repo", "repo_name"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
        assert_eq!(v["event"], "package published");
        assert_eq!(v["repo"], serde_json::json!(repo_url));
        assert_eq!(v["repo_name"], "origin");
        let pkg = v["package"].as_str().unwrap().to_string();
        assert_eq!(
            r.key.as_deref(),
            Some(pkg.split('/').next().unwrap()),
            "keyed by package name"
        );
        assert_headers(r, "package-update");
        seen.insert(pkg);
    }
    assert_eq!(
        seen,
        ["my-pkg/1.2.3/3I42H3S6", "other-pkg/2.0.0/src"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    // It says where each landed.
    let stdout = String::from_utf8_lossy(&out.stdout);
    for r in &recs {
        assert!(stdout.contains(&f.pkg_topic), "{stdout}");
        assert!(stdout.contains(&format!("{}", r.offset)), "{stdout}");
    }
}

#[test]
fn generate_index_event_carries_empty_package() {
    let f = fixture("");
    let out = f.site.run(&[
        "repo",
        "send-event",
        "--repo",
        "origin",
        "--event",
        "generate-index",
    ]);
    assert!(out.status.success());
    let recs = read_topic(&f.pkg_topic, 1, Duration::from_secs(10));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].json()["event"], "generate index");
    assert_eq!(recs[0].json()["package"], "");
}

#[test]
fn send_event_from_file_batch() {
    let f = fixture("");
    // The short form `file:/path` is read too; what is sent is SPK's form.
    let repo_url = format!("file:{}", f.site.path().join("origin").display());
    let mut lines = String::new();
    for i in 0..500 {
        let event = if i % 7 == 0 {
            "Removed"
        } else {
            "package published"
        };
        lines.push_str(&format!(
            "{{\"event\":\"{event}\",\"repo\":\"{repo_url}\",\"repo_name\":\"origin\",\"package\":\"pkg-{:02}/1.{i}.0/3I42H3S6\"}}\n",
            i % 10
        ));
    }
    let file = f.site.path().join("events.jsonl");
    std::fs::write(&file, &lines).unwrap();
    let out = f.site.run(&[
        "repo",
        "send-event",
        "--repo",
        "origin",
        "--from-file",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let recs = read_topic(&f.pkg_topic, 500, Duration::from_secs(20));
    assert_eq!(recs.len(), 500);
    let sent_repo = spk_url(&f.site.path().join("origin"));
    assert!(recs.iter().all(|r| r.json()["repo"] == sent_repo.as_str()));
    // Documented strings are sent even when the file used SPK's variant names.
    assert_eq!(
        recs.iter()
            .filter(|r| r.json()["event"] == "package removed")
            .count(),
        72
    );
    // Per package, order is kept (one key, one partition).
    for p in 0..10 {
        let name = format!("pkg-{p:02}");
        let mut mine: Vec<&Record> = recs
            .iter()
            .filter(|r| r.key.as_deref() == Some(&name))
            .collect();
        mine.sort_by_key(|r| r.offset);
        assert!(mine.iter().all(|r| r.partition == mine[0].partition));
        let minors: Vec<u64> = mine
            .iter()
            .map(|r| {
                r.json()["package"]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .nth(1)
                    .unwrap()
                    .split('.')
                    .nth(1)
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(minors.windows(2).all(|w| w[0] < w[1]), "{name}: {minors:?}");
    }
}

#[test]
fn check_config_connect_sees_topics_and_missing_ones() {
    let f = fixture("");
    let out = f.site.run(&["messaging", "check-config", "--connect"]);
    assert_eq!(out.status.code(), Some(0));
    // A channel whose topic does not exist on the cluster.
    let cfg = std::fs::read_to_string(f.site.config_path())
        .unwrap()
        .replace(&f.idx_topic, "no-such-topic-here");
    f.site.write_config(&cfg);
    let out = f
        .site
        .run(&["messaging", "check-config", "--connect", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v["diagnostics"].to_string();
    assert!(text.contains("no-such-topic-here"), "{text}");
}

#[test]
fn unreachable_broker_index_still_written_exit_4() {
    let site = Site::new();
    copy_tree(&example_repo(), &site.path().join("origin"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    site.write_config(&format!(
        r#"
[repositories.origin]
use_index = true
address = "origin"
index = {{ update_message_channel = "main" }}

[[messaging]]
kafka = {{ name = "main", brokers = ["127.0.0.1:{port}"], repo_names = ["origin"], package_updates_topic_name = "p", index_updates_topic_name = "i", message_timeout_ms = 1500, producer_queue_timeout_ms = 500 }}
"#
    ));
    let t = std::time::Instant::now();
    let out = site.run(&["repo", "index", "--repo", "origin"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(t.elapsed() < Duration::from_secs(30), "must not hang");
    assert!(site.path().join("origin/index/spk/index_v1.fb").is_file());
    let out = site.run(&[
        "repo",
        "send-event",
        "--repo",
        "origin",
        "--event",
        "published",
        "--package",
        "my-pkg/1.0.0/3I42H3S6",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("127.0.0.1:{port}")));
}
