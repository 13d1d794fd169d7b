//! Shared helpers for the `spk repo` command tests: spfs filesystem
//! repositories built with `SpfsWriter` and `spk_repo::publish`, as SPK
//! leaves them.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use spk_repo::spfs::{Digest, SpfsWriter};

pub const BUILDS: [&str; 3] = ["AAAAAAAA", "BBBBBBBB", "src"];

/// A build spec as SPK publishes it: a binary build with a build option,
/// an install requirement and a run component; a `src` build with nothing
/// but its ident.
pub fn spec(name: &str, version: &str, build: &str, deprecated: bool) -> String {
    let dep = if deprecated { "deprecated: true\n" } else { "" };
    if build == "src" {
        return format!("pkg: {name}/{version}/src\napi: v0/package\n{dep}");
    }
    format!(
        "pkg: {name}/{version}/{build}\napi: v0/package\n{dep}\
         build:\n  options:\n    - var: arch/x86_64\n\
         install:\n  requirements:\n    - pkg: python/3\n  components:\n    - name: build\n    - name: run\n"
    )
}

/// The components a build is published with: `src` for a source build,
/// `build` and `run` otherwise.
pub fn components(build: &str) -> &'static [&'static str] {
    if build == "src" {
        &["src"]
    } else {
        &["build", "run"]
    }
}

/// A writer for the spfs repository at `root` (created if needed).
pub fn writer(root: &Path) -> SpfsWriter {
    SpfsWriter::create(root).unwrap()
}

/// Publishes one build; returns its spec tag (`spk/spec/<name>/<folder>/<build>`).
pub fn add(root: &Path, name: &str, version: &str, build: &str, deprecated: bool) -> String {
    spk_repo::publish::publish(
        &writer(root),
        &spec(name, version, build, deprecated),
        components(build),
    )
    .unwrap()
}

/// Points the spec tag `tag` at a payload holding `bytes` (a broken spec,
/// or one that names another build), with component tags, so that only the
/// spec is wrong.
pub fn put_spec(root: &Path, tag: &str, bytes: &[u8]) {
    let w = writer(root);
    let d = w.write_payload(bytes).unwrap();
    w.write_tag(tag, d).unwrap();
    let pkg = tag.replacen("spk/spec/", "spk/pkg/", 1);
    for c in ["build", "run"] {
        let t = format!("{pkg}/{c}");
        w.write_tag(&t, Digest::of(t.as_bytes())).unwrap();
    }
}

/// Points the spec tag `tag` at a payload that is not in the repository.
pub fn put_dangling_spec(root: &Path, tag: &str) {
    let w = writer(root);
    w.write_tag(tag, Digest::of(format!("missing {tag}").as_bytes()))
        .unwrap();
}

/// A repository of `n` packages `pkg000`..., versions 1.0, 1.10 and 1.9
/// (stored as 1.0.0, 1.10.0, 1.9.0), builds AAAAAAAA, BBBBBBBB and src;
/// 1.0's BBBBBBBB is deprecated.
pub fn repo(n: usize) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let w = writer(d.path());
    for i in 0..n {
        let name = format!("pkg{i:03}");
        for v in ["1.0", "1.10", "1.9"] {
            for (j, b) in BUILDS.iter().enumerate() {
                spk_repo::publish::publish(
                    &w,
                    &spec(&name, v, b, j == 1 && v == "1.0"),
                    components(b),
                )
                .unwrap();
            }
        }
    }
    d
}

pub fn index_path(root: &Path) -> PathBuf {
    root.join("index/spk/index_v1.fb")
}

pub fn lock_path(root: &Path) -> PathBuf {
    root.join("index/spk/index_v1.write_lock")
}

/// The index, opened (which verifies all of it).
pub fn open_index(root: &Path) -> spk_repo::fb::IndexFile {
    spk_repo::fb::IndexFile::open(index_path(root)).unwrap()
}

/// Writes a config naming `root` as repository `origin` (`use_index = true`)
/// and nothing else: no `[[messaging]]`, as a site without Kafka has it (SPK
/// accepts it; the index is written and no status is sent).
pub fn config(dir: &Path, root: &Path, extra: &str) -> PathBuf {
    let p = dir.join("spk.toml");
    std::fs::write(
        &p,
        format!(
            "[repositories.origin]\naddress = {:?}\nuse_index = true\n{extra}\n[repositories.origin.index]\nlock_max_tries = 1\nlock_sleep_seconds = 0\n",
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
