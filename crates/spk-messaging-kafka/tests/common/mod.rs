//! Shared by the fast-tier tests: a librdkafka mock cluster (a real Kafka
//! protocol broker in-process), channel configs pointing at it, and an
//! independent consumer that reads messages back.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use spk_messaging_core::config::{
    Config, IndexConfig, KafkaChannelConfig, RepositoryConfig, ResolvedRepo,
};
use spk_messaging_core::RepoAddress;
use spk_messaging_kafka::DevBroker;

pub const PKG_TOPIC: &str = "spk-package-updates";
pub const IDX_TOPIC: &str = "spk-index-updates";
pub const PARTITIONS: i32 = 3;

pub fn broker() -> DevBroker {
    let b = DevBroker::start(1).expect("mock cluster starts");
    b.create_topic(PKG_TOPIC, PARTITIONS).expect("topic");
    b.create_topic(IDX_TOPIC, PARTITIONS).expect("topic");
    b
}

pub fn channel(name: &str, bootstrap: &str, repos: &[&str]) -> KafkaChannelConfig {
    KafkaChannelConfig {
        name: name.to_string(),
        brokers: bootstrap.split(',').map(str::to_string).collect(),
        package_updates_topic_name: Some(PKG_TOPIC.to_string()),
        index_updates_topic_name: Some(IDX_TOPIC.to_string()),
        repo_names: repos.iter().map(|s| s.to_string()).collect(),
        message_timeout_ms: 5000,
        producer_queue_timeout_ms: 4000,
        properties: BTreeMap::new(),
        ..Default::default()
    }
}

pub fn repo(name: &str, update_channel: &str) -> ResolvedRepo {
    ResolvedRepo {
        name: name.to_string(),
        address: RepoAddress::parse(&format!("/srv/spk/{name}"), std::path::Path::new("/"))
            .expect("address"),
        config: RepositoryConfig {
            use_index: true,
            address: None,
            index: IndexConfig {
                update_message_channel: update_channel.to_string(),
                ..Default::default()
            },
        },
        configured: true,
        address_source: "test".into(),
    }
}

pub fn config(channels: Vec<KafkaChannelConfig>) -> Config {
    Config {
        messaging: channels,
        ..Default::default()
    }
}

/// A message as read back by an independent consumer.
#[derive(Debug, Clone)]
pub struct Read {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Read {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `topic` from the beginning of every partition until `want`
/// messages arrived (or a generous guard expired: the count is then checked
/// by the caller's assertion, so a missing message fails the test).
pub fn read_all(bootstrap: &str, topic: &str, want: usize) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let guard = Instant::now() + Duration::from_secs(30);
    while out.len() < want && Instant::now() < guard {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Read {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    body: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    headers,
                });
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    out
}

/// How many messages `topic` holds in total (high watermarks).
pub fn count(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    (0..PARTITIONS)
        .map(|p| {
            let (lo, hi) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            hi - lo
        })
        .sum()
}
