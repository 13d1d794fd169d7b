//! Shared by the kafka_* CLI tests: a librdkafka mock cluster started in the
//! test process, a temp SPK config pointing at it, the built `spk` binary,
//! and an independent consumer reading messages back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use spk_messaging_kafka::DevBroker;

pub const PKG: &str = "spk-package-updates";
pub const IDX: &str = "spk-index-updates";
pub const PARTITIONS: i32 = 3;

pub fn broker() -> DevBroker {
    let b = DevBroker::start(1).expect("mock cluster");
    b.create_topic(PKG, PARTITIONS).expect("topic");
    b.create_topic(IDX, PARTITIONS).expect("topic");
    b
}

/// A temp dir holding `spk.toml` and an (empty) spfs filesystem repository
/// `origin`.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    /// One channel "kafka" on `brokers` listing `origin`, plus `extra` TOML.
    pub fn new(brokers: &str, extra: &str) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        spk_repo::spfs::SpfsWriter::create(dir.path().join("origin")).expect("repo");
        let brokers: Vec<String> = brokers.split(',').map(|b| format!("{b:?}")).collect();
        let toml = format!(
            r#"
[repositories.origin]
address = "{repo}"
use_index = true

[[messaging]]
kafka = {{ name = "kafka", brokers = [{brokers}], package_updates_topic_name = "{PKG}", index_updates_topic_name = "{IDX}", repo_names = ["origin"], message_timeout_ms = 2000, producer_queue_timeout_ms = 1000, index_update_listener_broker_fetch_timeout_ms = 2000 }}
{extra}
"#,
            repo = dir.path().join("origin").display(),
            brokers = brokers.join(", "),
        );
        std::fs::write(dir.path().join("spk.toml"), toml).expect("config");
        Site { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("spk.toml")
    }

    /// The repository's address as SPK writes it in messages:
    /// `file:///path/` (three slashes, a trailing slash).
    pub fn repo_url(&self) -> String {
        format!("file://{}/", self.dir.path().join("origin").display())
    }

    /// The same address in the short form `file:/path`, which is still read.
    pub fn short_repo_url(&self) -> String {
        format!("file:{}", self.dir.path().join("origin").display())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `spk --config <site> args...`, run in the site directory.
    pub fn spk(&self, args: &[&str]) -> Output {
        let out = assert_cmd::Command::cargo_bin("spk")
            .expect("spk binary")
            .current_dir(self.dir.path())
            .env_remove("SPK_CONFIG")
            .env("RUST_LOG", "warn")
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .expect("run spk");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn spk_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let out = assert_cmd::Command::cargo_bin("spk")
            .expect("spk binary")
            .current_dir(self.dir.path())
            .env_remove("SPK_CONFIG")
            .arg("--config")
            .arg(self.config())
            .args(args)
            .write_stdin(stdin.to_string())
            .output()
            .expect("run spk");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone)]
pub struct Read {
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

/// Reads `topic` from the start until `want` messages arrived (or a
/// generous guard expired; callers assert the count).
pub fn read_all(bootstrap: &str, topic: &str, want: usize) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kafka-cli-tests")
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
        if let Some(r) = consumer.poll(Duration::from_millis(200)) {
            let m = r.expect("consumer error");
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Read {
                partition: m.partition(),
                offset: m.offset(),
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                body: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                headers,
            });
        }
    }
    out
}

/// Messages in `topic` (sum of high minus low watermarks).
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

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}
