//! Checks across keys: references between sections, Kafka's naming rules,
//! and timings that defeat each other.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::load::Walker;
use super::model::Config;
use super::node::{Kind, Node};
use crate::diagnostic::Severity;
use crate::route::{route_index_status_of, IndexRoute};

fn find<'a>(root: &'a Node, segs: &[&str]) -> Option<&'a Node> {
    let mut n = root;
    for s in segs {
        n = match &n.kind {
            Kind::Table(t) => t.get(*s)?,
            Kind::List(l) => l.get(s.parse::<usize>().ok()?)?,
            Kind::Scalar(_) => return None,
        };
    }
    Some(n)
}

/// Kafka's rules for a topic name.
pub fn topic_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a topic name cannot be empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("{name:?} is not allowed as a topic name"));
    }
    if name.len() > 249 {
        return Some(format!(
            "a topic name has at most 249 characters, this has {}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "{c:?} is not allowed; topic names use only ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    None
}

/// Whether `b` is `host:port` (host a name, IPv4 address or `[IPv6]`).
pub fn broker_problem(b: &str) -> Option<String> {
    let Some((host, port)) = b.rsplit_once(':') else {
        return Some("no port: expected host:port".into());
    };
    if host.is_empty() {
        return Some("no host: expected host:port".into());
    }
    if host.contains("://") {
        return Some("a broker is host:port without a scheme; put the protocol in properties.\"security.protocol\"".into());
    }
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    if !host_ok {
        return Some(format!("host {host:?} is not a host name or IP address"));
    }
    match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => None,
        _ => Some(format!("port {port:?} is not a number from 1 to 65535")),
    }
}

pub(crate) fn check(config: &Config, root: &Node, w: &mut Walker) {
    let src = |segs: &[&str]| -> Option<Arc<str>> { find(root, segs).map(|n| n.source.clone()) };

    // Channels.
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in config.messaging.iter().enumerate() {
        let idx = i.to_string();
        let kind = find(root, &["messaging", &idx])
            .and_then(|n| match &n.kind {
                Kind::Table(t) => t.keys().next().cloned(),
                _ => None,
            })
            .unwrap_or_else(|| "kafka".into());
        let base = format!("messaging[{i}].{kind}");
        let s =
            |key: &str| src(&["messaging", &idx, &kind, key]).or_else(|| src(&["messaging", &idx]));

        if let Some(first) = by_name.insert(&c.name, i) {
            w.push(
                Severity::Error,
                &format!("{base}.name"),
                &format!(
                    "two channels are named {:?} (messaging[{first}] and messaging[{i}])",
                    c.name
                ),
                Some(
                    "give each channel a unique name; a channel without `name` is called \"kafka\""
                        .into(),
                ),
                s("name").as_ref(),
            );
        }
        if find(root, &["messaging", &idx, &kind, "brokers"]).is_some() && c.brokers.is_empty() {
            w.push(
                Severity::Error,
                &format!("{base}.brokers"),
                "no brokers listed",
                Some("e.g. brokers = [\"kafka1.example.com:9092\"]".into()),
                s("brokers").as_ref(),
            );
        }
        for (j, b) in c.brokers.iter().enumerate() {
            if let Some(p) = broker_problem(b) {
                w.push(Severity::Error, &format!("{base}.brokers[{j}]"), &format!("broker {b:?}: {p}"), Some("write each broker as its own string, e.g. [\"kafka1:9092\", \"kafka2:9092\"]".into()), s("brokers").as_ref());
            }
        }
        for key in ["package_updates_topic_name", "index_updates_topic_name"] {
            let t = if key.starts_with("package") {
                &c.package_updates_topic_name
            } else {
                &c.index_updates_topic_name
            };
            if let Some(t) = t {
                if let Some(p) = topic_name_problem(t) {
                    w.push(
                        Severity::Error,
                        &format!("{base}.{key}"),
                        &format!("invalid Kafka topic name {t:?}: {p}"),
                        None,
                        s(key).as_ref(),
                    );
                } else if t.contains('.') && t.contains('_') {
                    w.push(Severity::Warning, &format!("{base}.{key}"), &format!("topic name {t:?} mixes '.' and '_', which collide in Kafka's metric names"), Some("use only one of '.' and '_'".into()), s(key).as_ref());
                }
            }
        }
        if c.producer_queue_timeout_ms >= c.message_timeout_ms {
            w.push(Severity::Warning, &format!("{base}.producer_queue_timeout_ms"), &format!("producer_queue_timeout_ms ({}) is not below message_timeout_ms ({}): a send can wait for queue space longer than a message may live", c.producer_queue_timeout_ms, c.message_timeout_ms), Some("make producer_queue_timeout_ms smaller than message_timeout_ms".into()), s("producer_queue_timeout_ms").as_ref());
        }
        for r in &c.repo_names {
            if !config.repositories.contains_key(r) {
                w.push(
                    Severity::Warning,
                    &format!("{base}.repo_names"),
                    &format!("repository {r:?} is listed but not configured under [repositories]"),
                    Some(format!(
                        "add [repositories.{r}] or remove it from repo_names"
                    )),
                    s("repo_names").as_ref(),
                );
            }
        }
        // Settings that expose credentials or traffic, or turn checks off.
        for r in crate::security::risky_settings(c) {
            w.push(
                Severity::Warning,
                &format!("{base}.properties.\"{}\"", r.property),
                &r.message,
                Some(r.hint),
                s("properties").as_ref(),
            );
        }
        for (k, v) in &c.properties {
            let path = format!("{base}.properties.\"{k}\"");
            if let Err(e) = super::expand_env(v) {
                w.push(
                    Severity::Error,
                    &path,
                    &e.to_string(),
                    Some("export the variable before running spk, or write the value".into()),
                    s("properties").as_ref(),
                );
            }
            if matches!(k.as_str(), "bootstrap.servers" | "metadata.broker.list") {
                w.push(
                    Severity::Warning,
                    &path,
                    &format!("{k:?} is set from `brokers`; this property overrides it"),
                    Some("list brokers in `brokers` instead".into()),
                    s("properties").as_ref(),
                );
            }
        }
    }

    // Repositories' index channels, and the timing they send at. Where
    // status goes is the routing rule's answer, nothing else.
    for (name, r) in &config.repositories {
        let path = format!("repositories.{name}.index.update_message_channel");
        let rsrc = src(&["repositories", name, "index", "update_message_channel"])
            .or_else(|| src(&["repositories", name]));
        let channel_names = || -> String {
            let names: Vec<&str> = config.messaging.iter().map(|c| c.name.as_str()).collect();
            if names.is_empty() {
                "no channels are configured".into()
            } else {
                format!("configured channels: {}", names.join(", "))
            }
        };
        match config.channel(&r.index.update_message_channel) {
            None if r.index.update_message_channel_set => w.push_check_only_error(
                &path,
                &format!(
                    "repository {name:?}: update_message_channel {:?} names no channel, so no index status would be sent",
                    r.index.update_message_channel
                ),
                Some(format!(
                    "{}; name one of them, or configure a [[messaging]] channel with that name",
                    channel_names()
                )),
                rsrc.as_ref(),
            ),
            None if r.use_index => w.push(
                Severity::Note,
                &path,
                &format!(
                    "repository {name:?}: no channel is named {:?} (the default update_message_channel), so no index status is sent",
                    r.index.update_message_channel
                ),
                Some(format!(
                    "{}; to send index status, configure a channel named {:?} or set update_message_channel",
                    channel_names(),
                    r.index.update_message_channel
                )),
                rsrc.as_ref(),
            ),
            None => {}
            Some(c) => {
                if let IndexRoute::Skip {
                    reason,
                    warning: true,
                } = route_index_status_of(config, name, &r.index)
                {
                    w.push(
                        Severity::Warning,
                        &path,
                        &format!("no index status would be sent: {reason}"),
                        Some(format!(
                            "add {name:?} to channel {:?}'s repo_names",
                            c.name
                        )),
                        rsrc.as_ref(),
                    );
                }
                if r.index.update_event_send_freq_ms >= c.index_update_listener_timeout_ms {
                    w.push(Severity::Warning, &format!("repositories.{name}.index.update_event_send_freq_ms"), &format!("update_event_send_freq_ms ({}) is not below channel {:?}'s index_update_listener_timeout_ms ({}): waiters would give up in the middle of an update", r.index.update_event_send_freq_ms, c.name, c.index_update_listener_timeout_ms), Some("send in-progress messages more often than waiters time out".into()), src(&["repositories", name, "index", "update_event_send_freq_ms"]).or(rsrc).as_ref());
                }
            }
        }
    }

    // Indexers.
    for (name, ix) in &config.indexers {
        let base = format!("indexers.{name}");
        let isrc = |key: &str| src(&["indexers", name, key]).or_else(|| src(&["indexers", name]));
        if ix.message_channel_name.is_empty() || ix.repo_name.is_empty() {
            continue; // already reported as missing
        }
        match config.channel(&ix.message_channel_name) {
            None => {
                let names: Vec<&str> = config.messaging.iter().map(|c| c.name.as_str()).collect();
                w.push(
                    Severity::Error,
                    &format!("{base}.message_channel_name"),
                    &format!("channel {:?} does not exist", ix.message_channel_name),
                    Some(format!(
                        "configured channels: {}",
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    )),
                    isrc("message_channel_name").as_ref(),
                );
            }
            Some(c) => {
                if !c.allows_repo(&ix.repo_name) {
                    w.push(
                        Severity::Error,
                        &format!("{base}.repo_name"),
                        &format!(
                            "repository {:?} is not in channel {:?}'s repo_names",
                            ix.repo_name, c.name
                        ),
                        Some(format!(
                            "add {:?} to that channel's repo_names",
                            ix.repo_name
                        )),
                        isrc("repo_name").as_ref(),
                    );
                }
                if c.package_updates_topic_name.is_none() {
                    w.push(Severity::Error, &base, &format!("channel {:?} has no package_updates_topic_name, so the indexer would hear no package events", c.name), Some("set package_updates_topic_name on the channel".into()), isrc("message_channel_name").as_ref());
                }
                if c.index_updates_topic_name.is_none() {
                    w.push(Severity::Error, &base, &format!("channel {:?} has no index_updates_topic_name, so the indexer could send no status or heartbeats", c.name), Some("set index_updates_topic_name on the channel".into()), isrc("message_channel_name").as_ref());
                }
                if ix.heartbeat_freq_ms >= c.index_update_listener_recent_past_duration_ms {
                    w.push(Severity::Warning, &format!("{base}.heartbeat_freq_ms"), &format!("heartbeat_freq_ms ({}) is not below channel {:?}'s index_update_listener_recent_past_duration_ms ({}): waiters would think the indexer down between heartbeats", ix.heartbeat_freq_ms, c.name, c.index_update_listener_recent_past_duration_ms), Some("send heartbeats more often than the recent-past window".into()), isrc("heartbeat_freq_ms").as_ref());
                }
            }
        }
        if ix.repo_name == "local" {
            w.push(
                Severity::Error,
                &format!("{base}.repo_name"),
                "an indexer cannot index the `local` repository",
                Some("index a shared repository such as origin".into()),
                isrc("repo_name").as_ref(),
            );
        } else {
            match config.repositories.get(&ix.repo_name) {
                None => w.push(
                    Severity::Error,
                    &format!("{base}.repo_name"),
                    &format!("repository {:?} is not configured", ix.repo_name),
                    Some(format!(
                        "add [repositories.{}] with use_index = true and an address",
                        ix.repo_name
                    )),
                    isrc("repo_name").as_ref(),
                ),
                Some(r)
                    if r.use_index
                        && r.index.update_message_channel != ix.message_channel_name
                        && config.channel(&ix.message_channel_name).is_some() =>
                {
                    let status = match route_index_status_of(config, &ix.repo_name, &r.index) {
                        IndexRoute::Send { channel, topic } => {
                            format!("channel {channel:?}, topic {topic:?}")
                        }
                        IndexRoute::Skip { reason, .. } => format!("nowhere ({reason})"),
                    };
                    w.push(
                        Severity::Warning,
                        &format!("{base}.message_channel_name"),
                        &format!(
                            "indexer {name:?} reads channel {:?}, but repository {:?}'s index status goes to {status} (repositories.{}.index.update_message_channel): the indexer reports there, and waiters listen there, not on {:?}",
                            ix.message_channel_name, ix.repo_name, ix.repo_name, ix.message_channel_name
                        ),
                        Some(format!(
                            "set repositories.{}.index.update_message_channel = {:?}",
                            ix.repo_name, ix.message_channel_name
                        )),
                        isrc("message_channel_name").as_ref(),
                    );
                }
                Some(r) if !r.use_index => w.push(
                    Severity::Error,
                    &format!("{base}.repo_name"),
                    &format!("repository {:?} has use_index = false", ix.repo_name),
                    Some(format!(
                        "set repositories.{}.use_index = true",
                        ix.repo_name
                    )),
                    isrc("repo_name").as_ref(),
                ),
                Some(_) => {}
            }
        }
    }
}
