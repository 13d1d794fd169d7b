//! Runs `spk messaging check-config` over every config in `tests/configs/`
//! and holds it to the expectations written in each file's header comments
//! (see tests/configs/README.md).

use std::path::{Path, PathBuf};

use assert_cmd::Command;

#[derive(Debug, Default)]
struct Expect {
    exit: i32,
    diags: Vec<(String, String, String)>,
    texts: Vec<String>,
    forbid: Vec<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/configs")
}

fn parse_expect(text: &str) -> Expect {
    let mut e = Expect::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# ") else {
            continue;
        };
        if let Some(v) = rest.strip_prefix("expect-exit:") {
            e.exit = v.trim().parse().expect("expect-exit is a number");
        } else if let Some(v) = rest.strip_prefix("expect-text:") {
            e.texts.push(v.trim().to_string());
        } else if let Some(v) = rest.strip_prefix("expect:") {
            let (head, text) = v.split_once('~').expect("expect: SEVERITY PATH ~ TEXT");
            let head = head.trim();
            let (sev, path) = head.split_once(' ').unwrap_or((head, ""));
            e.diags.push((
                sev.to_string(),
                path.trim().to_string(),
                text.trim().to_string(),
            ));
        } else if let Some(v) = rest.strip_prefix("forbid:") {
            e.forbid.push(v.trim().to_string());
        } else if let Some(v) = rest.strip_prefix("env:") {
            let (k, val) = v.trim().split_once('=').expect("env: NAME=VALUE");
            e.env.push((k.to_string(), val.to_string()));
        } else if let Some(v) = rest.strip_prefix("args:") {
            e.args.extend(v.split_whitespace().map(String::from));
        }
    }
    e
}

fn spk(file: &Path, e: &Expect, format: &str) -> (i32, String) {
    let mut cmd = Command::cargo_bin("spk").expect("spk binary");
    for (k, _) in std::env::vars() {
        if k.starts_with("SPK_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(e.env.iter().map(|(k, v)| (k, v)));
    cmd.arg("--config")
        .arg(file)
        .args(["messaging", "check-config", "--format", format])
        .args(&e.args);
    let out = cmd.output().expect("run spk");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn every_config_in_the_corpus() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("tests/configs exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("toml" | "yaml" | "json")
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 15, "corpus went missing: {files:?}");
    let mut failures = Vec::new();
    for f in &files {
        let e = parse_expect(&std::fs::read_to_string(f).expect("read corpus file"));
        let name = f
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .to_string();
        let (code, json_out) = spk(f, &e, "json");
        let (tcode, text_out) = spk(f, &e, "text");
        if code != e.exit || tcode != e.exit {
            failures.push(format!(
                "{name}: exit {code} (json) / {tcode} (text), expected {}\n{text_out}",
                e.exit
            ));
            continue;
        }
        let v: serde_json::Value = match serde_json::from_str(json_out.lines().next().unwrap_or(""))
        {
            Ok(v) => v,
            Err(err) => {
                failures.push(format!("{name}: output is not JSON ({err}): {json_out}"));
                continue;
            }
        };
        assert_eq!(
            v["ok"],
            serde_json::Value::Bool(e.exit == 0),
            "{name}: ok flag"
        );
        let got: Vec<(String, String, String)> = v["diagnostics"]
            .as_array()
            .expect("diagnostics array")
            .iter()
            .map(|d| {
                (
                    d["severity"].as_str().unwrap_or("").to_string(),
                    d["path"].as_str().unwrap_or("").to_string(),
                    d["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let mut unmatched = got.clone();
        for (sev, path, text) in &e.diags {
            match unmatched
                .iter()
                .position(|(s, p, m)| s == sev && p == path && m.contains(text.as_str()))
            {
                Some(i) => {
                    unmatched.remove(i);
                }
                None => failures.push(format!(
                    "{name}: missing {sev} at {path:?} containing {text:?}; got {got:#?}"
                )),
            }
        }
        if !unmatched.is_empty() {
            failures.push(format!("{name}: unexpected diagnostics {unmatched:#?}"));
        }
        for t in &e.texts {
            if !text_out.contains(t.as_str()) {
                failures.push(format!("{name}: text output lacks {t:?}:\n{text_out}"));
            }
        }
        for t in &e.forbid {
            if text_out.contains(t.as_str()) || json_out.contains(t.as_str()) {
                failures.push(format!("{name}: output reveals {t:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_missing_config_file_is_named() {
    let out = Command::cargo_bin("spk")
        .expect("spk binary")
        .args([
            "--config",
            "/nonexistent/spk.toml",
            "messaging",
            "check-config",
        ])
        .output()
        .expect("run spk");
    assert_eq!(out.status.code(), Some(1));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("/nonexistent/spk.toml does not exist"), "{s}");
}

#[test]
fn text_output_is_a_readable_checklist() {
    let out = Command::cargo_bin("spk")
        .expect("spk binary")
        .env_remove("SPK_CONFIG")
        .arg("--config")
        .arg(corpus().join("duplicate-channels.yaml"))
        .args(["messaging", "check-config"])
        .output()
        .expect("run spk");
    let s = String::from_utf8_lossy(&out.stdout);
    let file = corpus().join("duplicate-channels.yaml");
    let f = file.display();
    let expected = [
        format!("config: {f}"),
        "checked: 0 repositories, 2 channels, 0 indexers".to_string(),
        "[x] error   messaging[1].Kafka.name: two channels are named \"kafka\" (messaging[0] and messaging[1])".to_string(),
        format!("              in {f}"),
        "              hint: give each channel a unique name; a channel without `name` is called \"kafka\"".to_string(),
        "[failed] 1 error(s), 0 warning(s), 0 note(s)".to_string(),
        String::new(),
    ]
    .join("\n");
    assert_eq!(s, expected);
}
