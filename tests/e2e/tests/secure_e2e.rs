//! Every command over TLS and SASL, against a real broker: Tansu behind
//! stunnel (TLS), Tansu with `--authentication` (SCRAM users), certificates
//! made at test time. And the failures: each named, with its exit code
//! (7 TLS, 8 SASL), long before the timeouts, secrets never shown.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use spk_e2e::secure::{free_port, Certs, OwnTansu, Stunnel};
use spk_e2e::*;

const BUILD: &str = "3I42H3S6";
const PASSWORD: &str = "pw-Alice-7f3c9e";
const WRONG: &str = "pw-Wrong-0b1d2a";

fn work(name: &str) -> std::path::PathBuf {
    let w = Path::new(&std::env::var("SPK_E2E_WORKDIR").unwrap_or_else(|_| "/tmp".into()))
        .join(unique(name));
    std::fs::create_dir_all(&w).unwrap();
    w
}

/// A site whose one channel reaches `brokers` with `props` (TOML inline
/// table entries), with an indexer for `origin`.
struct Secure {
    site: Site,
    repo: std::path::PathBuf,
    pkg_topic: String,
    idx_topic: String,
}

impl Secure {
    fn new(pkg_topic: &str, idx_topic: &str) -> Secure {
        let site = Site::new();
        let repo = site.path().join("origin");
        copy_tree(&example_repo(), &repo);
        Secure {
            site,
            repo,
            pkg_topic: pkg_topic.into(),
            idx_topic: idx_topic.into(),
        }
    }

    fn configure(&self, brokers: &str, props: &str) {
        self.site.write_config(&format!(
            r#"
[repositories.origin]
use_index = true
address = "origin"
index = {{ update_message_channel = "main", update_event_send_freq_ms = 200 }}

[[messaging]]
kafka = {{ name = "main", brokers = ["{brokers}"], repo_names = ["origin"], package_updates_topic_name = "{p}", index_updates_topic_name = "{i}", message_timeout_ms = 30000, producer_queue_timeout_ms = 1000, index_update_listener_timeout_ms = 30000, index_update_listener_recent_past_duration_ms = 60000, index_update_listener_broker_fetch_timeout_ms = 30000, properties = {{ {props} }} }}

[indexers.main]
message_channel_name = "main"
repo_name = "origin"
heartbeat_freq_ms = 1000
quiet_period_ms = 300
"#,
            p = self.pkg_topic,
            i = self.idx_topic
        ));
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = self
            .site
            .spk()
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        eprintln!(
            "$ spk {}\n-> {:?}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn send(&self, pkg: &str, env: &[(&str, &str)]) -> Output {
        self.run_env(
            &[
                "repo",
                "send-event",
                "--repo",
                "origin",
                "--event",
                "published",
                "-p",
                pkg,
            ],
            env,
        )
    }

    /// Every command that talks to Kafka, over the configured security:
    /// live check, index with status, the Indexer, send-event --wait and
    /// wait-index.
    fn every_command_works(&self, env: &[(&str, &str)]) {
        let out = self.run_env(&["messaging", "check-config", "--connect"], env);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("topic {}", self.pkg_topic)) && text.contains("partition"));

        let since = now();
        let out = self.run_env(&["repo", "index", "--repo", "origin"], env);
        assert_eq!(
            out.status.code(),
            Some(0),
            "index with status over the secured channel"
        );
        let out = self.run_env(
            &[
                "messaging",
                "wait-index",
                "--repo",
                "origin",
                "--since",
                &since.to_string(),
            ],
            env,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "wait-index read the status back"
        );

        let out = self.send(&format!("tls-probe/1.0.0/{BUILD}"), env);
        assert_eq!(out.status.code(), Some(0));

