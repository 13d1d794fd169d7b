//! Kafka headers: what the body does not say.
//!
//! The message body is exactly SPK's documented JSON, so everything else a
//! consumer or an operator may want (a unique id to de-duplicate retries,
//! what kind of message it is, who sent it) travels in headers. The names are
//! documented in `docs/kafka.md`.

use std::sync::OnceLock;

use rdkafka::message::{Header, OwnedHeaders};
use spk_messaging_core::message::SCHEMA_VERSION;

/// A unique id (UUID v4) per message; retries of one send keep it.
pub const MESSAGE_ID: &str = "spk-message-id";
/// [`MessageKind::as_str`]: `package-update` or `index-status`.
pub const MESSAGE_KIND: &str = "spk-message-kind";
/// The body schema version ([`SCHEMA_VERSION`]).
pub const SCHEMA_VERSION_HEADER: &str = "spk-schema-version";
/// Always `application/json`.
pub const CONTENT_TYPE: &str = "content-type";
/// The sending host's name.
pub const SENDER_HOST: &str = "spk-sender-host";
/// The sending user's name.
pub const SENDER_USER: &str = "spk-sender-user";
/// The version of these tools.
pub const TOOL_VERSION: &str = "spk-tool-version";

/// On an Indexer's heartbeat while the index lock is busy: who holds it,
/// as the lock file says (`host: H pid: P`). Not in [`ALL`]: only those
/// heartbeats carry it.
pub const LOCK_HOLDER: &str = "spk-lock-holder";

/// On "index completed" sent by our tools: `full` or `update`, what the
/// run was (SPK's message has no field for it). Not in [`ALL`].
pub const RUN_KIND: &str = "spk-index-run";

/// Every header name, in the order they are sent.
pub const ALL: &[&str] = &[
    MESSAGE_ID,
    MESSAGE_KIND,
    SCHEMA_VERSION_HEADER,
    CONTENT_TYPE,
    SENDER_HOST,
    SENDER_USER,
    TOOL_VERSION,
];

/// The value of the `content-type` header.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The version sent in `spk-tool-version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which of SPK's two messages a Kafka message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    PackageUpdate,
    IndexStatus,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::PackageUpdate => "package-update",
            MessageKind::IndexStatus => "index-status",
        }
    }
}

/// The headers of one message, as text pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeaders {
    pairs: Vec<(&'static str, String)>,
}

impl MessageHeaders {
    /// Fresh headers (with a new message id) for a message of `kind`.
    pub fn new(kind: MessageKind) -> Self {
        let (host, user) = sender();
        MessageHeaders {
            pairs: vec![
                (MESSAGE_ID, uuid::Uuid::new_v4().to_string()),
                (MESSAGE_KIND, kind.as_str().to_string()),
                (SCHEMA_VERSION_HEADER, SCHEMA_VERSION.to_string()),
                (CONTENT_TYPE, JSON_CONTENT_TYPE.to_string()),
                (SENDER_HOST, host.clone()),
                (SENDER_USER, user.clone()),
                (TOOL_VERSION, VERSION.to_string()),
            ],
        }
    }

    /// These headers and `name: value` after them.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.pairs.push((name, value.into()));
        self
    }

    /// The headers as `(name, value)` pairs, in sending order.
    pub fn pairs(&self) -> &[(&'static str, String)] {
        &self.pairs
    }

    /// The value of one header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The message id.
    pub fn message_id(&self) -> &str {
        self.get(MESSAGE_ID).unwrap_or_default()
    }

    pub(crate) fn to_kafka(&self) -> OwnedHeaders {
        self.pairs.iter().fold(
            OwnedHeaders::new_with_capacity(self.pairs.len()),
            |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v.as_str()),
                })
            },
        )
    }
}

/// The sending host and user, looked up once per process.
pub fn sender() -> &'static (String, String) {
    static SENDER: OnceLock<(String, String)> = OnceLock::new();
    SENDER.get_or_init(|| (host_name(), user_name()))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn user_name() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|s| !s.is_empty()))
        .or_else(|| {
            // No variable (a service without a login): the numeric uid.
            let status = std::fs::read_to_string("/proc/self/status").ok()?;
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace()
                .nth(1)
                .map(|uid| format!("uid {uid}"))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_is_present_once_with_a_fresh_id() {
        let a = MessageHeaders::new(MessageKind::IndexStatus);
        let b = MessageHeaders::new(MessageKind::PackageUpdate);
        let names: Vec<&str> = a.pairs().iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ALL);
        assert_ne!(a.message_id(), b.message_id());
        assert!(uuid::Uuid::parse_str(a.message_id()).is_ok());
        assert_eq!(a.get(MESSAGE_KIND), Some("index-status"));
        assert_eq!(b.get(MESSAGE_KIND), Some("package-update"));
        assert_eq!(a.get(CONTENT_TYPE), Some("application/json"));
        assert_eq!(a.get(SCHEMA_VERSION_HEADER), Some("1"));
        assert!(!a.get(SENDER_HOST).unwrap_or_default().is_empty());
        assert!(!a.get(SENDER_USER).unwrap_or_default().is_empty());
    }
}
