//! `spk messaging dev-broker`: its first line gives a bootstrap address that
//! real clients (our own `spk`, an independent rdkafka consumer) use.

mod kafka_common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use kafka_common::*;

struct Running {
    child: Child,
    bootstrap: String,
    lines: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(site: &Site, extra: &[&str]) -> Running {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("spk"))
        .current_dir(site.dir.path())
        .arg("--config")
        .arg(site.config())
        .args(["messaging", "dev-broker"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dev-broker");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let done = line == "ready";
        lines.push(line);
        if done {
            break;
        }
    }
    let bootstrap = lines
        .first()
        .and_then(|l| l.strip_prefix("bootstrap: "))
        .expect("first line is `bootstrap: ...`")
        .to_string();
    Running {
        child,
        bootstrap,
        lines,
    }
}

#[test]
fn serves_configured_topics_and_stops_on_sigterm() {
    // The config names the topics; its brokers are rewritten once known.
    let placeholder = Site::new("127.0.0.1:1", "");
    let mut dev = start(&placeholder, &["--partitions", "2"]);
    assert!(
        dev.lines.contains(&format!("topic: {PKG} partitions: 2")),
        "{:?}",
        dev.lines
    );
    assert!(
        dev.lines.contains(&format!("topic: {IDX} partitions: 2")),
        "{:?}",
        dev.lines
    );

    let site = Site::new(&dev.bootstrap, "");
    let out = site.spk(&[
        "repo",
        "send-event",
        "-r",
        "origin",
        "--event",
        "published",
        "-p",
        "my-pkg/1.0.0/src",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = site.spk(&["messaging", "check-config", "--connect"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "topic {PKG} (package_updates_topic_name): 2 partition(s)"
        )),
        "{}",
        out.stdout
    );

    let status = Command::new("kill")
        .args(["-TERM", &dev.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = dev.child.wait().expect("wait");
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn port_gives_a_fixed_bootstrap_address() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let placeholder = Site::new("127.0.0.1:1", "");
    let dev = start(
        &placeholder,
        &["--no-config", "--topic", PKG, "--port", &port.to_string()],
    );
    assert_eq!(dev.bootstrap, format!("127.0.0.1:{port}"));
    let site = Site::new(&dev.bootstrap, "");
    let out = site.spk(&[
        "repo",
        "send-event",
        "-r",
        "origin",
        "--event",
        "published",
        "-p",
        "my-pkg/1.0.0/src",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let read = read_all(&dev.bootstrap, PKG, 1);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].key, "my-pkg");
}
