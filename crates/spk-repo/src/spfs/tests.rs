//! A repository written with [`SpfsWriter`] and read back with [`SpfsRepo`].

use std::os::unix::fs::PermissionsExt;

use super::*;

const SPEC: &[u8] = b"api: v0/package\npkg: zlib/1.2.13/ZLIBD3XH\n";

/// zlib 1.2.13 (a digest build with component tags, a src build stored the
/// legacy way, a build with no components, an embed stub), a post-release
/// version and a recipe-only version.
fn sample() -> (tempfile::TempDir, SpfsWriter) {
    let dir = tempfile::tempdir().unwrap();
    let w = SpfsWriter::create(dir.path().join("repo")).unwrap();
    let spec = w.write_payload(SPEC).unwrap();
    let layer = Digest::of(b"layer");
    w.create_tag("spk/spec/zlib/1.2.13", w.write_payload(b"recipe").unwrap())
        .unwrap();
    w.create_tag("spk/spec/zlib/1.2.13/ZLIBD3XH", spec).unwrap();
    for c in ["run", "build", "docs"] {
        w.create_tag(&format!("spk/pkg/zlib/1.2.13/ZLIBD3XH/{c}"), layer)
            .unwrap();
    }
    w.create_tag("spk/pkg/zlib/1.2.13/ZLIBD3XH", layer).unwrap();
    let src = w
        .write_payload(b"api: v0/package\npkg: zlib/1.2.13/src\n")
        .unwrap();
    w.create_tag("spk/spec/zlib/1.2.13/src", src).unwrap();
    w.create_tag("spk/pkg/zlib/1.2.13/src", layer).unwrap();
    w.create_tag("spk/spec/zlib/1.2.13/AAAABBBB", spec).unwrap();
    let stub = embed_stub_tag_name("embedded[zlib-tools:run/1.0.0/GMTG3CXY]");
    w.create_tag(&format!("spk/spec/zlib/1.2.13/{stub}"), spec)
        .unwrap();
    w.create_tag("spk/spec/zlib/2.1.0..r.3/QQQQ2222", spec)
        .unwrap();
    w.create_tag("spk/spec/zlib/3.0.0", spec).unwrap();
    w.create_tag("spk/spec/openssl/3.0.0/src", src).unwrap();
    (dir, w)
}

#[test]
fn a_written_repository_lists_back() {
    let (_dir, w) = sample();
    // noise that listing must ignore
    let tags = w.root().join("tags/spk/spec");
    std::fs::write(tags.join("zlib/1.2.13/ZLIBD3XH.tag.lock"), b"").unwrap();
    std::fs::write(tags.join("zlib/1.2.13/.hidden.tag"), b"").unwrap();
    std::fs::create_dir_all(tags.join("zlib/team#ns/9.9.9")).unwrap();
    std::fs::create_dir_all(tags.join("Not_A_Package")).unwrap();

    let r = SpfsRepo::open(w.root()).unwrap();
    assert_eq!(r.package_names().unwrap(), ["openssl", "zlib"]);
    // has_package answers as the listing does, without listing.
    std::fs::create_dir_all(tags.join("team#ns")).unwrap();
    std::fs::create_dir_all(tags.join(".hidden")).unwrap();
    std::fs::write(tags.join("afile"), b"").unwrap();
    std::fs::write(tags.join("afile.tag"), b"").unwrap();
    std::os::unix::fs::symlink(tags.join("zlib"), tags.join("linked")).unwrap();
    std::os::unix::fs::symlink(tags.join("gone"), tags.join("dangling")).unwrap();
    let listed = r.package_names().unwrap();
    assert_eq!(listed, ["linked", "openssl", "zlib"]);
    for name in [
        "openssl",
        "zlib",
        "linked",
        "dangling",
        "afile",
        "team#ns",
        ".hidden",
        "Not_A_Package",
        "nope",
        "",
        "..",
        "zlib/1.2.13",
    ] {
        let listed = listed.iter().any(|n| n == name);
        assert_eq!(r.has_package(name).unwrap(), listed, "{name:?}");
    }
    let versions = r.versions("zlib").unwrap();
    let folders: Vec<(&str, &str, bool)> = versions
        .iter()
        .map(|v| (v.folder.as_str(), v.version.as_str(), v.has_builds))
        .collect();
    assert_eq!(
        folders,
        [
            ("1.2.13", "1.2.13", true),
            ("2.1.0..r.3", "2.1.0+r.3", true),
            ("3.0.0", "3.0.0", false)
        ]
    );
    let builds = r.builds("zlib", "1.2.13").unwrap();
    let stub = embed_stub_tag_name("embedded[zlib-tools:run/1.0.0/GMTG3CXY]");
    assert_eq!(builds, ["AAAABBBB", "ZLIBD3XH", &stub, "src"]);
    assert!(r.builds("zlib", "3.0.0").unwrap().is_empty());
    assert!(r.builds("nope", "1.0.0").unwrap().is_empty());

    assert_eq!(r.read_spec("zlib", "1.2.13", "ZLIBD3XH").unwrap(), SPEC);
    assert_eq!(r.read_spec("zlib", "2.1.0..r.3", "QQQQ2222").unwrap(), SPEC);
    assert_eq!(
        r.components("zlib", "1.2.13", "ZLIBD3XH").unwrap(),
        ["build", "docs", "run"]
    );
    assert_eq!(r.components("zlib", "1.2.13", "src").unwrap(), ["src"]);
    let none = r.components("zlib", "1.2.13", "AAAABBBB").unwrap_err();
    assert!(none.is_no_components(), "{none}");
    assert!(none.to_string().contains("zlib/1.2.13/AAAABBBB"), "{none}");
    assert!(r
        .components("zlib", "1.2.13", &stub)
        .unwrap_err()
        .is_embed_stub());
}

