//! The synthetic repository of `cargo xtask gen-repo` against SPK 0.44.0
//! itself: SPK must list exactly the builds (and deprecation) of the
//! generator's truth, index it with no errors but the builds the truth says
//! it skips, and its own index must decode to the truth, field by field.
//!
//! This is what makes the truth trustworthy as the expected output of our
//! spec parser and index generator: it is checked here against SPK's own
//! reading of the same files.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use spk_interop::gen_repo as generate;

/// SPK pointed at `repo` as `origin` through a private config directory,
/// with no inherited SPFS_/SPK_ variables.
struct Spk {
    repo: PathBuf,
    home: tempfile::TempDir,
}

impl Spk {
    fn new(repo: &Path) -> Spk {
        Spk {
            repo: repo.to_path_buf(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        spk_interop::spk_real_cmd(&self.repo, self.home.path())
            .args(args)
            .output()
            .expect("SPK runs")
    }
}

/// A version's base parts without trailing zeros, and its tags: SPK's
/// equality, for comparing listed versions (printed as the spec writes
/// them) with the truth's (normalised).
fn version_key(text: &str) -> String {
    let (base, tags) = match text.find(['-', '+']) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let mut parts: Vec<&str> = base.split('.').collect();
    while parts.len() > 1 && parts.last() == Some(&"0") {
        parts.pop();
    }
    format!("{}{tags}", parts.join("."))
}

fn version_text(v: &Value) -> String {
    let parts: Vec<String> = v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let tags = |k: &str| -> String {
        v.get(k)
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .map(|i| format!("{}.{}", i["name"].as_str().unwrap(), i["number"]))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let mut s = parts.join(".");
    let (pre, post) = (tags("pre"), tags("post"));
    if !pre.is_empty() {
        s = format!("{s}-{pre}");
    }
    if !post.is_empty() {
        s = format!("{s}+{post}");
    }
    s
}

/// How SPK prints a build: `src`, the digest, or `embedded[...]`.
fn build_text(b: &Value) -> String {
    match &b["build"] {
        Value::String(s) if s == "source" => "src".into(),
        Value::Object(m) if m.contains_key("digest") => m["digest"].as_str().unwrap().into(),
        Value::Object(m) if m.contains_key("embedded") => {
            let p = &m["embedded"];
            let comps: Vec<&str> = p["components"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            let set = if comps.len() == 1 {
                format!(":{}", comps[0])
            } else {
                format!(":{{{}}}", comps.join(","))
            };
            format!(
                "embedded[{}{set}/{}/{}]",
                p["pkg_name"].as_str().unwrap(),
                p["version_str"].as_str().unwrap(),
                p["build_str"].as_str().unwrap()
            )
        }
        other => panic!("unexpected build in truth: {other}"),
    }
}

/// Sorts every `published_components` list (SPK writes them in hash order).
fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "published_components" {
                    if let Value::Array(a) = x {
                        a.sort_by_key(|c| c.to_string());
                    }
                }
                normalise(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

/// The first few paths where two JSON values differ.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if out.len() >= 10 || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                differences(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ => out.push(format!("{path}:\n    SPK:   {a}\n    truth: {b}")),
    }
}

#[test]
fn spk_lists_indexes_and_agrees_with_the_truth() {
    check(&[
        "--packages",
        "40",
        "--versions",
        "4",
        "--builds",
        "4",
        "--seed",
        "11",
    ]);
}

/// The benchmark's repository (100,000 builds and their embed stubs):
/// SPK takes minutes and gigabytes to index it, so only by hand:
/// `cargo test -p spk-interop --test genrepo_vs_spk -- --ignored`.
#[test]
#[ignore]
fn at_benchmark_scale() {
    check(&["--packages", "5000", "--versions", "4", "--builds", "5"]);
}

fn check(args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("origin");
    let truth = generate(&repo, args);
    let spk = Spk::new(&repo);
    let packages = truth["index"]["packages"].as_array().unwrap();
    let skipped: BTreeSet<String> = truth["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert!(!skipped.is_empty(), "the truth should skip a few builds");

    // 1. spk ls: every build with a spec, deprecation marked.
    let o = spk.run(&[
        "ls",
        "-r",
        "origin",
        "--no-local-repo",
        "--index-use",
        "disabled",
        "-R",
        "-d",
        "--no-host",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed: BTreeSet<(String, String, String, bool)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let deprecated = l.contains("DEPRECATED");
            let ident = l.split_whitespace().next().unwrap();
            // name/version/build, where an embedded build holds slashes
            let mut it = ident.splitn(3, '/');
            let (n, v, b) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            (n.to_string(), version_key(v), b.to_string(), deprecated)
        })
        .collect();
    let mut expected: BTreeSet<(String, String, String, bool)> = BTreeSet::new();
    let mut deprecated = 0;
    for p in packages {
        let name = p["name"].as_str().unwrap();
        for v in p["versions"].as_array().unwrap() {
            let vt = version_key(&version_text(&v["version"]));
            for b in v
                .get("builds")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let d = b
                    .get("deprecated")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                deprecated += usize::from(d);
                expected.insert((name.to_string(), vt.clone(), build_text(b), d));
            }
        }
    }
    // skipped builds are listed too (SPK's ls needs only the spec tag)
    let listed_not_skipped: BTreeSet<_> = listed
        .iter()
        .filter(|(n, v, b, _)| {
            !skipped.iter().any(|s| {
                s.starts_with(&format!("{n}/")) && s.ends_with(&format!("/{b}")) && {
                    let mid = &s[n.len() + 1..s.len() - b.len() - 1];
                    version_key(&mid.replace("..", "+")) == *v
                }
            })
        })
        .cloned()
        .collect();
    assert_eq!(listed.len(), expected.len() + skipped.len(), "spk ls count");
    let missing: Vec<_> = expected.difference(&listed_not_skipped).take(5).collect();
    let extra: Vec<_> = listed_not_skipped.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "spk ls differs from the truth: missing {missing:?}, extra {extra:?}"
    );
    assert!(deprecated > 0, "the truth should hold deprecated builds");

    // 2. spk info shows a digest build, a src build and an embed stub.
    let mut shown = BTreeSet::new();
    'outer: for p in packages {
        for v in p["versions"].as_array().unwrap() {
            for b in v
                .get("builds")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let kind = match &b["build"] {
                    Value::String(_) => "src",
                    Value::Object(m) if m.contains_key("digest") => "digest",
                    _ => "stub",
                };
                if shown.insert(kind) {
                    let ident = format!(
                        "{}/{}/{}",
                        p["name"].as_str().unwrap(),
                        version_text(&v["version"]),
                        build_text(b)
                    );
                    let o = spk.run(&["info", "-r", "origin", "--no-local-repo", &ident]);
                    assert!(
                        o.status.success(),
                        "spk info {ident}: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
                if shown.len() == 3 {
                    break 'outer;
                }
            }
        }
    }
    assert_eq!(
        shown.len(),
        3,
        "the truth should hold src, digest and stub builds"
    );

    // 3. spk repo index: only the skipped builds are errors.
    let o = spk.run(&["repo", "index", "-r", "origin"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let c = &truth["counts"];
    let summary = format!(
        "consists of {} packages, {} versions, {} builds ({} deprecated, {} errors)",
        c["packages"], c["versions"], c["builds"], c["deprecated"], c["skipped"]
    );
    assert!(err.contains(&summary), "expected {summary:?} in:\n{err}");
    let warnings = err.lines().filter(|l| l.contains("WARN")).count();
    assert_eq!(warnings, skipped.len(), "{err}");

    // 4. SPK's own index decodes to the truth.
    let index = spk_repo::fb::IndexFile::open(repo.join("index/spk/index_v1.fb"))
        .unwrap()
        .decode()
        .unwrap();
    let mut got = serde_json::to_value(&index).unwrap();
    let mut want = truth["index"].clone();
    normalise(&mut got);
    normalise(&mut want);
    let mut diffs = Vec::new();
    differences("index", &got, &want, &mut diffs);
    assert!(
        diffs.is_empty(),
        "SPK's index differs from the truth at:\n{}",
        diffs.join("\n")
    );
}
