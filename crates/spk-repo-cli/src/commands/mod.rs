//! One module per command.

use std::path::PathBuf;

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
mod test_hooks;
mod wait_index;

/// What every command gets from the global options.
#[derive(Debug)]
pub struct Context {
    pub config_file: Option<PathBuf>,
}

impl Context {
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
            tracing::warn!("{w}");
        }
        Ok(cfg)
    }

    /// Loads the config and resolves `--repo` (a configured name, a path or
    /// a `file:` URL, relative to the current directory).
    pub fn repo(&self, repo: &str) -> anyhow::Result<(Config, ResolvedRepo)> {
        let cfg = self.config()?;
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let resolved = cfg
            .resolve_repo(repo, &cwd)
            .map_err(|e| anyhow::anyhow!("--repo {repo}: {e}"))?;
        Ok((cfg, resolved))
    }
}

#[derive(Debug, Subcommand)]
pub enum RepoCmd {
    /// Generate the repository's index, or update some packages in it.
    Index(index::Args),
    /// List packages, a package's versions, or a version's builds.
    Ls(ls::Args),
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
}

impl MessagingCmd {
    pub fn run(self, ctx: &Context) -> CmdResult {
        match self {
            MessagingCmd::CheckConfig(a) => check_config::run(ctx, a),
            MessagingCmd::Schema(a) => schema::run(a),
            MessagingCmd::DevBroker(a) => dev_broker::run(ctx, a),
            MessagingCmd::WaitIndex(a) => wait_index::run(ctx, a),
        }
    }
}
