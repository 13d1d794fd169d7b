//! Config layering: defaults < /etc < user file < environment; --config
//! replaces the files.

use std::path::{Path, PathBuf};

use spk_messaging_core::config::{self, expand_with, ExpandError, LoadOptions};

fn opts(system: &Path, user: &Path, env: &[(&str, &str)], file: Option<PathBuf>) -> LoadOptions {
    LoadOptions {
        config_file: file,
        system_dir: system.to_path_buf(),
        user_dir: Some(user.to_path_buf()),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        cwd: PathBuf::from("/work"),
    }
}

#[test]
fn layers_apply_in_order() {
    let d = tempfile::tempdir().unwrap();
    let (sys, user) = (d.path().join("etc"), d.path().join("user"));
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(
        sys.join("spk.toml"),
        "[repositories.origin]\nuse_index = true\naddress = \"repos/origin\"\nindex = { lock_max_tries = 9, lock_sleep_seconds = 1 }\n",
    )
    .unwrap();
    std::fs::write(
        user.join("spk.yaml"),
        "repositories:\n  origin:\n    index:\n      lock_max_tries: 2\n",
    )
    .unwrap();

    let l = config::load(&opts(
        &sys,
        &user,
        &[("SPK_REPOSITORIES__ORIGIN__INDEX__LOCK_SLEEP_SECONDS", "0")],
        None,
    ));
    let origin = &l.config.repositories["origin"];
    assert!(origin.use_index, "from /etc");
    assert_eq!(origin.index.lock_max_tries, 2, "user file beats /etc");
    assert_eq!(
        origin.index.lock_sleep_seconds, 0,
        "environment beats files"
    );
    assert_eq!(origin.index.update_event_send_freq_ms, 5000, "default");
    // A relative address is relative to the file that says it.
    assert_eq!(
        origin.address.as_ref().unwrap().path(),
        sys.join("repos/origin")
    );
    assert_eq!(l.config.sources.len(), 3, "{:?}", l.config.sources);

    // --config replaces both files; the environment still applies.
    let only = d.path().join("only.toml");
    std::fs::write(&only, "[repositories.other]\naddress = \"/x\"\n").unwrap();
    let l = config::load(&opts(
        &sys,
        &user,
        &[("SPK_REPOSITORIES__OTHER__USE_INDEX", "true")],
        Some(only),
    ));
    assert!(!l.config.repositories.contains_key("origin"));
    assert!(l.config.repositories["other"].use_index);
}

#[test]
fn first_extension_wins_in_one_place() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("spk.toml"),
        "[repositories.a]\nuse_index = true\n",
    )
    .unwrap();
    std::fs::write(d.path().join("spk.yaml"), "repositories: {b: {}}\n").unwrap();
    let l = config::load(&opts(d.path(), &d.path().join("none"), &[], None));
    assert!(l.config.repositories.contains_key("a"));
    assert!(!l.config.repositories.contains_key("b"));
}

#[test]
fn errors_name_the_environment_variable() {
    let d = tempfile::tempdir().unwrap();
    let l = config::load(&opts(
        d.path(),
        d.path(),
        &[("SPK_INDEXERS__MAIN__HEARTBEAT_FREQ_S", "30")],
        None,
    ));
    let e = l.into_result().unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("environment variable SPK_INDEXERS__MAIN__HEARTBEAT_FREQ_S"),
        "{text}"
    );
    assert!(text.contains("heartbeat_freq_ms"), "{text}");
}

#[test]
fn resolve_repo_by_name_path_and_url() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("c.toml");
    std::fs::write(
        &f,
        "[repositories.origin]\naddress = \"file:///srv/origin\"\n[repositories.noaddr]\n",
    )
    .unwrap();
    let cfg = config::load(&opts(d.path(), d.path(), &[], Some(f)))
        .into_result()
        .unwrap()
        .0;
    let cwd = Path::new("/work");
    assert_eq!(cfg.resolve_repo("origin", cwd).unwrap().name, "origin");
    let by_path = cfg.resolve_repo("/srv/origin/", cwd).unwrap();
    assert!(by_path.configured);
    assert_eq!(by_path.name, "origin");
    let other = cfg.resolve_repo("./r/elsewhere", cwd).unwrap();
    assert!(!other.configured);
    assert!(
        other.config.use_index,
        "SPK: an unmentioned repository uses its index"
    );
    assert_eq!(other.name, "elsewhere");
    assert_eq!(other.address.to_url(), "file:///work/r/elsewhere/");
    assert!(cfg
        .resolve_repo("noaddr", cwd)
        .unwrap_err()
        .to_string()
        .contains("SPFS_REMOTE_NOADDR_ADDRESS"));
    assert!(cfg
        .resolve_repo("nope", cwd)
        .unwrap_err()
        .to_string()
        .contains("configured: noaddr, origin"));
    // A name only spfs's config knows: its address from the lookup, and
    // SPK's rule that an unconfigured repository uses its index.
    struct Spfs;
    impl config::AddressLookup for Spfs {
        fn lookup(
            &self,
            name: &str,
        ) -> Result<Option<(spk_messaging_core::RepoAddress, String)>, String> {
            match name {
                "site" => Ok(Some((
                    spk_messaging_core::RepoAddress::parse("/srv/site", Path::new("/")).unwrap(),
                    "/etc/spfs.toml".into(),
                ))),
                "web" => Err("its address http://x is not a filesystem repository".into()),
                _ => Ok(None),
            }
        }
    }
    let site = cfg.resolve_repo_with("site", cwd, &Spfs).unwrap();
    assert!(site.config.use_index && !site.configured);
    assert_eq!(site.address_source, "/etc/spfs.toml");
    assert!(cfg
        .resolve_repo_with("web", cwd, &Spfs)
        .unwrap_err()
        .to_string()
        .contains("not a filesystem"));
    assert!(cfg.resolve_repo_with("noaddr", cwd, &Spfs).is_err());
}

#[test]
fn expands_variables() {
    let look = |k: &str| (k == "PW").then(|| "s3".to_string());
    assert_eq!(expand_with("a${PW}b$$c$d", look).unwrap(), "as3b$c$d");
    assert_eq!(
        expand_with("${NO}", look),
        Err(ExpandError::Unset("NO".into()))
    );
    assert_eq!(expand_with("${PW", look), Err(ExpandError::Unterminated));
    assert!(config::is_secret_property("sasl.password"));
    assert!(config::is_secret_property("ssl.key.pem"));
    assert!(!config::is_secret_property("sasl.username"));
}
