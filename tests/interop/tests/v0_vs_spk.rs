//! Our v0 spec parser against SPK 0.44.0 itself: tricky build specs go into
//! a fresh spfs repository, SPK indexes it (`spk repo index`), flatc decodes
//! SPK's index, and every build must equal what `parse_build_spec` makes of
//! the same YAML (printed the way flatc prints it, see
//! `spk_repo::v0::flatc_json`). Global vars are compared too, after dropping
//! names that are package names, as the generator does.
//!
//! The specs are the v0 unit tests' data (`crates/spk-repo/src/v0/testdata`),
//! so a rule that changes in SPK shows up here even when the snapshots there
//! are stale.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use spk_repo::indexed::BuildId;
use spk_repo::spfs::{embed_stub_tag_name, Digest, SpfsWriter};
use spk_repo::v0;

fn testdata(name: &str) -> PathBuf {
    spk_interop::root()
        .join("crates/spk-repo/src/v0/testdata")
        .join(name)
}

/// Publishes each spec at the tag SPK would use, with component tags: the
/// given ones, else `src` for a src build, none for an embed stub, and
/// `build`, `run` otherwise.
fn publish(writer: &SpfsWriter, specs: &[(&str, &[&str])]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (file, comps) in specs {
        let yaml = std::fs::read(testdata(file)).unwrap();
        let parsed = v0::parse_build_spec(&yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
        let folder = match &parsed.build.build {
            b @ BuildId::Embedded(Some(_)) => embed_stub_tag_name(&b.to_string()),
            b => b.to_string(),
        };
        let version = v0::tag_folder(&parsed.build.published_version);
        let base = format!("{}/{version}/{folder}", parsed.name);
        let digest = writer.write_payload(&yaml).unwrap();
        writer
            .create_tag(&format!("spk/spec/{base}"), digest)
            .unwrap();
        let default: &[&str] = match parsed.build.build {
            BuildId::Source => &["src"],
            BuildId::Embedded(_) => &[],
            BuildId::Digest(_) => &["build", "run"],
        };
        let comps = if comps.is_empty() { default } else { comps };
        for c in comps {
            let target = Digest::of(format!("{base}/{c}").as_bytes());
            writer
                .create_tag(&format!("spk/pkg/{base}/{c}"), target)
                .unwrap();
        }
        out.push((file.to_string(), yaml));
    }
    out
}

/// Runs SPK's `repo index` on `repo` and returns its index decoded by flatc.
fn spk_index(tmp: &Path, repo: &Path) -> Value {
    let out = spk_interop::spk_real_cmd(repo, tmp)
        .args(["repo", "index", "-r", "origin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "spk repo index failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Invalid package spec"),
        "SPK refused a spec:\n{stderr}"
    );
    spk_interop::flatc_json(&repo.join("index/spk/index_v1.fb"))
}

fn compare(specs: &[(&str, &[&str])]) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let writer = SpfsWriter::create(&repo).unwrap();
    let published = publish(&writer, specs);
    let index = spk_index(tmp.path(), &repo);

    let packages: BTreeSet<&str> = index["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let mut ours_vars: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (file, yaml) in &published {
        let parsed = v0::parse_build_spec(yaml).unwrap();
        let ours = v0::flatc_json::build_index(&parsed.build);
        let spk = index["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == parsed.name.as_str())
            .flat_map(|p| p["versions"].as_array().unwrap())
            .filter_map(|v| v["builds"].as_array())
            .flatten()
            .find(|b| {
                b["build"] == ours["build"] && b["published_version"] == ours["published_version"]
            });
        match spk {
            None => problems.push(format!("{file}: not in SPK's index")),
            Some(spk) => {
                let mut spk = spk.clone();
                spk.as_object_mut().unwrap().remove("published_components");
                if let Some(d) = spk_interop::first_difference(&spk, &ours) {
                    problems.push(format!("{file}: {d}"));
                }
            }
        }
        for (name, value) in parsed.global_vars {
            if !packages.contains(name.as_str()) {
                ours_vars.entry(name).or_default().insert(value);
            }
        }
    }
    let spk_vars: BTreeMap<String, BTreeSet<String>> = index["global_vars"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| {
                    let values = g["values"].as_array().unwrap();
                    (
                        g["name"].as_str().unwrap().to_string(),
                        values
                            .iter()
                            .map(|v| v.as_str().unwrap().to_string())
                            .collect(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if spk_vars != ours_vars {
        problems.push(format!("global vars: SPK {spk_vars:?}, ours {ours_vars:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The reference's worked example (§5.10) and its embed stub.
#[test]
fn worked_example() {
    compare(&[
        ("my-tool.yaml", &["build", "run", "lib"]),
        ("my-embedded-stub.yaml", &[]),
    ]);
}

/// Every range operator, tags, the comma lookahead, duplicates and order.
#[test]
fn version_ranges() {
    compare(&[("a-ranges.yaml", &[])]);
}

/// Options, requests, components and embedded packages, a src build, an
/// embed stub and global vars, together (one package's options attach to
/// another's requests, and package names filter global vars).
#[test]
fn options_requests_components() {
    compare(&[
        ("b-options.yaml", &[]),
        ("c-requests.yaml", &[]),
        ("d-components.yaml", &[]),
        ("e-remaining.yaml", &[]),
        ("f-src.yaml", &[]),
        ("g-globals.yaml", &[]),
        ("h-pre.yaml", &[]),
        ("i-stub.yaml", &[]),
        ("j-cm-top.yaml", &[]),
        ("k-more.yaml", &[]),
    ]);
}

/// A spec and an embed stub exactly as SPK itself stored them.
#[test]
fn specs_spk_wrote() {
    compare(&[
        ("spk-republished-my-tool.yaml", &["build", "run", "lib"]),
        ("spk-written-stub.yaml", &[]),
    ]);
}
