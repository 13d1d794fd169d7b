//! Issue 5 end to end: the Indexer service and waiting, with the built
//! binaries against Tansu.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use spk_e2e::*;

const BUILD: &str = "3I42H3S6";

struct Fx {
    site: Site,
    repo: std::path::PathBuf,
    pkg_topic: String,
    idx_topic: String,
    bootstrap: String,
}

/// A site with repository `origin` of `n` packages (one version each) and
/// an indexer `main`. Partitions: 3 for package updates, 1 for status.
fn fixture_on(bootstrap: &str, n: usize, create: bool) -> Fx {
    let site = Site::new();
    let repo = site.path().join("origin");
    new_repo(&repo);
    for i in 0..n {
        write_spec(&repo, &format!("pkg-{i:02}"), "1.0.0", BUILD);
    }
    let pkg_topic = unique("pkgs");
    let idx_topic = unique("idx");
    if create {
        create_topics_on(bootstrap, &[&pkg_topic], 3);
        create_topics_on(bootstrap, &[&idx_topic], 1);
    }
    site.write_config(&format!(
        r#"
[repositories.origin]
use_index = true
address = "origin"
index = {{ update_message_channel = "main", update_event_send_freq_ms = 300, lock_sleep_seconds = 1 }}

[[messaging]]
kafka = {{ name = "main", brokers = ["{bootstrap}"], repo_names = ["origin"], package_updates_topic_name = "{pkg_topic}", index_updates_topic_name = "{idx_topic}", message_timeout_ms = 5000, producer_queue_timeout_ms = 1000, index_update_listener_timeout_ms = 30000, index_update_listener_recent_past_duration_ms = 60000, index_update_listener_broker_fetch_timeout_ms = 10000 }}

[indexers.main]
message_channel_name = "main"
repo_name = "origin"
heartbeat_freq_ms = 1000
quiet_period_ms = 500
session_timeout_ms = 10000
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

fn fixture(n: usize) -> Fx {
    fixture_on(&bootstrap(), n, true)
}

impl Fx {
    fn wait_heartbeat(&self, proc: &IndexerProc) {
        let hb = wait_for_record_on(
            &self.bootstrap,
            &self.idx_topic,
            Duration::from_secs(60),
            |v| v["event"] == "indexer heartbeat",
        );
        assert!(
            hb.is_some(),
            "no heartbeat from the indexer; log:\n{}",
            proc.log_text()
        );
    }

    fn event_line(&self, event: &str, pkg: &str) -> String {
        let url = spk_url(&self.repo);
        format!("{{\"event\":\"{event}\",\"repo\":\"{url}\",\"repo_name\":\"origin\",\"package\":\"{pkg}\"}}\n")
    }

    fn send_file(&self, lines: &str) {
        let f = self.site.path().join(format!("{}.jsonl", unique("events")));
        std::fs::write(&f, lines).unwrap();
        let out = self.site.run(&[
            "repo",
            "send-event",
            "--repo",
            "origin",
            "--from-file",
            f.to_str().unwrap(),
        ]);
        assert!(out.status.success());
    }

    fn wait_index(&self, since: i64, extra: &[&str]) -> std::process::Output {
        let since = since.to_string();
        let mut args = vec![
            "messaging",
            "wait-index",
            "--repo",
            "origin",
            "--since",
            &since,
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        self.site.run(&args)
    }

    /// Publishes `name` 8.0.0, sends its event, and asserts that the index
    /// catches up (`wait-index` exits 0).
    fn publish_and_wait(&self, idx: &IndexerProc, name: &str) {
        let since = now();
        write_spec(&self.repo, name, "8.0.0", BUILD);
        self.send_file(&self.event_line("package published", &format!("{name}/8.0.0/{BUILD}")));
        let out = self.wait_index(since, &[]);
        assert_eq!(out.status.code(), Some(0), "log:\n{}", idx.log_text());
    }

    fn assert_index_matches_repo(&self) {
        let with = ls_all(&self.site, "origin", false);
        let without = ls_all(&self.site, "origin", true);
        assert_eq!(with, without, "ls with and without the index differ");
        assert_eq!(without, repo_contents(&self.repo));
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn two_hundred_events_end_with_the_index_equal_to_the_repository() {
    let fx = fixture(20);
    let idx = IndexerProc::start(&fx.site, "main", &[]);
    fx.wait_heartbeat(&idx);
    let since = now();

    // 200 events over 20 packages: new versions, removals, duplicates, SPK's
    // own spelling, one generate index; plus malformed ones and another
    // repository's, sent raw.
    let mut lines = String::new();
    let mut count = 0;
    for i in 0..150 {
        let p = format!("pkg-{:02}", i % 20);
        let v = format!("2.{}.0", i / 20);
        write_spec(&fx.repo, &p, &v, BUILD);
        let event = if i % 10 == 3 {
            "Published"
        } else {
            "package published"
        };
        lines.push_str(&fx.event_line(event, &format!("{p}/{v}/{BUILD}")));
        count += 1;
        if i % 15 == 0 {
            lines.push_str(&fx.event_line("package published", &format!("{p}/{v}/{BUILD}"))); // duplicate
            count += 1;
        }
    }
    for i in 0..20 {
        // Remove the original 1.0.0 of the even packages, and a 2.x of some.
        if i % 2 == 0 {
            let p = format!("pkg-{i:02}");
            remove_spec(&fx.repo, &p, "1.0.0", BUILD);
            lines.push_str(&fx.event_line(
                if i % 4 == 0 {
                    "Removed"
                } else {
                    "package removed"
                },
                &format!("{p}/1.0.0/{BUILD}"),
            ));
            count += 1;
        }
    }
    lines.push_str(&fx.event_line("generate index", ""));
    count += 1;
    for i in 0..(184 - count) {
        let p = format!("pkg-{:02}", i % 20);
        lines.push_str(&fx.event_line("package modified", &format!("{p}/2.0.0/{BUILD}")));
    }
    fx.send_file(&lines);
    let elsewhere = r#"{"event":"package published","repo":"file:/elsewhere","repo_name":"elsewhere","package":"pkg-00/9.9.9/3I42H3S6"}"#;
    let mut raw: Vec<(&str, &[u8])> = vec![
        ("x", b"not json at all"),
        ("x", &[0xff, 0xfe, 0x00]),
        ("x", br#"{"event":"package exploded","repo":"r","repo_name":"origin","package":"a-b/1/src"}"#),
        ("x", br#"{"event":"package published","repo":"r","repo_name":"origin","package":"mypkg/1.2.3/ABCDEF"}"#),
        ("x", br#"{"repo_name":"origin"}"#),
    ];
    for _ in 0..10 {
        raw.push(("pkg-00", elsewhere.as_bytes()));
    }
    produce_raw(&fx.pkg_topic, &raw); // 15 more: 200 in all

    let out = fx.wait_index(since, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "indexer log:\n{}",
        idx.log_text()
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "completed");
    fx.assert_index_matches_repo();
    assert!(!repo_contents(&fx.repo).contains_key("elsewhere"));
    let log = idx.log_text();
    assert!(log.contains("skipping malformed message"), "{log}");
    assert!(
        log.contains(&format!("topic {} partition", fx.pkg_topic)),
        "{log}"
    );

    // It stays up, and SIGTERM stops it cleanly.
    let code = idx.terminate();
    assert_eq!(code, Some(0));
}

/// The temp index files a run in progress has written (ours:
/// `index_v1.fb_being_generated_<pid>_<ns>`).
fn temp_indexes(repo: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(repo.join("index/spk"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("index_v1.fb_being_generated_"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill_9_mid_update_then_restart_loses_nothing() {
    let fx = fixture(20);
    // An index to keep: the kill must leave it exactly as it was.
    let out = fx.site.run(&["repo", "index", "--repo", "origin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = fx.repo.join("index/spk/index_v1.fb");
    let lock = fx.repo.join("index/spk/index_v1.write_lock");
    let before = std::fs::read(&index).unwrap();
    // The indexer's run stops (test hook) once the new index is written and
    // verified, just before the rename: the kill lands there, provably.
    let idx = IndexerProc::start(
        &fx.site,
        "main",
        &[("SPK_TEST_PAUSE_BEFORE_RENAME_MS", "600000")],
    );
    fx.wait_heartbeat(&idx);
    let since = now();
    for i in 0..5 {
        write_spec(&fx.repo, &format!("pkg-{i:02}"), "3.0.0", BUILD);
    }
    let mut lines = String::new();
    for i in 0..5 {
        lines.push_str(&fx.event_line("package published", &format!("pkg-{i:02}/3.0.0/{BUILD}")));
    }
    fx.send_file(&lines);
    let pid = idx.child.id();
    let t = Instant::now();
    let holder = format!("pid: {pid}");
    let paused = || {
        std::fs::read_to_string(&lock).is_ok_and(|l| l.contains(&holder))
            && !temp_indexes(&fx.repo).is_empty()
    };
    while !paused() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the update never reached the pause before the rename (lock {:?}, temps {:?}); is the binary built with --features test-hooks? log:\n{}",
            std::fs::read_to_string(&lock).ok(),
            temp_indexes(&fx.repo),
            idx.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut idx = idx;
    idx.child.kill().unwrap(); // SIGKILL, mid-update: lock held, new index not renamed in
    idx.child.wait().unwrap();
    // The kill landed mid-update: the dead writer's lock and temp file are
    // still there, and the index is byte for byte the previous one.
    assert!(std::fs::read_to_string(&lock).unwrap().contains(&holder));
    assert!(!temp_indexes(&fx.repo).is_empty());
    assert_eq!(
        std::fs::read(&index).unwrap(),
        before,
        "the old index changed"
    );
    let out = fx.site.run(&["repo", "ls", "--repo", "origin"]);
    assert!(out.status.success());

    // Restarted (no pause now), it takes the dead writer's lock over and
    // redoes the events it never committed.
    let idx2 = IndexerProc::start(&fx.site, "main", &[]);
    let out = fx.wait_index(since, &[]);
    assert_eq!(out.status.code(), Some(0), "log:\n{}", idx2.log_text());
    fx.assert_index_matches_repo();
    for i in 0..5 {
        assert!(ls_all(&fx.site, "origin", false)[&format!("pkg-{i:02}")].contains_key("3.0.0"));
    }
    assert!(
        temp_indexes(&fx.repo).is_empty(),
        "the dead run's temp file is cleaned up"
    );
}

#[test]
fn two_replicas_one_killed_the_other_keeps_the_index_current() {
    let fx = fixture(10);
    let a = IndexerProc::start(&fx.site, "main", &[]);
    let mut b = IndexerProc::start(&fx.site, "main", &[]);
    fx.wait_heartbeat(&a);
    let since = now();
    let mut lines = String::new();
    for i in 0..10 {
        write_spec(&fx.repo, &format!("pkg-{i:02}"), "4.0.0", BUILD);
        lines.push_str(&fx.event_line("package published", &format!("pkg-{i:02}/4.0.0/{BUILD}")));
    }
    fx.send_file(&lines);
    let out = fx.wait_index(since, &[]);
    assert_eq!(out.status.code(), Some(0));
    drop(a); // SIGKILL one replica
    std::thread::sleep(Duration::from_secs(1));
    let since = now();
    let mut lines = String::new();
    for i in 0..10 {
        write_spec(&fx.repo, &format!("pkg-{i:02}"), "5.0.0", BUILD);
        lines.push_str(&fx.event_line("package published", &format!("pkg-{i:02}/5.0.0/{BUILD}")));
    }
    fx.send_file(&lines);
    // Every replica reads every partition (no group join): the survivor
    // simply goes on, with no rebalance to wait for.
    let out = fx.wait_index(since, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "survivor log:\n{}",
        b.log_text()
    );
    assert!(b.is_running());
    // Let any in-flight run finish, then compare.
    let t = Instant::now();
    loop {
        let with = ls_all(&fx.site, "origin", false);
        if with == repo_contents(&fx.repo) || t.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("survivor log:\n{}", b.log_text());
    fx.assert_index_matches_repo();
}

#[test]
fn wait_index_down_alive_and_stalled() {
    // Down: nothing on the status topic.
    let fx = fixture(3);
    let t = Instant::now();
    let out = fx.wait_index(now(), &[]);
    assert_eq!(out.status.code(), Some(5), "indexer down exits 5");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "and at once, not after the 30 s listener timeout"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "indexer-down");

    // Stalled: a recent heartbeat, then silence.
    let url = spk_url(&fx.repo);
    let hb = format!(
        r#"{{"event":"indexer heartbeat","repo":"{url}","name":"main","start":{}}}"#,
        now()
    );
    produce_raw(&fx.idx_topic, &[("origin", hb.as_bytes())]);
    let out = fx.wait_index(now(), &["--timeout-ms", "2000"]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "stalled indexer times out with 6"
    );

    // Alive and completing.
    let idx = IndexerProc::start(&fx.site, "main", &[]);
    fx.wait_heartbeat(&idx);
    let since = now();
    write_spec(&fx.repo, "pkg-00", "7.0.0", BUILD);
    fx.send_file(&fx.event_line("package published", &format!("pkg-00/7.0.0/{BUILD}")));
    let out = fx.wait_index(since, &[]);
    assert_eq!(out.status.code(), Some(0), "log:\n{}", idx.log_text());
    assert!(ls_all(&fx.site, "origin", false)["pkg-00"].contains_key("7.0.0"));
}

#[test]
fn broker_stopped_and_restarted_under_a_running_indexer() {
    // A broker of our own, with storage that survives a restart.
    let work = std::path::PathBuf::from(
        std::env::var("SPK_E2E_WORKDIR").unwrap_or_else(|_| "/tmp".into()),
    )
    .join(unique("restart"));
    let port = spk_e2e::secure::free_port();
    let start_broker =
        || spk_e2e::secure::OwnTansu::start(&work, "sqlite://tansu.db", port, port, false);
    let bootstrap = format!("127.0.0.1:{port}");
    let mut broker = start_broker();
    let fx = fixture_on(&bootstrap, 5, true);
    let mut idx = IndexerProc::start(&fx.site, "main", &[]);
    fx.wait_heartbeat(&idx);
    fx.publish_and_wait(&idx, "pkg-00");

    // Stop the broker for a while; the indexer must ride it out.
    drop(broker);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        idx.is_running(),
        "the indexer exited while the broker was down:\n{}",
        idx.log_text()
    );
    broker = start_broker();
    fx.publish_and_wait(&idx, "pkg-01");
    assert!(idx.is_running());
    fx.assert_index_matches_repo();
    drop(broker);
}

#[test]
fn topics_deleted_and_recreated_under_a_supervised_indexer() {
    // An operator deletes both topics and creates them again (to change
    // partitions, or to start over). What was published on the new topics
    // must get indexed, with the indexer run as examples/ops runs it
    // (systemd, Restart=on-failure). Against Tansu 0.6, librdkafka 2.12.1
    // crashes here (SIGSEGV in rd_kafka_metadata_update_op, strcmp of a
    // topic name that is NULL in rd_kafka_metadata_cache_find; upstream
    // librdkafka issue #5280 has the same crash site), so the test does
    // what the supervisor does: an indexer that exited is started again.
    let fx = fixture(3);
    let mut idx = IndexerProc::start(&fx.site, "main", &[]);
    fx.wait_heartbeat(&idx);
    fx.publish_and_wait(&idx, "pkg-00");

    delete_topics_on(&fx.bootstrap, &[&fx.pkg_topic, &fx.idx_topic]);
    create_topics_on(&fx.bootstrap, &[&fx.pkg_topic], 3);
    create_topics_on(&fx.bootstrap, &[&fx.idx_topic], 1);
    std::thread::sleep(Duration::from_secs(3));
    if let Some(status) = idx.child.try_wait().unwrap() {
        eprintln!(
            "the indexer exited ({status}) after its topics were re-created; started again, as Restart=on-failure would; its log:\n{}",
            idx.log_text()
        );
        idx = IndexerProc::start(&fx.site, "main", &[]);
    }
    // Its heartbeats reach the new status topic (a waiter with no
    // heartbeat in view takes the indexer for down).
    fx.wait_heartbeat(&idx);
    fx.publish_and_wait(&idx, "pkg-01");
    assert!(idx.is_running(), "log:\n{}", idx.log_text());
    fx.assert_index_matches_repo();
}

#[test]
fn send_event_wait_is_not_fooled_by_a_run_that_ended_just_before() {
    // A run completes (by hand), then in the same second a new build is
    // published with --wait: only the indexer's later run covers it, and
    // --wait must wait for that one, not take the earlier completion.
    let fx = fixture(3);
    let idx = IndexerProc::start(&fx.site, "main", &[]);
    fx.wait_heartbeat(&idx);
    for round in 0..3 {
        let v = format!("9.{round}.0");
        let out = fx.site.run(&["repo", "index", "--repo", "origin"]);
        assert!(out.status.success());
        write_spec(&fx.repo, "pkg-01", &v, BUILD);
        let out = fx.site.run(&[
            "repo",
            "send-event",
            "--repo",
            "origin",
            "--event",
            "published",
            "--package",
            &format!("pkg-01/{v}/{BUILD}"),
            "--wait",
        ]);
        assert_eq!(out.status.code(), Some(0), "log:\n{}", idx.log_text());
        // Right after --wait returns, the index has it.
        let out = fx.site.run(&["repo", "ls", "--repo", "origin", "pkg-01"]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&v),
            "round {round}: {v} not in the index yet"
        );
    }
}
