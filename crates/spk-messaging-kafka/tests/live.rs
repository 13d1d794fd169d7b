//! Live checks of a channel against a mock cluster.

mod common;

use std::time::Duration;

use common::*;
use spk_messaging_core::Severity;
use spk_messaging_kafka::check_channel;

const T: Duration = Duration::from_millis(1500);

#[test]
fn healthy_channel_has_no_diagnostics_and_reports_partitions() {
    let b = broker();
    let ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    let c = check_channel(&ch, "messaging[0].kafka", T);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(c.brokers.len(), 1);
    assert!(c.brokers[0].reachable);
    assert_eq!(c.cluster_brokers.len(), 1);
    let parts: Vec<(&str, Option<usize>)> = c
        .topics
        .iter()
        .map(|t| (t.topic.as_str(), t.partitions))
        .collect();
    assert_eq!(
        parts,
        vec![
            (PKG_TOPIC, Some(PARTITIONS as usize)),
            (IDX_TOPIC, Some(PARTITIONS as usize))
        ]
    );
}

#[test]
fn missing_topic_is_an_error_on_its_key() {
    let b = only_pkg_topic();
    let ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    let c = check_channel(&ch, "messaging[2].kafka", T);
    assert_eq!(c.diagnostics.len(), 1, "{:?}", c.diagnostics);
    let d = &c.diagnostics[0];
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.path, "messaging[2].kafka.index_updates_topic_name");
    assert!(
        d.message.contains(IDX_TOPIC) && d.message.contains("does not exist"),
        "{d}"
    );
    // Checking did not create it.
    let again = check_channel(&ch, "messaging[2].kafka", T);
    assert_eq!(again.diagnostics.len(), 1);
}

fn only_pkg_topic() -> spk_messaging_kafka::DevBroker {
    let b = spk_messaging_kafka::DevBroker::start(1).expect("mock");
    b.create_topic(PKG_TOPIC, 2).expect("topic");
    b
}

#[test]
fn unreachable_brokers_are_errors_naming_them() {
    let ch = channel("kafka", "127.0.0.1:1", &["origin"]);
    let c = check_channel(&ch, "messaging[0].kafka", T);
    assert_eq!(c.diagnostics.len(), 1, "{:?}", c.diagnostics);
    let d = &c.diagnostics[0];
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.path, "messaging[0].kafka.brokers");
    assert!(d.message.contains("127.0.0.1:1"), "{d}");
    assert!(!c.brokers[0].reachable);
    assert!(c.topics.is_empty());
}

#[test]
fn one_dead_broker_among_live_ones_is_a_warning() {
    let b = broker();
    let ch = channel(
        "kafka",
        &format!("{},127.0.0.1:1", b.bootstrap_servers()),
        &["origin"],
    );
    let c = check_channel(&ch, "messaging[0].kafka", T);
    assert_eq!(c.diagnostics.len(), 1, "{:?}", c.diagnostics);
    assert_eq!(c.diagnostics[0].severity, Severity::Warning);
    assert!(c.diagnostics[0].message.contains("127.0.0.1:1"));
    assert_eq!(c.topics.len(), 2);
}