#[test]
fn legacy_builds_without_component_tags() {
    let dir = tempfile::tempdir().unwrap();
    let w = SpfsWriter::create(dir.path()).unwrap();
    w.create_tag("spk/pkg/old/1.0.0/ABCDEFGH", Digest::of(b"run"))
        .unwrap();
    let r = SpfsRepo::open(dir.path()).unwrap();
    assert_eq!(
        r.components("old", "1.0.0", "ABCDEFGH").unwrap(),
        ["build", "run"]
    );
}

#[test]
fn missing_payload_names_tag_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let w = SpfsWriter::create(dir.path()).unwrap();
    let gone = Digest::of(b"never written");
    w.create_tag("spk/spec/zlib/1.0.0/src", gone).unwrap();
    let e = SpfsRepo::open(dir.path())
        .unwrap()
        .read_spec("zlib", "1.0.0", "src")
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, SpfsError::MissingPayload { .. }), "{text}");
    assert!(text.contains("spk/spec/zlib/1.0.0/src"), "{text}");
    assert!(text.contains(&gone.to_string()), "{text}");
}

#[test]
fn a_damaged_spec_tag_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let w = SpfsWriter::create(dir.path()).unwrap();
    w.create_tag("spk/spec/zlib/1.0.0/src", Digest::of(b"x"))
        .unwrap();
    let file = dir.path().join("tags/spk/spec/zlib/1.0.0/src.tag");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 3]).unwrap();
    let e = SpfsRepo::open(dir.path())
        .unwrap()
        .read_spec("zlib", "1.0.0", "src")
        .unwrap_err();
    assert!(matches!(e, SpfsError::TagStream(_)), "{e}");
    assert!(e.to_string().contains("src.tag"), "{e}");
}

#[test]
fn open_refuses_what_is_not_an_spfs_repository() {
    let dir = tempfile::tempdir().unwrap();
    let e = SpfsRepo::open(dir.path()).unwrap_err();
    assert!(matches!(e, SpfsError::NotARepository { .. }));
    assert!(e.to_string().contains("VERSION"), "{e}");
    assert!(SpfsRepo::open(dir.path().join("missing")).is_err());
    std::fs::write(dir.path().join("VERSION"), "0.44.0").unwrap();
    assert!(SpfsRepo::open(dir.path()).is_ok());
}

#[test]
fn pushing_tags_chains_parents_like_spfs() {
    let dir = tempfile::tempdir().unwrap();
    let w = SpfsWriter::create(dir.path()).unwrap().with_user("me@here");
    let a = w
        .write_tag("spk/spec/zlib/1.0.0/src", Digest::of(b"a"))
        .unwrap();
    let b = w
        .write_tag("spk/spec/zlib/1.0.0/src", Digest::of(b"b"))
        .unwrap();
    // unchanged target: nothing appended
    let b2 = w
        .write_tag("spk/spec/zlib/1.0.0/src", Digest::of(b"b"))
        .unwrap();
    assert_eq!(b, b2);
    let c = w
        .create_tag("spk/spec/zlib/1.0.0/src", Digest::of(b"c"))
        .unwrap();
    let file = dir.path().join("tags/spk/spec/zlib/1.0.0/src.tag");
    let records = tag::parse_tag_stream(&file, &std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(records, vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(a.parent, Digest::NULL);
    assert_eq!(b.parent, a.digest());
    assert_eq!(c.parent, b.digest());
    assert_eq!(a.org, "spk/spec/zlib/1.0.0");
    assert_eq!(a.name, "src");
    assert_eq!(a.user, "me@here");
    // spfs's time: RFC 3339 with +00:00
    assert!(a.time.ends_with("+00:00"), "{}", a.time);
    assert!(chrono::DateTime::parse_from_rfc3339(&a.time).is_ok());
    // no lock or work file left behind
    let left: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("src.tag")]);
    let r = SpfsRepo::open(dir.path()).unwrap();
    assert_eq!(
        r.resolve_tag("spk/spec/zlib/1.0.0/src").unwrap(),
        Some(Digest::of(b"c"))
    );
}