        let log = self.site.path().join("indexer.log");
        let f = std::fs::File::create(&log).unwrap();
        let mut idx = self
            .site
            .spk()
            .args(["-v", "repo", "indexer", "--name", "main"])
            .envs(env.iter().copied())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        write_spec(&self.repo, "secured", "1.0.0", BUILD);
        let out = self.run_env(
            &[
                "repo",
                "send-event",
                "--repo",
                "origin",
                "--event",
                "published",
                "-p",
                &format!("secured/1.0.0/{BUILD}"),
                "--wait",
            ],
            env,
        );
        let _ = idx.kill();
        let _ = idx.wait();
        assert_eq!(
            out.status.code(),
            Some(0),
            "send-event --wait with the Indexer over the secured channel; indexer log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        // The readers of issue 11, over the same security.
        let out = self.run_env(
            &[
                "messaging",
                "tail",
                "--from-beginning",
                "--count",
                "1",
                "--format",
                "json",
            ],
            env,
        );
        assert_eq!(out.status.code(), Some(0), "tail over the secured channel");
        let out = self.run_env(&["messaging", "status", "--repo", "origin"], env);
        assert_eq!(
            out.status.code(),
            Some(0),
            "status over the secured channel"
        );
        let ls = self.run_env(&["repo", "ls", "--repo", "origin", "secured"], env);
        assert!(String::from_utf8_lossy(&ls.stdout).contains("1.0.0"));
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs a failing command; checks its exit code, that its message names
/// `phrase`, and that it ended long before the 30 s timeouts configured.
fn fails_fast(s: &Secure, args: &[&str], env: &[(&str, &str)], code: i32, phrase: &str) -> String {
    let t = Instant::now();
    let out = s.run_env(args, env);
    let took = t.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(code), "{args:?}: {text}");
    assert!(
        text.contains(phrase),
        "{args:?} should say {phrase:?}: {text}"
    );
    assert!(
        took < Duration::from_secs(15),
        "{args:?} took {took:?}: the failure should end it, not the 30 s timeout"
    );
    text
}

#[test]
fn tls_every_command_and_every_failure() {
    let w = work("tls");
    let certs = Certs::make(&w.join("certs"));
    let plain_port = free_port();
    let tls_port = free_port();
    // Tansu advertises the proxy's port: after bootstrap, clients still
    // speak TLS.
    let tansu = OwnTansu::start(&w, "memory://tansu/", plain_port, tls_port, false);
    let plain = format!("127.0.0.1:{plain_port}");
    let pkg_topic = unique("tls-pkgs");
    let idx_topic = unique("tls-idx");
    // Tansu's own admin command: a Kafka client would follow the advertised
    // (TLS) port.
    tansu.admin(&["topic", "create", &pkg_topic, "--partitions", "3"]);
    tansu.admin(&["topic", "create", &idx_topic, "--partitions", "1"]);
    let _good = {
        // Bind the advertised port exactly.
        let s = Stunnel::start_on(&w, &certs.good, &certs.key, tls_port, plain_port);
        assert_eq!(s.port, tls_port);
        s
    };
    let s = Secure::new(&pkg_topic, &idx_topic);
    let ca = certs.ca.display().to_string();
    s.configure(
        &format!("127.0.0.1:{tls_port}"),
        &format!(r#""security.protocol" = "SSL", "ssl.ca.location" = "{ca}""#),
    );
    s.every_command_works(&[]);

    let wrong = Stunnel::start(&w, &certs.wrong_host, &certs.key, plain_port);
    let expired = Stunnel::start(&w, &certs.expired, &certs.key, plain_port);
    let cases: Vec<(String, String, &str)> = vec![
        (
            format!("127.0.0.1:{tls_port}"),
            r#""security.protocol" = "SSL""#.to_string(),
            "not trusted",
        ),
        (
            format!("127.0.0.1:{tls_port}"),
            format!(
                r#""security.protocol" = "SSL", "ssl.ca.location" = "{}""#,
                certs.other_ca.display()
            ),
            "not trusted",
        ),
        (
            wrong.bootstrap(),
            format!(r#""security.protocol" = "SSL", "ssl.ca.location" = "{ca}""#),
            "does not name the host",
        ),
        (
            expired.bootstrap(),
            format!(r#""security.protocol" = "SSL", "ssl.ca.location" = "{ca}""#),
            "has expired",
        ),
        (
            plain.clone(),
            format!(r#""security.protocol" = "SSL", "ssl.ca.location" = "{ca}""#),
            "does not answer TLS",
        ),
        (
            format!("127.0.0.1:{tls_port}"),
            r#""security.protocol" = "PLAINTEXT""#.to_string(),
            "expects TLS",
        ),
    ];
    for (brokers, props, phrase) in &cases {
        s.configure(brokers, props);
        fails_fast(
            &s,
            &[
                "repo",
                "send-event",
                "--repo",
                "origin",
                "--event",
                "published",
                "-p",
                &format!("xx/1.0.0/{BUILD}"),
            ],
            &[],
            7,
            phrase,
        );
        fails_fast(
            &s,
            &["messaging", "check-config", "--connect"],
            &[],
            7,
            phrase,
        );
        fails_fast(&s, &["repo", "index", "--repo", "origin"], &[], 7, phrase);
        fails_fast(&s, &["repo", "indexer", "--name", "main"], &[], 7, phrase);
        fails_fast(
            &s,
            &["messaging", "status", "--repo", "origin"],
            &[],
            7,
            phrase,
        );
        fails_fast(&s, &["messaging", "tail"], &[], 7, phrase);
        fails_fast(
            &s,
            &[
                "messaging",
                "wait-index",
                "--repo",
                "origin",
                "--since",
                "0",
            ],
            &[],
            7,
            phrase,
        );
    }
    drop(tansu);
}

#[test]
fn sasl_scram_over_tls_and_its_failures() {
    let w = work("sasl");
    let certs = Certs::make(&w.join("certs"));
    let port = free_port();
    let tls_port = free_port();
    // Users and topics are made before authentication is switched on:
    // Tansu 0.6 refused to create users under --authentication here.
    let setup = OwnTansu::start(&w, "sqlite://tansu.db", port, port, false);
    let pkg_topic = unique("sasl-pkgs");
    let idx_topic = unique("sasl-idx");
    setup.admin(&["topic", "create", &pkg_topic, "--partitions", "3"]);
    setup.admin(&["topic", "create", &idx_topic, "--partitions", "1"]);
    setup.admin(&[
        "user",
        "create",
        "--mechanism",
        "scram512",
        "alice",
        PASSWORD,
    ]);
    setup.admin(&["user", "create", "--mechanism", "scram256", "bob", PASSWORD]);
    setup.stop();
    let tansu = OwnTansu::start(&w, "sqlite://tansu.db", port, tls_port, true);
    let _tls = Stunnel::start_on(&w, &certs.good, &certs.key, tls_port, port);
    let s = Secure::new(&pkg_topic, &idx_topic);
    let ca = certs.ca.display().to_string();
    let brokers = format!("127.0.0.1:{tls_port}");
    let sasl = |mech: &str, user: &str| {
        format!(
            r#""security.protocol" = "SASL_SSL", "ssl.ca.location" = "{ca}", "sasl.mechanism" = "{mech}", "sasl.username" = "{user}", "sasl.password" = "${{SPK_E2E_PW}}""#
        )
    };
    let good = [("SPK_E2E_PW", PASSWORD)];
    s.configure(&brokers, &sasl("SCRAM-SHA-512", "alice"));
    s.every_command_works(&good);
    s.configure(&brokers, &sasl("SCRAM-SHA-256", "bob"));
    assert_eq!(
        s.send(&format!("bob/1.0.0/{BUILD}"), &good).status.code(),
        Some(0)
    );

    // A wrong password: exit 8, said at once, and no password shown
    // anywhere, not even in debug logs.
    s.configure(&brokers, &sasl("SCRAM-SHA-512", "alice"));
    let bad = [("SPK_E2E_PW", WRONG)];
    let send = [
        "-vv",
        "repo",
        "send-event",
        "--repo",
        "origin",
        "--event",
        "published",
        "-p",
        "xx/1.0.0/3I42H3S6",
    ];
    for args in [
        &send[..],
        &["-vv", "messaging", "check-config", "--connect"],
        &["-vv", "repo", "index", "--repo", "origin"],
        &["-vv", "repo", "indexer", "--name", "main"],
        &[
            "-vv",
            "messaging",
            "wait-index",
            "--repo",
            "origin",
            "--since",
            "0",
        ],
    ] {
        let text = fails_fast(&s, args, &bad, 8, "SASL authentication failed");
        assert!(
            !text.contains(WRONG) && !text.contains(PASSWORD),
            "a password was shown: {text}"
        );
    }
    let json = s.run_env(
        &["messaging", "check-config", "--connect", "--format", "json"],
        &bad,
    );
    let text = String::from_utf8_lossy(&json.stdout);
    assert!(
        !text.contains(WRONG) && text.contains("authentication"),
        "{text}"
    );

    // A mechanism the broker does not offer.
    s.configure(&brokers, &sasl("PLAIN", "alice"));
    fails_fast(&s, &send, &good, 8, "does not offer SASL mechanism");
    // OAUTHBEARER (librdkafka's unsecured tokens): Tansu 0.6 takes the
    // mechanism and refuses the token, so only a failure can be shown.
    s.configure(
        &brokers,
        &format!(
            r#""security.protocol" = "SASL_SSL", "ssl.ca.location" = "{ca}", "sasl.mechanism" = "OAUTHBEARER", "enable.sasl.oauthbearer.unsecure.jwt" = "true", "sasl.oauthbearer.config" = "principal=alice""#
        ),
    );
    fails_fast(&s, &send, &good, 8, "SASL authentication failed");

    // A password written in the file is a warning, and is never printed.
    s.configure(
        &brokers,
        &sasl("SCRAM-SHA-512", "alice").replace("${SPK_E2E_PW}", PASSWORD),
    );
    let out = s.run_env(&["messaging", "check-config", "--format", "json"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("a secret is written in the config file"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
    drop(tansu);
}
