//! The typed config, with SPK's defaults.

use std::collections::BTreeMap;

use crate::address::RepoAddress;

/// The whole messaging-related config.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub repositories: BTreeMap<String, RepositoryConfig>,
    pub messaging: Vec<KafkaChannelConfig>,
    pub indexers: BTreeMap<String, IndexerConfig>,
    /// The layers that were read, lowest first (files and `environment`).
    pub sources: Vec<String>,
}

impl Config {
    pub fn channel(&self, name: &str) -> Option<&KafkaChannelConfig> {
        self.messaging.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RepositoryConfig {
    pub use_index: bool,
    /// Our extension: where the repository lives.
    pub address: Option<RepoAddress>,
    pub index: IndexConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexConfig {
    pub verify_before_use: bool,
    pub kind: String,
    pub lock_sleep_seconds: u64,
    pub lock_max_tries: u64,
    pub update_message_channel: String,
    pub update_event_send_freq_ms: u64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            verify_before_use: true,
            kind: "flatb".into(),
            lock_sleep_seconds: 6,
            lock_max_tries: 5,
            update_message_channel: "kafka".into(),
            update_event_send_freq_ms: 5000,
        }
    }
}

/// One `[[messaging]]` entry of kind kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaChannelConfig {
    pub name: String,
    pub brokers: Vec<String>,
    pub package_updates_topic_name: Option<String>,
    pub index_updates_topic_name: Option<String>,
    pub repo_names: Vec<String>,
    pub message_timeout_ms: u64,
    pub producer_queue_timeout_ms: u64,
    pub index_update_listener_timeout_ms: u64,
    pub index_update_listener_session_timeout_ms: u64,
    pub index_update_listener_max_polling_interval_ms: u64,
    pub index_update_listener_recent_past_duration_ms: u64,
    pub index_update_listener_broker_fetch_timeout_ms: u64,
    /// Our extension: librdkafka properties passed as-is; values may hold
    /// `${VAR}` (see [`crate::config::expand_env`]). Never print the values
    /// of secret keys ([`crate::config::is_secret_property`]).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaChannelConfig {
    fn default() -> Self {
        KafkaChannelConfig {
            name: "kafka".into(),
            brokers: Vec::new(),
            package_updates_topic_name: None,
            index_updates_topic_name: None,
            repo_names: Vec::new(),
            message_timeout_ms: 5000,
            producer_queue_timeout_ms: 4000,
            index_update_listener_timeout_ms: 10000,
            index_update_listener_session_timeout_ms: 10000,
            index_update_listener_max_polling_interval_ms: 60000,
            index_update_listener_recent_past_duration_ms: 120000,
            index_update_listener_broker_fetch_timeout_ms: 20000,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaChannelConfig {
    pub fn allows_repo(&self, repo: &str) -> bool {
        self.repo_names.iter().any(|r| r == repo)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexerConfig {
    pub message_channel_name: String,
    pub repo_name: String,
    pub heartbeat_freq_ms: u64,
    pub session_timeout_ms: u64,
    pub max_polling_interval_ms: u64,
    /// Our extension: how long events must pause before an update runs.
    pub quiet_period_ms: u64,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        IndexerConfig {
            message_channel_name: String::new(),
            repo_name: String::new(),
            heartbeat_freq_ms: 60000,
            session_timeout_ms: 120000,
            max_polling_interval_ms: 86400000,
            quiet_period_ms: 2000,
        }
    }
}

/// A repository chosen on the command line (`--repo`), resolved against the
/// config.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedRepo {
    /// The configured name; for an unconfigured path, its last component.
    pub name: String,
    pub address: RepoAddress,
    /// The repository's config (defaults when not configured).
    pub config: RepositoryConfig,
    /// Whether the repository is in the config.
    pub configured: bool,
}

/// Why `--repo` could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("repository {name:?} is configured without an `address`; add repositories.{name}.address (a path or file: URL)")]
    NoAddress { name: String },
    #[error("{0:?} is neither a configured repository ({1}) nor a path or file: URL")]
    Unknown(String, String),
    #[error(transparent)]
    Address(#[from] crate::address::AddressError),
}

impl Config {
    /// Resolves `--repo`: a configured repository name, else a path or
    /// `file:` URL (relative to `cwd`). A path that is the address of a
    /// configured repository resolves to that repository.
    pub fn resolve_repo(
        &self,
        repo: &str,
        cwd: &std::path::Path,
    ) -> Result<ResolvedRepo, ResolveError> {
        if let Some(r) = self.repositories.get(repo) {
            let address = r.address.clone().ok_or_else(|| ResolveError::NoAddress {
                name: repo.to_string(),
            })?;
            return Ok(ResolvedRepo {
                name: repo.to_string(),
                address,
                config: r.clone(),
                configured: true,
            });
        }
        let looks_like_path =
            repo.starts_with("file:") || repo.contains('/') || repo.starts_with('.');
        if !looks_like_path {
            let names: Vec<&str> = self.repositories.keys().map(String::as_str).collect();
            let known = if names.is_empty() {
                "none configured".to_string()
            } else {
                format!("configured: {}", names.join(", "))
            };
            return Err(ResolveError::Unknown(repo.to_string(), known));
        }
        let address = RepoAddress::parse(repo, cwd)?;
        if let Some((name, r)) = self
            .repositories
            .iter()
            .find(|(_, r)| r.address.as_ref() == Some(&address))
        {
            return Ok(ResolvedRepo {
                name: name.clone(),
                address,
                config: r.clone(),
                configured: true,
            });
        }
        let name = address
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repo".to_string());
        Ok(ResolvedRepo {
            name,
            address,
            config: RepositoryConfig::default(),
            configured: false,
        })
    }
}
