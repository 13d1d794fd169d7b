//! The two JSON messages SPK exchanges: package updates and index status.
//!
//! The body is exactly SPK's documented format. When sending we always write
//! the documented event strings (`"package published"`); when reading we also
//! accept the enum variant names SPK's own code writes (`"Published"`), because
//! both are in the wild. `start` is an integer number of seconds since the
//! epoch; a numeric string is accepted when reading, for lenient producers.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// Version of the message body schema this crate writes, sent in a header.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a message body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("message body is not UTF-8")]
    NotUtf8,
    #[error("message body is {len} bytes, more than the {max} accepted")]
    TooLarge { len: usize, max: usize },
}

/// Largest message body we will try to parse.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

macro_rules! event_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident => $doc:literal | $alias:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($var),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The documented string, as sent.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $doc),+ }
            }
            /// SPK's enum variant name, accepted when reading.
            pub fn variant_name(self) -> &'static str {
                match self { $($name::$var => $alias),+ }
            }
            /// Reads either spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($doc | $alias => Some($name::$var),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    let expected: Vec<String> = $name::ALL.iter().map(|e| format!("{:?}", e.as_str())).collect();
                    de::Error::custom(format!("unknown event {:?}, expected one of {}", s, expected.join(", ")))
                })
            }
        }
    };
}

event_enum! {
    /// What happened to a package.
    PackageEvent {
        Published => "package published" | "Published",
        Modified => "package modified" | "Modified",
        Removed => "package removed" | "Removed",
        GenerateIndex => "generate index" | "GenerateFullIndex",
    }
}

event_enum! {
    /// What an index run or an indexer reports.
    IndexEvent {
        Started => "index started" | "Started",
        InProgress => "index in-progress" | "InProgress",
        Completed => "index completed" | "Completed",
        Heartbeat => "indexer heartbeat" | "IndexerHeartbeat",
    }
}

/// A package update message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageUpdateMessage {
    pub event: PackageEvent,
    /// The repository's address, a `file:` URL for filesystem repositories.
    pub repo: String,
    pub repo_name: String,
    /// `name/version/build`; `""` for `generate index` (SPK requires the
    /// field, so we always send it, and accept it missing when reading).
    #[serde(default)]
    pub package: String,
}

/// An index status message (also used for indexer heartbeats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStatusMessage {
    pub event: IndexEvent,
    pub repo: String,
    /// The repository name (for heartbeats SPK puts the indexer name here).
    pub name: String,
    /// Seconds since the epoch when this index run started (for heartbeats,
    /// the send time).
    #[serde(deserialize_with = "de_start")]
    pub start: i64,
}

fn de_start<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Start {
        Int(i64),
        Str(String),
    }
    match Start::deserialize(d)? {
        Start::Int(i) => Ok(i),
        Start::Str(s) => s.trim().parse().map_err(|_| {
            de::Error::custom(format!(
                "start {s:?} is not an integer number of seconds since the epoch"
            ))
        }),
    }
}

fn check_body(bytes: &[u8]) -> Result<&str, MessageError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    std::str::from_utf8(bytes).map_err(|_| MessageError::NotUtf8)
}

impl PackageUpdateMessage {
    pub fn to_json(&self) -> String {
        // Serializing plain strings and enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MessageError> {
        Ok(serde_json::from_str(check_body(bytes)?)?)
    }
}

impl IndexStatusMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MessageError> {
        Ok(serde_json::from_str(check_body(bytes)?)?)
    }
}

/// JSON Schema of the package update message.
pub fn package_update_schema() -> serde_json::Value {
    let events: Vec<&str> = PackageEvent::ALL.iter().map(|e| e.as_str()).collect();
    let variants: Vec<&str> = PackageEvent::ALL.iter().map(|e| e.variant_name()).collect();
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "SPK package update message",
        "type": "object",
        "required": ["event", "repo", "repo_name", "package"],
        "properties": {
            "event": {
                "description": "What happened. Senders write the documented strings; readers also accept SPK's enum variant names.",
                "anyOf": [{"enum": events}, {"enum": variants}]
            },
            "repo": {"type": "string", "description": "The repository's address, e.g. file:/on/a/file/system/some/where"},
            "repo_name": {"type": "string", "description": "The repository's name, e.g. origin"},
            "package": {"type": "string", "description": "name/version/build; empty for generate index"}
        }
    })
}

