//! The waiter and the Indexer against librdkafka's in-process mock cluster
//! (a real Kafka-protocol broker): the state machines of core, driven by
//! the real Kafka I/O, in plain `cargo test`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use spk_messaging_core::config::IndexerConfig;
use spk_messaging_core::indexing::{IndexRunError, IndexRunner, IndexScope};
use spk_messaging_core::{IndexEvent, IndexStatusMessage, IndexStatusReporter};
use spk_messaging_kafka::indexer::{self, IndexerSetup};
use spk_messaging_kafka::wait::{wait_for_index, WaitError, WaitOutcome, WaitRequest};
use spk_messaging_kafka::{ChannelProducer, MessageHeaders, MessageKind};

fn send(p: &ChannelProducer, topic: &str, key: &str, body: &str) {
    let kind = if topic == IDX_TOPIC {
        MessageKind::IndexStatus
    } else {
        MessageKind::PackageUpdate
    };
    p.send(topic, key, body.as_bytes(), &MessageHeaders::new(kind))
        .unwrap();
}

fn status(event: &str, name: &str, repo: &str, start: i64) -> String {
    format!(r#"{{"event":"{event}","name":"{name}","repo":"{repo}","start":{start}}}"#)
}

fn request(since: i64) -> WaitRequest {
    WaitRequest {
        repo_name: "origin".into(),
        // Another spelling than the heartbeat's: matched by normalised address.
        repo_url: "/srv/spk/origin".into(),
        since,
        since_ms: None,
        timeout: Some(Duration::from_secs(20)),
        max_wait: None,
    }
}

#[test]
fn the_waiter_hears_a_heartbeat_written_in_spks_form_and_a_completion() {
    let b = broker();
    let ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    let p = ChannelProducer::new(&ch).unwrap();
    let now = chrono::Utc::now().timestamp();
    // SPK's Indexer: its own name, the address as `file:///path/`, not the
    // repository's name; and our config spells the address `/srv/spk/origin`.
    send(
        &p,
        IDX_TOPIC,
        "origin",
        &status(
            "IndexerHeartbeat",
            "spk-indexer-7",
            "file:///srv/spk/origin/",
            now,
        ),
    );
    let later = {
        let p = ChannelProducer::new(&ch).unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            // Another repository's completion first: not ours.
            send(
                &p,
                IDX_TOPIC,
                "other",
                &status("index completed", "other", "file:///srv/other/", now + 1),
            );
            send(
                &p,
                IDX_TOPIC,
                "origin",
                &status("index started", "origin", "file:/srv/spk/origin", now + 1),
            );
            send(
                &p,
                IDX_TOPIC,
                "origin",
                &status("Completed", "origin", "file:/srv/spk/origin", now + 1),
            );
        })
    };
    let report = wait_for_index(&ch, &request(now)).unwrap();
    later.join().unwrap();
    assert_eq!(report.outcome, WaitOutcome::Completed, "{report:?}");
    assert_eq!(report.completed.as_ref().map(|c| c.start), Some(now + 1));
    let before = report.newest_before_wait.unwrap();
    assert_eq!(before.name, "spk-indexer-7");
    assert!(
        report.seen.iter().all(|s| s.name != "other"),
        "{:?}",
        report.seen
    );
}

#[test]
fn an_empty_status_topic_means_the_indexer_is_down_at_once() {
    let b = broker();
    let ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    let began = Instant::now();
    let report = wait_for_index(&ch, &request(chrono::Utc::now().timestamp())).unwrap();
    assert_eq!(report.outcome, WaitOutcome::IndexerDown);
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
}

#[test]
fn an_unknown_status_topic_is_an_error_naming_it_not_a_timeout() {
    let b = broker();
    let mut ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    ch.index_updates_topic_name = Some("no-such-status-topic".into());
    ch.index_update_listener_broker_fetch_timeout_ms = 5_000;
    match wait_for_index(&ch, &request(0)) {
        Err(e @ WaitError::Unreachable { .. }) => {
            let t = e.to_string();
            assert!(t.contains("no-such-status-topic"), "{t}");
        }
        other => panic!("expected an error naming the topic, got {other:?}"),
    }
}

