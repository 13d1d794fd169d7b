//! Faults hitting the documented errors: brokers down, unreachable
//! bootstrap addresses, injected request errors, a full producer queue.
//! No assertion here is on elapsed time; each failing send must end (by
//! librdkafka's message.timeout.ms) for the test to finish at all.

mod common;

use common::*;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use spk_messaging_core::{IndexEvent, IndexStatusMessage, IndexStatusReporter};
use spk_messaging_kafka::headers::{MessageHeaders, MessageKind};
use spk_messaging_kafka::{
    status_reporter_with, ChannelProducer, ClientError, Producers, SendErrorKind, StatusSink,
};

fn h() -> MessageHeaders {
    MessageHeaders::new(MessageKind::PackageUpdate)
}

#[test]
fn unreachable_bootstrap_is_not_delivered_and_names_the_broker() {
    // Nothing listens on port 1.
    let mut ch = channel("kafka", "127.0.0.1:1", &["origin"]);
    ch.message_timeout_ms = 1500;
    let p = ChannelProducer::new(&ch).expect("producer");
    let e = p
        .send(PKG_TOPIC, "my-pkg", b"{}", &h())
        .expect_err("cannot be delivered");
    assert_eq!(e.kind, SendErrorKind::TimedOut);
    let text = e.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(text.contains(PKG_TOPIC), "{text}");
    assert!(text.contains("message_timeout_ms (1500 ms)"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connect"),
        "the reason says the connection failed: {text}"
    );
}

/// What librdkafka prints when its mock cluster, setting a broker down,
/// cannot bind the broker's port again (it asserts, aborting the process).
const MOCK_REBIND_ABORT: &str = "Failed to-create mock broker listener";

/// Runs the test `name` again in a child process of its own and returns
/// `false`; in that child returns `true`, so the caller runs its body. For
/// tests that set a mock broker down: the mock closes the broker's
/// listener and binds its port again at once, and if another socket took
/// the port in between it aborts the process. In a child, that abort is
/// told apart from a failure of the test and the child is run again (at
/// most 3 times); any other failure fails the test.
fn in_own_process(name: &str) -> bool {
    const VAR: &str = "SPK_TEST_OWN_PROCESS";
    if std::env::var(VAR).as_deref() == Ok(name) {
        return true;
    }
    for attempt in 1..=3 {
        let (ok, text) = run_in_child(name, VAR, name);
        if ok {
            assert!(
                text.contains("1 passed"),
                "{name} did not run in its child:\n{text}"
            );
            return false;
        }
        assert!(
            text.contains(MOCK_REBIND_ABORT),
            "{name} failed in its child:\n{text}"
        );
        eprintln!(
            "{name}: the mock cluster could not bind its port again (attempt {attempt}); again"
        );
    }
    panic!("{name}: the mock cluster could not bind its port again, 3 times");
}

#[test]
fn broker_down_is_reported_then_recovers() {
    if !in_own_process("broker_down_is_reported_then_recovers") {
        return;
    }
    let b = broker();
    let mut ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    ch.message_timeout_ms = 1500;
    let p = ChannelProducer::new(&ch).expect("producer");
    p.send(PKG_TOPIC, "my-pkg", b"{\"n\":1}", &h())
        .expect("delivered while up");

    b.cluster().broker_down(1).expect("down");
    let e = p
        .send(PKG_TOPIC, "my-pkg", b"{\"n\":2}", &h())
        .expect_err("not delivered while down");
    assert_eq!(e.kind, SendErrorKind::TimedOut, "{e}");
    assert!(e.to_string().contains(&b.bootstrap_servers()), "{e}");

    b.cluster().broker_up(1).expect("up");
    // A fresh message after recovery gets through (librdkafka reconnects).
    let mut delivered = false;
    for _ in 0..5 {
        if p.send(PKG_TOPIC, "my-pkg", b"{\"n\":3}", &h()).is_ok() {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "no delivery after the broker came back");
}

#[test]
fn retriable_request_errors_are_retried() {
    let b = broker();
    let ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    let p = ChannelProducer::new(&ch).expect("producer");
    // Connect and learn the leader first, then make the next produce
    // requests fail with retriable errors.
    p.send(PKG_TOPIC, "my-pkg", b"{}", &h()).expect("warm up");
    b.cluster().request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    let d = p
        .send(PKG_TOPIC, "my-pkg", b"{\"retried\":true}", &h())
        .expect("delivered after retries");
    let read = read_all(&b.bootstrap_servers(), PKG_TOPIC, 2);
    assert_eq!(read.len(), 2);
    let r = read
        .iter()
        .find(|r| r.offset == d.offset && r.partition == d.partition)
        .expect("read back");
    assert_eq!(r.body, "{\"retried\":true}");
    // Idempotence: the retries did not duplicate it.
    assert_eq!(count(&b.bootstrap_servers(), PKG_TOPIC), 2);
}

#[test]
fn permanent_request_errors_are_reported() {
    let b = broker();
    let ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    let p = ChannelProducer::new(&ch).expect("producer");
    p.send(PKG_TOPIC, "my-pkg", b"{}", &h()).expect("warm up");
    b.cluster().request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let e = p
        .send(PKG_TOPIC, "my-pkg", b"{}", &h())
        .expect_err("rejected");
    assert_eq!(e.kind, SendErrorKind::Rejected, "{e}");
    assert!(e.to_string().contains("authoriz"), "{e}");
}

#[test]
fn full_queue_is_reported_after_the_queue_timeout() {
    let mut ch = channel("kafka", "127.0.0.1:1", &["origin"]);
    ch.message_timeout_ms = 1000;
    ch.producer_queue_timeout_ms = 100;
    ch.properties
        .insert("queue.buffering.max.messages".into(), "1".into());
    let p = ChannelProducer::new(&ch).expect("producer");
    let first = p
        .enqueue(PKG_TOPIC, "a", b"{}", &h())
        .expect("room for one");
    let e = p
        .enqueue(PKG_TOPIC, "b", b"{}", &h())
        .expect_err("queue full");
    assert_eq!(e.kind, SendErrorKind::QueueFull);
    assert!(
        e.to_string().contains("producer_queue_timeout_ms (100 ms)"),
        "{e}"
    );
    assert_eq!(
        first.wait().expect_err("never delivered").kind,
        SendErrorKind::TimedOut
    );
}

#[test]
fn reporter_fails_fast_after_a_timeout_and_reports_every_message() {
    let mut ch = channel("kafka", "127.0.0.1:1", &["origin"]);
    ch.message_timeout_ms = 1000;
    let cfg = config(vec![ch]);
    let repo = repo("origin", "kafka");
    let StatusSink::Kafka(rep) =
        status_reporter_with(&Producers::new(), &cfg, &repo).expect("sink")
    else {
        panic!("expected a reporter");
    };
    let msg = |event| IndexStatusMessage {
        event,
        repo: repo.address.to_url(),
        name: "origin".into(),
        start: 7,
    };
    let e1 = rep
        .send(&msg(IndexEvent::Started))
        .expect_err("undelivered");
    assert_eq!(e1.kind, SendErrorKind::TimedOut);
    let e2 = rep.send(&msg(IndexEvent::Completed)).expect_err("skipped");
    assert_eq!(e2.kind, SendErrorKind::Skipped);
    assert!(
        e2.reason.contains("earlier status message"),
        "{}",
        e2.reason
    );
    let r = rep
        .report(&msg(IndexEvent::Completed))
        .expect_err("reported");
    assert_eq!(r.event, "index completed");
    assert_eq!(r.start, 7);
}

/// Runs the test `name` of this binary alone in a child process with
/// `var=value` set: whether it passed, and all it printed.
fn run_in_child(name: &str, var: &str, value: &str) -> (bool, String) {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(var, value)
        .output()
        .expect("re-run the test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs the test `name` again in a child process with `var=value` set, and
/// returns `false`; in that child (where `var` is set) returns `true`, so the
/// caller runs its body. No `std::env::set_var` in this multi-threaded test
/// process: a secret comes from the environment the way it does for users.
fn in_child_with(name: &str, var: &str, value: &str) -> bool {
    if std::env::var(var).as_deref() == Ok(value) {
        return true;
    }
    let (ok, text) = run_in_child(name, var, value);
    assert!(ok, "{name} failed in its child:\n{text}");
    assert!(
        text.contains("1 passed"),
        "{name} did not run in its child:\n{text}"
    );
    // Everything the child printed, logs included, is free of the secret.
    assert!(
        !text.contains(value),
        "the secret appeared in the output:\n{text}"
    );
    false
}

#[test]
fn properties_expand_env_and_never_show_secrets() {
    if !in_child_with(
        "properties_expand_env_and_never_show_secrets",
        "SPK_TEST_KAFKA_SECRET_8231",
        "hunter2-very-secret",
    ) {
        return;
    }
    let mut ch = channel("kafka", "127.0.0.1:1", &["origin"]);
    ch.properties
        .insert("security.protocol".into(), "SASL_PLAINTEXT".into());
    ch.properties
        .insert("sasl.mechanism".into(), "PLAIN".into());
    ch.properties.insert("sasl.username".into(), "spk".into());
    ch.properties.insert(
        "sasl.password".into(),
        "${SPK_TEST_KAFKA_SECRET_8231}".into(),
    );
    ch.message_timeout_ms = 500;
    let p = ChannelProducer::new(&ch).expect("SASL config accepted");
    assert!(!format!("{p:?}").contains("hunter2"));
    let e = p
        .send(PKG_TOPIC, "k", b"{}", &h())
        .expect_err("nothing listens");
    // The message, its debug form (with the client errors it carries) and
    // the producer's own description.
    for shown in [e.to_string(), format!("{e:?}"), format!("{p:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    // An unset variable is an error naming the variable and the key.
    let mut ch2 = channel("kafka", "127.0.0.1:1", &["origin"]);
    ch2.properties.insert(
        "sasl.password".into(),
        "${SPK_TEST_KAFKA_UNSET_8231}".into(),
    );
    let e = ChannelProducer::new(&ch2).expect_err("unset variable");
    assert!(matches!(e, ClientError::Property { .. }));
    let t = e.to_string();
    assert!(
        t.contains("SPK_TEST_KAFKA_UNSET_8231") && t.contains("sasl.password"),
        "{t}"
    );

    // A property librdkafka does not know: refused, naming it.
    let mut ch3 = channel("kafka", "127.0.0.1:1", &["origin"]);
    ch3.properties.insert("no.such.property".into(), "1".into());
    let e = ChannelProducer::new(&ch3).expect_err("unknown property");
    assert!(e.to_string().contains("no.such.property"), "{e}");

    // librdkafka's configuration errors quote values: secret ones are
    // redacted.
    let mut ch4 = channel("kafka", "127.0.0.1:1", &["origin"]);
    ch4.properties.insert(
        "custom.password".into(),
        "${SPK_TEST_KAFKA_SECRET_8231}".into(),
    );
    let e = ChannelProducer::new(&ch4).expect_err("unknown property");
    let t = e.to_string();
    assert!(t.contains("custom.password"), "{t}");
    assert!(!t.contains("hunter2"), "{t}");
    assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
}

#[test]
fn weaker_acks_turn_idempotence_off_and_still_deliver() {
    let b = broker();
    let mut ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    ch.properties.insert("acks".into(), "1".into());
    let p = ChannelProducer::new(&ch).expect("producer with acks=1");
    p.send(PKG_TOPIC, "k", b"{}", &h()).expect("delivered");
}

#[test]
fn the_waiter_never_shows_secrets_either() {
    // The waiter builds a consumer, not a producer: its configuration errors
    // must be redacted the same way.
    if !in_child_with(
        "the_waiter_never_shows_secrets_either",
        "SPK_TEST_KAFKA_SECRET_5117",
        "hunter3-very-secret",
    ) {
        return;
    }
    let mut ch = channel("kafka", "127.0.0.1:1", &["origin"]);
    ch.properties.insert(
        "custom.password".into(),
        "${SPK_TEST_KAFKA_SECRET_5117}".into(),
    );
    let req = spk_messaging_kafka::wait::WaitRequest {
        repo_name: "origin".into(),
        repo_url: "file:/srv/origin".into(),
        since: 0,
        since_ms: None,
        timeout: None,
        max_wait: None,
    };
    let e = spk_messaging_kafka::wait::wait_for_index(&ch, &req).expect_err("unknown property");
    let t = e.to_string();
    assert!(t.contains("custom.password"), "{t}");
    assert!(!t.contains("hunter3"), "{t}");
    assert!(!format!("{e:?}").contains("hunter3"), "{e:?}");
}
