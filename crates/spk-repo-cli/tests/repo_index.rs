//! `spk repo index` on spfs filesystem repositories: summary, spec
//! problems, update, lock, kills, damage, where the address comes from.
#![allow(clippy::unwrap_used)]

mod repo_common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use predicates::prelude::*;
use repo_common::*;
use spk_repo::lock::{host_name, lock_content};

/// `file:///path/`, as SPK and `RepoAddress::to_url` write an address.
fn url_of(root: &Path) -> String {
    format!("file://{}/", root.display())
}

#[test]
fn full_generation_prints_a_summary_and_json() {
    let d = repo(3);
    let cfg = config(d.path(), d.path(), "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains(format!("indexed origin ({})", url_of(d.path()))).and(
                predicate::str::contains(
                    "full generation: 3 packages, 9 versions, 27 builds, 3 deprecated, 1 global vars, 0 skipped",
                ),
            ),
        )
        .stderr(predicate::str::contains("no status messages"));
    let i = open_index(d.path());
    assert_eq!(i.package_names(), ["pkg000", "pkg001", "pkg002"]);
    let p = i.package("pkg001").unwrap().unwrap();
    assert_eq!(p.versions.len(), 3);
    assert!(p.versions.iter().all(|v| v.builds.len() == 3));
    let out = spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--format", "json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["mode"], "full");
    assert_eq!(v["packages"], 3);
    assert_eq!(v["versions"], 9);
    assert_eq!(v["builds"], 27);
    assert_eq!(v["deprecated"], 3);
    assert_eq!(v["skipped"], serde_json::json!([]));
    assert_eq!(v["repo_name"], "origin");
    assert_eq!(v["repo_address"], url_of(d.path()));
    assert_eq!(v["index_path"], index_path(d.path()).display().to_string());
    assert!(v["start"].as_i64().unwrap() > 1_600_000_000);
    // A path not in the config works too, and a file: URL.
    let url = format!("file://{}", d.path().display());
    spk(&cfg)
        .args(["repo", "index", "--repo", &url])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "3 packages, 9 versions, 27 builds",
        ));
    spk(&cfg)
        .args(["repo", "index", "--repo", d.path().to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "3 packages, 9 versions, 27 builds",
        ));
}

#[test]
fn spec_problems_warn_count_and_strict_fails() {
    let d = repo(2);
    let cfg = config(d.path(), d.path(), "");
    // A spec tag whose spec names another build.
    put_spec(
        d.path(),
        "spk/spec/pkg000/1.0.0/CCCCCCCC",
        spec("pkg000", "1.0", "DDDDDDDD", false).as_bytes(),
    );
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "18 builds, 2 deprecated, 1 global vars, 1 skipped",
        ))
        .stderr(
            predicate::str::contains("spk/spec/pkg000/1.0.0/CCCCCCCC")
                .and(predicate::str::contains("names another build")),
        );
    let before = std::fs::read(index_path(d.path())).unwrap();
    // Garbage YAML in place of a good build, and a spec tag whose payload
    // is missing.
    put_spec(d.path(), "spk/spec/pkg001/1.0.0/AAAAAAAA", b"pkg: [");
    put_dangling_spec(d.path(), "spk/spec/pkg001/1.9.0/DDDDDDDD");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--strict"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("3 spec problem(s) with --strict; nothing was written")
                .and(predicate::str::contains("spk/spec/pkg000/1.0.0/CCCCCCCC"))
                .and(predicate::str::contains(
                    "spk/spec/pkg001/1.0.0/AAAAAAAA: the build spec is not valid YAML",
                ))
                .and(predicate::str::contains("spk/spec/pkg001/1.9.0/DDDDDDDD"))
                .and(predicate::str::contains("which is missing")),
        );
    assert_eq!(std::fs::read(index_path(d.path())).unwrap(), before);
    // Without --strict the three are skipped and counted.
    let out = spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--format", "json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["builds"], 17);
    let mut tags: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tag"].as_str().unwrap())
        .collect();
    tags.sort_unstable();
    assert_eq!(
        tags,
        [
            "spk/spec/pkg000/1.0.0/CCCCCCCC",
            "spk/spec/pkg001/1.0.0/AAAAAAAA",
            "spk/spec/pkg001/1.9.0/DDDDDDDD"
        ]
    );
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
            ", update: 2 packages (1 kept from the old index), 7 versions, 19 builds",
        ));
    // Only what was named is re-read: pkg001/2.0 waits for its own update.
    let i = open_index(d.path());
    assert_eq!(i.package("pkg000").unwrap().unwrap().versions.len(), 4);
    assert_eq!(i.package("pkg001").unwrap().unwrap().versions.len(), 3);
}

