//! Delivery, offsets, keys, headers and exact bodies, read back by an
//! independent consumer from librdkafka's mock cluster.

mod common;

use common::*;
use spk_messaging_core::{IndexEvent, IndexStatusMessage, PackageEvent, PackageUpdateMessage};
use spk_messaging_kafka::headers::{self, MessageHeaders, MessageKind};
use spk_messaging_kafka::{status_reporter_with, ChannelProducer, Producers, StatusSink};

fn pkg_msg(event: PackageEvent, package: &str) -> PackageUpdateMessage {
    PackageUpdateMessage {
        event,
        repo: "file:/srv/spk/origin".into(),
        repo_name: "origin".into(),
        package: package.into(),
    }
}

#[test]
fn send_delivers_with_key_headers_and_exact_body() {
    let b = broker();
    let ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    let p = ChannelProducer::new(&ch).expect("producer");

    let msgs = [
        pkg_msg(PackageEvent::Published, "my-pkg/1.2.3/3I42H3S6"),
        pkg_msg(PackageEvent::Modified, "my-pkg/1.2.3/3I42H3S6"),
        pkg_msg(PackageEvent::Removed, "my-pkg/1.2.3/3I42H3S6"),
        pkg_msg(PackageEvent::GenerateIndex, ""),
    ];
    let mut sent = Vec::new();
    for m in &msgs[..3] {
        let h = MessageHeaders::new(MessageKind::PackageUpdate);
        let d = p
            .send(PKG_TOPIC, "my-pkg", m.to_json().as_bytes(), &h)
            .expect("delivered");
        assert_eq!(d.topic, PKG_TOPIC);
        sent.push((d, h));
    }
    // One key, one partition, consecutive offsets: one package's events stay
    // in order.
    let part = sent[0].0.partition;
    assert!(sent.iter().all(|(d, _)| d.partition == part));
    let offs: Vec<i64> = sent.iter().map(|(d, _)| d.offset).collect();
    assert_eq!(offs, vec![offs[0], offs[0] + 1, offs[0] + 2]);

    let h = MessageHeaders::new(MessageKind::PackageUpdate);
    p.send(PKG_TOPIC, "", msgs[3].to_json().as_bytes(), &h)
        .expect("generate index delivered");
    p.close().expect("flush");

    let read = read_all(&b.bootstrap_servers(), PKG_TOPIC, 4);
    assert_eq!(read.len(), 4, "{read:?}");
    for (i, (d, h)) in sent.iter().enumerate() {
        let r = read
            .iter()
            .find(|r| r.partition == d.partition && r.offset == d.offset)
            .expect("message at its reported offset");
        assert_eq!(r.key, "my-pkg");
        assert_eq!(r.body, msgs[i].to_json());
        let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, headers::ALL);
        assert_eq!(r.header(headers::MESSAGE_ID), Some(h.message_id()));
        assert_eq!(r.header(headers::MESSAGE_KIND), Some("package-update"));
        assert_eq!(r.header(headers::SCHEMA_VERSION_HEADER), Some("1"));
        assert_eq!(r.header(headers::CONTENT_TYPE), Some("application/json"));
        assert_eq!(r.header(headers::TOOL_VERSION), Some(headers::VERSION));
        let (host, user) = headers::sender();
        assert_eq!(r.header(headers::SENDER_HOST), Some(host.as_str()));
        assert_eq!(r.header(headers::SENDER_USER), Some(user.as_str()));
    }
    // The body is exactly the specified JSON: the documented event strings,
    // the four fields, `"package": ""` for generate index.
    let gen = read
        .iter()
        .find(|r| r.body.contains("generate index"))
        .expect("generate index read back");
    let v: serde_json::Value = serde_json::from_str(&gen.body).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"event": "generate index", "repo": "file:/srv/spk/origin", "repo_name": "origin", "package": ""})
    );
    let ids: std::collections::HashSet<&str> = read
        .iter()
        .filter_map(|r| r.header(headers::MESSAGE_ID))
        .collect();
    assert_eq!(ids.len(), 4, "every message has its own id");
}

