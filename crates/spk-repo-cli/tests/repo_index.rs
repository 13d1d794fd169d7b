//! `spk repo index`: summary, spec problems, update, lock, kills, damage.
#![allow(clippy::unwrap_used)]

mod repo_common;

use std::time::{Duration, Instant};

use predicates::prelude::*;
use repo_common::*;
use spk_repo::Index;

#[test]
fn full_generation_prints_a_summary_and_json() {
    let d = repo(3);
    let cfg = config(d.path(), d.path(), "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "full generation: 3 packages, 9 versions, 27 builds, 3 deprecated, 0 skipped",
        ))
        .stderr(predicate::str::contains("no status messages"));
    let out = spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--format", "json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["mode"], "full");
    assert_eq!(v["packages"], 3);
    assert_eq!(v["builds"], 27);
    assert_eq!(v["repo_name"], "origin");
    assert!(v["start"].as_i64().unwrap() > 1_600_000_000);
    // A path not in the config works too, and a file: URL.
    let url = format!("file://{}", d.path().display());
    spk(&cfg)
        .args(["repo", "index", "--repo", &url])
        .assert()
        .success();
}

#[test]
fn spec_problems_warn_count_and_strict_fails() {
    let d = repo(2);
    let cfg = config(d.path(), d.path(), "");
    let bad = d.path().join("packages/pkg000/1.0/CCCCCCCC.yaml");
    std::fs::write(&bad, "pkg: pkg000/1.0/DDDDDDDD\n").unwrap();
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "18 builds, 2 deprecated, 1 skipped",
        ))
        .stderr(
            predicate::str::contains("CCCCCCCC.yaml").and(predicate::str::contains("path says")),
        );
    let before = std::fs::read(index_path(d.path())).unwrap();
    std::fs::write(d.path().join("packages/pkg001/1.0/AAAAAAAA.yaml"), "pkg: [").unwrap();
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--strict"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "2 spec problem(s) with --strict; nothing was written",
        ));
    assert_eq!(std::fs::read(index_path(d.path())).unwrap(), before);
}

#[test]
fn update_without_index_says_full_generation_then_updates() {
    let d = repo(2);
    let cfg = config(d.path(), d.path(), "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--update", "pkg000"])
        .assert()
        .success()
        .stdout(predicate::str::contains("there was no index to update"));
    add(d.path(), "pkg000", "2.0", "AAAAAAAA", false);
    add(d.path(), "pkg001", "2.0", "AAAAAAAA", false);
    spk(&cfg)
        .args([
            "repo",
            "index",
            "--repo",
            "origin",
            "--update",
            "pkg000/2.0",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            ", update: 2 packages, 7 versions, 19 builds",
        ));
    let i = Index::open(&index_path(d.path())).unwrap();
    assert_eq!(i.package("pkg000").unwrap().unwrap().versions.len(), 4);
    assert_eq!(i.package("pkg001").unwrap().unwrap().versions.len(), 3);
}

#[test]
fn bad_repo_arguments_are_clear() {
    let d = repo(1);
    let cfg = config(d.path(), d.path(), "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "nosuch"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "\"nosuch\" is neither a configured repository (configured: origin)",
        ));
    spk(&cfg)
        .args(["repo", "index", "--repo", "/no/such/dir"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not exist"));
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--update", "pkg/1.x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("valid version is"));
}

#[test]
fn a_held_lock_exits_3_naming_the_holder_and_a_dead_holder_is_taken_over() {
    let d = repo(1);
    let cfg = config(d.path(), d.path(), "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success();
    let lock = d.path().join("index/spk/index.v1.spki.lock");
    let me = spk_repo::LockHolder {
        host: spk_repo::lock::host_name(),
        pid: std::process::id(),
        since: "2024-05-01T10:00:00Z".into(),
    };
    std::fs::write(&lock, serde_json::to_string(&me).unwrap()).unwrap();
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains(format!("held by process {} on host", std::process::id()))
                .and(predicate::str::contains("since 2024-05-01T10:00:00Z")),
        );
    assert!(lock.exists(), "a live holder's lock is left alone");
    // The same lock held by a process that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = spk_repo::LockHolder {
        pid: child.id(),
        ..me
    };
    child.wait().unwrap();
    std::fs::write(&lock, serde_json::to_string(&dead).unwrap()).unwrap();
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "took over the index write lock of process {}",
            dead.pid
        )))
        .stderr(predicate::str::contains("is no longer running"));
    assert!(!lock.exists());
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn temp_exists(root: &std::path::Path) -> bool {
    std::fs::read_dir(root.join("index/spk"))
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().contains(".tmp."))
        })
        .unwrap_or(false)
}

