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
    /// Whether `update_message_channel` was written in the config (rather
    /// than SPK's default `"kafka"`): a default naming no channel is a note,
    /// an explicit one a mistake.
    pub update_message_channel_set: bool,
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
            update_message_channel_set: false,
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
    /// Our extension: the longest a pending event waits for a run to start,
    /// however steadily events keep coming.
    pub max_delay_ms: u64,
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
            max_delay_ms: crate::indexer::DEFAULT_MAX_DELAY_MS,
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
    /// Where the address came from (a config key, an spfs config file or
    /// variable, or the command line).
    pub address_source: String,
}

/// Where a repository name's address comes from when the SPK config does
/// not give one: on an SPK site, spfs's own config (`[remote.<name>]
/// address`). The lookup answers the address and where it was found (a
/// file or environment variable), `Ok(None)` when spfs's config does not
/// name the repository, or an error (say, an http remote, which cannot be
/// indexed) to report as is.
pub trait AddressLookup {
    fn lookup(&self, name: &str) -> Result<Option<(RepoAddress, String)>, String>;
}

/// No lookup: only the SPK config's `address` and paths resolve.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLookup;

impl AddressLookup for NoLookup {
    fn lookup(&self, _: &str) -> Result<Option<(RepoAddress, String)>, String> {
        Ok(None)
    }
}

/// Why `--repo` could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("repository {name:?} has no address: neither spfs's config ([remote.{name}] address = \"file:///...\" in /etc/spfs.toml or ~/.config/spfs/spfs.toml, or SPFS_REMOTE_{upper}_ADDRESS) nor the SPK config (repositories.{name}.address) gives one")]
    NoAddress { name: String, upper: String },
    #[error("{0:?} is neither a configured repository ({1}) nor a path or file: URL")]
    Unknown(String, String),
    #[error("repository {name:?}: {reason}")]
    Lookup { name: String, reason: String },
    #[error(transparent)]
    Address(#[from] crate::address::AddressError),
}

impl Config {
    /// Resolves `--repo` without spfs's config (see [`Config::resolve_repo_with`]).
    pub fn resolve_repo(
        &self,
        repo: &str,
        cwd: &std::path::Path,
    ) -> Result<ResolvedRepo, ResolveError> {
        self.resolve_repo_with(repo, cwd, &NoLookup)
    }

    /// Resolves `--repo`: a repository name (its address from the SPK
    /// config's `repositories.<name>.address`, our override, else from
    /// `lookup`, spfs's config as SPK sites have it), else a path or `file:`
    /// URL (relative to `cwd`). A path that is the address of a configured
    /// repository resolves to that repository.
    pub fn resolve_repo_with(
        &self,
        repo: &str,
        cwd: &std::path::Path,
        lookup: &dyn AddressLookup,
    ) -> Result<ResolvedRepo, ResolveError> {
        let configured = self.repositories.get(repo);
        if let Some(address) = configured.and_then(|r| r.address.clone()) {
            return Ok(ResolvedRepo {
                name: repo.to_string(),
                address,
                config: configured.cloned().unwrap_or_default(),
                configured: true,
                address_source: format!("repositories.{repo}.address"),
            });
        }
        let looks_like_path =
            repo.starts_with("file:") || repo.contains('/') || repo.starts_with('.');
        if !looks_like_path {
            let found = lookup.lookup(repo).map_err(|reason| ResolveError::Lookup {
                name: repo.to_string(),
                reason,
            })?;
            if let Some((address, source)) = found {
                return Ok(ResolvedRepo {
                    name: repo.to_string(),
                    address,
                    config: configured.cloned().unwrap_or_else(|| RepositoryConfig {
                        // SPK: a repository with no entry in its config uses
                        // its index, except `local`.
                        use_index: repo != "local",
                        ..RepositoryConfig::default()
                    }),
                    configured: configured.is_some(),
                    address_source: source,
                });
            }
            if configured.is_some() {
                return Err(ResolveError::NoAddress {
                    name: repo.to_string(),
                    upper: repo.to_uppercase().replace('-', "_"),
                });
            }
            let names: Vec<&str> = self.repositories.keys().map(String::as_str).collect();
            let known = if names.is_empty() {
                "none in the SPK config, none in spfs's config".to_string()
            } else {
                format!(
                    "configured: {}; none of that name in spfs's config",
                    names.join(", ")
                )
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
                address_source: format!("repositories.{name}.address"),
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
            // SPK: a repository its config does not mention uses its index.
            config: RepositoryConfig {
                use_index: true,
                ..RepositoryConfig::default()
            },
            configured: false,
            address_source: "the command line".to_string(),
        })
    }
}
