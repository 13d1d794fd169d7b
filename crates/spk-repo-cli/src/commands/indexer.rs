//! `spk repo indexer --name NAME`: the Indexer service.
//!
//! Joins the two libraries: the service loop of `spk-messaging-kafka` runs
//! index updates of `spk-repo` through the `IndexRunner` trait implemented
//! here. Refuses to start on a config it cannot serve; stops on SIGINT,
//! SIGTERM or SIGQUIT after the current update, and exits 0.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context as _;
use spk_messaging_core::config::ResolvedRepo;
use spk_messaging_core::indexing::{IndexRunError, IndexRunner, IndexScope};
use spk_messaging_core::IndexStatusReporter;
use spk_messaging_kafka::indexer;
use spk_repo::{run_index, IndexError, IndexRequest};

use crate::exit::CmdResult;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The indexer's name: a key of `indexers` in the config.
    #[arg(long)]
    name: String,
    /// Serve /metrics (Prometheus), /healthz and /readyz over plain HTTP on
    /// this address, e.g. 127.0.0.1:9464 (port 0: any free port, printed).
    #[arg(long, value_name = "HOST:PORT", value_parser = crate::serve::parse_addr)]
    metrics_addr: Option<std::net::SocketAddr>,
}

/// Index runs for the service: one attempt at the lock each (the service
/// retries, sending heartbeats between attempts, rather than sleeping here
/// silent).
#[derive(Debug)]
struct RepoRunner {
    repo: ResolvedRepo,
}

impl IndexRunner for RepoRunner {
    fn run(
        &self,
        scope: &IndexScope,
        reporter: &dyn IndexStatusReporter,
    ) -> Result<String, IndexRunError> {
        let mut index_config = self.repo.config.index.clone();
        index_config.lock_max_tries = 1;
        let mut req = IndexRequest::new(&self.repo.name, self.repo.address.clone(), index_config);
        if let IndexScope::Update(items) = scope {
            req.updates = items.clone();
        }
        super::test_hooks::apply(&mut req).map_err(|e| IndexRunError::Failed(e.to_string()))?;
        match run_index(&req, reporter) {
            Ok(s) => {
                for f in &s.report_failures {
                    tracing::warn!("{f}");
                }
                for p in &s.skipped {
                    tracing::warn!("skipped {p}");
                }
                Ok(format!(
                    "{}: {} packages, {} versions, {} builds, {} skipped, in {:.2}s",
                    s.mode,
                    s.counts.packages,
                    s.counts.versions,
                    s.counts.builds,
                    s.skipped.len(),
                    s.elapsed_seconds
                ))
            }
            Err(e @ IndexError::LockBusy { .. }) => Err(IndexRunError::LockBusy(e.to_string())),
            Err(e) => Err(IndexRunError::Failed(e.to_string())),
        }
    }
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    let cfg = ctx.config()?;
    let setup = indexer::validate(&cfg, &args.name, &super::SpfsLookup::from_process())
        .map_err(anyhow::Error::from)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGQUIT,
    ] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handlers")?;
    }
    ctx.notice(
        &format!(
            "indexer {}: keeping {} ({}) indexed from topic {}, status to {}",
            setup.name,
            setup.repo.name,
            setup.repo.address,
            setup.package_topic,
            setup.status_topic
        ),
        &[
            ("indexer", setup.name.clone()),
            ("repo", setup.repo.address.to_url()),
            ("topic", setup.package_topic.clone()),
            ("status_topic", setup.status_topic.clone()),
        ],
    );
    let runner = RepoRunner {
        repo: setup.repo.clone(),
    };
    let _server = match args.metrics_addr {
        Some(addr) => Some(serve_metrics(ctx, &setup, addr, &stop)?),
        None => None,
    };
    indexer::run(&setup, &runner, &stop).map_err(|e| match &e {
        // TLS or SASL refused at start: exit 7 or 8, as every command.
        indexer::IndexerError::Connect { failure, .. } => {
            let code = crate::exit::for_connect_failure(Some(failure));
            crate::exit::Exit::with(code, e.into())
        }
        _ => anyhow::Error::from(e).into(),
    })?;
    ctx.notice(
        &format!("indexer {}: stopped", setup.name),
        &[("indexer", setup.name.clone())],
    );
    Ok(())
}

/// Starts the metrics endpoints and the broker probe behind `/readyz`.
fn serve_metrics(
    ctx: &super::Context,
    setup: &indexer::IndexerSetup,
    addr: std::net::SocketAddr,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<crate::serve::MetricsServer> {
    let m = spk_messaging_kafka::metrics::global();
    m.identify(
        &setup.name,
        &setup.repo.address.to_url(),
        &setup.channel.name,
    );
    m.tick();
    let server = crate::serve::start(addr, m)?;
    spk_messaging_kafka::metrics::spawn_probe(
        &setup.channel,
        &setup.package_topic,
        m,
        std::time::Duration::from_secs(2),
        stop.clone(),
    )
    .map_err(anyhow::Error::from)?;
    ctx.notice(
        &format!(
            "indexer {}: metrics on http://{}/metrics (also /healthz, /readyz)",
            setup.name, server.addr
        ),
        &[
            ("indexer", setup.name.clone()),
            ("metrics_addr", server.addr.to_string()),
        ],
    );
    Ok(server)
}