#[test]
fn killed_mid_write_leaves_the_old_index_and_a_second_run_exits_3() {
    let d = repo(3);
    let cfg = config(d.path(), d.path(), "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success();
    add(d.path(), "newpkg", "1.0", "AAAAAAAA", false);
    let mut child = spk_std(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .env("SPK_TEST_PAUSE_BEFORE_RENAME_MS", "600000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The new index is written and verified; the writer holds the lock.
    wait_for("the temp index", || temp_exists(d.path()));
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(format!(
            "held by process {}",
            child.id()
        )));
    child.kill().unwrap();
    child.wait().unwrap();
    let i = Index::open(&index_path(d.path())).unwrap();
    assert_eq!(i.len(), 3);
    assert!(i.package("newpkg").unwrap().is_none());
    i.verify_all().unwrap();
    // ls still works; the next run takes the dead writer's lock over and
    // removes its temp file.
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin"])
        .assert()
        .success()
        .stdout("pkg000\npkg001\npkg002\n");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stdout(predicate::str::contains("took over"));
    assert!(!temp_exists(d.path()));
    assert!(Index::open(&index_path(d.path()))
        .unwrap()
        .package("newpkg")
        .unwrap()
        .is_some());
}

#[test]
fn killed_at_any_moment_the_index_is_old_or_new_never_torn() {
    let d = repo(40);
    let cfg = config(d.path(), d.path(), "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success();
    for n in 0..12u64 {
        add(d.path(), &format!("new{n:02}"), "1.0", "AAAAAAAA", false);
        let mut child = spk_std(&cfg)
            .args(["repo", "index", "--repo", "origin"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(n * 7));
        let _ = child.kill();
        child.wait().unwrap();
        let i = Index::open(&index_path(d.path())).unwrap();
        i.verify_all().unwrap();
        assert!(
            i.len() == 40 + n as usize || i.len() == 41 + n as usize,
            "{}",
            i.len()
        );
        // The next run (possibly taking over the dead lock) brings it up to date.
        spk(&cfg)
            .args(["repo", "index", "--repo", "origin"])
            .assert()
            .success();
    }
}

#[test]
fn concurrent_runs_wait_or_exit_3_and_the_index_is_never_torn() {
    let d = repo(20);
    // lock_max_tries = 1: one of two simultaneous runs may exit 3.
    let cfg = config(d.path(), d.path(), "");
    for _ in 0..3 {
        let kids: Vec<_> = (0..2)
            .map(|_| {
                spk_std(&cfg)
                    .args(["repo", "index", "--repo", "origin"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = kids
            .into_iter()
            .map(|k| k.wait_with_output().unwrap())
            .collect();
        let codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap()).collect();
        assert!(codes.contains(&0), "{codes:?}");
        for o in &outs {
            let code = o.status.code().unwrap();
            assert!(
                code == 0 || code == 3,
                "{code}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            if code == 3 {
                assert!(String::from_utf8_lossy(&o.stderr).contains("held by process"));
            }
        }
        Index::open(&index_path(d.path()))
            .unwrap()
            .verify_all()
            .unwrap();
    }
    // With retries both updates land.
    let dir2 = tempfile::tempdir().unwrap();
    let cfg = dir2.path().join("spk.toml");
    std::fs::write(
        &cfg,
        format!(
            "[repositories.origin]\naddress = {:?}\n[repositories.origin.index]\nlock_max_tries = 120\nlock_sleep_seconds = 1\n",
            d.path().display().to_string()
        ),
    )
    .unwrap();
    add(d.path(), "late-a", "1.0", "AAAAAAAA", false);
    add(d.path(), "late-b", "1.0", "AAAAAAAA", false);
    let kids: Vec<_> = ["late-a", "late-b"]
        .iter()
        .map(|p| {
            spk_std(&cfg)
                .args(["repo", "index", "--repo", "origin", "--update", p])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        assert!(k.wait_with_output().unwrap().status.success());
    }
    let i = Index::open(&index_path(d.path())).unwrap();
    assert!(i.package("late-a").unwrap().is_some() && i.package("late-b").unwrap().is_some());
}

#[test]
fn a_corrupted_index_is_a_clear_error_for_ls_and_update_regenerates() {
    let d = repo(2);
    let cfg = config(d.path(), d.path(), "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success();
    let p = index_path(d.path());
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n - 5] ^= 0xff;
    std::fs::write(&p, &b).unwrap();
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin", "pkg001"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("damaged in the section of package pkg001")
                .and(predicate::str::contains("--no-index")),
        );
    std::fs::write(&p, b"not an index at all").unwrap();
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not an SPK index"));
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--update", "pkg000"])
        .assert()
        .success()
        .stdout(predicate::str::contains("the old index could not be read"));
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin"])
        .assert()
        .success()
        .stdout("pkg000\npkg001\n");
}