#[test]
fn the_patience_cap_ends_a_wait_that_heartbeats_keep_alive() {
    let b = broker();
    let ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    let p = Arc::new(ChannelProducer::new(&ch).unwrap());
    let now = chrono::Utc::now().timestamp();
    send(
        &p,
        IDX_TOPIC,
        "origin",
        &status("indexer heartbeat", "ix", "/srv/spk/origin", now),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let beats = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(300));
                let t = chrono::Utc::now().timestamp();
                send(
                    &p,
                    IDX_TOPIC,
                    "origin",
                    &status("indexer heartbeat", "ix", "/srv/spk/origin", t),
                );
            }
        })
    };
    let mut req = request(now);
    req.timeout = Some(Duration::from_secs(2)); // never reached: beats every 0.3 s
    req.max_wait = Some(Duration::from_secs(4));
    let began = Instant::now();
    let report = wait_for_index(&ch, &req).unwrap();
    stop.store(true, Ordering::SeqCst);
    beats.join().unwrap();
    assert_eq!(report.outcome, WaitOutcome::OutOfPatience, "{report:?}");
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(12),
        "{took:?}"
    );
    assert!(
        report.seen.len() >= 5,
        "heartbeats kept coming: {}",
        report.seen.len()
    );
}

/// A runner that records what it was asked, finds the lock busy the first
/// time, and sends a run's status like the real one.
#[derive(Debug, Default)]
struct Recorder {
    scopes: Mutex<Vec<IndexScope>>,
}

impl IndexRunner for Recorder {
    fn run(
        &self,
        scope: &IndexScope,
        reporter: &dyn IndexStatusReporter,
    ) -> Result<String, IndexRunError> {
        let mut scopes = self.scopes.lock().unwrap();
        scopes.push(scope.clone());
        if scopes.len() == 1 {
            return Err(IndexRunError::LockBusy("host: build7 pid: 4242".into()));
        }
        let start = chrono::Utc::now().timestamp();
        for event in [IndexEvent::Started, IndexEvent::Completed] {
            let msg = IndexStatusMessage {
                event,
                repo: "file:///srv/spk/origin/".into(),
                name: "origin".into(),
                start,
            };
            reporter
                .report(&msg)
                .map_err(|e| IndexRunError::Failed(e.to_string()))?;
        }
        Ok("recorded".into())
    }
}

fn committed(bootstrap: &str, group: &str) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(PKG_TOPIC, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}

fn watermarks(bootstrap: &str) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..PARTITIONS)
        .map(|p| {
            let (lo, hi) = c
                .fetch_watermarks(PKG_TOPIC, p, Duration::from_secs(10))
                .unwrap();
            if hi > lo {
                hi
            } else {
                -1
            }
        })
        .collect()
}

