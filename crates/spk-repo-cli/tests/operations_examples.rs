//! The operations examples (examples/ops) and docs/operations.md are kept
//! true: the systemd unit's and the Kubernetes manifest's command lines are
//! ones this binary accepts (run up to the point where the config decides),
//! the probes use the endpoints and port it serves, and every metric named
//! in the alert rules and the docs is one the Indexer exposes.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use spk_messaging_kafka::metrics::METRIC_NAMES;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Runs `spk ARGS` (without the binary path) with an empty config: a
/// command line clap accepts gets as far as looking up the indexer, and
/// fails there (exit 1) naming it; one it does not accept exits 2.
fn run_with_empty_config(args: &[String]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("spk.toml");
    std::fs::write(&cfg, "").unwrap();
    let out = Command::cargo_bin("spk")
        .unwrap()
        .args(args)
        .env("SPK_CONFIG", &cfg)
        .env_remove("RUST_LOG")
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_accepted(what: &str, args: &[String]) {
    let (code, err) = run_with_empty_config(args);
    assert_eq!(
        code,
        Some(1),
        "{what}: `spk {}` is not accepted: {err}",
        args.join(" ")
    );
    // With --log-format json the error is a JSON log object.
    let message = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| err.clone());
    assert!(
        message.contains("no indexer named \"main\""),
        "{what}: got past argument parsing to the config: {err}"
    );
}

/// `ExecStart=` of the unit, split into words, `%i` as `main`.
fn unit_command() -> Vec<String> {
    let unit = read("examples/ops/spk-indexer@.service");
    let mut section = "";
    let mut exec = None;
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if let Some(v) = line.strip_prefix("ExecStart=") {
            assert_eq!(section, "[Service]", "ExecStart outside [Service]");
            assert!(exec.is_none(), "two ExecStart lines");
            exec = Some(v.to_string());
        }
    }
    let exec = exec.expect("the unit has an ExecStart");
    exec.split_whitespace()
        .map(|w| w.replace("%i", "main"))
        .collect()
}

#[test]
fn the_systemd_unit_runs_a_command_line_spk_accepts() {
    let words = unit_command();
    assert!(
        words[0].starts_with('/') && words[0].ends_with("/spk"),
        "ExecStart names the spk binary by absolute path: {}",
        words[0]
    );
    let args = words[1..].to_vec();
    assert!(args.windows(2).any(|w| w == ["repo", "indexer"]));
    assert!(args.iter().any(|a| a == "--metrics-addr"));
    assert_accepted("systemd unit", &args);
    let unit = read("examples/ops/spk-indexer@.service");
    for key in [
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l.trim() == key), "unit lacks {key}");
    }
}

#[test]
fn the_check_can_fail_a_misspelt_flag_is_refused() {
    let mut args = unit_command()[1..].to_vec();
    for a in &mut args {
        if a == "--metrics-addr" {
            *a = "--metrics-address".into();
        }
    }
    let (code, err) = run_with_empty_config(&args);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn the_kubernetes_manifest_runs_spk_and_probes_its_endpoints() {
    let text = read("examples/ops/spk-indexer-deployment.yaml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(doc["kind"], "Deployment");
    assert_eq!(doc["apiVersion"], "apps/v1");
    let spec = &doc["spec"]["template"]["spec"];
    let labels = &doc["spec"]["template"]["metadata"]["labels"];
    for (k, v) in doc["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&labels[k], v, "the selector matches the pod labels");
    }
    let c = &spec["containers"][0];
    let command: Vec<String> = c["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(command.last().unwrap().ends_with("/spk"), "{command:?}");
    let args: Vec<String> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_accepted("Kubernetes manifest", &args);

    let addr = args
        .iter()
        .position(|a| a == "--metrics-addr")
        .map(|i| args[i + 1].clone())
        .expect("--metrics-addr in args");
    let port: u64 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(port));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"].as_u64(), Some(port), "{probe}");
    }
    assert!(
        !addr.starts_with("127."),
        "in a pod the probes come from outside the loopback: {addr}"
    );
    let env_config = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SPK_CONFIG")
        .expect("SPK_CONFIG set");
    let mounted = spec["containers"][0]["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|m| {
            env_config["value"]
                .as_str()
                .unwrap()
                .starts_with(m["mountPath"].as_str().unwrap())
        });
    assert!(mounted, "the config file is on a mounted volume");
}

/// `spk_indexer_*` names in a text.
fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("spk_indexer_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn known(name: &str) -> bool {
    METRIC_NAMES.iter().any(|m| {
        name == *m
            || ["_bucket", "_count", "_sum"]
                .iter()
                .any(|s| name.strip_suffix(s) == Some(m))
    })
}

#[test]
fn alert_rules_use_only_metrics_the_indexer_exposes() {
    let text = read("examples/ops/spk-alerts.yaml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let rules = doc["groups"][0]["rules"].as_sequence().unwrap();
    assert!(rules.len() >= 5);
    let mut used = 0;
    for r in rules {
        let name = r["alert"].as_str().expect("every rule is an alert");
        let expr = r["expr"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no expr"));
        assert!(
            r["annotations"]["summary"].is_string(),
            "{name}: no summary"
        );
        for m in metric_names(expr) {
            assert!(
                known(&m),
                "alert {name} uses {m}, which the Indexer does not expose"
            );
            used += 1;
        }
    }
    assert!(used >= 5);
    assert!(
        !known("spk_indexer_runs_failed_total"),
        "the check can fail"
    );
}

#[test]
fn operations_doc_names_every_metric_and_only_real_ones() {
    let doc = read("docs/operations.md");
    for m in METRIC_NAMES {
        assert!(doc.contains(m), "docs/operations.md does not describe {m}");
    }
    for m in metric_names(&doc) {
        assert!(
            known(&m),
            "docs/operations.md names {m}, which does not exist"
        );
    }
    for f in [
        "examples/ops/spk-indexer@.service",
        "examples/ops/spk-indexer-deployment.yaml",
        "examples/ops/spk-alerts.yaml",
    ] {
        assert!(doc.contains(f), "docs/operations.md does not point to {f}");
    }
}
