//! Every build SPK can name is accepted where the command line reads an
//! identifier: `src`, `embedded`, `embedded[PARENT]` (with '/' inside) and
//! `embedded-by-<BASE32>`; a build that is none of these is refused with
//! the forms named.
#![allow(clippy::unwrap_used)]

mod kafka_common;

use kafka_common::Site;

#[test]
fn send_event_accepts_every_build_spk_names() {
    let site = Site::new("127.0.0.1:9", "");
    for build in [
        "src",
        "embedded",
        "embedded[pkg/1.0/3I42H3S6]",
        "embedded[my-tool:run/1.2.0/GMTG3CXY]",
        "embedded-by-MVWWEZLEMRSWIW3NPEWXI33PNQ======",
    ] {
        let package = format!("emb/2.0/{build}");
        let out = site.spk(&[
            "repo",
            "send-event",
            "--repo",
            "origin",
            "--event",
            "published",
            "--package",
            &package,
            "--dry-run",
            "--format",
            "json",
        ]);
        assert_eq!(out.code, 0, "{package}: {}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let payload: serde_json::Value =
            serde_json::from_str(v["messages"][0]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["package"], package.as_str());
        assert_eq!(v["messages"][0]["key"], "emb", "keyed by package name");
    }
    let out = site.spk(&[
        "repo",
        "send-event",
        "--repo",
        "origin",
        "--event",
        "published",
        "--package",
        "emb/2.0/embedded[Bad/1.0]",
        "--dry-run",
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("embedded-by-<BASE32>"),
        "{}",
        out.stderr
    );
}
