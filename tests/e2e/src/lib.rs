//! Harness for end-to-end tests: the built `spk` binary against a real
//! Kafka-protocol broker that `cargo xtask test` starts (Tansu), read back
//! with an independent consumer (plain rdkafka, none of our Kafka code).
//!
//! Run without `cargo xtask test`, every test fails at once saying so: these
//! tests never pretend to pass without a broker.
#![allow(clippy::unwrap_used)]

pub mod secure;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: the end-to-end tests need the broker and binary that `cargo xtask test` provides; run `cargo xtask test`")
    })
}

/// The broker's bootstrap address.
pub fn bootstrap() -> String {
    env("SPK_E2E_BOOTSTRAP")
}

/// The built `spk` binary.
pub fn spk_bin() -> PathBuf {
    PathBuf::from(env("SPK_E2E_SPK"))
}

/// The tansu binary (for tests that start their own broker).
pub fn tansu_bin() -> PathBuf {
    PathBuf::from(env("SPK_E2E_TANSU"))
}

/// A name unique to this test run, for topics.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn admin_on(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// Polls the metadata of each of `topics` on `bootstrap` until `done`
/// holds of it, for at most `limit`; then panics, saying the topic `what`.
fn wait_for_topics(
    bootstrap: &str,
    topics: &[&str],
    limit: Duration,
    what: &str,
    done: impl Fn(&str, &rdkafka::metadata::Metadata) -> bool,
) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let deadline = Instant::now() + limit;
    for t in topics {
        while !consumer
            .fetch_metadata(Some(t), Duration::from_secs(5))
            .is_ok_and(|md| done(t, &md))
        {
            assert!(Instant::now() < deadline, "topic {t} {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Creates topics on `bootstrap` and waits until their metadata shows.
pub fn create_topics_on(bootstrap: &str, topics: &[&str], partitions: i32) {
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = futures::executor::block_on(admin_on(bootstrap).create_topics(&new, &opts))
        .expect("create topics");
    for r in res {
        if let Err((t, e)) = r {
            if e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                panic!("cannot create topic {t}: {e}");
            }
        }
    }
    wait_for_topics(
        bootstrap,
        topics,
        Duration::from_secs(20),
        "did not appear",
        |t, md| {
            md.topics()
                .iter()
                .any(|x| x.name() == t && x.error().is_none() && !x.partitions().is_empty())
        },
    );
}

/// Deletes topics on `bootstrap` and waits until their metadata no longer
/// shows them.
pub fn delete_topics_on(bootstrap: &str, topics: &[&str]) {
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = futures::executor::block_on(admin_on(bootstrap).delete_topics(topics, &opts))
        .expect("delete topics");
    for r in res {
        if let Err((t, e)) = r {
            panic!("cannot delete topic {t}: {e}");
        }
    }
    wait_for_topics(
        bootstrap,
        topics,
        Duration::from_secs(30),
        "still there after 30 s",
        |_, md| md.topics().iter().all(|x| x.partitions().is_empty()),
    );
}

pub fn create_topics(topics: &[&str], partitions: i32) {
    create_topics_on(&bootstrap(), topics, partitions)
}

/// One message read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub payload: String,
    pub timestamp_ms: Option<i64>,
}

impl Record {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("payload is not JSON ({e}): {}", self.payload))
    }
}

/// Reads every message of `topic` from the beginning of each partition until
/// `want` have arrived or `timeout` passes (manual assignment, no group).
pub fn read_topic_on(bootstrap: &str, topic: &str, want: usize, timeout: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("e2e-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while out.len() < want && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let mut headers = BTreeMap::new();
                if let Some(h) = m.headers() {
                    for hd in h.iter() {
                        headers.insert(
                            hd.key.to_string(),
                            hd.value
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                                .unwrap_or_default(),
                        );
                    }
                }
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    headers,
                    payload: m
                        .payload()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .unwrap_or_default(),
                    timestamp_ms: m.timestamp().to_millis(),
                });
            }
            Some(Err(e)) => eprintln!("reader: {e}"),
            None => {}
        }
    }
    out
}

pub fn read_topic(topic: &str, want: usize, timeout: Duration) -> Vec<Record> {
    read_topic_on(&bootstrap(), topic, want, timeout)
}

