//! A secret given to librdkafka through `${VAR}` never appears anywhere a
//! user could see it: stdout and stderr of every command that builds a
//! client, at the most verbose log level (librdkafka's own log lines
//! included), for failures as well as dry runs. The secret comes from the
//! child process's environment, as on a site (no `set_var` here).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use assert_cmd::Command;

const SECRET: &str = "hunter9-correct-horse-battery";

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    spk_repo::spfs::SpfsWriter::create(dir.path().join("origin")).unwrap();
    let toml = format!(
        r#"
[repositories.origin]
address = "{repo}"
use_index = true

[[messaging]]
kafka = {{ name = "kafka", brokers = ["127.0.0.1:1"], package_updates_topic_name = "p", index_updates_topic_name = "i", repo_names = ["origin"], message_timeout_ms = 1500, producer_queue_timeout_ms = 500, index_update_listener_broker_fetch_timeout_ms = 1500, properties = {{ "security.protocol" = "SASL_PLAINTEXT", "sasl.mechanism" = "PLAIN", "sasl.username" = "spk", "sasl.password" = "${{SPK_SECRET_UNDER_TEST}}", "custom.secret.thing" = "${{SPK_SECRET_UNDER_TEST}}" }} }}
"#,
        repo = dir.path().join("origin").display()
    );
    std::fs::write(dir.path().join("spk.toml"), toml).unwrap();
    dir
}

/// Runs `spk -vv ARGS` with the secret in the environment; everything it
/// printed.
fn run(dir: &tempfile::TempDir, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::cargo_bin("spk")
        .unwrap()
        .env_clear()
        .env("SPK_SECRET_UNDER_TEST", SECRET)
        .env("RUST_LOG", "trace")
        .current_dir(dir.path())
        .arg("--config")
        .arg(dir.path().join("spk.toml"))
        .arg("-vv")
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn no_command_shows_a_secret_from_the_environment() {
    let dir = site();
    let pkg = ["--package", "my-pkg/1.0.0/3I42H3S6"];
    let cases: Vec<Vec<&str>> = vec![
        // librdkafka refuses the unknown property, quoting values.
        [
            &[
                "repo",
                "send-event",
                "--repo",
                "origin",
                "--event",
                "published",
            ][..],
            &pkg[..],
        ]
        .concat(),
        [
            &[
                "repo",
                "send-event",
                "--repo",
                "origin",
                "--event",
                "published",
                "--dry-run",
                "--format",
                "json",
            ][..],
            &pkg[..],
        ]
        .concat(),
        vec!["messaging", "check-config", "--format", "json"],
        vec![
            "messaging",
            "check-config",
            "--connect",
            "--timeout-ms",
            "1000",
        ],
        vec![
            "messaging",
            "wait-index",
            "--repo",
            "origin",
            "--format",
            "json",
        ],
        vec!["repo", "index", "--repo", "origin", "--format", "json"],
    ];
    for args in &cases {
        let (code, text) = run(&dir, args);
        assert!(!text.is_empty(), "{args:?} printed nothing at all");
        assert!(
            !text.contains(SECRET) && !text.contains("hunter9"),
            "{args:?} (exit {code:?}) showed the secret:\n{text}"
        );
    }
}

#[test]
fn the_secret_really_reaches_the_client() {
    // Without the unknown property the config is accepted, so the runs above
    // did read the variable: a send with it gets as far as the network.
    let dir = site();
    let cfg = std::fs::read_to_string(dir.path().join("spk.toml")).unwrap();
    std::fs::write(
        dir.path().join("spk.toml"),
        cfg.replace(
            ", \"custom.secret.thing\" = \"${SPK_SECRET_UNDER_TEST}\"",
            "",
        ),
    )
    .unwrap();
    let (code, text) = run(
        &dir,
        &[
            "repo",
            "send-event",
            "--repo",
            "origin",
            "--event",
            "published",
            "--package",
            "my-pkg/1.0.0/3I42H3S6",
        ],
    );
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("127.0.0.1:1"),
        "the send reached for the broker:\n{text}"
    );
    assert!(!text.contains(SECRET), "{text}");
    // And with the variable unset, the error names it (so it was needed).
    let out = Command::cargo_bin("spk")
        .unwrap()
        .env_clear()
        .arg("--config")
        .arg(dir.path().join("spk.toml"))
        .args(["messaging", "check-config"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("SPK_SECRET_UNDER_TEST is not set"), "{s}");
}
