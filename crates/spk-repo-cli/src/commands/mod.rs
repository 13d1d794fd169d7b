//! One module per command.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;
use spk_messaging_core::config::{self, Config, LoadOptions, ResolvedRepo};

use crate::exit::CmdResult;

mod check_config;
mod connect;
mod dev_broker;
mod index;
mod indexer;
mod ls;
mod schema;
mod send_event;
mod show;
mod status;
mod tail;
mod test_hooks;
mod wait_index;

/// What every command gets from the global options.
#[derive(Debug)]
pub struct Context {
    pub config_file: Option<PathBuf>,
    /// `--log-format json`: what a command says on stderr is one JSON
    /// object per line too, so a log shipper sees nothing else.
    pub json_logs: bool,
}

impl Context {
    /// A line for the operator on stderr (not a log event: shown at every
    /// verbosity): plain text, or with `--log-format json` an object like
    /// the logs' (`timestamp`, `level`, `message`, then `fields`).
    pub fn notice(&self, message: &str, fields: &[(&str, String)]) {
        if !self.json_logs {
            eprintln!("{message}");
            return;
        }
        eprintln!("{}", json_log_line("INFO", message, fields));
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions::from_process(self.config_file.clone())
    }

    /// Loads the config; refuses on errors, listing every one; logs warnings.
    #[allow(dead_code)]
    pub fn config(&self) -> anyhow::Result<Config> {
        let (cfg, warnings) = config::load(&self.load_options())
            .into_result()
            .context("cannot use the SPK config (run `spk messaging check-config` for details)")?;
        for w in warnings {
            if w.severity == spk_messaging_core::Severity::Note {
                tracing::info!("{w}");
            } else {
                tracing::warn!("{w}");
            }
        }
        Ok(cfg)
    }

    /// Loads the config and resolves `--repo`: a repository name (its
    /// address from `repositories.<name>.address`, else from spfs's own
    /// config as SPK sites have it), a path or a `file:` URL (relative to the
    /// current directory).
    pub fn repo(&self, repo: &str) -> anyhow::Result<(Config, ResolvedRepo)> {
        let cfg = self.config()?;
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let resolved = cfg
            .resolve_repo_with(repo, &cwd, &SpfsLookup::from_process())
            .map_err(|e| anyhow::anyhow!("--repo {repo}: {e}"))?;
        tracing::debug!(
            "repository {} is {} (from {})",
            resolved.name,
            resolved.address,
            resolved.address_source
        );
        Ok((cfg, resolved))
    }
}

/// Repository addresses from spfs's config (`[remote.<name>] address`).
#[derive(Debug)]
pub struct SpfsLookup(spk_repo::spfs::config::SpfsConfigSources);

impl SpfsLookup {
    pub fn from_process() -> Self {
        SpfsLookup(spk_repo::spfs::config::SpfsConfigSources::from_process())
    }
}

impl config::AddressLookup for SpfsLookup {
    fn lookup(
        &self,
        name: &str,
    ) -> Result<Option<(spk_messaging_core::RepoAddress, String)>, String> {
        let Some(remote) =
            spk_repo::spfs::config::remote_address(name, &self.0).map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let root = remote.filesystem_root().map_err(|e| e.to_string())?;
        let address =
            spk_messaging_core::RepoAddress::parse(&root.to_string_lossy(), Path::new("/"))
                .map_err(|e| format!("{e} ({})", remote.origin))?;
        Ok(Some((address, remote.origin.to_string())))
    }
}

#[derive(Debug, Subcommand)]
pub enum RepoCmd {
    /// Generate the repository's index, or update some packages in it.
    Index(index::Args),
    /// List packages, a package's versions, or a version's builds.
    Ls(ls::Args),
    /// Print what the index holds for one build (what the solver sees).
    Show(show::Args),
    /// Send package update messages (by hand, or a batch from a file).
    SendEvent(send_event::Args),
    /// Run the Indexer service that keeps one repository's index current.
    Indexer(indexer::Args),
}

impl RepoCmd {
    pub fn run(self, ctx: &Context) -> CmdResult {
        match self {
            RepoCmd::Index(a) => index::run(ctx, a),
            RepoCmd::Ls(a) => ls::run(ctx, a),
            RepoCmd::Show(a) => show::run(ctx, a),
            RepoCmd::SendEvent(a) => send_event::run(ctx, a),
            RepoCmd::Indexer(a) => indexer::run(ctx, a),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum MessagingCmd {
    /// Prove the messaging config right: every problem at once.
    CheckConfig(check_config::Args),
    /// Print the JSON Schema of a message kind.
    Schema(schema::Args),
    /// Run a throwaway in-memory Kafka broker with the configured topics.
    DevBroker(dev_broker::Args),
    /// Wait until the repository's index has caught up.
    WaitIndex(wait_index::Args),
    /// Follow the topics: every message decoded, one line (or JSON object) each.
    Tail(tail::Args),
    /// Is an Indexer alive for a repository, and how far behind is it.
    Status(status::Args),
}

impl MessagingCmd {
    pub fn run(self, ctx: &Context) -> CmdResult {
        match self {
            MessagingCmd::CheckConfig(a) => check_config::run(ctx, a),
            MessagingCmd::Schema(a) => schema::run(a),
            MessagingCmd::DevBroker(a) => dev_broker::run(ctx, a),
            MessagingCmd::WaitIndex(a) => wait_index::run(ctx, a),
            MessagingCmd::Tail(a) => tail::run(ctx, a),
            MessagingCmd::Status(a) => status::run(ctx, a),
        }
    }
}

/// One log line as `--log-format json` writes them.
pub fn json_log_line(level: &str, message: &str, fields: &[(&str, String)]) -> serde_json::Value {
    let mut v = serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": level,
        "message": message,
    });
    for (k, val) in fields {
        v[*k] = serde_json::Value::String(val.clone());
    }
    v
}

/// The channel carrying `repo`'s index status, by the one routing rule
/// (`core::route::route_index_status`): where `repo index` and the Indexer
/// send it is where `wait-index`, `send-event --wait` and `status` listen.
/// `what` completes "has no index status ..." ("to wait on", "to read").
pub(crate) fn status_channel<'c>(
    cfg: &'c spk_messaging_core::config::Config,
    repo: &spk_messaging_core::config::ResolvedRepo,
    what: &str,
) -> Result<&'c spk_messaging_core::config::KafkaChannelConfig, crate::exit::Exit> {
    use spk_messaging_core::route::{route_index_status, IndexRoute};
    match route_index_status(cfg, repo) {
        IndexRoute::Send { channel, .. } => cfg
            .channel(&channel)
            .ok_or_else(|| anyhow::anyhow!("channel {channel:?} vanished from the config").into()),
        IndexRoute::Skip { reason, .. } => Err(anyhow::anyhow!(
            "repository {:?} has no index status {what}: {reason}",
            repo.name
        )
        .into()),
    }
}
