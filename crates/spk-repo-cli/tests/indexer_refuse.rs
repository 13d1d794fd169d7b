#![allow(clippy::unwrap_used)]
//! `spk repo indexer` refuses to start on a config it cannot serve, with a
//! clear error and a non-zero exit, before touching any broker.

use assert_cmd::Command;

const BASE: &str = r#"
[repositories.origin]
use_index = true
address = "/srv/origin"
index = { update_message_channel = "main" }

[repositories.plain]
address = "/srv/plain"

[repositories.local]
use_index = true
address = "/home/me/.spk"
index = { update_message_channel = "main" }

[[messaging]]
kafka = { name = "main", brokers = ["127.0.0.1:1"], repo_names = ["origin", "plain", "local", "ghost"], package_updates_topic_name = "p", index_updates_topic_name = "i" }

[[messaging]]
kafka = { name = "bare", brokers = ["127.0.0.1:1"], repo_names = ["origin"] }
"#;

fn refuse(indexer_toml: &str, name: &str, expect: &str) {
    refuse_with_spfs(indexer_toml, "", name, expect);
}

/// `spfs_toml`: spfs's own config (`$XDG_CONFIG_HOME/spfs/spfs.toml`),
/// where an SPK site names its repositories.
fn refuse_with_spfs(indexer_toml: &str, spfs_toml: &str, name: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("spk.toml");
    std::fs::write(&f, format!("{BASE}\n{indexer_toml}")).unwrap();
    std::fs::create_dir_all(dir.path().join("spfs")).unwrap();
    std::fs::write(dir.path().join("spfs/spfs.toml"), spfs_toml).unwrap();
    let out = Command::cargo_bin("spk")
        .unwrap()
        .env_remove("SPK_CONFIG")
        .env("XDG_CONFIG_HOME", dir.path())
        .arg("--config")
        .arg(&f)
        .args(["repo", "indexer", "--name", name])
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert!(
        err.contains(expect),
        "{name}: expected {expect:?} in:\n{err}"
    );
}

#[test]
fn unknown_indexer() {
    refuse("", "nope", "no indexer named \"nope\" is configured");
}

#[test]
fn channel_missing() {
    refuse(
        "[indexers.a]\nmessage_channel_name = \"gone\"\nrepo_name = \"origin\"\n",
        "a",
        "channel \"gone\" does not exist",
    );
}

#[test]
fn channel_without_topics() {
    refuse(
        "[indexers.a]\nmessage_channel_name = \"bare\"\nrepo_name = \"origin\"\n",
        "a",
        "has no package_updates_topic_name",
    );
}

#[test]
fn repo_not_in_channel() {
    refuse(
        "[indexers.a]\nmessage_channel_name = \"bare\"\nrepo_name = \"plain\"\n",
        "a",
        "is not in channel \"bare\"'s repo_names",
    );
}

#[test]
fn repo_unknown() {
    refuse(
        "[indexers.a]\nmessage_channel_name = \"main\"\nrepo_name = \"ghost\"\n",
        "a",
        "\"ghost\" is not configured",
    );
}

#[test]
fn repo_without_index() {
    refuse(
        "[indexers.a]\nmessage_channel_name = \"main\"\nrepo_name = \"plain\"\n",
        "a",
        "use_index = false",
    );
}

#[test]
fn local_repo() {
    refuse(
        "[indexers.a]\nmessage_channel_name = \"main\"\nrepo_name = \"local\"\n",
        "a",
        "cannot index the `local` repository",
    );
}

#[test]
fn repo_in_spfs_config_is_not_a_filesystem_repository() {
    // `web` has index settings in the SPK config and its address in spfs's.
    refuse_with_spfs(
        r#"
[repositories.web]
use_index = true
index = { update_message_channel = "webch" }

[[messaging]]
kafka = { name = "webch", brokers = ["127.0.0.1:1"], repo_names = ["web"], package_updates_topic_name = "p", index_updates_topic_name = "i" }

[indexers.a]
message_channel_name = "webch"
repo_name = "web"
"#,
        "[remote.web]\naddress = \"http://x\"\n",
        "a",
        "only filesystem repositories (file:///...) can be indexed",
    );
}
