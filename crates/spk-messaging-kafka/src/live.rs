//! Live checks of a channel (`spk messaging check-config --connect`): are
//! its brokers reachable, does the cluster answer metadata, do its topics
//! exist and with how many partitions. Problems become [`Diagnostic`]s like
//! the static checks'; the rest is information.

use std::time::Duration;

use rdkafka::producer::{BaseProducer, NoCustomPartitioner, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use spk_messaging_core::config::KafkaChannelConfig;
use spk_messaging_core::security::ConnectFailure;
use spk_messaging_core::{Diagnostic, Severity};

use crate::client::{client_config, metadata_or_failure, ChannelContext};

impl ProducerContext<NoCustomPartitioner> for ChannelContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

/// One configured broker, tried on its own as the only bootstrap server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerCheck {
    pub broker: String,
    pub reachable: bool,
    /// Why not, when not.
    pub error: Option<String>,
}

/// One configured topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicCheck {
    /// The config key naming it (`package_updates_topic_name` or
    /// `index_updates_topic_name`).
    pub key: &'static str,
    pub topic: String,
    /// Partition count when the topic exists.
    pub partitions: Option<usize>,
    pub error: Option<String>,
}

/// What the cluster behind a channel said.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelCheck {
    pub channel: String,
    pub timeout_ms: u64,
    pub brokers: Vec<BrokerCheck>,
    /// The brokers the cluster advertises (`id host:port`), when it answered.
    pub cluster_brokers: Vec<String>,
    pub topics: Vec<TopicCheck>,
    pub diagnostics: Vec<Diagnostic>,
    /// The TLS or SASL problem that kept every broker from answering.
    #[serde(skip)]
    pub failure: Option<ConnectFailure>,
}

/// Why a broker did not answer: the client's words, and the TLS or SASL
/// problem behind them when there is one.
type NoAnswer = (String, Option<ConnectFailure>);

struct Answer {
    brokers: Vec<String>,
    topics: Vec<(String, Result<usize, String>)>,
}

fn diag(sev: Severity, path: String, message: String, hint: Option<&str>) -> Diagnostic {
    Diagnostic {
        severity: sev,
        path,
        message,
        hint: hint.map(str::to_string),
        source: Some("live check".to_string()),
    }
}

/// Asks the cluster through `broker` alone for its metadata.
fn ask(ch: &KafkaChannelConfig, broker: &str, timeout: Duration) -> Result<Answer, NoAnswer> {
    let mut one = ch.clone();
    one.brokers = vec![broker.to_string()];
    let cc = client_config(&one, &[]).map_err(|e| (e.to_string(), None))?;
    let ctx = ChannelContext::new(&one.name);
    let errors = ctx.errors.clone();
    let producer: BaseProducer<ChannelContext> = cc
        .create_with_context(ctx)
        .map_err(|e| (crate::client::creation_error(&one, &e).to_string(), None))?;
    // All topics: asking for named ones may auto-create them.
    let md = metadata_or_failure(producer.client(), &one, &errors, None, timeout, &|| {
        producer.poll(Duration::ZERO);
    });
    match md {
        Ok(md) => Ok(Answer {
            brokers: md
                .brokers()
                .iter()
                .map(|b| format!("{} {}:{}", b.id(), b.host(), b.port()))
                .collect(),
            topics: md
                .topics()
                .iter()
                .map(|t| {
                    let r = match t.error() {
                        None => Ok(t.partitions().len()),
                        Some(e) => Err(RDKafkaErrorCode::from(e).to_string()),
                    };
                    (t.name().to_string(), r)
                })
                .collect(),
        }),
        Err(no) => Err((no.text(), no.failure)),
    }
}