/// Everything an update can meet: new, changed and removed packages,
/// versions, builds and components. The updated index equals a full
/// generation of the same repository.
#[test]
fn an_update_ends_equal_to_a_full_generation() {
    // pkg004 stays as it is: an update copies it from the old index.
    let d = repo(5);
    let root = d.path();
    let cfg = config(root, root, "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success();
    let w = writer(root);
    let publish = |yaml: &str, comps: &[&str]| {
        spk_repo::publish::publish(&w, yaml, comps).unwrap();
    };
    // pkg000: a new version, and a new build of an existing version with a
    // build option value no build had (a new global var value).
    add(root, "pkg000", "2.0", "AAAAAAAA", false);
    publish(
        &spec("pkg000", "1.9", "CCCCCCCC", false).replace("x86_64", "aarch64"),
        &["build", "run"],
    );
    // pkg001: a build deprecated (republished with `deprecated: true`), a
    // build that gains a component, a build that loses one.
    add(root, "pkg001", "1.9", "AAAAAAAA", true);
    publish(
        &spec("pkg001", "1.10", "AAAAAAAA", false),
        &["build", "run", "docs"],
    );
    w.remove_tag("spk/pkg/pkg001/1.10.0/BBBBBBBB/build")
        .unwrap();
    // pkg002: one build removed, and a whole version removed.
    spk_repo::publish::unpublish(&w, "pkg002", "1.0", "AAAAAAAA").unwrap();
    for b in BUILDS {
        spk_repo::publish::unpublish(&w, "pkg002", "1.9", b).unwrap();
    }
    // pkg003: removed entirely; newpkg: new.
    for v in ["1.0", "1.10", "1.9"] {
        for b in BUILDS {
            spk_repo::publish::unpublish(&w, "pkg003", v, b).unwrap();
        }
    }
    add(root, "newpkg", "0.1", "AAAAAAAA", false);
    add(root, "newpkg", "0.1", "src", false);

    spk(&cfg)
        .args([
            "repo",
            "index",
            "--repo",
            "origin",
            "--update",
            "pkg000",
            "--update",
            "pkg001/1.9",
            "--update",
            "pkg001/1.10.0",
            "--update",
            "pkg002/1.0",
            "--update",
            "pkg002/1.9",
            "--update",
            "pkg003",
            "--update",
            "newpkg",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "update: 5 packages (1 kept from the old index), 13 versions, 36 builds, 5 deprecated",
        ));
    let updated = open_index(root).decode().unwrap();
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "full generation: 5 packages, 13 versions, 36 builds, 5 deprecated",
        ));
    let full = open_index(root).decode().unwrap();
    assert_eq!(updated, full);
    // The changes are really there.
    let names: Vec<&str> = full.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["newpkg", "pkg000", "pkg001", "pkg002", "pkg004"]);
    let p1 = &full.packages[2];
    let build = |v: &str, b: &str| {
        p1.versions
            .iter()
            .find(|x| x.version.to_string() == v)
            .unwrap()
            .builds
            .iter()
            .find(|x| x.build.to_string() == b)
            .unwrap()
            .clone()
    };
    assert!(build("1.9.0", "AAAAAAAA").deprecated);
    let comps = |b: &spk_repo::indexed::BuildIndex| -> Vec<String> {
        b.published_components
            .iter()
            .map(|c| c.as_str().to_string())
            .collect()
    };
    assert_eq!(
        comps(&build("1.10.0", "AAAAAAAA")),
        ["build", "run", "docs"]
    );
    assert_eq!(comps(&build("1.10.0", "BBBBBBBB")), ["run"]);
    assert_eq!(full.global_vars["arch"].len(), 2);
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
            "\"nosuch\" is neither a configured repository (configured: origin",
        ));
    spk(&cfg)
        .args(["repo", "index", "--repo", "/no/such/dir"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("/no/such/dir").and(predicate::function(|e: &str| {
                e.matches("No such file or directory").count() == 1
            })),
        );
    let plain = tempfile::tempdir().unwrap();
    spk(&cfg)
        .args(["repo", "index", "--repo", plain.path().to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{} is not an spfs filesystem repository",
            plain.path().display()
        )));
    assert!(!plain.path().join("index").exists());
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--update", "pkg/1.x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("valid version is"));
}

