//! Reading the layers and turning the merged tree into a [`Config`].
//!
//! Loading never stops at the first problem: the walker records every
//! unknown key, wrong type and broken value as a [`Diagnostic`] with its key
//! path and the file (or environment variable) it came from, falls back to
//! the default, and carries on. `check-config` prints them all; every other
//! command refuses to run on errors, listing them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::model::*;
use super::node::{Kind, Node};
use crate::address::RepoAddress;
use crate::diagnostic::{Diagnostic, Severity};

/// Top-level sections of SPK's config that are not about messaging. They
/// are accepted (a site's real `spk.toml` has them) and not checked.
pub const FOREIGN_SECTIONS: &[&str] = &[
    "sentry",
    "solver",
    "statsd",
    "storage",
    "metadata",
    "cli",
    "host_options",
    "distro",
    "environment",
    "build",
    "remote",
];

const EXTENSIONS: &[&str] = &["toml", "yaml", "yml", "json"];

/// Where to look for config, and the environment to read.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `--config FILE` / `SPK_CONFIG`: replaces the discovered files.
    pub config_file: Option<PathBuf>,
    /// Directory holding the system file `spk.<ext>` (normally `/etc`).
    pub system_dir: PathBuf,
    /// Directory holding the user file (normally `~/.config/spk`).
    pub user_dir: Option<PathBuf>,
    /// Environment variables (normally the process's).
    pub env: Vec<(String, String)>,
    /// Directory relative addresses from the environment are resolved against.
    pub cwd: PathBuf,
}

impl LoadOptions {
    /// The process's own environment and SPK's usual locations.
    pub fn from_process(config_file: Option<PathBuf>) -> Self {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from);
        let user_dir = xdg
            .or_else(|| home.map(|h| h.join(".config")))
            .map(|d| d.join("spk"));
        let config_file = config_file.or_else(|| std::env::var_os("SPK_CONFIG").map(PathBuf::from));
        LoadOptions {
            config_file,
            system_dir: PathBuf::from("/etc"),
            user_dir,
            env,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }
}

/// The outcome of loading: the config (defaults where values were bad) and
/// every problem found.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Every problem, with the severity `check-config` gives it.
    pub diagnostics: Vec<Diagnostic>,
    /// Indexes into `diagnostics` of errors that are errors only for
    /// `check-config`: a command that can do its work anyway (e.g. an
    /// `update_message_channel` set to a channel that does not exist: the
    /// index is written, no status is sent) takes them as warnings.
    pub check_only_errors: Vec<usize>,
}

/// The config has errors; each is listed.
#[derive(Debug, thiserror::Error)]
#[error("the SPK config has {} error(s):\n{}", .errors.len(), .errors.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub errors: Vec<Diagnostic>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// The diagnostics as a command other than `check-config` sees them:
    /// check-only errors become warnings.
    pub fn for_use(mut self) -> Loaded {
        for i in std::mem::take(&mut self.check_only_errors) {
            if let Some(d) = self.diagnostics.get_mut(i) {
                d.severity = Severity::Warning;
            }
        }
        self
    }

    /// The config, or every error at once, for a command that uses it (see
    /// [`Loaded::for_use`]); the warnings and notes are returned.
    pub fn into_result(self) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
        let used = self.for_use();
        let (errors, warnings): (Vec<_>, Vec<_>) = used
            .diagnostics
            .into_iter()
            .partition(|d| d.severity == Severity::Error);
        if errors.is_empty() {
            Ok((used.config, warnings))
        } else {
            Err(ConfigError { errors })
        }
    }
}

fn parse_file(path: &Path, text: &str) -> Result<Value, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "toml" => toml::from_str::<Value>(text).map_err(|e| e.to_string().trim().to_string()),
        "yaml" | "yml" => {
            if text.trim().is_empty() {
                return Ok(Value::Object(Default::default()));
            }
            serde_yaml::from_str::<Value>(text).map_err(|e| e.to_string())
        }
        "json" => serde_json::from_str::<Value>(text).map_err(|e| e.to_string()),
        other => Err(format!(
            "unknown config file extension {other:?}; use .toml, .yaml, .yml or .json"
        )),
    }
}