#[test]
fn batch_enqueue_then_wait_delivers_all() {
    let b = broker();
    let ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    let p = ChannelProducer::new(&ch).expect("producer");
    let n = 2000;
    let pending: Vec<_> = (0..n)
        .map(|i| {
            let m = pkg_msg(
                PackageEvent::Published,
                &format!("pkg-{}/1.0.{i}/src", i % 7),
            );
            let key = format!("pkg-{}", i % 7);
            p.enqueue(
                PKG_TOPIC,
                &key,
                m.to_json().as_bytes(),
                &MessageHeaders::new(MessageKind::PackageUpdate),
            )
            .expect("enqueued")
        })
        .collect();
    let deliveries: Vec<_> = pending
        .into_iter()
        .map(|d| d.wait().expect("delivered"))
        .collect();
    assert_eq!(deliveries.len(), n);
    let mut seen = std::collections::HashSet::new();
    for d in &deliveries {
        assert!(seen.insert((d.partition, d.offset)), "duplicate {d:?}");
    }
    assert_eq!(count(&b.bootstrap_servers(), PKG_TOPIC), n as i64);
}

#[test]
fn status_reporter_sends_to_index_topic_keyed_by_repo() {
    let b = broker();
    let cfg = config(vec![channel("kafka", &b.bootstrap_servers(), &["origin"])]);
    let repo = repo("origin", "kafka");
    let producers = Producers::new();
    let StatusSink::Kafka(rep) = status_reporter_with(&producers, &cfg, &repo).expect("sink")
    else {
        panic!("expected a Kafka reporter");
    };
    assert!(rep.describe_contains_topic());
    let start = 1777941742;
    let events = [
        IndexEvent::Started,
        IndexEvent::InProgress,
        IndexEvent::Completed,
    ];
    for e in events {
        let m = IndexStatusMessage {
            event: e,
            repo: repo.address.to_url(),
            name: repo.name.clone(),
            start,
        };
        spk_messaging_core::IndexStatusReporter::report(&rep, &m).expect("reported");
    }
    let read = read_all(&b.bootstrap_servers(), IDX_TOPIC, 3);
    assert_eq!(read.len(), 3);
    // Same key, same partition, in order.
    assert!(read.iter().all(|r| r.key == "origin"));
    let mut read = read;
    read.sort_by_key(|r| r.offset);
    let bodies: Vec<&str> = read.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(
        bodies,
        vec![
            r#"{"event":"index started","repo":"file:///srv/spk/origin/","name":"origin","start":1777941742}"#,
            r#"{"event":"index in-progress","repo":"file:///srv/spk/origin/","name":"origin","start":1777941742}"#,
            r#"{"event":"index completed","repo":"file:///srv/spk/origin/","name":"origin","start":1777941742}"#,
        ]
    );
    assert!(read
        .iter()
        .all(|r| r.header(headers::MESSAGE_KIND) == Some("index-status")));
    // Nothing went to the package topic.
    assert_eq!(count(&b.bootstrap_servers(), PKG_TOPIC), 0);
}

trait DescribeTopic {
    fn describe_contains_topic(&self) -> bool;
}
impl DescribeTopic for spk_messaging_kafka::KafkaStatusReporter {
    fn describe_contains_topic(&self) -> bool {
        let d = spk_messaging_core::IndexStatusReporter::describe(self);
        d.contains(IDX_TOPIC) && d.contains("\"kafka\"")
    }
}

#[test]
fn producers_are_one_per_channel() {
    let b = broker();
    let a = channel("a", &b.bootstrap_servers(), &["origin"]);
    let c = channel("c", &b.bootstrap_servers(), &["origin"]);
    let producers = Producers::new();
    let p1 = producers.get(&a).expect("a");
    let p2 = producers.get(&a).expect("a again");
    let p3 = producers.get(&c).expect("c");
    assert!(std::sync::Arc::ptr_eq(&p1, &p2));
    assert!(!std::sync::Arc::ptr_eq(&p1, &p3));
    assert!(producers.close_all().is_empty());
}