/// The address of a repository named only in spfs's config
/// (`$XDG_CONFIG_HOME/spfs/spfs.toml`), as on an SPK site.
#[test]
fn the_address_comes_from_spfs_config_and_http_remotes_are_refused() {
    let d = repo(2);
    let xdg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(xdg.path().join("spfs")).unwrap();
    std::fs::write(
        xdg.path().join("spfs/spfs.toml"),
        format!(
            "[remote.origin]\naddress = \"file://{}\"\n\n[remote.web]\naddress = \"http://x\"\n",
            d.path().display()
        ),
    )
    .unwrap();
    let cfg = xdg.path().join("spk.toml");
    std::fs::write(&cfg, "").unwrap();
    let out = spk(&cfg)
        .env("XDG_CONFIG_HOME", xdg.path())
        .args(["repo", "index", "--repo", "origin", "--format", "json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["repo_name"], "origin");
    assert_eq!(v["repo_address"], url_of(d.path()));
    assert_eq!(v["packages"], 2);
    assert_eq!(open_index(d.path()).len(), 2);
    // Without spfs's config, the name is unknown.
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("\"origin\" is neither"));
    spk(&cfg)
        .env("XDG_CONFIG_HOME", xdg.path())
        .args(["repo", "index", "--repo", "web"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("http://x").and(predicate::str::contains(
                "only filesystem repositories (file:///...) can be indexed",
            )),
        );
}

/// Sets a file's modification time.
fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// 2024-05-01T10:00:00Z
fn may_first() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_557_600)
}

#[test]
fn a_held_lock_exits_3_naming_the_holder_and_a_dead_holder_is_taken_over() {
    let d = repo(1);
    let cfg = config(d.path(), d.path(), "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success();
    let lock = lock_path(d.path());
    // Held by a live process of this host (this test), as SPK writes it.
    let mine = lock_content(&host_name(), std::process::id());
    std::fs::write(&lock, &mine).unwrap();
    set_mtime(&lock, may_first());
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains(format!(
                "held by process {} on host {}",
                std::process::id(),
                host_name()
            ))
            .and(predicate::str::contains("since 2024-05-01T10:00:00Z"))
            .and(predicate::str::contains(lock.display().to_string()))
            .and(predicate::str::contains("remove the lock file")),
        );
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        mine,
        "a live holder's lock is left alone"
    );
    // The same lock held by a process that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::fs::write(&lock, lock_content(&host_name(), dead)).unwrap();
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "took over the index write lock of process {dead} on host {}",
            host_name()
        )))
        .stderr(predicate::str::contains("is no longer running"));
    assert!(!lock.exists());
    assert_eq!(open_index(d.path()).len(), 1);
}