/// A throwaway site: a directory with a config file and repositories.
#[derive(Debug)]
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        Site {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("spk.toml")
    }

    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.config_path(), toml).unwrap();
    }

    /// `spk --config <site config> ARGS`, with no SPK_* variables leaking in.
    pub fn spk(&self) -> Command {
        let mut c = Command::new(spk_bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("SPK_") {
                c.env_remove(k);
            }
        }
        c.arg("--config").arg(self.config_path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.spk().args(args).output().unwrap();
        eprintln!(
            "$ spk {}\n-> {:?}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Default for Site {
    fn default() -> Self {
        Site::new()
    }
}

/// Copies a directory tree, leaving out an `index` directory at its top
/// (an SPK index a run wrote into the source, which the copy must not
/// start with).
pub fn copy_tree(from: &Path, to: &Path) {
    copy_dir(from, to, true);
}

fn copy_dir(from: &Path, to: &Path, top: bool) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            if top && e.file_name() == "index" {
                continue;
            }
            copy_dir(&e.path(), &dest, false);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The workspace's bundled example repository (an spfs filesystem
/// repository; `cargo xtask example-repo` makes it).
pub fn example_repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/origin")
}

/// A repository's address as SPK writes it in messages: `file:///path/`.
pub fn spk_url(repo: &Path) -> String {
    format!("file://{}/", repo.display())
}

/// Creates an empty spfs filesystem repository at `repo` (if there is none).
pub fn new_repo(repo: &Path) -> spk_repo::spfs::SpfsWriter {
    spk_repo::spfs::SpfsWriter::create(repo).unwrap()
}

/// Publishes a minimal valid build into an spfs repository, as SPK leaves
/// it: the spec's payload, its spec tag, and `build` and `run` component
/// tags. `version` is written in its tag folder's form (`1.0.0`).
pub fn write_spec(repo: &Path, name: &str, version: &str, build: &str) {
    let yaml = format!(
        "pkg: {name}/{version}/{build}\napi: v0/package\nbuild:\n  options:\n    - var: os/linux\ninstall:\n  components:\n    - name: build\n    - name: run\n"
    );
    spk_repo::publish::publish(&new_repo(repo), &yaml, &["build", "run"]).unwrap();
}

/// Removes a published build: its spec tag and component tags (and tag
/// folders left empty, so a version without builds disappears).
pub fn remove_spec(repo: &Path, name: &str, version: &str, build: &str) {
    spk_repo::publish::unpublish(&new_repo(repo), name, version, build).unwrap();
}

/// Produces raw messages with an independent producer (for payloads our
/// own tools would refuse to send).
pub fn produce_raw_on(bootstrap: &str, topic: &str, records: &[(&str, &[u8])]) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for (key, payload) in records {
        p.send(BaseRecord::to(topic).key(*key).payload(*payload))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
}

pub fn produce_raw(topic: &str, records: &[(&str, &[u8])]) {
    produce_raw_on(&bootstrap(), topic, records)
}

/// A running `spk repo indexer`; killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct IndexerProc {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl IndexerProc {
    pub fn start(site: &Site, name: &str, env: &[(&str, &str)]) -> IndexerProc {
        let log = site
            .path()
            .join(format!("indexer-{name}-{}.log", unique("run")));
        let f = std::fs::File::create(&log).unwrap();
        let child = site
            .spk()
            .args(["-v", "repo", "indexer", "--name", name])
            .envs(env.iter().copied())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        IndexerProc { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                Instant::now() < deadline,
                "indexer did not stop on SIGTERM; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for IndexerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `topic` until a message satisfying `pred` arrives.
pub fn wait_for_record_on(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Option<Record> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let recs = read_topic_on(bootstrap, topic, usize::MAX, Duration::from_millis(1500));
        if let Some(r) = recs.into_iter().find(|r| {
            serde_json::from_str(&r.payload)
                .map(|v| pred(&v))
                .unwrap_or(false)
        }) {
            return Some(r);
        }
    }
    None
}

pub fn wait_for_record(
    topic: &str,
    timeout: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Option<Record> {
    wait_for_record_on(&bootstrap(), topic, timeout, pred)
}

/// `spk repo ls --repo R --format json [--no-index]` for every package,
/// as `package -> version -> [build]`.
pub fn ls_all(
    site: &Site,
    repo: &str,
    no_index: bool,
) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut args = vec!["repo", "ls", "--repo", repo, "--format", "json"];
    if no_index {
        args.push("--no-index");
    }
    let names_out = site.spk().args(&args).output().unwrap();
    assert!(
        names_out.status.success(),
        "ls failed: {}",
        String::from_utf8_lossy(&names_out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&names_out.stdout).unwrap();
    let mut out = BTreeMap::new();
    for p in v["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_string();
        let mut a = args.clone();
        a.push(&name);
        let o = site.spk().args(&a).output().unwrap();
        assert!(
            o.status.success(),
            "ls {name} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let pv: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut versions = BTreeMap::new();
        for pkg in pv["packages"].as_array().unwrap() {
            for ver in pkg["versions"].as_array().unwrap() {
                let vname = ver["version"].as_str().unwrap().to_string();
                let mut a2 = a.clone();
                let id = format!("{name}/{vname}");
                a2.pop();
                a2.push(&id);
                let bo = site.spk().args(&a2).output().unwrap();
                let bv: serde_json::Value = serde_json::from_slice(&bo.stdout).unwrap();
                let mut builds: Vec<String> = bv["packages"][0]["versions"][0]["builds"]
                    .as_array()
                    .map(|b| {
                        b.iter()
                            .map(|x| x["build"].as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                builds.sort();
                versions.insert(vname, builds);
            }
        }
        out.insert(name, versions);
    }
    out
}

/// What an spfs repository holds: `package -> version -> [build]`, read
/// from its tag folders (`tags/spk/spec/<name>/<version>/<build>.tag`)
/// directly, without the code under test. Versions are their folders'
/// names with spfs's `..` read back as `+`; versions without builds and
/// packages without versions are left out.
pub fn repo_contents(repo: &Path) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let dirs = |p: &Path| -> Vec<std::fs::DirEntry> {
        match std::fs::read_dir(p) {
            Ok(rd) => rd.map(|e| e.unwrap()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("cannot read {}: {e}", p.display()),
        }
    };
    let mut out = BTreeMap::new();
    for p in dirs(&repo.join("tags/spk/spec")) {
        if !p.file_type().unwrap().is_dir() {
            continue;
        }
        let mut versions = BTreeMap::new();
        for v in dirs(&p.path()) {
            if !v.file_type().unwrap().is_dir() {
                continue; // a recipe tag `<version>.tag`
            }
            let mut builds: Vec<String> = dirs(&v.path())
                .into_iter()
                .filter_map(|b| {
                    b.file_name()
                        .to_string_lossy()
                        .strip_suffix(".tag")
                        .map(str::to_string)
                })
                .collect();
            builds.sort();
            if !builds.is_empty() {
                versions.insert(v.file_name().to_string_lossy().replace("..", "+"), builds);
            }
        }
        if !versions.is_empty() {
            out.insert(p.file_name().to_string_lossy().into_owned(), versions);
        }
    }
    out
}