#[test]
fn writer_modes_version_and_bad_paths() {
    let dir = tempfile::tempdir().unwrap();
    let w = SpfsWriter::create(dir.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("VERSION")).unwrap(),
        "0.44.0"
    );
    let d = w.write_payload(b"hello").unwrap();
    assert_eq!(d, Digest::of(b"hello"));
    // writing it again is fine
    assert_eq!(w.write_payload(b"hello").unwrap(), d);
    let payload = d.path_in(&dir.path().join("payloads"));
    assert_eq!(std::fs::read(&payload).unwrap(), b"hello");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&payload), 0o666);
    assert_eq!(mode(payload.parent().unwrap()), 0o777);
    w.create_tag("spk/spec/a1/1.0.0/src", d).unwrap();
    assert_eq!(
        mode(&dir.path().join("tags/spk/spec/a1/1.0.0/src.tag")),
        0o666
    );
    assert_eq!(mode(&dir.path().join("tags/spk/spec/a1")), 0o777);
    for bad in ["", "/abs", "a//b", "a/../b", "a/b+c", "a/.hidden", "a/b/"] {
        assert!(
            matches!(w.create_tag(bad, d), Err(SpfsError::BadTagPath { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn removing_a_tag_prunes_empty_folders() {
    let dir = tempfile::tempdir().unwrap();
    let w = SpfsWriter::create(dir.path()).unwrap();
    w.create_tag("spk/pkg/zlib/1.0.0/ABCDEFGH/run", Digest::of(b"r"))
        .unwrap();
    w.create_tag("spk/pkg/zlib/1.0.0/ABCDEFGH/build", Digest::of(b"b"))
        .unwrap();
    assert!(w.remove_tag("spk/pkg/zlib/1.0.0/ABCDEFGH/run").unwrap());
    assert!(!w.remove_tag("spk/pkg/zlib/1.0.0/ABCDEFGH/run").unwrap());
    assert!(dir.path().join("tags/spk/pkg/zlib/1.0.0/ABCDEFGH").is_dir());
    assert!(w.remove_tag("spk/pkg/zlib/1.0.0/ABCDEFGH/build").unwrap());
    assert!(!dir.path().join("tags/spk").exists());
    assert!(dir.path().join("tags").is_dir());
    assert!(!w.remove_tag("spk/nothing/here").unwrap());
    assert!(!dir.path().join("tags/spk").exists());
}

#[test]
fn a_spec_above_the_size_limit_is_a_spec_problem_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let w = SpfsWriter::create(dir.path()).unwrap();
    let digest = w.write_payload(b"pkg: zlib/1.0.0/src\n").unwrap();
    w.create_tag("spk/spec/zlib/1.0.0/src", digest).unwrap();
    let r = SpfsRepo::open(dir.path()).unwrap();
    // At the limit it reads; one byte over, it is refused naming the tag.
    assert!(r.read_payload_at_most("t", &digest, 20).is_ok());
    let e = r
        .read_payload_at_most("spk/spec/zlib/1.0.0/src", &digest, 19)
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            SpfsError::PayloadTooLarge {
                size: 20,
                max: 19,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("spk/spec/zlib/1.0.0/src") && text.contains("19 bytes"),
        "{text}"
    );
    // A sparse payload far above MAX_SPEC_BYTES is refused by read_spec
    // without reading it.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(r.payload_path(&digest))
        .unwrap();
    f.set_len(MAX_SPEC_BYTES * 64).unwrap();
    let e = r.read_spec("zlib", "1.0.0", "src").unwrap_err();
    assert!(matches!(e, SpfsError::PayloadTooLarge { .. }), "{e}");
}