#[test]
fn a_foreign_lock_exits_3_and_is_left_alone() {
    let d = repo(1);
    // lock_max_tries = 1, lock_sleep_seconds = 0.
    let cfg = config(d.path(), d.path(), "");
    std::fs::create_dir_all(d.path().join("index/spk")).unwrap();
    let lock = lock_path(d.path());
    // Another host's process: whether it lives cannot be known here.
    std::fs::write(&lock, "host: otherhost\npid: 1").unwrap();
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("held by process 1 on host otherhost")
                .and(predicate::str::contains("gave up after 1 attempts")),
        );
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        "host: otherhost\npid: 1"
    );
    assert!(!index_path(d.path()).exists());
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn temp_exists(root: &Path) -> bool {
    std::fs::read_dir(root.join("index/spk"))
        .map(|rd| {
            rd.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("index_v1.fb_being_generated_")
            })
        })
        .unwrap_or(false)
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test-hooks feature (the pause hook); `cargo xtask test` enables it"
)]
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
    assert_eq!(
        std::fs::read_to_string(lock_path(d.path())).unwrap(),
        lock_content(&host_name(), child.id())
    );
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
    let i = open_index(d.path());
    assert_eq!(i.len(), 3);
    assert!(i.package("newpkg").is_none());
    i.decode().unwrap();
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
    assert!(!lock_path(d.path()).exists());
    assert!(open_index(d.path()).package("newpkg").is_some());
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
        let i = open_index(d.path());
        i.decode().unwrap();
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
        assert_eq!(open_index(d.path()).len(), 41 + n as usize);
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
        let i = open_index(d.path());
        assert_eq!(i.len(), 20);
        i.decode().unwrap();
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
    let i = open_index(d.path());
    assert!(i.package("late-a").is_some() && i.package("late-b").is_some());
    assert_eq!(i.len(), 22);
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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
    let good = std::fs::read(&p).unwrap();
    let shown = p.display().to_string();

    // Damage in the section of package pkg001: its name's length points
    // past the end of the file. FlatBuffers verification refuses the file.
    let at = find(&good, b"pkg001").unwrap();
    let mut b = good.clone();
    b[at - 4..at].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin", "pkg001"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains(format!("{shown} is not a valid SPK index"))
                .and(predicate::str::contains("out of bounds"))
                .and(predicate::str::contains("spk repo index --repo"))
                .and(predicate::str::contains("--no-index")),
        );

    // Damage that FlatBuffers accepts but SPK cannot use (a build id of 7
    // characters in pkg001, the last package): named where it is; other
    // packages still list.
    let at = good.windows(8).rposition(|w| w == b"AAAAAAAA").unwrap();
    let mut b = good.clone();
    b[at - 4..at].copy_from_slice(&7u32.to_le_bytes());
    b[at + 7] = 0;
    std::fs::write(&p, &b).unwrap();
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin", "pkg001"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains(format!("{shown} holds data SPK cannot use"))
                .and(predicate::str::contains("at package pkg001"))
                .and(predicate::str::contains("\"AAAAAAA\""))
                .and(predicate::str::contains("--no-index"))
                .and(predicate::function(|e: &str| {
                    e.matches("holds data SPK cannot use").count() == 1
                })),
        );
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin", "pkg000"])
        .assert()
        .success()
        .stdout("pkg000/1.10.0\npkg000/1.9.0\npkg000/1.0.0\n");

    // Not an index at all; empty.
    std::fs::write(&p, b"not an index at all").unwrap();
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains(format!("{shown} is not a valid SPK index"))
                .and(predicate::str::contains("--no-index")),
        );
    std::fs::write(&p, b"").unwrap();
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{shown} is empty (0 bytes)"
        )));
    // The repository itself is fine.
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin", "--no-index"])
        .assert()
        .success()
        .stdout("pkg000\npkg001\n");

    std::fs::write(&p, b"not an index at all").unwrap();
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--update", "pkg000"])
        .assert()
        .success()
        .stdout(predicate::str::contains("the old index could not be read"))
        .stdout(predicate::str::contains(
            "2 packages, 6 versions, 18 builds",
        ));
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin"])
        .assert()
        .success()
        .stdout("pkg000\npkg001\n");
    assert_eq!(open_index(d.path()).decode().unwrap().packages.len(), 2);
}

/// An update never installs an index that holds a package SPK cannot use
/// (a build id SPK would panic on, which FlatBuffers verification accepts):
/// it either re-reads the package from the repository, or fails saying
/// where the damage is and leaves the old file alone; a full generation
/// repairs it.
#[test]
fn an_update_does_not_carry_a_damaged_package_over() {
    let d = repo(2);
    let cfg = config(d.path(), d.path(), "");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success();
    let p = index_path(d.path());
    let mut b = std::fs::read(&p).unwrap();
    let at = b.windows(8).rposition(|w| w == b"AAAAAAAA").unwrap();
    b[at - 4..at].copy_from_slice(&7u32.to_le_bytes());
    b[at + 7] = 0;
    std::fs::write(&p, &b).unwrap();
    let out = spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--update", "pkg000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        let i = open_index(d.path());
        i.decode().unwrap();
        assert!(stdout.contains("2 packages"), "{stdout}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("at package pkg001") && stderr.contains("regenerate it with"),
            "{stderr}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), b, "the old index is left alone");
    }
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "2 packages, 6 versions, 18 builds",
        ));
    open_index(d.path()).decode().unwrap();
}

