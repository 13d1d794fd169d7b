//! `spk messaging dev-broker`: a throwaway in-memory Kafka cluster
//! (librdkafka's mock cluster) in the foreground, with the configured
//! channels' topics created.
//!
//! The first line on stdout is machine-readable: `bootstrap: HOST:PORT[,...]`.
//! Then one `topic: NAME partitions: N` line per topic, then `ready`. It runs
//! until SIGINT or SIGTERM and exits 0; everything it held is gone.
//!
//! The mock brokers listen on ports the kernel picks; librdkafka offers no
//! way to choose them. `--port P` therefore listens on 127.0.0.1:P and
//! relays each connection to the first mock broker, so P works as a
//! bootstrap address; after bootstrapping, clients connect to the brokers'
//! own (kernel-chosen) 127.0.0.1 ports, as the cluster's metadata says.

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};

use anyhow::{anyhow, Context as _};
use spk_messaging_kafka::DevBroker;

use crate::exit::{self, CmdResult, Exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also accept bootstrap connections on 127.0.0.1:PORT (relayed to the
    /// first mock broker; see docs/kafka.md).
    #[arg(long)]
    port: Option<u16>,
    /// Number of brokers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=16))]
    brokers: i32,
    /// Partitions of each topic created.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=1000))]
    partitions: i32,
    /// Another topic to create; repeat for several.
    #[arg(long = "topic", value_name = "NAME")]
    topics: Vec<String>,
    /// Do not read the SPK config: create only the --topic topics.
    #[arg(long)]
    no_config: bool,
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    let mut topics: Vec<String> = Vec::new();
    if !args.no_config {
        let cfg = ctx.config()?;
        for ch in &cfg.messaging {
            for t in [&ch.package_updates_topic_name, &ch.index_updates_topic_name]
                .into_iter()
                .flatten()
            {
                if !t.is_empty() && !topics.contains(t) {
                    topics.push(t.clone());
                }
            }
        }
    }
    for t in &args.topics {
        if !topics.contains(t) {
            topics.push(t.clone());
        }
    }

    let broker = DevBroker::start(args.brokers).map_err(|e| Exit::with(exit::FAILURE, e.into()))?;
    for t in &topics {
        broker
            .create_topic(t, args.partitions)
            .map_err(|e| Exit::with(exit::FAILURE, e.into()))?;
    }
    let mut bootstrap = broker.bootstrap_servers();
    if let Some(port) = args.port {
        let first = bootstrap.split(',').next().unwrap_or_default().to_string();
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        std::thread::spawn(move || relay(listener, first));
        bootstrap = format!("127.0.0.1:{port}");
    }

    announce(&bootstrap, &topics, args.partitions).context("cannot write to stdout")?;
    eprintln!(
        "dev broker running with {} broker(s); stop with Ctrl-C or SIGTERM",
        args.brokers
    );

    wait_for_signal()?;
    eprintln!("dev broker stopped");
    drop(broker);
    Ok(())
}

/// The machine-readable lines scripts wait for.
fn announce(bootstrap: &str, topics: &[String], partitions: i32) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "bootstrap: {bootstrap}")?;
    for t in topics {
        writeln!(out, "topic: {t} partitions: {partitions}")?;
    }
    writeln!(out, "ready")?;
    out.flush()
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal handler")?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| anyhow!("cannot handle SIGTERM: {e}"))?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(|e| anyhow!("cannot handle SIGINT: {e}")),
            _ = term.recv() => Ok(()),
        }
    })
}

/// Relays every connection on `listener` to `target`, byte for byte.
fn relay(listener: TcpListener, target: String) {
    for conn in listener.incoming() {
        let client = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("dev broker relay: accept failed: {e}");
                continue;
            }
        };
        let target = target.clone();
        std::thread::spawn(move || {
            if let Err(e) = pipe(client, &target) {
                tracing::debug!("dev broker relay: {e}");
            }
        });
    }
}

fn pipe(client: TcpStream, target: &str) -> std::io::Result<()> {
    let server = TcpStream::connect(target)?;
    let (mut c_read, mut s_write) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let _ = std::io::copy(&mut s_read, &mut c_write);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}