/// Checks channel `ch`, whose config lives at `path` (e.g.
/// `messaging[0].kafka`), giving each broker at most `timeout`. Brokers are
/// tried in parallel, so the whole check takes about `timeout` at most.
pub fn check_channel(ch: &KafkaChannelConfig, path: &str, timeout: Duration) -> ChannelCheck {
    let mut out = ChannelCheck {
        channel: ch.name.clone(),
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        brokers: Vec::new(),
        cluster_brokers: Vec::new(),
        topics: Vec::new(),
        diagnostics: Vec::new(),
        failure: None,
    };
    if ch.brokers.is_empty() {
        // The static checks already report this.
        return out;
    }
    let answers: Vec<(String, Result<Answer, NoAnswer>)> = std::thread::scope(|s| {
        let handles: Vec<_> = ch
            .brokers
            .iter()
            .map(|b| (b.clone(), s.spawn(move || ask(ch, b, timeout))))
            .collect();
        handles
            .into_iter()
            .map(|(b, h)| {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(("the check panicked".to_string(), None)));
                (b, r)
            })
            .collect()
    });
    let mut first: Option<&Answer> = None;
    for (b, r) in &answers {
        match r {
            Ok(a) => {
                first.get_or_insert(a);
                out.brokers.push(BrokerCheck {
                    broker: b.clone(),
                    reachable: true,
                    error: None,
                });
            }
            Err((e, failure)) => {
                if out.failure.is_none() {
                    out.failure = failure.clone();
                }
                out.brokers.push(BrokerCheck {
                    broker: b.clone(),
                    reachable: false,
                    error: Some(e.clone()),
                })
            }
        }
    }
    let brokers_path = format!("{path}.brokers");
    let Some(answer) = first else {
        if let Some(f) = &out.failure {
            out.diagnostics.push(diag(
                Severity::Error,
                format!("{path}.properties"),
                format!("channel {:?}: {}", ch.name, f.message()),
                Some(f.hint()),
            ));
            return out;
        }
        let why: Vec<String> = out
            .brokers
            .iter()
            .map(|b| {
                format!(
                    "{}: {}",
                    b.broker,
                    b.error.as_deref().unwrap_or("no answer")
                )
            })
            .collect();
        out.diagnostics.push(diag(
            Severity::Error,
            brokers_path,
            format!(
                "channel {:?}: no broker answered a metadata request within {} ms ({})",
                ch.name,
                out.timeout_ms,
                why.join("; ")
            ),
            Some("check the addresses, that the brokers are up and reachable from here, and the TLS/SASL settings in `properties`"),
        ));
        return out;
    };
    for b in out.brokers.iter().filter(|b| !b.reachable) {
        out.diagnostics.push(diag(
            Severity::Warning,
            brokers_path.clone(),
            format!(
                "channel {:?}: broker {} did not answer within {} ms ({}); other brokers did",
                ch.name,
                b.broker,
                out.timeout_ms,
                b.error.as_deref().unwrap_or("no answer")
            ),
            Some("remove or fix this address: clients that try it first start slower"),
        ));
    }
    out.cluster_brokers = answer.brokers.clone();
    let wanted = [
        ("package_updates_topic_name", &ch.package_updates_topic_name),
        ("index_updates_topic_name", &ch.index_updates_topic_name),
    ];
    for (key, name) in wanted {
        let Some(topic) = name.as_deref().filter(|t| !t.is_empty()) else {
            continue;
        };
        let found = answer.topics.iter().find(|(n, _)| n == topic);
        let check = match found {
            Some((_, Ok(n))) => TopicCheck {
                key,
                topic: topic.to_string(),
                partitions: Some(*n),
                error: None,
            },
            Some((_, Err(e))) => TopicCheck {
                key,
                topic: topic.to_string(),
                partitions: None,
                error: Some(e.clone()),
            },
            None => TopicCheck {
                key,
                topic: topic.to_string(),
                partitions: None,
                error: Some("the topic does not exist".to_string()),
            },
        };
        if let Some(e) = &check.error {
            out.diagnostics.push(diag(
                Severity::Error,
                format!("{path}.{key}"),
                format!("channel {:?}: topic {topic:?}: {e}", ch.name),
                Some("create the topic on the cluster, or fix the name"),
            ));
        }
        out.topics.push(check);
    }
    out
}