/// A config holding only a repository with `use_index = true` and no
/// `[[messaging]]` (a site without Kafka, a CI job that only indexes): SPK
/// accepts it, so `repo index` and `repo ls` run, with a note and exit 0. A
/// channel named explicitly that does not exist is a warning, and the index
/// is still written.
#[test]
fn an_index_only_config_is_accepted_with_a_note() {
    let d = repo(1);
    let cfg = config(d.path(), d.path(), "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        !text.contains("messaging"),
        "the fixture must hold no channel: {text}"
    );
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("note: no status messages will be sent")
                .and(predicate::str::contains(
                    "the default index.update_message_channel",
                ))
                .and(predicate::str::contains("error").not())
                .and(predicate::str::contains("warning").not()),
        );
    assert!(index_path(d.path()).exists());
    spk(&cfg)
        .args(["repo", "ls", "--repo", "origin"])
        .assert()
        .success()
        .stdout(predicate::str::contains("pkg000"))
        .stderr(predicate::str::contains("error").not());
    std::fs::remove_file(index_path(d.path())).unwrap();

    // An explicit name that matches no channel: a warning, the work is done.
    let typo = d.path().join("typo.toml");
    std::fs::write(
        &typo,
        format!(
            "[repositories.origin]\naddress = {:?}\nuse_index = true\nindex = {{ update_message_channel = \"kafak\" }}\n",
            d.path().display().to_string()
        ),
    )
    .unwrap();
    spk(&typo)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("warning: no status messages will be sent")
                .and(predicate::str::contains("\"kafak\"")),
        );
    assert!(index_path(d.path()).exists());
    // check-config calls the same config an error.
    spk(&typo)
        .args(["messaging", "check-config"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "update_message_channel \"kafak\" names no channel",
        ));
}

/// Without the `test-hooks` feature the binary has no hooks: a run with
/// the pause variable set does not pause.
#[test]
#[cfg(not(feature = "test-hooks"))]
fn the_installed_binary_has_no_test_hooks() {
    let d = repo(1);
    let cfg = config(d.path(), d.path(), "");
    let began = Instant::now();
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .env("SPK_TEST_PAUSE_BEFORE_RENAME_MS", "60000")
        .timeout(Duration::from_secs(30))
        .assert()
        .success();
    assert!(began.elapsed() < Duration::from_secs(30));
}

/// A repository whose path holds `%`, spaces and non-ASCII: indexed, its
/// address in SPK's form (escaped) reads back as the same path, and the
/// escaped form names the same repository on the command line.
#[test]
fn addresses_with_percent_spaces_and_non_ascii_round_trip() {
    let d = repo(1);
    let odd = d.path().join("my repo 100% ü");
    std::fs::create_dir(&odd).unwrap();
    for entry in std::fs::read_dir(d.path()).unwrap() {
        let p = entry.unwrap().path();
        if p != odd {
            std::fs::rename(&p, odd.join(p.file_name().unwrap())).unwrap();
        }
    }
    let cfg = config(d.path(), &odd, "");
    let out = spk(&cfg)
        .args(["repo", "index", "--repo", "origin", "--format", "json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let url = v["repo_address"].as_str().unwrap().to_string();
    assert!(url.is_ascii() && !url.contains(' '), "{url}");
    assert!(
        url.contains("%25") && url.contains("%20") && url.contains("%C3%BC"),
        "{url}"
    );
    let back = spk_messaging_core::RepoAddress::parse(&url, Path::new("/")).unwrap();
    assert_eq!(back.path(), odd.as_path());
    // The escaped URL and the raw path both name it.
    for r in [url.as_str(), odd.to_str().unwrap()] {
        spk(&cfg)
            .args(["repo", "ls", "--repo", r])
            .assert()
            .success()
            .stdout("pkg000\n");
    }
}
