//! Where a named spfs repository lives, found the way spfs (and so SPK)
//! finds it.
//!
//! SPK sites name their repositories (`-r origin`) and spfs's config says
//! where each one is. The index commands must open the same directory SPK
//! would, so this follows spfs's sources and precedence, lowest first:
//!
//! 1. `/etc/spfs.conf` (INI);
//! 2. `/etc/spfs.<ext>` (`toml`, `yaml`/`yml`, `json` or `ini`; spfs takes
//!    one of them: whichever its config library finds first, in no fixed
//!    order, so a site has one; here the first of that list wins);
//! 3. `$XDG_CONFIG_HOME/spfs/spfs.conf` (INI; `~/.config` when
//!    `XDG_CONFIG_HOME` is unset or not absolute);
//! 4. `$XDG_CONFIG_HOME/spfs/spfs.<ext>`;
//! 5. environment variables `SPFS_<SECTION>__<KEY>` (`__` between levels,
//!    `SPFS_REMOTE__MY_REPO__ADDRESS` is `remote.my_repo.address`);
//! 6. environment variables `SPFS_<SECTION>_<KEY>` (every `_` a level:
//!    `SPFS_REMOTE_ORIGIN_ADDRESS` is `remote.origin.address`), kept by
//!    spfs for backwards compatibility and taking precedence over 5.
//!
//! Environment names are case-insensitive (lowercased); file keys are
//! matched case-insensitively here too. A repository is
//! `[remote.<name>] address = "file:///path"`, or a table with
//! `scheme = "fs"` and `path = "/path"`; `local` is `[storage] root`
//! (default `~/.local/share/spfs`).
//!
//! The sources are passed in ([`SpfsConfigSources`]) so that tests need
//! neither real `/etc` files nor `set_var`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The format of one config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    Ini,
    Toml,
    Yaml,
    Json,
}

/// One candidate config file (it may not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub format: ConfigFormat,
}

/// A group of candidate files of which only the first existing one is read
/// (`/etc/spfs.toml`, `/etc/spfs.yaml`, ...), or a single file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLayer {
    pub candidates: Vec<ConfigFile>,
}

/// Everything spfs's config is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpfsConfigSources {
    /// Lowest precedence first.
    pub layers: Vec<ConfigLayer>,
    /// The environment (only `SPFS_...` variables matter).
    pub env: BTreeMap<String, String>,
    /// The home directory, for `~` in paths and the default `local` root.
    pub home: Option<PathBuf>,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    File(PathBuf),
    Env(String),
    /// spfs's built-in default (only for `local`).
    Default,
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigOrigin::File(p) => write!(f, "config file {}", p.display()),
            ConfigOrigin::Env(v) => write!(f, "environment variable {v}"),
            ConfigOrigin::Default => f.write_str("spfs's default"),
        }
    }
}

/// A named repository's address and where it was configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAddress {
    /// The name asked for (`origin`, `local`).
    pub name: String,
    /// The address as configured (`file:///srv/spfs/origin`), or, for the
    /// `scheme` table form, as spfs would spell it.
    pub address: String,
    /// The URL scheme: `file`, `grpc`, `http2`, `tar`, `proxy`, ...
    pub scheme: String,
    /// For a filesystem repository, its root directory.
    pub root: Option<PathBuf>,
    /// Where the address (or its `scheme`) was found.
    pub origin: ConfigOrigin,
}

/// A repository that is not on a filesystem: it cannot carry an index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "repository {name:?} is {address} ({origin}): only filesystem repositories (file:///...) can be indexed"
)]
pub struct NotAFilesystemRepository {
    pub name: String,
    pub address: String,
    pub origin: ConfigOrigin,
}

impl RemoteAddress {
    /// The root directory of a filesystem repository, or the error to show
    /// for any other kind.
    pub fn filesystem_root(&self) -> Result<&Path, NotAFilesystemRepository> {
        self.root
            .as_deref()
            .ok_or_else(|| NotAFilesystemRepository {
                name: self.name.clone(),
                address: self.address.clone(),
                origin: self.origin.clone(),
            })
    }
}

