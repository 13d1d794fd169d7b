//! `spk messaging tail` and `spk messaging status` on librdkafka's mock
//! cluster (no external broker; the end-to-end versions on Tansu are in
//! tests/e2e/tests/ops_e2e.rs), and their refusals of bad input.

mod kafka_common;

use kafka_common::*;

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn tail_decodes_what_send_event_sent_and_stops_after_count() {
    let b = broker();
    let site = Site::new(&b.bootstrap_servers(), "");
    let out = site.spk(&[
        "repo",
        "send-event",
        "--repo",
        "origin",
        "--event",
        "published",
        "--package",
        "my-pkg/1.0.0/3I42H3S6",
        "--package",
        "other-pkg/2.0.0/3I42H3S6",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = site.spk(&[
        "messaging",
        "tail",
        "--from-beginning",
        "--count",
        "1",
        "--package",
        "my-pkg/1.0",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    assert_eq!(lines[0]["message"]["package"], "my-pkg/1.0.0/3I42H3S6");
    assert_eq!(lines[0]["message"]["event"], "package published");
    assert_eq!(lines[0]["topic"], PKG);
    assert_eq!(lines[0]["headers"]["spk-message-kind"], "package-update");
    assert!(out.stderr.contains("1 message(s) shown"), "{}", out.stderr);
}

#[test]
fn status_says_down_when_the_status_topic_is_silent() {
    let b = broker();
    let site = Site::new(&b.bootstrap_servers(), "");
    let out = site.spk(&[
        "messaging",
        "status",
        "--repo",
        "origin",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 5, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["verdict"], "indexer-down");
    let out = site.spk(&["messaging", "status", "--repo", "origin"]);
    assert!(
        out.stdout.starts_with("origin: INDEXER DOWN"),
        "{}",
        out.stdout
    );
}

#[test]
fn bad_input_names_the_flag_and_what_would_be_right() {
    let site = Site::new("127.0.0.1:1", "");
    let out = site.spk(&["messaging", "tail", "--channel", "nope"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("--channel nope") && out.stderr.contains("configured: kafka"),
        "{}",
        out.stderr
    );
    let out = site.spk(&["messaging", "tail", "--since", "yesterday"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("--since") && out.stderr.contains("15m"),
        "{}",
        out.stderr
    );
    let out = site.spk(&["messaging", "tail", "--package", "a/1/src"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("NAME/VERSION"), "{}", out.stderr);
    let out = site.spk(&["messaging", "tail", "--event", "done"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("generate-index"), "{}", out.stderr);
    let out = site.spk(&["messaging", "tail", "--since", "1h", "--from-beginning"]);
    assert_eq!(out.code, 2, "--since and --from-beginning conflict");
    // --topic index with --package: nothing could be shown.
    let out = site.spk(&[
        "messaging",
        "tail",
        "--topic",
        "index",
        "--package",
        "my-pkg",
    ]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("nothing to follow"), "{}", out.stderr);
    let out = site.spk(&[
        "messaging",
        "status",
        "--repo",
        "origin",
        "--lookback",
        "a while",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("1h30m"), "{}", out.stderr);
    let out = site.spk(&["messaging", "status", "--repo", "nowhere-configured"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("--repo nowhere-configured"),
        "{}",
        out.stderr
    );
}

#[test]
fn tail_refuses_a_topic_the_channel_lacks() {
    let site = Site::new(
        "127.0.0.1:1",
        r#"
[[messaging]]
kafka = { name = "second", brokers = ["127.0.0.1:1"], package_updates_topic_name = "p2", repo_names = ["origin"] }
"#,
    );
    // Channel "second" has no index topic.
    let out = site.spk(&[
        "messaging",
        "tail",
        "--channel",
        "second",
        "--topic",
        "index",
    ]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("--topic index") && out.stderr.contains("index_updates_topic_name"),
        "{}",
        out.stderr
    );
}
