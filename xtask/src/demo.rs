//! `cargo xtask demo`: the main job on an embedded default, on any machine
//! with cargo. Starts `spk messaging dev-broker` (librdkafka's in-memory
//! mock cluster), generates the index of a copy of the bundled example spfs
//! repository `examples/origin` (with its status messages), starts the
//! Indexer, publishes a new build into the copy, sends its package event and
//! waits for the index to catch up, then shows every message that arrived,
//! read back by a plain Kafka consumer; stops everything at the end whatever
//! happened.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::util::{root, run};

const PKG_TOPIC: &str = "spk-package-updates";
const IDX_TOPIC: &str = "spk-index-updates";

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Copies a directory tree; `skip` names entries of `from` itself to leave
/// out.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if skip.iter().any(|s| e.file_name() == *s) {
            continue;
        }
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dest, &[])?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

/// The build the demo publishes: a new zlib version.
const NEW_BUILD: &str = "zlib/1.3.1/KQYBVT4U";
const NEW_SPEC: &str = "pkg: zlib/1.3.1/KQYBVT4U
api: v0/package
build:
  options:
    - var: arch/x86_64
    - pkg: gcc/11.2
install:
  components:
    - name: build
      uses: [run]
    - name: run
      files: [\"*\"]
";

fn step(title: &str) {
    println!("\n==> {title}");
}

pub fn demo() -> Result<()> {
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "build",
            "-p",
            "spk-repo-cli",
        ]),
    )?;
    let spk = root().join("target/debug/spk");
    let dir = root().join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    let repo = dir.join("origin");
    // A copy: the demo publishes into it and indexes it; the committed
    // example stays as it is (an index someone wrote into it is left out).
    copy_tree(&root().join("examples/origin"), &repo, &["index"])?;

    step("spk messaging dev-broker (an in-memory Kafka broker)");
    let mut broker = Command::new(&spk)
        .args([
            "messaging",
            "dev-broker",
            "--no-config",
            "--topic",
            PKG_TOPIC,
            "--topic",
            IDX_TOPIC,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the dev broker")?;
    let stdout = broker.stdout.take().context("dev broker stdout")?;
    let broker = Killed(broker);
    let mut bootstrap = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("   {line}");
        if let Some(b) = line.strip_prefix("bootstrap: ") {
            bootstrap = b.to_string();
        }
        if line == "ready" {
            break;
        }
    }
    if bootstrap.is_empty() {
        bail!("the dev broker did not say where it listens");
    }

    let config = dir.join("spk.toml");
    std::fs::write(
        &config,
        format!(
            r#"[repositories.origin]
use_index = true
address = "origin"
index = {{ update_message_channel = "kafka", update_event_send_freq_ms = 1000 }}

[[messaging]]
kafka = {{ name = "kafka", brokers = ["{first}"], repo_names = ["origin"], package_updates_topic_name = "{PKG_TOPIC}", index_updates_topic_name = "{IDX_TOPIC}" }}

[indexers.origin]
message_channel_name = "kafka"
repo_name = "origin"
heartbeat_freq_ms = 5000
quiet_period_ms = 300
"#,
            first = bootstrap.split(',').next().unwrap_or_default()
        ),
    )?;
    println!("   config written to {}", config.display());
    let spk_cmd = |args: &[&str]| -> Result<()> {
        println!("$ spk {}", args.join(" "));
        let status = Command::new(&spk)
            .arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(&dir)
            .status()?;
        if !status.success() {
            bail!("spk {} failed with {status}", args.join(" "));
        }
        Ok(())
    };

    step("check the config, live");
    spk_cmd(&["messaging", "check-config", "--connect"])?;
    step("generate the index of the example repository (sends index status messages)");
    spk_cmd(&["repo", "index", "--repo", "origin"])?;
    spk_cmd(&["repo", "ls", "--repo", "origin"])?;

    step("start the Indexer, publish a new build, and wait until the index has it");
    let indexer = Killed(
        Command::new(&spk)
            .arg("--config")
            .arg(&config)
            .args(["repo", "indexer", "--name", "origin"])
            .current_dir(&dir)
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    // Published as SPK publishes a build: its spec as a payload, the spec
    // tag, one tag per component.
    let writer = spk_repo::spfs::SpfsWriter::create(&repo)?;
    let tag = spk_repo::publish::publish(&writer, NEW_SPEC, &["build", "run"])?;
    println!("   published {NEW_BUILD} into {} ({tag})", repo.display());
    spk_cmd(&[
        "repo",
        "send-event",
        "--repo",
        "origin",
        "--event",
        "published",
        "--package",
        NEW_BUILD,
        "--wait",
    ])?;
    spk_cmd(&["repo", "ls", "--repo", "origin", "zlib"])?;
    spk_cmd(&["repo", "show", "--repo", "origin", NEW_BUILD])?;
    drop(indexer);

    step("the messages that arrived (read back by a plain Kafka consumer)");
    for topic in [IDX_TOPIC, PKG_TOPIC] {
        println!("-- topic {topic}");
        for (p, o, key, payload) in read_all(&bootstrap, topic)? {
            println!("   [{p}:{o}] key={key} {payload}");
        }
    }
    drop(broker);
    step("done: the dev broker is stopped; files are in target/demo");
    Ok(())
}

fn read_all(bootstrap: &str, topic: &str) -> Result<Vec<(i32, i64, String, String)>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "xtask-demo-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    for t in md.topics() {
        for p in t.partitions() {
            let (low, high) = c.fetch_watermarks(topic, p.id(), Duration::from_secs(5))?;
            remaining += high - low;
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    c.assign(&tpl)?;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (out.len() as i64) < remaining && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push((
                m.partition(),
                m.offset(),
                m.key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default(),
                m.payload()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default(),
            ));
        }
    }
    out.sort_by_key(|r| (r.0, r.1));
    Ok(out)
}
