//! `spk repo ls`: the same answer from the index and from the repository.
#![allow(clippy::unwrap_used)]

mod repo_common;

use predicates::prelude::*;
use repo_common::*;

fn ls(cfg: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = spk(cfg)
        .args(["repo", "ls", "--repo", "origin"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn ls_is_equal_with_and_without_the_index() {
    let d = repo(3);
    let cfg = config(d.path(), d.path(), "");
    std::fs::write(
        d.path().join("packages/pkg002/1.9/CCCCCCCC.yaml"),
        "pkg: nope",
    )
    .unwrap();
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success();
    for q in [
        &[][..],
        &["pkg000"],
        &["pkg000/1.0"],
        &["pkg002/1.9.0"],
        &["nope"],
        &["pkg001/7"],
    ] {
        for fmt in ["text", "json"] {
            let mut a: Vec<&str> = q.to_vec();
            a.extend(["--format", fmt]);
            let with = ls(&cfg, &a);
            a.push("--no-index");
            let without = ls(&cfg, &a);
            assert_eq!(with.0, without.0, "{q:?} {fmt}: {with:?} {without:?}");
            assert_eq!(with.1, without.1, "{q:?} {fmt}");
        }
    }
    assert_eq!(ls(&cfg, &[]).1, "pkg000\npkg001\npkg002\n");
    assert_eq!(
        ls(&cfg, &["pkg000"]).1,
        "pkg000/1.0\npkg000/1.9\npkg000/1.10\n"
    );
    assert_eq!(
        ls(&cfg, &["pkg000/1.0"]).1,
        "pkg000/1.0/AAAAAAAA\npkg000/1.0/BBBBBBBB  (deprecated)\npkg000/1.0/src\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ls(&cfg, &["pkg000/1.0", "--format", "json"]).1).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"packages": [{"name": "pkg000", "versions": [{"version": "1.0", "builds": [
            {"build": "AAAAAAAA", "deprecated": false},
            {"build": "BBBBBBBB", "deprecated": true},
            {"build": "src", "deprecated": false}]}]}]})
    );
    let json: serde_json::Value = serde_json::from_str(&ls(&cfg, &["--format", "json"]).1).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"packages": [{"name": "pkg000"}, {"name": "pkg001"}, {"name": "pkg002"}]})
    );
    let json: serde_json::Value =
        serde_json::from_str(&ls(&cfg, &["pkg001", "--format", "json"]).1).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"packages": [{"name": "pkg001", "versions": [{"version": "1.0"}, {"version": "1.9"}, {"version": "1.10"}]}]})
    );
    let (code, _, err) = ls(&cfg, &["pkg001/7"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("has no version 7") && err.contains("it has 1.0, 1.9, 1.10"),
        "{err}"
    );
    let (_, _, err) = ls(&cfg, &["--no-index", "pkg002/1.9"]);
    assert!(
        err.contains("CCCCCCCC.yaml"),
        "the skipped spec is named: {err}"
    );
}

#[test]
fn ls_follows_use_index_and_no_index() {
    let d = repo(1);
    let cfg = config(d.path(), d.path(), "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success();
    // The repository moves on; the index does not.
    add(d.path(), "pkg001", "1.0", "AAAAAAAA", false);
    assert_eq!(ls(&cfg, &[]).1, "pkg000\n");
    assert_eq!(ls(&cfg, &["--no-index"]).1, "pkg000\npkg001\n");
    // use_index = false: the repository is read.
    let dir = tempfile::tempdir().unwrap();
    let off = dir.path().join("spk.toml");
    std::fs::write(
        &off,
        format!(
            "[repositories.origin]\naddress = {:?}\nuse_index = false\n",
            d.path().display().to_string()
        ),
    )
    .unwrap();
    spk(&off)
        .args(["repo", "ls", "--repo", "origin"])
        .assert()
        .success()
        .stdout("pkg000\npkg001\n");
    // A path not in the config uses its index when it has one.
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    spk(&empty)
        .args(["repo", "ls", "--repo", d.path().to_str().unwrap()])
        .assert()
        .success()
        .stdout("pkg000\n");
    spk(&empty)
        .args([
            "repo",
            "ls",
            "--repo",
            d.path().to_str().unwrap(),
            "pkg000/1.0/AAAAAAAA",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("takes PKG or PKG/VERSION"));
}
