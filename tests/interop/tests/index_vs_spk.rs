//! Our index against SPK 0.44.0's, for the same spfs repositories:
//! - field by field: SPK's `spk repo index` and ours decoded by flatc with
//!   our schema are equal (order-insensitive only where SPK's order is not
//!   defined: builds within a version, published components);
//! - SPK reads ours: `spk ls` through our index (`--index-use enabled`)
//!   lists exactly what it lists from the repository itself;
//! - the write lock is shared: while we hold it, SPK's `spk repo index`
//!   waits and gives up naming us.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use spk_interop::*;
use spk_repo::indexed::Component;
use spk_repo::spfs::SpfsWriter;

/// Publishes every spec of the v0 rule corpus (the specs the parser's
/// tests were checked against SPK with) into a fresh spfs repository,
/// with published components: `src` for source builds, none for embed
/// stubs (SPK publishes none), and for the others build, run and, for
/// every other spec, the named components it declares (so some builds
/// publish fewer components than they declare).
fn corpus(root: &Path) {
    let w = SpfsWriter::create(root).unwrap();
    let dir = spk_interop::root().join("crates/spk-repo/src/v0/testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut published = 0;
    for (i, f) in files.iter().enumerate() {
        let yaml = std::fs::read_to_string(f).unwrap();
        let Ok(parsed) = spk_repo::v0::parse_build_spec(yaml.as_bytes()) else {
            // A spec SPK itself rejects is part of the corpus too (skipped).
            continue;
        };
        let comps: Vec<String> = match &parsed.build.build {
            spk_repo::indexed::BuildId::Source => vec!["src".into()],
            spk_repo::indexed::BuildId::Embedded(_) => vec![],
            spk_repo::indexed::BuildId::Digest(_) => {
                let mut c = vec!["build".to_string(), "run".to_string()];
                if i % 2 == 0 {
                    for s in &parsed.build.component_specs {
                        if let Component::Named(n) = &s.name {
                            c.push(n.clone());
                        }
                    }
                }
                c
            }
        };
        let comps: Vec<&str> = comps.iter().map(String::as_str).collect();
        spk_repo::publish::publish(&w, &yaml, &comps).unwrap();
        published += 1;
    }
    assert!(published >= 8, "the corpus holds {published} specs");
}

fn our_index(repo: &Path) -> std::path::PathBuf {
    ok(spk_ours_cmd().args(["repo", "index", "--repo"]).arg(repo));
    let p = repo.join("index/spk/index_v1.fb");
    let keep = repo.join("../ours.fb");
    std::fs::copy(&p, &keep).unwrap();
    keep
}

fn spk_index(repo: &Path, home: &Path) -> std::path::PathBuf {
    ok(spk_real_cmd(repo, home).args(["repo", "index", "-r", "origin"]));
    let p = repo.join("index/spk/index_v1.fb");
    let keep = repo.join("../spk.fb");
    std::fs::copy(&p, &keep).unwrap();
    keep
}

/// Both indexes of `repo`, decoded by flatc and normalised, must be equal.
fn assert_same_index(repo: &Path, home: &Path) -> serde_json::Value {
    let ours = our_index(repo);
    let spk = spk_index(repo, home);
    let mut a = flatc_json(&ours);
    let mut b = flatc_json(&spk);
    normalise(&mut a);
    normalise(&mut b);
    if let Some(d) = first_difference(&a, &b) {
        panic!("our index differs from SPK's (flatc JSON, ours vs SPK's) at {d}");
    }
    a
}

/// What SPK lists, recursively, with deprecated builds and components.
fn spk_ls(repo: &Path, home: &Path, index: &str) -> String {
    spk_ls_with(repo, home, index, &["-c"])
}

/// The same without components.
fn spk_ls_plain(repo: &Path, home: &Path, index: &str) -> String {
    spk_ls_with(repo, home, index, &[])
}

fn spk_ls_with(repo: &Path, home: &Path, index: &str, extra: &[&str]) -> String {
    let out = ok(spk_real_cmd(repo, home)
        .args([
            "ls",
            "-r",
            "origin",
            "--no-local-repo",
            "-R",
            "--deprecated",
            "--no-host",
            "--index-use",
            index,
        ])
        .args(extra));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    lines.join("\n")
}

#[test]
fn our_index_of_the_rule_corpus_is_spks() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("origin");
    corpus(&repo);
    let idx = assert_same_index(&repo, &d.path().join("home"));
    assert!(idx["packages"].as_array().unwrap().len() >= 5, "{idx}");
    // SPK reads our index and lists through it what it lists without it.
    our_index(&repo);
    let with = spk_ls(&repo, &d.path().join("home"), "enabled");
    let without = spk_ls(&repo, &d.path().join("home"), "disabled");
    assert!(with.lines().count() >= 8, "{with}");
    assert_eq!(with, without);
}