/// Loads every layer and builds the config.
pub fn load(opts: &LoadOptions) -> Loaded {
    let mut w = Walker::default();
    let mut root = Node::empty_table(Arc::from("defaults"));
    let mut sources = Vec::new();

    let files: Vec<PathBuf> = match &opts.config_file {
        Some(f) => {
            if !f.exists() {
                w.push(
                    Severity::Error,
                    "",
                    &format!("config file {} does not exist", f.display()),
                    Some("check the path given to --config or SPK_CONFIG".into()),
                    None,
                );
            }
            vec![f.clone()]
        }
        None => {
            let mut v = Vec::new();
            let dirs = std::iter::once(Some(opts.system_dir.clone()))
                .chain(std::iter::once(opts.user_dir.clone()));
            for dir in dirs.flatten() {
                // As SPK: the first of spk.toml, spk.yaml, spk.yml, spk.json in each place.
                if let Some(f) = EXTENSIONS
                    .iter()
                    .map(|e| dir.join(format!("spk.{e}")))
                    .find(|p| p.is_file())
                {
                    v.push(f);
                }
            }
            v
        }
    };

    for f in files.iter().filter(|f| f.exists()) {
        let label: Arc<str> = Arc::from(f.display().to_string());
        match std::fs::read_to_string(f) {
            Err(e) => w.push(
                Severity::Error,
                "",
                &format!("cannot read the file: {e}"),
                None,
                Some(&label),
            ),
            Ok(text) => match parse_file(f, &text) {
                Err(e) => w.push(
                    Severity::Error,
                    "",
                    &format!("cannot parse the file: {e}"),
                    Some("fix the syntax at the line and column given".into()),
                    Some(&label),
                ),
                Ok(v @ Value::Object(_)) => {
                    root.merge(Node::from_value(v, &label));
                    sources.push(label.to_string());
                }
                Ok(_) => w.push(
                    Severity::Error,
                    "",
                    "the file's top level is not a table of sections",
                    Some(
                        "start with sections such as `[repositories.origin]` or `[[messaging]]`"
                            .into(),
                    ),
                    Some(&label),
                ),
            },
        }
    }

    // SPK_<SECTION>__<KEY>[__<KEY>...]; SPK_CONFIG and variables without `__`
    // are not config keys.
    let mut env: Vec<&(String, String)> = opts
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("SPK_") && k.contains("__") && k != "SPK_CONFIG")
        .collect();
    env.sort();
    for (k, v) in env {
        let label: Arc<str> = Arc::from(format!("environment variable {k}"));
        let segs: Vec<String> = k["SPK_".len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if segs.iter().any(|s| s.is_empty()) {
            w.push(
                Severity::Error,
                "",
                "empty key segment (three or more underscores in a row?)",
                Some(
                    "use SPK_<SECTION>__<KEY>, e.g. SPK_REPOSITORIES__ORIGIN__USE_INDEX=true"
                        .into(),
                ),
                Some(&label),
            );
            continue;
        }
        // Values are read as YAML scalars or flow lists: `true`, `5000`, `[a:9092, b:9092]`.
        let value: Value = serde_yaml::from_str(v).unwrap_or_else(|_| Value::String(v.clone()));
        let mut node = Node::from_value(value, &label);
        for s in segs.into_iter().rev() {
            let mut t = BTreeMap::new();
            t.insert(s, node);
            node = Node {
                kind: Kind::Table(t),
                source: label.clone(),
            };
        }
        root.merge(node);
        if !sources.iter().any(|s| s == "environment") {
            sources.push("environment".into());
        }
    }

    let mut config = w.config(&root, &opts.cwd);
    config.sources = sources;
    super::check::check(&config, &root, &mut w);
    Loaded {
        config,
        diagnostics: w.diags,
        check_only_errors: w.check_only,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Suggests the key an operator probably meant.
pub(crate) fn suggest(key: &str, node: &Node, known: &[&str]) -> Option<String> {
    if let Some(stem) = key.strip_suffix("_s") {
        let ms = format!("{stem}_ms");
        if known.contains(&ms.as_str()) {
            let example = match &node.kind {
                Kind::Scalar(Value::Number(n)) => n
                    .as_f64()
                    .map(|s| {
                        format!(
                            ": {key} = {n} means `{ms} = {}`",
                            (s * 1000.0).round() as i64
                        )
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            return Some(format!(
                "did you mean `{ms}`? SPK's documentation spells it `{key}`, but SPK reads `{ms}` and the value is in milliseconds, not seconds{example}"
            ));
        }
    }
    let lower = key.to_ascii_lowercase();
    if known.contains(&lower.as_str()) && lower != key {
        return Some(format!("did you mean `{lower}`? keys are snake_case"));
    }
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(&lower, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("did you mean `{k}`?"))
        .or_else(|| Some(format!("known keys here: {}", known.join(", "))))
}

const REPO_KEYS: &[&str] = &["use_index", "address", "index"];
const INDEX_KEYS: &[&str] = &[
    "verify_before_use",
    "kind",
    "lock_sleep_seconds",
    "lock_max_tries",
    "update_message_channel",
    "update_event_send_freq_ms",
];
const CHANNEL_KINDS: &[&str] = &["kafka", "Kafka"];
const KAFKA_KEYS: &[&str] = &[
    "name",
    "brokers",
    "package_updates_topic_name",
    "index_updates_topic_name",
    "repo_names",
    "message_timeout_ms",
    "producer_queue_timeout_ms",
    "index_update_listener_timeout_ms",
    "index_update_listener_session_timeout_ms",
    "index_update_listener_max_polling_interval_ms",
    "index_update_listener_recent_past_duration_ms",
    "index_update_listener_broker_fetch_timeout_ms",
    "properties",
];
const INDEXER_KEYS: &[&str] = &[
    "message_channel_name",
    "repo_name",
    "heartbeat_freq_ms",
    "session_timeout_ms",
    "max_polling_interval_ms",
    "quiet_period_ms",
    "max_delay_ms",
];

#[derive(Debug, Default)]
pub(crate) struct Walker {
    pub(crate) diags: Vec<Diagnostic>,
    /// See [`Loaded::check_only_errors`].
    pub(crate) check_only: Vec<usize>,
}

type Table = BTreeMap<String, Node>;

impl Walker {
    pub(crate) fn push(
        &mut self,
        severity: Severity,
        path: &str,
        message: &str,
        hint: Option<String>,
        source: Option<&Arc<str>>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            path: path.to_string(),
            message: message.to_string(),
            hint,
            source: source.map(|s| s.to_string()),
        });
    }

    /// An error for `check-config`, a warning for every other command.
    pub(crate) fn push_check_only_error(
        &mut self,
        path: &str,
        message: &str,
        hint: Option<String>,
        source: Option<&Arc<str>>,
    ) {
        self.check_only.push(self.diags.len());
        self.push(Severity::Error, path, message, hint, source);
    }

    fn wrong_type(&mut self, path: &str, node: &Node, expected: &str, hint: Option<String>) {
        self.push(
            Severity::Error,
            path,
            &format!(
                "wrong type: expected {expected}, found {}",
                node.type_name()
            ),
            hint,
            Some(&node.source),
        );
    }

    fn table<'a>(&mut self, node: &'a Node, path: &str, hint: &str) -> Option<&'a Table> {
        match &node.kind {
            Kind::Table(t) => Some(t),
            _ => {
                self.wrong_type(path, node, "a table", Some(hint.to_string()));
                None
            }
        }
    }

    fn unknown_keys(&mut self, t: &Table, path: &str, known: &[&str]) {
        for (k, n) in t {
            if !known.contains(&k.as_str()) {
                self.push(
                    Severity::Error,
                    &join(path, k),
                    "unknown key",
                    suggest(k, n, known),
                    Some(&n.source),
                );
            }
        }
    }

    fn bool(&mut self, t: &Table, path: &str, key: &str, default: bool) -> bool {
        match t.get(key) {
            None => default,
            Some(Node {
                kind: Kind::Scalar(Value::Bool(b)),
                ..
            }) => *b,
            Some(n) => {
                let hint = match &n.kind {
                    Kind::Scalar(Value::String(s)) if s == "true" || s == "false" => {
                        Some(format!("write {s} without quotes"))
                    }
                    _ => Some("use true or false".into()),
                };
                self.wrong_type(&join(path, key), n, "a boolean", hint);
                default
            }
        }
    }

    /// A non-negative integer no smaller than `min`.
    fn uint(&mut self, t: &Table, path: &str, key: &str, default: u64, min: u64) -> u64 {
        let p = join(path, key);
        match t.get(key) {
            None => default,
            Some(n) => match &n.kind {
                Kind::Scalar(Value::Number(num)) if num.as_u64().is_some() => {
                    let v = num.as_u64().unwrap_or(default);
                    if v < min {
                        self.push(
                            Severity::Error,
                            &p,
                            &format!("value {v} is too small"),
                            Some(format!("use at least {min} (default {default})")),
                            Some(&n.source),
                        );
                        default
                    } else {
                        v
                    }
                }
                Kind::Scalar(Value::String(s)) if s.trim().parse::<u64>().is_ok() => {
                    self.wrong_type(
                        &p,
                        n,
                        "an integer",
                        Some(format!("write {} without quotes", s.trim())),
                    );
                    default
                }
                _ => {
                    self.wrong_type(
                        &p,
                        n,
                        "a non-negative integer",
                        Some(format!("default is {default}")),
                    );
                    default
                }
            },
        }
    }

    fn string(&mut self, t: &Table, path: &str, key: &str) -> Option<String> {
        match t.get(key) {
            None => None,
            Some(Node {
                kind: Kind::Scalar(Value::String(s)),
                ..
            }) => Some(s.clone()),
            Some(n) => {
                self.wrong_type(&join(path, key), n, "a string", None);
                None
            }
        }
    }

    fn str_list(&mut self, t: &Table, path: &str, key: &str, example: &str) -> Option<Vec<String>> {
        let p = join(path, key);
        let n = t.get(key)?;
        match &n.kind {
            Kind::List(items) => {
                let mut out = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    match &it.kind {
                        Kind::Scalar(Value::String(s)) => out.push(s.clone()),
                        _ => self.wrong_type(
                            &format!("{p}[{i}]"),
                            it,
                            "a string",
                            Some(format!("e.g. {example}")),
                        ),
                    }
                }
                Some(out)
            }
            Kind::Scalar(Value::String(s)) => {
                self.wrong_type(&p, n, "a list of strings", Some(format!("write [{:?}]", s)));
                Some(vec![s.clone()])
            }
            _ => {
                self.wrong_type(&p, n, "a list of strings", Some(format!("e.g. {example}")));
                None
            }
        }
    }

    pub(crate) fn config(&mut self, root: &Node, cwd: &Path) -> Config {
        let mut config = Config::default();
        let Some(top) = self.table(root, "", "the top level must be a table") else {
            return config;
        };
        for (k, n) in top {
            match k.as_str() {
                "repositories" => {
                    if let Some(t) = self.table(n, k, "write [repositories.<name>] tables") {
                        for (name, rn) in t {
                            let path = format!("repositories.{name}");
                            if let Some(r) = self.repository(rn, &path, cwd) {
                                config.repositories.insert(name.clone(), r);
                            }
                        }
                    }
                }
                "messaging" => match &n.kind {
                    Kind::List(items) => {
                        for (i, it) in items.iter().enumerate() {
                            if let Some(c) = self.channel(it, &format!("messaging[{i}]")) {
                                config.messaging.push(c);
                            }
                        }
                    }
                    _ => self.wrong_type(
                        k,
                        n,
                        "a list of channels",
                        Some("in TOML write [[messaging]] then kafka = { ... }".into()),
                    ),
                },
                "indexers" => {
                    if let Some(t) = self.table(n, k, "write [indexers.<name>] tables") {
                        for (name, inode) in t {
                            if let Some(ix) = self.indexer(inode, &format!("indexers.{name}")) {
                                config.indexers.insert(name.clone(), ix);
                            }
                        }
                    }
                }
                other if FOREIGN_SECTIONS.contains(&other) => {}
                other => {
                    // A newer SPK's section, or a typo: SPK itself ignores
                    // it, so a warning (an error with `--strict`).
                    let mut known = vec!["repositories", "messaging", "indexers"];
                    known.extend_from_slice(FOREIGN_SECTIONS);
                    let hint = match suggest(other, n, &known) {
                        Some(h) if h.starts_with("did you mean") => h,
                        _ => "if it is a newer SPK's section, nothing here reads it; otherwise check its spelling".to_string(),
                    };
                    self.push(
                        Severity::Warning,
                        other,
                        "unknown section: ignored",
                        Some(hint),
                        Some(&n.source),
                    );
                }
            }
        }
        config
    }

    fn repository(&mut self, node: &Node, path: &str, cwd: &Path) -> Option<RepositoryConfig> {
        let t = self.table(
            node,
            path,
            "a repository is a table with use_index, address and index",
        )?;
        self.unknown_keys(t, path, REPO_KEYS);
        let mut r = RepositoryConfig {
            use_index: self.bool(t, path, "use_index", false),
            ..Default::default()
        };
        if let Some(a) = self.string(t, path, "address") {
            let src = &t["address"].source;
            // A relative path is relative to the file that says it.
            let base = if src.starts_with("environment") || src.as_ref() == "defaults" {
                cwd.to_path_buf()
            } else {
                Path::new(src.as_ref())
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| cwd.to_path_buf())
            };
            match RepoAddress::parse(&a, &base) {
                Ok(addr) => r.address = Some(addr),
                Err(e) => self.push(
                    Severity::Error,
                    &join(path, "address"),
                    &e.to_string(),
                    None,
                    Some(src),
                ),
            }
        }
        if let Some(inode) = t.get("index") {
            let ipath = join(path, "index");
            if let Some(it) = self.table(inode, &ipath, "index is a table of index settings") {
                self.unknown_keys(it, &ipath, INDEX_KEYS);
                let d = IndexConfig::default();
                r.index = IndexConfig {
                    verify_before_use: self.bool(
                        it,
                        &ipath,
                        "verify_before_use",
                        d.verify_before_use,
                    ),
                    kind: self.string(it, &ipath, "kind").unwrap_or(d.kind),
                    lock_sleep_seconds: self.uint(
                        it,
                        &ipath,
                        "lock_sleep_seconds",
                        d.lock_sleep_seconds,
                        0,
                    ),
                    lock_max_tries: self.uint(it, &ipath, "lock_max_tries", d.lock_max_tries, 1),
                    update_message_channel_set: it.contains_key("update_message_channel"),
                    update_message_channel: self
                        .string(it, &ipath, "update_message_channel")
                        .unwrap_or(d.update_message_channel),
                    update_event_send_freq_ms: self.uint(
                        it,
                        &ipath,
                        "update_event_send_freq_ms",
                        d.update_event_send_freq_ms,
                        1,
                    ),
                };
            }
        }
        Some(r)
    }

    fn channel(&mut self, node: &Node, path: &str) -> Option<KafkaChannelConfig> {
        let t = self.table(
            node,
            path,
            "a channel is tagged by kind: in TOML [[messaging]] then kafka = { ... }",
        )?;
        if t.len() != 1 {
            let keys: Vec<&str> = t.keys().map(String::as_str).collect();
            // A common slip: the kafka keys written directly in [[messaging]].
            let hint = if keys.iter().any(|k| KAFKA_KEYS.contains(k)) {
                "put the channel's keys inside its kind: [[messaging]] then kafka = { name = ..., brokers = [...] }".to_string()
            } else {
                "each entry has exactly one key, its kind: kafka".to_string()
            };
            self.push(
                Severity::Error,
                path,
                &format!(
                    "a channel entry must have exactly one key naming its kind, found {}",
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    }
                ),
                Some(hint),
                Some(&node.source),
            );
            return None;
        }
        let (kind, body) = t.iter().next()?;
        if !CHANNEL_KINDS.contains(&kind.as_str()) {
            self.push(
                Severity::Error,
                &join(path, kind),
                &format!("unknown channel kind {kind:?}"),
                Some(
                    suggest(kind, body, &["kafka"])
                        .unwrap_or_default()
                        .replace("known keys here", "supported kinds"),
                ),
                Some(&body.source),
            );
            return None;
        }
        let path = join(path, kind);
        let b = self.table(body, &path, "the kafka channel is a table of settings")?;
        self.unknown_keys(b, &path, KAFKA_KEYS);
        let d = KafkaChannelConfig::default();
        if !b.contains_key("brokers") {
            self.push(
                Severity::Error,
                &join(&path, "brokers"),
                "missing required key `brokers`",
                Some("e.g. brokers = [\"kafka1.example.com:9092\"]".into()),
                Some(&body.source),
            );
        }
        if !b.contains_key("repo_names") {
            self.push(Severity::Error, &join(&path, "repo_names"), "missing required key `repo_names`", Some("list the repositories this channel may carry messages about, e.g. repo_names = [\"origin\"]".into()), Some(&body.source));
        }
        let mut properties = BTreeMap::new();
        if let Some(pn) = b.get("properties") {
            let ppath = join(&path, "properties");
            if let Some(pt) = self.table(pn, &ppath, "properties is a table of librdkafka settings, e.g. { \"security.protocol\" = \"SASL_SSL\" }") {
                for (k, v) in pt {
                    let value = match &v.kind {
                        Kind::Scalar(Value::String(s)) => Some(s.clone()),
                        Kind::Scalar(Value::Bool(x)) => Some(x.to_string()),
                        Kind::Scalar(Value::Number(x)) => Some(x.to_string()),
                        _ => {
                            self.wrong_type(&format!("{ppath}.\"{k}\""), v, "a string, number or boolean", None);
                            None
                        }
                    };
                    if let Some(value) = value {
                        properties.insert(k.clone(), value);
                    }
                }
            }
        }
        Some(KafkaChannelConfig {
            name: self.string(b, &path, "name").unwrap_or(d.name),
            brokers: self
                .str_list(b, &path, "brokers", "[\"kafka1.example.com:9092\"]")
                .unwrap_or_default(),
            package_updates_topic_name: self.string(b, &path, "package_updates_topic_name"),
            index_updates_topic_name: self.string(b, &path, "index_updates_topic_name"),
            repo_names: self
                .str_list(b, &path, "repo_names", "[\"origin\"]")
                .unwrap_or_default(),
            message_timeout_ms: self.uint(b, &path, "message_timeout_ms", d.message_timeout_ms, 1),
            producer_queue_timeout_ms: self.uint(
                b,
                &path,
                "producer_queue_timeout_ms",
                d.producer_queue_timeout_ms,
                0,
            ),
            index_update_listener_timeout_ms: self.uint(
                b,
                &path,
                "index_update_listener_timeout_ms",
                d.index_update_listener_timeout_ms,
                1,
            ),
            index_update_listener_session_timeout_ms: self.uint(
                b,
                &path,
                "index_update_listener_session_timeout_ms",
                d.index_update_listener_session_timeout_ms,
                1,
            ),
            index_update_listener_max_polling_interval_ms: self.uint(
                b,
                &path,
                "index_update_listener_max_polling_interval_ms",
                d.index_update_listener_max_polling_interval_ms,
                1,
            ),
            index_update_listener_recent_past_duration_ms: self.uint(
                b,
                &path,
                "index_update_listener_recent_past_duration_ms",
                d.index_update_listener_recent_past_duration_ms,
                1,
            ),
            index_update_listener_broker_fetch_timeout_ms: self.uint(
                b,
                &path,
                "index_update_listener_broker_fetch_timeout_ms",
                d.index_update_listener_broker_fetch_timeout_ms,
                1,
            ),
            properties,
        })
    }

    fn indexer(&mut self, node: &Node, path: &str) -> Option<IndexerConfig> {
        let t = self.table(
            node,
            path,
            "an indexer is a table with message_channel_name and repo_name",
        )?;
        self.unknown_keys(t, path, INDEXER_KEYS);
        let d = IndexerConfig::default();
        for key in ["message_channel_name", "repo_name"] {
            if !t.contains_key(key) {
                self.push(
                    Severity::Error,
                    &join(path, key),
                    &format!("missing required key `{key}`"),
                    None,
                    Some(&node.source),
                );
            }
        }
        Some(IndexerConfig {
            message_channel_name: self
                .string(t, path, "message_channel_name")
                .unwrap_or_default(),
            repo_name: self.string(t, path, "repo_name").unwrap_or_default(),
            heartbeat_freq_ms: self.uint(t, path, "heartbeat_freq_ms", d.heartbeat_freq_ms, 1),
            session_timeout_ms: self.uint(t, path, "session_timeout_ms", d.session_timeout_ms, 1),
            max_polling_interval_ms: self.uint(
                t,
                path,
                "max_polling_interval_ms",
                d.max_polling_interval_ms,
                1,
            ),
            quiet_period_ms: self.uint(t, path, "quiet_period_ms", d.quiet_period_ms, 0),
            max_delay_ms: self.uint(t, path, "max_delay_ms", d.max_delay_ms, 1),
        })
    }
}
