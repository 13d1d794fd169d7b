//! Which channel and topic a message goes to: the one routing rule.
//!
//! Index status goes only to the channel the repository's index names in
//! `index.update_message_channel`, and only if that channel lists the
//! repository in `repo_names` (SPK itself sends to every channel). Package
//! events go to every channel listing the repository, or to the one named.
//! A channel without the topic in question sends nothing, and says so.
//!
//! [`route_index_status`] is what `spk repo index` sends to, what the
//! Indexer sends its runs and heartbeats to, what waiters listen on, and what
//! `check-config` compares an indexer's channel with. Nothing else decides
//! where a repository's index status is.

use crate::config::{Config, IndexConfig, KafkaChannelConfig, ResolvedRepo};

/// Where index status for a repository goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexRoute {
    /// Send to `topic` on `channel`.
    Send { channel: String, topic: String },
    /// Send nothing. `warning` is true when the config is probably wrong
    /// (e.g. the channel exists but does not list the repository) rather
    /// than simply not set up for messaging.
    Skip { reason: String, warning: bool },
}

fn names(cfg: &Config) -> String {
    if cfg.messaging.is_empty() {
        "no channels are configured".to_string()
    } else {
        let n: Vec<String> = cfg
            .messaging
            .iter()
            .map(|c| format!("{:?}", c.name))
            .collect();
        format!("configured channels: {}", n.join(", "))
    }
}

/// Where index status messages for `repo` go.
pub fn route_index_status(cfg: &Config, repo: &ResolvedRepo) -> IndexRoute {
    route_index_status_of(cfg, &repo.name, &repo.config.index)
}

/// Where index status messages of repository `repo_name`, whose index
/// settings are `index`, go. The default `update_message_channel` naming no
/// channel is a note (a site without Kafka); a name set explicitly that
/// matches no channel is a warning (probably a typo).
pub fn route_index_status_of(cfg: &Config, repo_name: &str, index: &IndexConfig) -> IndexRoute {
    let name = &index.update_message_channel;
    if name.is_empty() {
        return IndexRoute::Skip {
            reason: format!("repositories.{repo_name}.index.update_message_channel is empty"),
            warning: index.update_message_channel_set,
        };
    }
    let Some(ch) = cfg.channel(name) else {
        let how = if index.update_message_channel_set {
            "index.update_message_channel"
        } else {
            "the default index.update_message_channel"
        };
        return IndexRoute::Skip {
            reason: format!(
                "repository {repo_name:?} sends index status on channel {name:?} ({how}), which is not configured ({})",
                names(cfg)
            ),
            warning: index.update_message_channel_set,
        };
    };
    if !ch.allows_repo(repo_name) {
        return IndexRoute::Skip {
            reason: format!(
                "channel {name:?} does not list repository {repo_name:?} in its repo_names ({})",
                ch.repo_names.join(", ")
            ),
            warning: true,
        };
    }
    match &ch.index_updates_topic_name {
        Some(t) if !t.is_empty() => IndexRoute::Send {
            channel: ch.name.clone(),
            topic: t.clone(),
        },
        _ => IndexRoute::Skip {
            reason: format!("channel {name:?} has no index_updates_topic_name"),
            warning: false,
        },
    }
}

/// One destination of a package event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRoute {
    pub channel: String,
    pub topic: String,
}

/// Where package events for a repository go, and the channels that list the
/// repository but send nothing (with why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRoutes {
    pub routes: Vec<PackageRoute>,
    pub skipped: Vec<String>,
}

/// Package events for a repository cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("there is no channel named {channel:?} ({known})")]
    UnknownChannel { channel: String, known: String },
    #[error("repository {repo:?} may not send on channel {channel:?}: it is not in the channel's repo_names ({allowed})")]
    RepoNotAllowed {
        repo: String,
        channel: String,
        allowed: String,
    },
    #[error(
        "channel {channel:?} has no package_updates_topic_name, so it sends no package events"
    )]
    NoTopic { channel: String },
    #[error("no channel lists repository {repo:?} in its repo_names ({known}); add it to a channel's repo_names")]
    NoChannel { repo: String, known: String },
    #[error("no channel listing repository {repo:?} has a package_updates_topic_name: {}", .skipped.join("; "))]
    NoTopicAnywhere { repo: String, skipped: Vec<String> },
}

