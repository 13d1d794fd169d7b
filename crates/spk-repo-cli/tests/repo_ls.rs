//! `spk repo ls` and `spk repo show`: the same answer from the index and
//! from the spfs repository.
#![allow(clippy::unwrap_used)]

mod repo_common;

use predicates::prelude::*;
use repo_common::*;

fn run(cfg: &std::path::Path, cmd: &str, args: &[&str]) -> (i32, String, String) {
    let out = spk(cfg)
        .args(["repo", cmd, "--repo", "origin"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn ls(cfg: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    run(cfg, "ls", args)
}

#[test]
fn ls_is_equal_with_and_without_the_index() {
    let d = repo(3);
    let cfg = config(d.path(), d.path(), "");
    // A spec that is not a build spec: skipped by both.
    put_spec(d.path(), "spk/spec/pkg002/1.9.0/CCCCCCCC", b"pkg: nope");
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success();
    for q in [
        &[][..],
        &["pkg000"],
        &["pkg000/1.0"],
        &["pkg000/1.0.0"],
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
    // Versions as listed (normalised), highest first.
    assert_eq!(
        ls(&cfg, &["pkg000"]).1,
        "pkg000/1.10.0\npkg000/1.9.0\npkg000/1.0.0\n"
    );
    assert_eq!(
        ls(&cfg, &["pkg000/1.0"]).1,
        "pkg000/1.0.0/src\npkg000/1.0.0/AAAAAAAA\npkg000/1.0.0/BBBBBBBB  (deprecated)\n"
    );
    // JSON adds each build's published components.
    let json: serde_json::Value =
        serde_json::from_str(&ls(&cfg, &["pkg000/1.0", "--format", "json"]).1).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"packages": [{"name": "pkg000", "versions": [{"version": "1.0.0", "builds": [
            {"build": "src", "deprecated": false, "components": ["src"]},
            {"build": "AAAAAAAA", "deprecated": false, "components": ["build", "run"]},
            {"build": "BBBBBBBB", "deprecated": true, "components": ["build", "run"]}]}]}]})
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
        serde_json::json!({"packages": [{"name": "pkg001", "versions": [{"version": "1.10.0"}, {"version": "1.9.0"}, {"version": "1.0.0"}]}]})
    );
    let (code, _, err) = ls(&cfg, &["pkg001/7"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("has no version 7") && err.contains("it has 1.10.0, 1.9.0, 1.0.0"),
        "{err}"
    );
    let (code, _, err) = ls(&cfg, &["nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("package nope is not in repository"), "{err}");
    let (_, out, err) = ls(&cfg, &["--no-index", "pkg002/1.9"]);
    assert_eq!(
        out,
        "pkg002/1.9.0/src\npkg002/1.9.0/AAAAAAAA\npkg002/1.9.0/BBBBBBBB\n"
    );
    assert!(
        err.contains("spk/spec/pkg002/1.9.0/CCCCCCCC"),
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

/// A build with build options, ranged requirements, components that use
/// each other, require and embed, and an embedded package.
const RICH: &str = r#"pkg: openexr/3.1.5/EXRAAQ2M
api: v0/package
compat: x.ab
build:
  options:
    - var: arch/x86_64
    - var: debug/off
      choices: ["on", "off"]
      inheritance: StrongForBuildOnly
    - var: cuda/11.8
      required: true
    - pkg: gcc/11.2
    - pkg: zlib/1.2
  script:
    - make install
install:
  requirements:
    - pkg: zlib/>=1.2.11,<2
    - pkg: imath:run/Binary:3.1
      include: IfAlreadyPresent
    - pkg: python/~3.9.0
      prereleasePolicy: IncludeAll
    - var: arch/x86_64
  components:
    - name: build
      uses: [run]
      requirements:
        - pkg: gcc/~11.2
    - name: run
      files: ["*"]
      embedded:
        - openexr-tools:run/3.1.5
    - name: docs
  embedded:
    - pkg: openexr-tools/3.1.5/embedded
      install:
        requirements:
          - var: openexr.cuda/11.8
        components:
          - name: run
"#;

#[test]
fn show_is_equal_with_and_without_the_index() {
    let d = repo(1);
    let cfg = config(d.path(), d.path(), "");
    spk_repo::publish::publish(&writer(d.path()), RICH, &["build", "run", "docs"]).unwrap();
    spk(&cfg)
        .args(["repo", "index", "--repo", "origin"])
        .assert()
        .success()
        .stdout(predicate::str::contains("0 skipped"));
    let id = "openexr/3.1.5/EXRAAQ2M";

    // Text: equal but for where it was read from.
    let (code, with, err) = run(&cfg, "show", &[id]);
    assert_eq!(code, 0, "{err}");
    let (code, without, err) = run(&cfg, "show", &[id, "--no-index"]);
    assert_eq!(code, 0, "{err}");
    let (head_with, body_with) = with.split_once('\n').unwrap();
    let (head_without, body_without) = without.split_once('\n').unwrap();
    assert_eq!(
        head_with,
        format!("{id}   (from the index {})", index_path(d.path()).display())
    );
    assert_eq!(
        head_without,
        format!(
            "{id}   (from the repository file://{}/)",
            d.path().display()
        )
    );
    assert_eq!(body_with, body_without);
    for want in [
        "  deprecated: no\n",
        "  compat: x.ab\n",
        "    var arch = \"x86_64\"\n",
        "    var debug = \"off\" inheritance StrongForBuildOnly\n",
        "    var cuda = \"11.8\" required inheritance Strong\n",
        "    pkg gcc = \"11.2.0\"\n",
        "    pkg zlib/<2.0.0,>=1.2.11\n",
        "    pkg imath:{run}/Binary:3.1.0 include IfAlreadyPresent\n",
        "    pkg python/~3.9.0 prerelease IncludeAll\n",
        "  published components: build, run, docs\n",
        "    build (uses run)\n      requires pkg gcc/~11.2\n",
        "    run\n      embeds openexr-tools/3.1.5 :{run}\n",
        "    docs\n",
        "  embedded package openexr-tools/3.1.5/embedded\n    requires var openexr.cuda = \"11.8\"\n",
        "    component build\n    component run\n",
    ] {
        assert!(body_with.contains(want), "{want:?} missing in:\n{with}");
    }

    // JSON: the same build from both.
    let json = |args: &[&str]| -> serde_json::Value {
        let (code, out, err) = run(&cfg, "show", args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let with = json(&[id, "--format", "json"]);
    let without = json(&[id, "--format", "json", "--no-index"]);
    assert_eq!(with["package"], "openexr");
    assert_eq!(with["build"], without["build"]);
    assert_ne!(with["source"], without["source"]);
    let b = &with["build"];
    assert_eq!(b["build"], serde_json::json!({"digest": "EXRAAQ2M"}));
    assert_eq!(
        b["published_components"],
        serde_json::json!(["build", "run", "docs"])
    );
    assert_eq!(b["build_options"].as_array().unwrap().len(), 5);
    assert_eq!(b["runtime_requirements"].as_array().unwrap().len(), 4);
    assert_eq!(b["component_specs"].as_array().unwrap().len(), 3);
    assert_eq!(b["embedded"][0]["ident"], "openexr-tools/3.1.5/embedded");

    // A build that is not there: the same error from both, naming what is.
    for extra in [&[][..], &["--no-index"]] {
        let mut a = vec!["openexr/3.1.5/ZZZZZZZZ"];
        a.extend(extra);
        let (code, _, err) = run(&cfg, "show", &a);
        assert_eq!(code, 1);
        assert!(
            err.contains("has no build ZZZZZZZZ") && err.contains("it has EXRAAQ2M"),
            "{err}"
        );
    }
}