#[test]
fn the_indexer_batches_events_retries_a_busy_lock_with_heartbeats_and_commits() {
    let b = broker();
    let bootstrap = b.bootstrap_servers();
    let ch = channel("kafka", &bootstrap, &["origin"]);
    let setup = IndexerSetup {
        name: "mock-ix".into(),
        indexer: IndexerConfig {
            message_channel_name: "kafka".into(),
            repo_name: "origin".into(),
            quiet_period_ms: 300,
            ..Default::default()
        },
        channel: ch.clone(),
        repo: {
            let mut r = repo("origin", "kafka");
            r.config.index.lock_sleep_seconds = 1;
            r
        },
        package_topic: PKG_TOPIC.into(),
        status_topic: IDX_TOPIC.into(),
        status_channel: Some(ch.clone()),
        status_note: None,
    };
    let p = ChannelProducer::new(&ch).unwrap();
    // Ours by name with an embed stub's build; ours by SPK's address form
    // under another name; another repository's; a malformed one.
    send(
        &p,
        PKG_TOPIC,
        "emb",
        r#"{"event":"package published","repo":"file:///x/","repo_name":"origin","package":"emb/2.0/embedded-by-MVWWEZLEMRSWIW3NPEWXI33PNQ======"}"#,
    );
    send(
        &p,
        PKG_TOPIC,
        "my-pkg",
        r#"{"event":"Modified","repo":"file:///srv/spk/origin/","repo_name":"prod","package":"my-pkg/1.0/embedded[parent/1.0/3I42H3S6]"}"#,
    );
    send(
        &p,
        PKG_TOPIC,
        "a-b",
        r#"{"event":"package published","repo":"file:///srv/other/","repo_name":"other","package":"a-b/1.0/src"}"#,
    );
    send(&p, PKG_TOPIC, "bad", "not json");

    let runner = Arc::new(Recorder::default());
    let stop = Arc::new(AtomicBool::new(false));
    let service = {
        let (setup, runner, stop) = (setup.clone(), runner.clone(), stop.clone());
        std::thread::spawn(move || indexer::run(&setup, runner.as_ref(), &stop))
    };
    let guard = Instant::now() + Duration::from_secs(30);
    while runner.scopes.lock().unwrap().len() < 2 && Instant::now() < guard {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The commit follows the run; give it a moment.
    let want = watermarks(&bootstrap);
    while committed(&bootstrap, "spk-indexer-mock-ix") != want && Instant::now() < guard {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    service.join().unwrap().unwrap();

    let scopes = runner.scopes.lock().unwrap().clone();
    let expected = IndexScope::Update(vec![
        "emb/2.0".parse().unwrap(),
        "my-pkg/1.0".parse().unwrap(),
    ]);
    assert_eq!(
        scopes,
        vec![expected.clone(), expected],
        "lock busy, then the same batch again"
    );
    assert_eq!(
        committed(&bootstrap, "spk-indexer-mock-ix"),
        want,
        "every message committed after the run"
    );

    let status = read_all(&bootstrap, IDX_TOPIC, 4);
    let events: Vec<String> = status
        .iter()
        .map(|r| {
            IndexStatusMessage::from_bytes(r.body.as_bytes())
                .unwrap()
                .event
                .to_string()
        })
        .collect();
    let heartbeats = events.iter().filter(|e| *e == "indexer heartbeat").count();
    assert!(
        heartbeats >= 2,
        "start-up and lock-busy heartbeats: {events:?}"
    );
    // The heartbeat sent because the lock was busy names its holder; the
    // start-up one does not.
    let holders: Vec<Option<&str>> = status
        .iter()
        .filter(|r| r.body.contains("heartbeat"))
        .map(|r| r.header("spk-lock-holder"))
        .collect();
    assert_eq!(holders.first(), Some(&None), "{holders:?}");
    assert!(
        holders.contains(&Some("host: build7 pid: 4242")),
        "{holders:?}"
    );
    assert!(events.iter().any(|e| e == "index completed"), "{events:?}");
    assert!(
        status.iter().all(|r| r.key == "origin"),
        "status keyed by repository"
    );
}

#[test]
fn an_authorization_error_ends_the_wait_as_an_error_not_a_timeout() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let b = broker();
    let ch = channel("kafka", &b.bootstrap_servers(), &["origin"]);
    let p = ChannelProducer::new(&ch).unwrap();
    let now = chrono::Utc::now().timestamp();
    send(
        &p,
        IDX_TOPIC,
        "origin",
        &status("indexer heartbeat", "ix", "/srv/spk/origin", now),
    );
    b.cluster().request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
    );
    let mut req = request(now);
    req.timeout = Some(Duration::from_secs(60));
    let began = Instant::now();
    match wait_for_index(&ch, &req) {
        Err(e @ WaitError::Consumer { .. }) => {
            let t = e.to_string();
            assert!(t.to_lowercase().contains("authoriz"), "{t}");
        }
        other => panic!("expected the authorization error, got {other:?}"),
    }
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
}

#[test]
fn fatal_consumer_errors_are_told_from_transient_ones() {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use spk_messaging_kafka::wait::is_fatal_consumer_error;
    for code in [
        RDKafkaErrorCode::TopicAuthorizationFailed,
        RDKafkaErrorCode::GroupAuthorizationFailed,
        RDKafkaErrorCode::UnknownTopicOrPartition,
        RDKafkaErrorCode::SaslAuthenticationFailed,
    ] {
        assert!(
            is_fatal_consumer_error(&KafkaError::MessageConsumption(code)),
            "{code:?}"
        );
    }
    for code in [
        RDKafkaErrorCode::BrokerTransportFailure,
        RDKafkaErrorCode::AllBrokersDown,
        RDKafkaErrorCode::RequestTimedOut,
    ] {
        assert!(
            !is_fatal_consumer_error(&KafkaError::MessageConsumption(code)),
            "{code:?}"
        );
    }
}
