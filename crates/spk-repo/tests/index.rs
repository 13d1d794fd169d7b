//! Index generation, update, reading, damage and status, on temp repositories.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spk_messaging_core::config::IndexConfig;
use spk_messaging_core::{
    IndexEvent, IndexStatusMessage, IndexStatusReporter, RepoAddress, ReportError,
};
use spk_repo::listing::{list_index, list_repository};
use spk_repo::{run_index, Index, IndexError, IndexFileError, IndexMode, IndexRequest, Repository};

fn spec(name: &str, version: &str, build: &str, deprecated: bool) -> String {
    format!(
        "pkg: {name}/{version}/{build}\ndeprecated: {deprecated}\ncompat: x.a.b\n\
         build:\n  options:\n    - var: arch/x86_64\n    - pkg: gcc/9\n\
         install:\n  requirements:\n    - pkg: python/~3.9\n  components:\n    - name: run\n    - name: build\n"
    )
}

fn put(root: &Path, name: &str, version: &str, build: &str, text: &str) -> PathBuf {
    let d = root.join("packages").join(name).join(version);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(format!("{build}.yaml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn add(root: &Path, name: &str, version: &str, build: &str, deprecated: bool) {
    put(
        root,
        name,
        version,
        build,
        &spec(name, version, build, deprecated),
    );
}

fn request(root: &Path) -> IndexRequest {
    let cfg = IndexConfig {
        lock_max_tries: 1,
        lock_sleep_seconds: 0,
        ..IndexConfig::default()
    };
    IndexRequest::new(
        "test",
        RepoAddress::parse(root.to_str().unwrap(), Path::new("/")).unwrap(),
        cfg,
    )
}

fn index_path(root: &Path) -> PathBuf {
    root.join("index/spk").join(spk_repo::INDEX_FILE_NAME)
}

fn base_repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    for v in ["1.9", "1.10", "2.0.0-beta.1", "2.0.0", "1.9+r.1", "0.1"] {
        add(r, "alpha", v, "3I42H3S6", false);
    }
    add(r, "alpha", "1.10", "src", false);
    add(r, "alpha", "1.10", "AAAAAAAA", true);
    add(r, "beta", "1.0", "BBBBBBBB", false);
    add(r, "gamma", "3.0", "CCCCCCCC", false);
    d
}

fn versions(index: &Index, name: &str) -> Vec<String> {
    index
        .package(name)
        .unwrap()
        .unwrap()
        .versions
        .into_iter()
        .map(|v| v.version)
        .collect()
}

#[test]
fn full_generation_records_everything_in_spk_order() {
    let d = base_repo();
    let s = run_index(&request(d.path()), &spk_messaging_core::NullReporter).unwrap();
    assert_eq!(s.mode, IndexMode::Full);
    assert_eq!(
        (
            s.counts.packages,
            s.counts.versions,
            s.counts.builds,
            s.counts.deprecated
        ),
        (3, 8, 10, 1)
    );
    assert!(s.skipped.is_empty());
    let i = Index::open(&index_path(d.path())).unwrap();
    assert_eq!(i.meta().format_version, 1);
    assert_eq!(i.meta().repo_name, "test");
    assert_eq!(i.meta().mode, "full");
    assert_eq!(i.meta().builds, 10);
    assert!(i.meta().repo_address.starts_with("file:/"));
    assert!(i.meta().generated_at.ends_with('Z'));
    assert_eq!(
        i.package_names().collect::<Vec<_>>(),
        ["alpha", "beta", "gamma"]
    );
    assert_eq!(
        versions(&i, "alpha"),
        ["0.1", "1.9", "1.9+r.1", "1.10", "2.0.0-beta.1", "2.0.0"]
    );
    let a = i.package("alpha").unwrap().unwrap();
    let v110 = &a.versions[3];
    let builds: Vec<(&str, bool)> = v110
        .builds
        .iter()
        .map(|b| (b.build.as_str(), b.deprecated))
        .collect();
    assert_eq!(
        builds,
        [("3I42H3S6", false), ("AAAAAAAA", true), ("src", false)]
    );
    let b = &v110.builds[0];
    assert_eq!(b.compat.as_deref(), Some("x.a.b"));
    assert_eq!(b.options.len(), 2);
    assert_eq!(b.requirements[0].value, "~3.9");
    assert_eq!(b.components, ["run", "build"]);
    assert!(i.package("nope").unwrap().is_none());
    assert_eq!(i.verify_all().unwrap(), s.counts);
    // No lock or temp file is left behind.
    let left: Vec<_> = std::fs::read_dir(d.path().join("index/spk"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [spk_repo::INDEX_FILE_NAME]);
}

#[test]
fn every_spec_problem_is_named_skipped_and_counted() {
    let d = base_repo();
    let r = d.path();
    let bad = [
        put(r, "broken", "1.0", "DDDDDDDD", "pkg: [unclosed\n"),
        put(r, "broken", "1.0", "EEEEEEEE", "pkg: broken/1.0/FFFFFFFF\n"),
        put(r, "broken", "1.0", "GGGGGGGG", ""),
        put(r, "broken", "1.0", "HHHHHHHH", "deprecated: true\n"),
        put(
            r,
            "broken",
            "1.0",
            "IIIIIIII",
            &format!("{}deprecated: yes please\n", "pkg: broken/1.0/IIIIIIII\n"),
        ),
        put(
            r,
            "broken",
            "1.0",
            "JJJJJJJJ",
            "pkg: broken/1.0/JJJJJJJJ\nbuild: {options: [{default: 1}]}\n",
        ),
        put(
            r,
            "broken",
            "1.0",
            "KKKKKKKK",
            "pkg: broken/1.0/KKKKKKKK\ninstall: {components: [{files: [a]}]}\n",
        ),
        put(r, "broken", "1.0", "ABCDEF", "pkg: broken/1.0/ABCDEF\n"),
        put(r, "broken", "1.0", "notes", "hello"),
        put(r, "broken", "1.x", "LLLLLLLL", "pkg: broken/1.x/LLLLLLLL\n"),
        put(
            r,
            "Bad_Name",
            "1.0",
            "MMMMMMMM",
            "pkg: Bad_Name/1.0/MMMMMMMM\n",
        ),
    ];
    std::fs::rename(&bad[8], bad[8].with_extension("txt")).unwrap();
    let not_utf8 = put(r, "broken", "1.0", "NNNNNNNN", "");
    std::fs::write(&not_utf8, [0xff, 0xfe, 0x00]).unwrap();
    add(r, "broken", "1.0", "OOOOOOOO", false);

    let s = run_index(&request(r), &spk_messaging_core::NullReporter).unwrap();
    assert_eq!(s.counts.packages, 4);
    assert_eq!(s.counts.builds, 11);
    let text: Vec<String> = s.skipped.iter().map(|p| p.to_string()).collect();
    assert_eq!(s.skipped.len(), 12, "{text:#?}");
    let find = |file: &str, what: &str| {
        assert!(
            text.iter().any(|t| t.contains(file) && t.contains(what)),
            "no problem naming {file} with {what:?} in {text:#?}"
        )
    };
    find("DDDDDDDD.yaml", "not a valid build spec");
    find("EEEEEEEE.yaml", "path says \"broken/1.0/EEEEEEEE\"");
    find("GGGGGGGG.yaml", "empty");
    find("HHHHHHHH.yaml", "`pkg` is missing");
    find("IIIIIIII.yaml", "deprecated");
    find("JJJJJJJJ.yaml", "build.options[0] has neither");
    find("KKKKKKKK.yaml", "install.components[0] has no `name`");
    find("ABCDEF.yaml", "8-character base32");
    find("notes.txt", "expected <build>.yaml");
    find("broken/1.x", "not a version directory");
    find("Bad_Name", "not a package directory");
    find("NNNNNNNN.yaml", "not UTF-8");
    assert_eq!(Index::open(&index_path(r)).unwrap().meta().skipped, 12);

    // --strict: fatal, and the existing index is left as it was.
    let before = std::fs::read(index_path(r)).unwrap();
    let mut req = request(r);
    req.strict = true;
    match run_index(&req, &spk_messaging_core::NullReporter) {
        Err(IndexError::Strict { problems }) => assert_eq!(problems.len(), 12),
        other => panic!("expected a strict failure, got {other:?}"),
    }
    assert_eq!(std::fs::read(index_path(r)).unwrap(), before);
    // --strict on a repository with no index yet writes nothing.
    let d2 = tempfile::tempdir().unwrap();
    put(d2.path(), "broken", "1.0", "DDDDDDDD", "pkg: [unclosed\n");
    let mut req = request(d2.path());
    req.strict = true;
    assert!(run_index(&req, &spk_messaging_core::NullReporter).is_err());
    assert!(!index_path(d2.path()).exists());
}

#[test]
fn update_adds_changes_and_removes_versions_and_builds() {
    let d = base_repo();
    let r = d.path();
    run_index(&request(r), &spk_messaging_core::NullReporter).unwrap();
    let old = Index::open(&index_path(r)).unwrap();
    let gamma_before = old.section(old.find("gamma").unwrap()).unwrap().bytes;
    drop(old);

    // alpha: a new version, a deprecated build, a removed build, a removed version.
    add(r, "alpha", "3.0", "ZZZZZZZZ", false);
    add(r, "alpha", "1.10", "3I42H3S6", true);
    std::fs::remove_file(r.join("packages/alpha/1.10/src.yaml")).unwrap();
    std::fs::remove_dir_all(r.join("packages/alpha/0.1")).unwrap();
    // beta: removed entirely. delta: new. gamma: changed but not named.
    std::fs::remove_dir_all(r.join("packages/beta")).unwrap();
    add(r, "delta", "1.0", "DDDDDDDD", false);
    add(r, "gamma", "4.0", "CCCCCCCC", false);

    let mut req = request(r);
    req.updates = ["alpha", "beta", "delta"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let s = run_index(&req, &spk_messaging_core::NullReporter).unwrap();
    assert_eq!(s.mode, IndexMode::Update);
    assert_eq!(s.updated, ["alpha", "beta", "delta"]);
    let i = Index::open(&index_path(r)).unwrap();
    assert_eq!(i.meta().mode, "update");
    assert_eq!(
        i.package_names().collect::<Vec<_>>(),
        ["alpha", "delta", "gamma"]
    );
    assert_eq!(
        versions(&i, "alpha"),
        ["1.9", "1.9+r.1", "1.10", "2.0.0-beta.1", "2.0.0", "3.0"]
    );
    let a = i.package("alpha").unwrap().unwrap();
    let b110: Vec<(&str, bool)> = a.versions[2]
        .builds
        .iter()
        .map(|b| (b.build.as_str(), b.deprecated))
        .collect();
    assert_eq!(b110, [("3I42H3S6", true), ("AAAAAAAA", true)]);
    // gamma was not named: kept byte for byte, its new version not seen.
    assert_eq!(versions(&i, "gamma"), ["3.0"]);
    assert_eq!(
        i.section(i.find("gamma").unwrap()).unwrap().bytes,
        gamma_before
    );
    assert_eq!(i.verify_all().unwrap(), s.counts);
    assert_eq!(
        (s.counts.packages, s.counts.builds, s.counts.deprecated),
        (3, 9, 2)
    );

    // A version-only update re-reads that version and nothing else.
    add(r, "alpha", "1.9", "YYYYYYYY", false);
    add(r, "alpha", "2.0.0", "XXXXXXXX", false);
    std::fs::remove_dir_all(r.join("packages/alpha/3.0")).unwrap();
    let mut req = request(r);
    req.updates = vec!["alpha/1.9".parse().unwrap(), "gamma/4.0".parse().unwrap()];
    run_index(&req, &spk_messaging_core::NullReporter).unwrap();
    let i = Index::open(&index_path(r)).unwrap();
    let a = i.package("alpha").unwrap().unwrap();
    let builds = |v: &str| -> Vec<String> {
        a.versions
            .iter()
            .find(|x| x.version == v)
            .map(|x| x.builds.iter().map(|b| b.build.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(builds("1.9"), ["3I42H3S6", "YYYYYYYY"]);
    assert_eq!(builds("2.0.0"), ["3I42H3S6"], "2.0.0 was not named");
    assert_eq!(builds("3.0"), ["ZZZZZZZZ"], "3.0 was not named");
    assert_eq!(versions(&i, "gamma"), ["3.0", "4.0"]);
    // A named version that is gone disappears; a package left without versions too.
    let mut req = request(r);
    req.updates = vec!["alpha/3.0".parse().unwrap()];
    std::fs::remove_dir_all(r.join("packages/delta")).unwrap();
    req.updates.push("delta/1.0".parse().unwrap());
    run_index(&req, &spk_messaging_core::NullReporter).unwrap();
    let i = Index::open(&index_path(r)).unwrap();
    assert!(!versions(&i, "alpha").contains(&"3.0".to_string()));
    assert!(i.package("delta").unwrap().is_none());
}

#[test]
fn update_without_an_index_is_a_full_generation() {
    let d = base_repo();
    let mut req = request(d.path());
    req.updates = vec!["beta".parse().unwrap()];
    let s = run_index(&req, &spk_messaging_core::NullReporter).unwrap();
    assert_eq!(s.mode, IndexMode::FullNoIndex);
    assert!(s.mode.to_string().contains("no index"));
    assert_eq!(s.counts.packages, 3);
    // A damaged index: also a full generation, saying why.
    std::fs::write(index_path(d.path()), b"garbage").unwrap();
    let s = run_index(&req, &spk_messaging_core::NullReporter).unwrap();
    assert!(
        matches!(&s.mode, IndexMode::FullUnreadableIndex(r) if r.contains("not an SPK index")),
        "{:?}",
        s.mode
    );
    assert_eq!(Index::open(&index_path(d.path())).unwrap().len(), 3);
}

#[test]
fn listing_is_the_same_from_the_index_and_the_repository() {
    let d = base_repo();
    let r = d.path();
    put(r, "broken", "1.0", "DDDDDDDD", "pkg: [unclosed\n");
    run_index(&request(r), &spk_messaging_core::NullReporter).unwrap();
    let i = Index::open(&index_path(r)).unwrap();
    let repo = Repository::open(&RepoAddress::parse(r.to_str().unwrap(), Path::new("/")).unwrap())
        .unwrap();
    for q in [
        None,
        Some("alpha"),
        Some("alpha/1.10"),
        Some("alpha/2.0"),
        Some("beta/1.0.0"),
    ] {
        let id = q.map(|q| q.parse().unwrap());
        let a = list_index(&i, id.as_ref(), "r").unwrap();
        let (b, _) = list_repository(&repo, id.as_ref()).unwrap();
        assert_eq!(a, b, "{q:?}");
    }
    for q in ["broken", "nope", "alpha/9.9"] {
        let id = q.parse().unwrap();
        let a = list_index(&i, Some(&id), "r").unwrap_err().to_string();
        let b = list_repository(&repo, Some(&id)).unwrap_err().to_string();
        assert!(
            a.contains("is not in") || a.contains("has no version"),
            "{a}"
        );
        assert!(
            b.contains("is not in") || b.contains("has no version"),
            "{b}"
        );
    }
    let l = list_index(&i, Some(&"alpha/1.10".parse().unwrap()), "r").unwrap();
    assert_eq!(
        serde_json::to_value(&l).unwrap(),
        serde_json::json!({"packages": [{"name": "alpha", "versions": [{"version": "1.10", "builds": [
            {"build": "3I42H3S6", "deprecated": false},
            {"build": "AAAAAAAA", "deprecated": true},
            {"build": "src", "deprecated": false}]}]}]})
    );
}

/// Flips one byte at `at` (from the end when negative).
fn flip(path: &Path, at: i64) {
    let mut b = std::fs::read(path).unwrap();
    let i = if at < 0 {
        (b.len() as i64 + at) as usize
    } else {
        at as usize
    };
    b[i] ^= 0x55;
    std::fs::write(path, b).unwrap();
}

#[test]
fn damaged_and_foreign_files_give_clear_errors() {
    let d = base_repo();
    run_index(&request(d.path()), &spk_messaging_core::NullReporter).unwrap();
    let good = std::fs::read(index_path(d.path())).unwrap();
    let p = d.path().join("copy");
    let err = |bytes: &[u8]| {
        std::fs::write(&p, bytes).unwrap();
        Index::open(&p).unwrap_err()
    };
    let e = err(b"");
    assert!(
        matches!(e, IndexFileError::NotAnIndex { .. }) && e.to_string().contains("empty"),
        "{e}"
    );
    let e = err(b"{\"json\": true}");
    assert!(
        e.to_string().contains("is not an SPK index") && e.to_string().contains("SPKINDEX"),
        "{e}"
    );
    let mut v2 = good.clone();
    v2[8] = 2;
    let e = err(&v2);
    assert!(
        matches!(
            e,
            IndexFileError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{e}"
    );
    for n in [10, 50, 100, good.len() - 1] {
        let e = err(&good[..n]).to_string();
        assert!(e.contains("damaged") && e.contains("truncated"), "{n}: {e}");
    }
    let e = err(&[&good[..], b"x"].concat()).to_string();
    assert!(e.contains("extended"), "{e}");
    // A flipped byte in the header or directory: checksum.
    for at in [20, 90, 200] {
        std::fs::write(&p, &good).unwrap();
        flip(&p, at);
        let e = Index::open(&p).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{at}: {e}");
    }
    // A flipped byte in the last section: opens, and that package names itself.
    std::fs::write(&p, &good).unwrap();
    flip(&p, -3);
    let i = Index::open(&p).unwrap();
    let e = i.package("gamma").unwrap_err().to_string();
    assert!(
        e.contains("section of package gamma") && e.contains("checksum"),
        "{e}"
    );
    assert!(i.package("alpha").unwrap().is_some());
    assert!(i.verify_all().is_err());
    // Every single-byte flip anywhere: an error or a good read, never a panic.
    for at in 0..good.len() {
        let mut b = good.clone();
        b[at] ^= 0xa5;
        std::fs::write(&p, &b).unwrap();
        if let Ok(i) = Index::open(&p) {
            let _ = i.verify_all();
        }
    }
}

/// Records every message with when it arrived; can be told to fail.
#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<(Instant, IndexStatusMessage)>>,
    fail: bool,
}

impl IndexStatusReporter for Recorder {
    fn report(&self, msg: &IndexStatusMessage) -> Result<(), ReportError> {
        self.got.lock().unwrap().push((Instant::now(), msg.clone()));
        if self.fail {
            Err(ReportError::new(msg, "broker is on fire"))
        } else {
            Ok(())
        }
    }
    fn describe(&self) -> String {
        "recorder".into()
    }
}

#[test]
fn status_keeps_its_period_during_a_slow_read_with_one_start() {
    let d = base_repo();
    let mut req = request(d.path());
    req.index_config.update_event_send_freq_ms = 50;
    let slow: Arc<Mutex<Option<(Instant, Instant)>>> = Arc::default();
    let slow2 = slow.clone();
    req.read_hook = Some(Arc::new(move |p: &Path| {
        if p.ends_with("beta/1.0/BBBBBBBB.yaml") {
            let t = Instant::now();
            std::thread::sleep(Duration::from_millis(1000));
            *slow2.lock().unwrap() = Some((t, Instant::now()));
        }
    }));
    let rec = Recorder::default();
    let s = run_index(&req, &rec).unwrap();
    let got = rec.got.lock().unwrap();
    let events: Vec<IndexEvent> = got.iter().map(|(_, m)| m.event).collect();
    assert_eq!(events.first(), Some(&IndexEvent::Started));
    assert_eq!(events.last(), Some(&IndexEvent::Completed));
    assert!(
        events[1..events.len() - 1]
            .iter()
            .all(|e| *e == IndexEvent::InProgress),
        "{events:?}"
    );
    assert!(got
        .iter()
        .all(|(_, m)| m.start == s.start && m.name == "test" && m.repo == s.repo_address));
    // While one read was stuck for 1 s, in-progress kept coming (every 50 ms:
    // about 20; at least 3 even on a heavily loaded machine).
    let (from, to) = slow.lock().unwrap().expect("the slow spec was read");
    let during = got
        .iter()
        .filter(|(t, m)| m.event == IndexEvent::InProgress && *t >= from && *t <= to)
        .count();
    assert!(
        during >= 3,
        "only {during} in-progress messages during the slow read: {events:?}"
    );
    assert!(s.report_failures.is_empty());
}

#[test]
fn a_failing_reporter_never_stops_the_index() {
    let d = base_repo();
    let rec = Recorder {
        fail: true,
        ..Recorder::default()
    };
    let s = run_index(&request(d.path()), &rec).unwrap();
    assert!(s.report_failures.len() >= 2, "{:?}", s.report_failures);
    assert!(s.report_failures[0]
        .to_string()
        .contains("broker is on fire"));
    assert_eq!(
        Index::open(&index_path(d.path()))
            .unwrap()
            .verify_all()
            .unwrap(),
        s.counts
    );
}

#[test]
fn a_held_lock_is_busy_and_the_index_is_untouched() {
    let d = base_repo();
    run_index(&request(d.path()), &spk_messaging_core::NullReporter).unwrap();
    let before = std::fs::read(index_path(d.path())).unwrap();
    let lock_path = d.path().join("index/spk/index.v1.spki.lock");
    let held = spk_repo::lock::acquire(&lock_path, 1, Duration::ZERO, &|_| {}).unwrap();
    add(d.path(), "zeta", "1.0", "ZZZZZZZZ", false);
    match run_index(&request(d.path()), &spk_messaging_core::NullReporter) {
        Err(IndexError::LockBusy {
            holder, tries: 1, ..
        }) => assert_eq!(holder.pid, std::process::id()),
        other => panic!("expected LockBusy, got {other:?}"),
    }
    assert_eq!(std::fs::read(index_path(d.path())).unwrap(), before);
    drop(held);
    run_index(&request(d.path()), &spk_messaging_core::NullReporter).unwrap();
}

#[test]
fn concurrent_updates_never_lose_each_others_changes() {
    let d = base_repo();
    let r = d.path().to_path_buf();
    run_index(&request(&r), &spk_messaging_core::NullReporter).unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("new{i}")).collect();
    for n in &names {
        add(&r, n, "1.0", "AAAAAAAA", false);
    }
    std::thread::scope(|s| {
        for n in &names {
            let r = &r;
            s.spawn(move || {
                let mut req = request(r);
                req.index_config.lock_max_tries = u64::MAX;
                req.updates = vec![n.parse().unwrap()];
                run_index(&req, &spk_messaging_core::NullReporter).unwrap();
            });
        }
    });
    let i = Index::open(&index_path(&r)).unwrap();
    for n in &names {
        assert!(i.package(n).unwrap().is_some(), "{n} was lost");
    }
    assert_eq!(i.len(), 3 + names.len());
}

#[test]
fn update_rereads_a_damaged_section_instead_of_copying_it() {
    let d = base_repo();
    let r = d.path();
    run_index(&request(r), &spk_messaging_core::NullReporter).unwrap();
    // gamma's section is the last one: damage its last bytes.
    flip(&index_path(r), -2);
    assert!(Index::open(&index_path(r))
        .unwrap()
        .package("gamma")
        .is_err());
    let mut req = request(r);
    req.updates = vec!["alpha".parse().unwrap()];
    let s = run_index(&req, &spk_messaging_core::NullReporter).unwrap();
    assert_eq!(s.mode, IndexMode::Update);
    let i = Index::open(&index_path(r)).unwrap();
    assert_eq!(versions(&i, "gamma"), ["3.0"]);
    assert_eq!(i.verify_all().unwrap(), s.counts);
}