#[test]
fn our_index_of_the_example_repository_is_spks() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("origin");
    let src = spk_interop::root().join("examples/origin");
    assert!(
        src.join("tags").is_dir(),
        "the example repository is an spfs repository"
    );
    ok(std::process::Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&repo));
    let _ = std::fs::remove_dir_all(repo.join("index"));
    assert_same_index(&repo, &d.path().join("home"));
    our_index(&repo);
    assert_eq!(
        spk_ls(&repo, &d.path().join("home"), "enabled"),
        spk_ls(&repo, &d.path().join("home"), "disabled")
    );
}

#[test]
fn our_index_of_a_generated_repository_is_spks_and_the_truth() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("origin");
    let truth = gen_repo(&repo, &["--packages", "60", "--seed", "7"]);
    let home = d.path().join("home");
    assert_same_index(&repo, &home);
    // SPK lists through our index exactly what it lists from the
    // repository, less the builds without component tags (which SPK's index
    // leaves out, as ours does; SPK cannot list their components at all).
    our_index(&repo);
    let with = spk_ls_plain(&repo, &home, "enabled");
    let skipped: BTreeSet<(String, String)> = truth["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let s = s.as_str().unwrap();
            let (name, rest) = s.split_once('/').unwrap();
            let build = rest.rsplit('/').next().unwrap();
            (name.to_string(), build.to_string())
        })
        .collect();
    let from_repo = spk_ls_plain(&repo, &home, "disabled");
    let without: Vec<&str> = from_repo
        .lines()
        .filter(|l| {
            let name = l.split('/').next().unwrap_or_default();
            let build = l.rsplit('/').next().unwrap_or_default();
            let build = build.split_whitespace().next().unwrap_or_default();
            !skipped.contains(&(name.to_string(), build.to_string()))
        })
        .collect();
    assert!(!skipped.is_empty());
    assert_eq!(with, without.join("\n"));
    // With components, through our index.
    let with_components = spk_ls(&repo, &home, "enabled");
    assert_eq!(with_components.lines().count(), with.lines().count());
    // Our index, decoded by our reader, is the truth the generator recorded,
    // field by field (the model's JSON on both sides).
    let ours = spk_repo::fb::IndexFile::open(repo.join("index/spk/index_v1.fb"))
        .unwrap()
        .decode()
        .unwrap();
    let mut a = serde_json::to_value(&ours).unwrap();
    let mut b = truth["index"].clone();
    for v in [&mut a, &mut b] {
        if let Some(ps) = v
            .get_mut("packages")
            .and_then(serde_json::Value::as_array_mut)
        {
            for p in ps {
                for ver in p
                    .get_mut("versions")
                    .and_then(serde_json::Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(bs) = ver
                        .get_mut("builds")
                        .and_then(serde_json::Value::as_array_mut)
                    {
                        bs.sort_by_cached_key(|x| x.to_string());
                    }
                }
            }
        }
    }
    if let Some(diff) = first_difference(&a, &b) {
        panic!("our index differs from the generator's truth at {diff}");
    }
    assert!(with.lines().count() > 100, "{with}");
}

#[test]
fn spk_waits_for_our_lock_and_names_us() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("origin");
    corpus(&repo);
    let home = d.path().join("home");
    // SPK: one attempt at the lock, then give up.
    std::fs::create_dir_all(home.join("config/spk")).unwrap();
    std::fs::write(
        home.join("config/spk/spk.yaml"),
        "repositories:\n  origin:\n    use_index: true\n    index:\n      lock_max_tries: 1\n      lock_sleep_seconds: 1\n",
    )
    .unwrap();
    // Ours pauses holding the lock, after writing and verifying its index.
    let mut ours = spk_ours_cmd()
        .args(["repo", "index", "--repo"])
        .arg(&repo)
        .env("SPK_TEST_PAUSE_BEFORE_RENAME_MS", "60000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = repo.join("index/spk/index_v1.write_lock");
    let t = Instant::now();
    while !lock.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "our lock never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = spk_real_cmd(&repo, &home)
        .args(["repo", "index", "-r", "origin"])
        .output()
        .unwrap();
    let _ = ours.kill();
    let _ = ours.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "SPK indexed while we held the lock: {err}"
    );
    assert!(
        err.contains(&format!("pid: {}", ours.id())),
        "SPK's error names our pid {}: {err}",
        ours.id()
    );
}