/// spfs's config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpfsConfigError {
    #[error("cannot read spfs config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("spfs config file {} is not valid {format:?}: {message}", path.display())]
    Parse {
        path: PathBuf,
        format: ConfigFormat,
        message: String,
    },
    #[error("spfs config: repository {name:?} ({origin}): {message}")]
    Invalid {
        name: String,
        origin: ConfigOrigin,
        message: String,
    },
}

/// The extensions spfs's config library tries for `/etc/spfs` and
/// `spfs/spfs`, in the order used here.
const EXTENSIONS: &[(&str, ConfigFormat)] = &[
    ("toml", ConfigFormat::Toml),
    ("yaml", ConfigFormat::Yaml),
    ("yml", ConfigFormat::Yaml),
    ("json", ConfigFormat::Json),
    ("ini", ConfigFormat::Ini),
];

impl SpfsConfigSources {
    /// The standard layers for a user config directory `config_home`
    /// (`$XDG_CONFIG_HOME` or `~/.config`).
    pub fn standard_layers(config_home: Option<&Path>) -> Vec<ConfigLayer> {
        let with_exts = |base: PathBuf| ConfigLayer {
            candidates: EXTENSIONS
                .iter()
                .map(|(ext, format)| {
                    let mut p = base.clone().into_os_string();
                    p.push(".");
                    p.push(ext);
                    ConfigFile {
                        path: p.into(),
                        format: *format,
                    }
                })
                .collect(),
        };
        let single = |path: PathBuf| ConfigLayer {
            candidates: vec![ConfigFile {
                path,
                format: ConfigFormat::Ini,
            }],
        };
        let mut layers = vec![
            single(PathBuf::from("/etc/spfs.conf")),
            with_exts(PathBuf::from("/etc/spfs")),
        ];
        if let Some(home) = config_home {
            let base = home.join("spfs").join("spfs");
            layers.push(single(base.with_extension("conf")));
            layers.push(with_exts(base));
        }
        layers
    }

    /// The sources this process sees: the standard files and its
    /// environment.
    pub fn from_process() -> SpfsConfigSources {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let home = env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let config_home = env
            .get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| home.as_ref().map(|h| h.join(".config")));
        SpfsConfigSources {
            layers: Self::standard_layers(config_home.as_deref()),
            env,
            home,
        }
    }
}

/// A leaf value of the merged config and where it came from.
#[derive(Debug, Clone)]
struct Leaf {
    value: String,
    origin: ConfigOrigin,
}

/// The merged config: dotted lowercase key paths to leaves.
type Merged = BTreeMap<Vec<String>, Leaf>;

fn put(merged: &mut Merged, path: Vec<String>, value: String, origin: &ConfigOrigin) {
    // A later scalar replaces an earlier table at the same place and the
    // other way round, as when layered config trees are merged.
    merged.retain(|k, _| !(k.starts_with(&path) || path.starts_with(k)) || *k == path);
    merged.insert(
        path,
        Leaf {
            value,
            origin: origin.clone(),
        },
    );
}

/// Flattens a parsed document into `(path, text)` leaves.
fn flatten_json(
    prefix: &mut Vec<String>,
    v: &serde_json::Value,
    out: &mut Vec<(Vec<String>, String)>,
) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(k.to_lowercase());
                flatten_json(prefix, v, out);
                prefix.pop();
            }
        }
        Value::Null => {}
        Value::String(s) => out.push((prefix.clone(), s.clone())),
        Value::Bool(b) => out.push((prefix.clone(), b.to_string())),
        Value::Number(n) => out.push((prefix.clone(), n.to_string())),
        // Lists play no part in a repository's address.
        Value::Array(_) => {}
    }
}