fn package_topic(ch: &KafkaChannelConfig) -> Option<&str> {
    ch.package_updates_topic_name
        .as_deref()
        .filter(|t| !t.is_empty())
}

/// Where package events for `repo` go: to the channel named by `channel`
/// (which must list the repository and have a package topic), else to every
/// channel listing the repository that has a package topic.
pub fn route_package_events(
    cfg: &Config,
    repo: &ResolvedRepo,
    channel: Option<&str>,
) -> Result<PackageRoutes, RouteError> {
    if let Some(name) = channel {
        let ch = cfg
            .channel(name)
            .ok_or_else(|| RouteError::UnknownChannel {
                channel: name.to_string(),
                known: names(cfg),
            })?;
        if !ch.allows_repo(&repo.name) {
            return Err(RouteError::RepoNotAllowed {
                repo: repo.name.clone(),
                channel: name.to_string(),
                allowed: ch.repo_names.join(", "),
            });
        }
        let topic = package_topic(ch).ok_or_else(|| RouteError::NoTopic {
            channel: name.to_string(),
        })?;
        return Ok(PackageRoutes {
            routes: vec![PackageRoute {
                channel: ch.name.clone(),
                topic: topic.to_string(),
            }],
            skipped: Vec::new(),
        });
    }
    let mut routes = Vec::new();
    let mut skipped = Vec::new();
    let mut listed = false;
    for ch in cfg.messaging.iter().filter(|c| c.allows_repo(&repo.name)) {
        listed = true;
        match package_topic(ch) {
            Some(t) => routes.push(PackageRoute {
                channel: ch.name.clone(),
                topic: t.to_string(),
            }),
            None => skipped.push(format!(
                "channel {:?} has no package_updates_topic_name, so it sends no package events",
                ch.name
            )),
        }
    }
    if !listed {
        return Err(RouteError::NoChannel {
            repo: repo.name.clone(),
            known: names(cfg),
        });
    }
    if routes.is_empty() {
        return Err(RouteError::NoTopicAnywhere {
            repo: repo.name.clone(),
            skipped,
        });
    }
    Ok(PackageRoutes { routes, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str, repos: &[&str]) -> KafkaChannelConfig {
        KafkaChannelConfig {
            name: name.into(),
            brokers: vec!["k:9092".into()],
            repo_names: repos.iter().map(|r| r.to_string()).collect(),
            index_updates_topic_name: Some("idx".into()),
            ..Default::default()
        }
    }

    fn index(channel: &str, set: bool) -> IndexConfig {
        IndexConfig {
            update_message_channel: channel.into(),
            update_message_channel_set: set,
            ..Default::default()
        }
    }

    #[test]
    fn the_default_channel_missing_is_a_note_an_explicit_one_a_warning() {
        let cfg = Config::default();
        match route_index_status_of(&cfg, "origin", &index("kafka", false)) {
            IndexRoute::Skip { reason, warning } => {
                assert!(!warning);
                assert!(reason.contains("the default"), "{reason}");
            }
            r => panic!("{r:?}"),
        }
        match route_index_status_of(&cfg, "origin", &index("kafka", true)) {
            IndexRoute::Skip { reason, warning } => {
                assert!(warning);
                assert!(!reason.contains("the default"), "{reason}");
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn status_goes_to_the_named_channel_only_when_it_lists_the_repository() {
        let cfg = Config {
            messaging: vec![channel("a", &["origin"]), channel("b", &["other"])],
            ..Default::default()
        };
        assert_eq!(
            route_index_status_of(&cfg, "origin", &index("a", true)),
            IndexRoute::Send {
                channel: "a".into(),
                topic: "idx".into()
            }
        );
        assert!(matches!(
            route_index_status_of(&cfg, "origin", &index("b", true)),
            IndexRoute::Skip { warning: true, .. }
        ));
    }
}
