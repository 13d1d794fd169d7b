//! Shared helpers for the `spk repo` command tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub const BUILDS: [&str; 3] = ["AAAAAAAA", "BBBBBBBB", "src"];

pub fn spec(name: &str, version: &str, build: &str, deprecated: bool) -> String {
    format!(
        "pkg: {name}/{version}/{build}\ndeprecated: {deprecated}\n\
         build:\n  options:\n    - var: arch/x86_64\n\
         install:\n  requirements:\n    - pkg: python/3\n  components:\n    - name: run\n"
    )
}

pub fn add(root: &Path, name: &str, version: &str, build: &str, deprecated: bool) -> PathBuf {
    let d = root.join("packages").join(name).join(version);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(format!("{build}.yaml"));
    std::fs::write(&p, spec(name, version, build, deprecated)).unwrap();
    p
}

/// A repository of `n` packages `pkg000`..., versions 1.0, 1.10 and 1.9.
pub fn repo(n: usize) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for i in 0..n {
        let name = format!("pkg{i:03}");
        for v in ["1.0", "1.10", "1.9"] {
            for (j, b) in BUILDS.iter().enumerate() {
                add(d.path(), &name, v, b, j == 1 && v == "1.0");
            }
        }
    }
    d
}

pub fn index_path(root: &Path) -> PathBuf {
    root.join("index/spk/index.v1.spki")
}

/// A channel with no topics: SPK's config requires an indexed repository's
/// `update_message_channel` to exist; with no topic nothing is sent.
pub const CHANNEL: &str = "[[messaging]]\n[messaging.kafka]\nname = \"kafka\"\nbrokers = [\"localhost:9\"]\nrepo_names = [\"origin\"]\n";

/// Writes a config naming `root` as repository `origin` (`use_index = true`).
pub fn config(dir: &Path, root: &Path, extra: &str) -> PathBuf {
    let p = dir.join("spk.toml");
    std::fs::write(
        &p,
        format!(
            "{CHANNEL}[repositories.origin]\naddress = {:?}\nuse_index = true\n{extra}\n[repositories.origin.index]\nlock_max_tries = 1\nlock_sleep_seconds = 0\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    p
}

/// `spk` with a clean environment and an explicit config file, so the
/// machine's /etc/spk.* and SPK_* variables cannot interfere.
pub fn spk(config: &Path) -> Command {
    let mut c = Command::cargo_bin("spk").unwrap();
    c.env_clear().arg("--config").arg(config);
    c
}

/// The same, as a std Command (for spawning and killing).
pub fn spk_std(config: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("spk"));
    c.env_clear().arg("--config").arg(config);
    c
}