/// A tiny INI reader, as much as spfs config files use: `[a.b]` sections,
/// `key = value` or `key: value`, `;`/`#` comment lines, optional quotes.
fn parse_ini(text: &str) -> Result<Vec<(Vec<String>, String)>, String> {
    let mut out = Vec::new();
    let mut section: Vec<String> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("line {}: a section header without `]`", n + 1))?;
            section = name
                .trim()
                .split('.')
                .map(|s| s.trim().to_lowercase())
                .collect();
            continue;
        }
        let split = line
            .find(['=', ':'])
            .ok_or_else(|| format!("line {}: expected `key = value`, got {line:?}", n + 1))?;
        let key = line[..split].trim().to_lowercase();
        let mut value = line[split + 1..].trim();
        for q in ['"', '\''] {
            if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
                value = &value[1..value.len() - 1];
            }
        }
        let mut path = section.clone();
        path.extend(key.split('.').map(str::to_string));
        out.push((path, value.to_string()));
    }
    Ok(out)
}

fn parse_file(
    file: &ConfigFile,
    text: &str,
) -> Result<Vec<(Vec<String>, String)>, SpfsConfigError> {
    let fail = |message: String| SpfsConfigError::Parse {
        path: file.path.clone(),
        format: file.format,
        message,
    };
    let json: serde_json::Value = match file.format {
        ConfigFormat::Ini => return parse_ini(text).map_err(fail),
        ConfigFormat::Json => serde_json::from_str(text).map_err(|e| fail(e.to_string()))?,
        ConfigFormat::Yaml => {
            if text.trim().is_empty() {
                return Ok(Vec::new());
            }
            serde_yaml::from_str(text).map_err(|e| fail(e.to_string()))?
        }
        ConfigFormat::Toml => {
            let v: toml::Value = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
            serde_json::to_value(v).map_err(|e| fail(e.to_string()))?
        }
    };
    let mut out = Vec::new();
    flatten_json(&mut Vec::new(), &json, &mut out);
    Ok(out)
}

/// Reads every source into one merged config.
fn merge(sources: &SpfsConfigSources) -> Result<Merged, SpfsConfigError> {
    let mut merged = Merged::new();
    for layer in &sources.layers {
        for file in &layer.candidates {
            let text = match std::fs::read_to_string(&file.path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(SpfsConfigError::Read {
                        path: file.path.clone(),
                        source: e,
                    })
                }
            };
            let origin = ConfigOrigin::File(file.path.clone());
            for (path, value) in parse_file(file, &text)? {
                put(&mut merged, path, value, &origin);
            }
            tracing::debug!(file = %file.path.display(), "read spfs config");
            break;
        }
    }
    // `__` between levels, then (higher precedence) `_` between levels.
    for separator in ["__", "_"] {
        for (var, value) in &sources.env {
            let lower = var.to_lowercase();
            let Some(rest) = lower.strip_prefix("spfs_") else {
                continue;
            };
            let path: Vec<String> = rest.split(separator).map(str::to_string).collect();
            if path.iter().any(String::is_empty) {
                continue;
            }
            put(
                &mut merged,
                path,
                value.clone(),
                &ConfigOrigin::Env(var.clone()),
            );
        }
    }
    Ok(merged)
}

/// `~` or `~/...` expanded with the home directory, as spfs does for paths.
fn expand_tilde(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(h)) => h.to_path_buf(),
        (Some(rest), Some(h)) if rest.starts_with('/') => h.join(&rest[1..]),
        _ => PathBuf::from(path),
    }
}

