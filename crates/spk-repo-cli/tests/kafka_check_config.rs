//! `spk messaging check-config --connect` against a mock cluster.

mod kafka_common;

use kafka_common::*;

#[test]
fn healthy_cluster_passes_and_shows_partitions() {
    let b = broker();
    let site = Site::new(&b.bootstrap_servers(), "");
    let out = site.spk(&["messaging", "check-config", "--connect"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "topic {PKG} (package_updates_topic_name): 3 partition(s)"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "topic {IDX} (index_updates_topic_name): 3 partition(s)"
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("reachable"), "{}", out.stdout);
}

#[test]
fn missing_topic_fails_with_a_diagnostic() {
    let b = spk_messaging_kafka::DevBroker::start(1).expect("mock");
    b.create_topic(PKG, 2).expect("topic");
    let site = Site::new(&b.bootstrap_servers(), "");
    let out = site.spk(&["messaging", "check-config", "--connect", "--format", "json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("json");
    assert_eq!(v["ok"], false);
    let d = v["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .find(|d| d["path"] == "messaging[0].kafka.index_updates_topic_name")
        .expect("diagnostic on the index topic");
    assert_eq!(d["severity"], "error");
    assert_eq!(v["live"]["channels"][0]["topics"][0]["partitions"], 2);
}

#[test]
fn unreachable_broker_fails_naming_it() {
    let site = Site::new("127.0.0.1:1", "");
    let out = site.spk(&[
        "messaging",
        "check-config",
        "--connect",
        "--timeout-ms",
        "1000",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("messaging[0].kafka.brokers"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("127.0.0.1:1"), "{}", out.stdout);
    assert!(out.stdout.contains("NOT reachable"), "{}", out.stdout);
}

#[test]
fn static_errors_skip_live_checks() {
    let site = Site::new("127.0.0.1:1", "[repositories.broken]\nno_such_key = 1\n");
    let out = site.spk(&["messaging", "check-config", "--connect"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains("live checks skipped: the config has errors"),
        "{}",
        out.stdout
    );
}