/// JSON Schema of the index status message.
pub fn index_status_schema() -> serde_json::Value {
    let events: Vec<&str> = IndexEvent::ALL.iter().map(|e| e.as_str()).collect();
    let variants: Vec<&str> = IndexEvent::ALL.iter().map(|e| e.variant_name()).collect();
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "SPK index status message",
        "type": "object",
        "required": ["event", "repo", "name", "start"],
        "properties": {
            "event": {
                "description": "Index status or heartbeat. Senders write the documented strings; readers also accept SPK's enum variant names.",
                "anyOf": [{"enum": events}, {"enum": variants}]
            },
            "repo": {"type": "string", "description": "The repository's address"},
            "name": {"type": "string", "description": "The repository's name (the indexer's name in heartbeats)"},
            "start": {"type": "integer", "description": "Seconds since the epoch when this index run started; the same for all its messages"}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The seed document's own examples.
    const SEED_PACKAGE: &str = r#"{
"event": "package published",
"repo": "file:/on/a/file/system/some/where",
"repo_name": "origin",
"package": "mypkg/1.2.3/ABCDEF"
}"#;
    const SEED_INDEX: &str = r#"{
"event": "index in-progress",
"repo": "file:/on/a/file/system/some/where",
"name": "origin",
"start": 1777941742
}"#;

    #[test]
    fn seed_examples_round_trip() {
        let p = PackageUpdateMessage::from_bytes(SEED_PACKAGE.as_bytes()).unwrap();
        assert_eq!(p.event, PackageEvent::Published);
        assert_eq!(p.package, "mypkg/1.2.3/ABCDEF");
        let again: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        let orig: serde_json::Value = serde_json::from_str(SEED_PACKAGE).unwrap();
        assert_eq!(again, orig);

        let i = IndexStatusMessage::from_bytes(SEED_INDEX.as_bytes()).unwrap();
        assert_eq!(i.event, IndexEvent::InProgress);
        assert_eq!(i.start, 1777941742);
        let again: serde_json::Value = serde_json::from_str(&i.to_json()).unwrap();
        let orig: serde_json::Value = serde_json::from_str(SEED_INDEX).unwrap();
        assert_eq!(again, orig);
        assert!(i.to_json().contains(r#""start":1777941742"#));
    }

    #[test]
    fn reads_spk_variant_names_writes_documented() {
        let m = PackageUpdateMessage::from_bytes(
            br#"{"event":"GenerateFullIndex","repo":"file:/r","repo_name":"origin"}"#,
        )
        .unwrap();
        assert_eq!(m.event, PackageEvent::GenerateIndex);
        assert_eq!(m.package, "");
        assert_eq!(
            m.to_json(),
            r#"{"event":"generate index","repo":"file:/r","repo_name":"origin","package":""}"#
        );
        for e in IndexEvent::ALL {
            let body = format!(
                r#"{{"event":"{}","repo":"r","name":"n","start":1}}"#,
                e.variant_name()
            );
            assert_eq!(
                IndexStatusMessage::from_bytes(body.as_bytes())
                    .unwrap()
                    .event,
                *e
            );
        }
    }

    #[test]
    fn rejects_bad_bodies() {
        assert!(matches!(
            IndexStatusMessage::from_bytes(&[0xff, 0xfe]),
            Err(MessageError::NotUtf8)
        ));
        let e = IndexStatusMessage::from_bytes(
            br#"{"event":"index done","repo":"r","name":"n","start":1}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown event") && e.contains("index completed"),
            "{e}"
        );
        assert!(IndexStatusMessage::from_bytes(
            br#"{"event":"Started","repo":"r","name":"n","start":"x"}"#
        )
        .is_err());
        assert_eq!(
            IndexStatusMessage::from_bytes(
                br#"{"event":"Started","repo":"r","name":"n","start":"12"}"#
            )
            .unwrap()
            .start,
            12
        );
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            PackageUpdateMessage::from_bytes(&huge),
            Err(MessageError::TooLarge { .. })
        ));
    }
}