/// The path of a `file:` URL as spfs takes it (the URL's path part, query
/// dropped; `file:///a/b`, `file:/a/b` and `file://host/a/b` all give
/// `/a/b`).
fn file_url_path(address: &str) -> Option<PathBuf> {
    let rest = address
        .strip_prefix("file:")
        .or_else(|| address.strip_prefix("FILE:"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let path = match rest.strip_prefix("//") {
        Some(after) => &after[after.find('/').unwrap_or(after.len())..],
        None => rest,
    };
    if path.is_empty() {
        return Some(PathBuf::from("/"));
    }
    Some(PathBuf::from(path))
}

/// The scheme of an address (`file`, `grpc`, ...), if it has one.
fn scheme_of(address: &str) -> Option<String> {
    let (scheme, _) = address.split_once(':')?;
    let ok = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then(|| scheme.to_lowercase())
}

/// Where the repository called `name` lives, or `None` if spfs's config
/// does not name it. `local` is the user's own repository (`[storage]
/// root`).
pub fn remote_address(
    name: &str,
    sources: &SpfsConfigSources,
) -> Result<Option<RemoteAddress>, SpfsConfigError> {
    let merged = merge(sources)?;
    let key = name.to_lowercase();
    if key == "local" {
        let (root, origin) = match merged.get(&vec!["storage".to_string(), "root".to_string()]) {
            Some(leaf) => (
                expand_tilde(&leaf.value, sources.home.as_deref()),
                leaf.origin.clone(),
            ),
            None => (
                sources
                    .home
                    .as_ref()
                    .map(|h| h.join(".local/share/spfs"))
                    .unwrap_or_else(|| PathBuf::from("/tmp/spfs")),
                ConfigOrigin::Default,
            ),
        };
        return Ok(Some(RemoteAddress {
            name: name.to_string(),
            address: format!("file://{}", root.display()),
            scheme: "file".to_string(),
            root: Some(root),
            origin,
        }));
    }
    let prefix = ["remote".to_string(), key];
    let fields: BTreeMap<&str, &Leaf> = merged
        .iter()
        .filter(|(k, _)| k.len() == 3 && k[..2] == prefix)
        .map(|(k, v)| (k[2].as_str(), v))
        .collect();
    if let Some(whole) = merged.get(prefix.as_slice()) {
        return Err(SpfsConfigError::Invalid {
            name: name.to_string(),
            origin: whole.origin.clone(),
            message: format!(
                "`remote.{name}` is the value {:?}; spfs expects a table with `address`",
                whole.value
            ),
        });
    }
    if let Some(scheme) = fields.get("scheme") {
        // The table form: `scheme = "fs"` with `path`, or another kind.
        let kind = scheme.value.to_lowercase();
        if kind == "fs" {
            let path = fields.get("path").ok_or_else(|| SpfsConfigError::Invalid {
                name: name.to_string(),
                origin: scheme.origin.clone(),
                message: "`scheme = \"fs\"` without `path`".to_string(),
            })?;
            let root = expand_tilde(&path.value, sources.home.as_deref());
            return Ok(Some(RemoteAddress {
                name: name.to_string(),
                address: format!("file://{}", root.display()),
                scheme: "file".to_string(),
                root: Some(root),
                origin: path.origin.clone(),
            }));
        }
        let detail = ["address", "path", "primary"]
            .iter()
            .find_map(|k| fields.get(k))
            .map(|l| l.value.clone())
            .unwrap_or_default();
        return Ok(Some(RemoteAddress {
            name: name.to_string(),
            address: if detail.is_empty() {
                format!("a {kind} repository")
            } else {
                format!("{kind}: {detail}")
            },
            scheme: kind,
            root: None,
            origin: scheme.origin.clone(),
        }));
    }
    let Some(address) = fields.get("address") else {
        if let Some((_, any)) = fields.iter().next() {
            return Err(SpfsConfigError::Invalid {
                name: name.to_string(),
                origin: any.origin.clone(),
                message: "the table has neither `address` nor `scheme`".to_string(),
            });
        }
        return Ok(None);
    };
    let scheme = scheme_of(&address.value).ok_or_else(|| SpfsConfigError::Invalid {
        name: name.to_string(),
        origin: address.origin.clone(),
        message: format!("address {:?} is not a URL", address.value),
    })?;
    let root = if scheme == "file" {
        file_url_path(&address.value)
    } else {
        None
    };
    Ok(Some(RemoteAddress {
        name: name.to_string(),
        address: address.value.clone(),
        scheme,
        root,
        origin: address.origin.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Site {
        dir: tempfile::TempDir,
        sources: SpfsConfigSources,
    }

    /// A fake `/etc` and `~/.config` in a tempdir.
    fn site() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        let user = dir.path().join("config");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(user.join("spfs")).unwrap();
        let mut layers = SpfsConfigSources::standard_layers(Some(&user));
        // move the system layers into the tempdir
        for layer in &mut layers[..2] {
            for c in &mut layer.candidates {
                c.path = etc.join(c.path.file_name().unwrap());
            }
        }
        Site {
            sources: SpfsConfigSources {
                layers,
                env: BTreeMap::new(),
                home: Some(dir.path().join("home")),
            },
            dir,
        }
    }

    impl Site {
        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.dir.path().join(rel);
            std::fs::write(&p, text).unwrap();
            p
        }
        fn get(&self, name: &str) -> Option<RemoteAddress> {
            remote_address(name, &self.sources).unwrap()
        }
    }

    #[test]
    fn standard_layers_follow_spfs() {
        let layers = SpfsConfigSources::standard_layers(Some(Path::new("/home/u/.config")));
        let first: Vec<&Path> = layers
            .iter()
            .map(|l| l.candidates[0].path.as_path())
            .collect();
        assert_eq!(
            first,
            [
                Path::new("/etc/spfs.conf"),
                Path::new("/etc/spfs.toml"),
                Path::new("/home/u/.config/spfs/spfs.conf"),
                Path::new("/home/u/.config/spfs/spfs.toml"),
            ]
        );
        assert!(layers[3]
            .candidates
            .iter()
            .any(|c| c.path == Path::new("/home/u/.config/spfs/spfs.yaml")));
    }

    #[test]
    fn system_ini_then_user_toml_then_env() {
        let mut s = site();
        let etc = s.write(
            "etc/spfs.conf",
            "; system\n[storage]\nroot = /srv/local\n\n[remote.origin]\naddress = file:///srv/spfs/origin\n[remote.other]\naddress = \"file:///srv/other\"\n",
        );
        assert_eq!(
            s.get("origin").unwrap().root.unwrap(),
            Path::new("/srv/spfs/origin")
        );
        assert_eq!(
            s.get("origin").unwrap().origin,
            ConfigOrigin::File(etc.clone())
        );
        assert_eq!(
            s.get("other").unwrap().root.unwrap(),
            Path::new("/srv/other")
        );
        assert_eq!(s.get("nope"), None);

        let user = s.write(
            "config/spfs/spfs.toml",
            "[remote.origin]\naddress = \"file:///home/u/origin\"\n",
        );
        let got = s.get("origin").unwrap();
        assert_eq!(got.root.unwrap(), Path::new("/home/u/origin"));
        assert_eq!(got.origin, ConfigOrigin::File(user));
        // untouched keys of lower layers stay
        assert_eq!(s.get("other").unwrap().origin, ConfigOrigin::File(etc));
        assert_eq!(
            s.get("local").unwrap().root.unwrap(),
            Path::new("/srv/local")
        );

        s.sources.env.insert(
            "SPFS_REMOTE__ORIGIN__ADDRESS".into(),
            "file:///env/double".into(),
        );
        let got = s.get("origin").unwrap();
        assert_eq!(got.root.unwrap(), Path::new("/env/double"));
        assert_eq!(
            got.origin,
            ConfigOrigin::Env("SPFS_REMOTE__ORIGIN__ADDRESS".into())
        );
        // the single-underscore form wins over the double one
        s.sources.env.insert(
            "SPFS_REMOTE_ORIGIN_ADDRESS".into(),
            "file:///env/single".into(),
        );
        assert_eq!(
            s.get("origin").unwrap().root.unwrap(),
            Path::new("/env/single")
        );
        s.sources
            .env
            .insert("spfs_storage_root".into(), "~/mine".into());
        assert_eq!(
            s.get("local").unwrap().root.unwrap(),
            s.dir.path().join("home/mine")
        );
    }

    #[test]
    fn names_with_underscores_need_the_double_form() {
        let mut s = site();
        s.sources.env.insert(
            "SPFS_REMOTE__MY_REPO__ADDRESS".into(),
            "file:///srv/my".into(),
        );
        assert_eq!(
            s.get("my_repo").unwrap().root.unwrap(),
            Path::new("/srv/my")
        );
        let mut s = site();
        s.sources.env.insert(
            "SPFS_REMOTE_MY_REPO_ADDRESS".into(),
            "file:///srv/my".into(),
        );
        // spfs reads this as remote.my.repo.address: there is no `my_repo`
        assert_eq!(s.get("my_repo"), None);
    }

    #[test]
    fn yaml_json_and_the_scheme_table() {
        let s = site();
        s.write(
            "config/spfs/spfs.yaml",
            "remote:\n  origin:\n    scheme: fs\n    path: ~/repos/origin\n  web:\n    address: http2://spfs.example.com:7737\n",
        );
        let got = s.get("origin").unwrap();
        assert_eq!(
            got.root.as_deref(),
            Some(s.dir.path().join("home/repos/origin").as_path())
        );
        assert_eq!(got.scheme, "file");
        let web = s.get("web").unwrap();
        assert_eq!(web.scheme, "http2");
        let e = web.filesystem_root().unwrap_err();
        assert!(
            e.to_string().contains("only filesystem repositories"),
            "{e}"
        );
        assert!(e.to_string().contains("spfs.yaml"), "{e}");

        let s = site();
        s.write(
            "etc/spfs.json",
            r#"{"remote": {"origin": {"address": "tar:///srv/origin.tar"}, "p": {"scheme": "proxy", "primary": "file:///a"}}}"#,
        );
        assert_eq!(s.get("origin").unwrap().scheme, "tar");
        assert!(s.get("origin").unwrap().filesystem_root().is_err());
        assert_eq!(s.get("p").unwrap().scheme, "proxy");
        assert!(s.get("p").unwrap().root.is_none());
    }

    #[test]
    fn only_the_first_extension_of_a_layer_is_read() {
        let s = site();
        s.write(
            "etc/spfs.toml",
            "[remote.origin]\naddress = \"file:///from/toml\"\n",
        );
        s.write(
            "etc/spfs.ini",
            "[remote.origin]\naddress = file:///from/ini\n",
        );
        assert_eq!(
            s.get("origin").unwrap().root.unwrap(),
            Path::new("/from/toml")
        );
    }

    #[test]
    fn broken_files_and_values_are_errors() {
        let s = site();
        s.write("etc/spfs.conf", "[remote.origin\naddress = x\n");
        let e = remote_address("origin", &s.sources).unwrap_err();
        assert!(e.to_string().contains("spfs.conf"), "{e}");

        let s = site();
        s.write(
            "etc/spfs.toml",
            "[remote.origin]\naddress = \"not a url\"\n",
        );
        assert!(remote_address("origin", &s.sources).is_err());
    }

    #[test]
    fn file_urls() {
        for (url, path) in [
            ("file:///srv/a", "/srv/a"),
            ("file:/srv/a", "/srv/a"),
            ("file://host/srv/a", "/srv/a"),
            ("file:///srv/a/?create=true", "/srv/a/"),
        ] {
            assert_eq!(file_url_path(url).unwrap(), Path::new(path), "{url}");
        }
        assert_eq!(scheme_of("grpc://x:1").as_deref(), Some("grpc"));
        assert_eq!(scheme_of("/srv/a"), None);
    }

    #[test]
    fn default_local_repository() {
        let s = site();
        let local = s.get("local").unwrap();
        assert_eq!(local.origin, ConfigOrigin::Default);
        assert_eq!(
            local.root.unwrap(),
            s.dir.path().join("home/.local/share/spfs")
        );
    }
}
