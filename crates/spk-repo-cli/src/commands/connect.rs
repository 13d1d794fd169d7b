//! `spk messaging check-config --connect`: live checks of every channel,
//! after the static checks passed. Problems are diagnostics like the static
//! ones; broker and topic facts are information.

use std::time::Duration;

use spk_messaging_core::config::Config;
use spk_messaging_core::{Diagnostic, Severity};
use spk_messaging_kafka::{check_channel, ChannelCheck};

/// The outcome of `--connect`.
#[derive(Debug)]
pub(crate) struct Live {
    pub checks: Vec<ChannelCheck>,
    /// Why the live checks did not run.
    pub skipped: Option<String>,
}

impl Live {
    pub(crate) fn skipped(reason: &str) -> Self {
        Live {
            checks: Vec::new(),
            skipped: Some(reason.to_string()),
        }
    }

    pub(crate) fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.checks.iter().flat_map(|c| c.diagnostics.iter())
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "skipped": self.skipped,
            "channels": self.checks,
        })
    }

    /// Information lines for text output (diagnostics are printed with the
    /// static ones).
    pub(crate) fn print_text(&self) {
        if let Some(s) = &self.skipped {
            println!("live checks skipped: {s}");
            return;
        }
        for c in &self.checks {
            println!(
                "live: channel {:?} (timeout {} ms)",
                c.channel, c.timeout_ms
            );
            for b in &c.brokers {
                if b.reachable {
                    println!("  broker {}: reachable", b.broker);
                } else {
                    println!("  broker {}: NOT reachable", b.broker);
                }
            }
            if !c.cluster_brokers.is_empty() {
                println!("  cluster brokers: {}", c.cluster_brokers.join(", "));
            }
            for t in &c.topics {
                match t.partitions {
                    Some(n) => println!("  topic {} ({}): {n} partition(s)", t.topic, t.key),
                    None => println!("  topic {} ({}): missing", t.topic, t.key),
                }
            }
        }
    }
}

/// Checks every channel, in parallel; each broker gets `timeout_ms`, or the
/// channel's `index_update_listener_broker_fetch_timeout_ms`.
pub(crate) fn run(cfg: &Config, timeout_ms: Option<u64>) -> Live {
    if cfg.messaging.is_empty() {
        return Live::skipped("no channels are configured");
    }
    let checks = std::thread::scope(|s| {
        let handles: Vec<_> = cfg
            .messaging
            .iter()
            .enumerate()
            .map(|(i, ch)| {
                let t = Duration::from_millis(
                    timeout_ms.unwrap_or(ch.index_update_listener_broker_fetch_timeout_ms),
                );
                let path = format!("messaging[{i}].kafka");
                (
                    ch,
                    path.clone(),
                    s.spawn(move || check_channel(ch, &path, t)),
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|(ch, path, h)| {
                h.join().unwrap_or_else(|_| ChannelCheck {
                    channel: ch.name.clone(),
                    timeout_ms: 0,
                    brokers: Vec::new(),
                    cluster_brokers: Vec::new(),
                    topics: Vec::new(),
                    failure: None,
                    diagnostics: vec![Diagnostic {
                        severity: Severity::Error,
                        path,
                        message: format!(
                            "the live check of channel {:?} failed unexpectedly",
                            ch.name
                        ),
                        hint: None,
                        source: Some("live check".into()),
                    }],
                })
            })
            .collect()
    });
    Live {
        checks,
        skipped: None,
    }
}
