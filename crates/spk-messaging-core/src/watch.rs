//! What `spk messaging tail` decides, with no network: how a payload read
//! from a topic is decoded, which messages a user's filters keep, and what
//! `--since` and `--event` mean.
//!
//! Filters on repositories use [`RepoTarget`] (name, or normalised address),
//! the same rule as the Indexer and the waiter.

use std::fmt;
use std::str::FromStr;

use crate::about::RepoTarget;
use crate::ident::{PkgName, Version};
use crate::message::{IndexEvent, IndexStatusMessage, PackageEvent, PackageUpdateMessage};

/// Which of the two topics a message was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// The package updates topic.
    Package,
    /// The index status topic.
    Index,
}

/// A payload, read as the message its topic carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Package(PackageUpdateMessage),
    Index(IndexStatusMessage),
    /// Not a message of the topic's kind; why.
    Malformed(String),
}

/// Reads a payload of a topic of `kind` (both spellings of every event).
pub fn decode(kind: TopicKind, payload: Option<&[u8]>) -> Decoded {
    let Some(bytes) = payload else {
        return Decoded::Malformed("empty message (no payload)".into());
    };
    match kind {
        TopicKind::Package => match PackageUpdateMessage::from_bytes(bytes) {
            Ok(m) => Decoded::Package(m),
            Err(e) => Decoded::Malformed(e.to_string()),
        },
        TopicKind::Index => match IndexStatusMessage::from_bytes(bytes) {
            Ok(m) => Decoded::Index(m),
            Err(e) => Decoded::Malformed(e.to_string()),
        },
    }
}

/// One `--event` value: a package or an index event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSel {
    Package(PackageEvent),
    Index(IndexEvent),
}

/// Short names accepted by `--event`, beside both spellings of each event.
const SHORT: &[(&str, EventSel)] = &[
    ("published", EventSel::Package(PackageEvent::Published)),
    ("modified", EventSel::Package(PackageEvent::Modified)),
    ("removed", EventSel::Package(PackageEvent::Removed)),
    (
        "generate-index",
        EventSel::Package(PackageEvent::GenerateIndex),
    ),
    ("started", EventSel::Index(IndexEvent::Started)),
    ("in-progress", EventSel::Index(IndexEvent::InProgress)),
    ("completed", EventSel::Index(IndexEvent::Completed)),
    ("heartbeat", EventSel::Index(IndexEvent::Heartbeat)),
];

impl FromStr for EventSel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Some((_, e)) = SHORT.iter().find(|(n, _)| *n == t) {
            return Ok(*e);
        }
        if let Some(e) = PackageEvent::parse(t) {
            return Ok(EventSel::Package(e));
        }
        if let Some(e) = IndexEvent::parse(t) {
            return Ok(EventSel::Index(e));
        }
        let names: Vec<&str> = SHORT.iter().map(|(n, _)| *n).collect();
        Err(format!(
            "unknown event {t:?}; expected one of {} (or the documented string, e.g. \"package published\", or SPK's variant name, e.g. Published)",
            names.join(", ")
        ))
    }
}

impl fmt::Display for EventSel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventSel::Package(e) => e.fmt(f),
            EventSel::Index(e) => e.fmt(f),
        }
    }
}

/// One `--package` value: `NAME` or `NAME/VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSel {
    pub name: PkgName,
    pub version: Option<Version>,
}

impl FromStr for PackageSel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        if parts.len() > 2 {
            return Err(format!(
                "{s:?} has a build; give NAME or NAME/VERSION (e.g. my-pkg or my-pkg/1.2.3)"
            ));
        }
        let name = parts[0]
            .parse::<PkgName>()
            .map_err(|e| format!("{s:?}: {e}"))?;
        let version = parts
            .get(1)
            .map(|v| v.parse::<Version>())
            .transpose()
            .map_err(|e| format!("{s:?}: {e}"))?;
        Ok(PackageSel { name, version })
    }
}

impl PackageSel {
    /// True when `package` (`name/version/build`) is this name (and version).
    pub fn matches(&self, package: &str) -> bool {
        let mut parts = package.split('/');
        let Some(name) = parts.next() else {
            return false;
        };
        if name != self.name.as_str() {
            return false;
        }
        match &self.version {
            None => true,
            Some(want) => parts
                .next()
                .and_then(|v| v.parse::<Version>().ok())
                .is_some_and(|v| v == *want),
        }
    }
}

/// The filters of `tail`. Each given filter must match; none given keeps
/// every message.
#[derive(Debug, Clone, Default)]
pub struct TailFilter {
    pub repo: Option<RepoTarget>,
    pub package: Option<PackageSel>,
    /// Any of these events (empty: any event).
    pub events: Vec<EventSel>,
}

impl TailFilter {
    /// Whether a decoded message is shown. Malformed messages are always
    /// shown: nothing in them can be matched, and they are what an operator
    /// most needs to see.
    pub fn keeps(&self, d: &Decoded) -> bool {
        match d {
            Decoded::Malformed(_) => true,
            Decoded::Package(m) => {
                self.repo
                    .as_ref()
                    .is_none_or(|r| r.matches(&m.repo_name, &m.repo))
                    && self.package.as_ref().is_none_or(|p| p.matches(&m.package))
                    && (self.events.is_empty() || self.events.contains(&EventSel::Package(m.event)))
            }
            Decoded::Index(m) => {
                self.repo
                    .as_ref()
                    .is_none_or(|r| r.matches(&m.name, &m.repo))
                    && self.package.is_none()
                    && (self.events.is_empty() || self.events.contains(&EventSel::Index(m.event)))
            }
        }
    }

    /// Whether messages of a topic of `kind` can be kept at all (so a tail
    /// need not read a topic its filters exclude).
    pub fn may_keep(&self, kind: TopicKind) -> bool {
        let events_allow = self.events.is_empty()
            || self.events.iter().any(|e| {
                matches!(
                    (e, kind),
                    (EventSel::Package(_), TopicKind::Package)
                        | (EventSel::Index(_), TopicKind::Index)
                )
            });
        events_allow && (kind == TopicKind::Package || self.package.is_none())
    }
}

/// `--since`: a duration back from `now_ms` (`90s`, `15m`, `2h`, `1d`,
/// `500ms`, combinations such as `1h30m`), or a moment (seconds since the
/// epoch, or RFC 3339 such as `2026-11-25T17:00:00Z`). Returns milliseconds
/// since the epoch.
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    let err = || {
        format!(
            "{t:?} is neither a duration (e.g. 90s, 15m, 2h, 1d, 1h30m) nor a time (seconds since the epoch, or RFC 3339 such as 2026-11-25T17:00:00Z)"
        )
    };
    if t.is_empty() {
        return Err(err());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = t.parse().map_err(|_| err())?;
        return Ok(secs.saturating_mul(1000));
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_millis());
    }
    parse_duration_ms(t)
        .map(|d| now_ms.saturating_sub(d))
        .ok_or_else(err)
}

/// A duration such as `90s`, `15m`, `2h`, `1d`, `500ms` or `1h30m`, in ms.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(event: &str, repo: &str, name: &str, package: &str) -> Decoded {
        decode(
            TopicKind::Package,
            Some(
                format!(
                    r#"{{"event":"{event}","repo":"{repo}","repo_name":"{name}","package":"{package}"}}"#
                )
                .as_bytes(),
            ),
        )
    }

    fn idx(event: &str, repo: &str, name: &str) -> Decoded {
        decode(
            TopicKind::Index,
            Some(
                format!(r#"{{"event":"{event}","repo":"{repo}","name":"{name}","start":1}}"#)
                    .as_bytes(),
            ),
        )
    }

    #[test]
    fn decodes_both_spellings_and_names_what_is_wrong() {
        assert!(matches!(
            pkg("Published", "file:/r", "origin", "a/1.0.0/src"),
            Decoded::Package(m) if m.event == PackageEvent::Published
        ));
        assert!(matches!(
            idx("IndexerHeartbeat", "/r", "main"),
            Decoded::Index(m) if m.event == IndexEvent::Heartbeat
        ));
        assert!(matches!(
            decode(TopicKind::Package, None),
            Decoded::Malformed(_)
        ));
        assert!(
            matches!(decode(TopicKind::Index, Some(b"{}")), Decoded::Malformed(w) if w.contains("missing field"))
        );
        // A package update on the status topic is not a status message.
        assert!(matches!(
            decode(
                TopicKind::Index,
                Some(br#"{"event":"package published","repo":"r","repo_name":"o","package":""}"#)
            ),
            Decoded::Malformed(_)
        ));
    }

    #[test]
    fn filters_repo_by_name_or_address_package_and_event() {
        let f = TailFilter {
            repo: Some(RepoTarget::from_user("file:///srv/origin/")),
            ..Default::default()
        };
        assert!(f.keeps(&pkg("package published", "/srv/origin", "x", "a/1/src")));
        assert!(f.keeps(&idx("Completed", "file:/srv/origin", "x")));
        assert!(!f.keeps(&pkg("package published", "/srv/other", "x", "a/1/src")));
        let f = TailFilter {
            repo: Some(RepoTarget::from_user("origin")),
            ..Default::default()
        };
        assert!(f.keeps(&pkg("Removed", "/x", "origin", "a/1/src")));
        assert!(!f.keeps(&pkg("Removed", "/srv/origin", "other", "a/1/src")));

        let f = TailFilter {
            package: Some("my-pkg/1.2".parse().unwrap()),
            ..Default::default()
        };
        assert!(
            f.keeps(&pkg("Published", "/r", "o", "my-pkg/1.2.0/src")),
            "1.2 == 1.2.0"
        );
        assert!(!f.keeps(&pkg("Published", "/r", "o", "my-pkg/1.3.0/src")));
        assert!(!f.keeps(&pkg("Published", "/r", "o", "my-pkg-2/1.2.0/src")));
        assert!(
            !f.keeps(&idx("Completed", "/r", "o")),
            "status has no package"
        );
        assert!(f.keeps(&Decoded::Malformed("x".into())));
        assert!(!f.may_keep(TopicKind::Index));

        let f = TailFilter {
            events: vec!["removed".parse().unwrap(), "Completed".parse().unwrap()],
            ..Default::default()
        };
        assert!(f.keeps(&pkg("package removed", "/r", "o", "a/1/src")));
        assert!(!f.keeps(&pkg("package published", "/r", "o", "a/1/src")));
        assert!(f.keeps(&idx("index completed", "/r", "o")));
        assert!(!f.keeps(&idx("index started", "/r", "o")));
        let only_pkg = TailFilter {
            events: vec!["published".parse().unwrap()],
            ..Default::default()
        };
        assert!(only_pkg.may_keep(TopicKind::Package) && !only_pkg.may_keep(TopicKind::Index));
    }

    #[test]
    fn bad_filter_values_say_what_would_be_right() {
        let e = "done".parse::<EventSel>().unwrap_err();
        assert!(e.contains("published") && e.contains("heartbeat"), "{e}");
        let e = "a/1.0/src".parse::<PackageSel>().unwrap_err();
        assert!(e.contains("NAME/VERSION"), "{e}");
        assert!("Bad_Name".parse::<PackageSel>().is_err());
        assert_eq!(
            "GenerateFullIndex".parse::<EventSel>().unwrap(),
            EventSel::Package(PackageEvent::GenerateIndex)
        );
    }

    #[test]
    fn since_is_a_duration_or_a_time() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_since("90s", now).unwrap(), now - 90_000);
        assert_eq!(parse_since("1h30m", now).unwrap(), now - 5_400_000);
        assert_eq!(parse_since("2d", now).unwrap(), now - 172_800_000);
        assert_eq!(parse_since("500ms", now).unwrap(), now - 500);
        assert_eq!(parse_since("1764090000", now).unwrap(), 1_764_090_000_000);
        assert_eq!(
            parse_since("2026-11-25T17:00:00Z", now).unwrap(),
            chrono::DateTime::parse_from_rfc3339("2026-11-25T17:00:00Z")
                .unwrap()
                .timestamp_millis()
        );
        for bad in ["", "10", "x", "10 minutes", "5w", "m5", "-5s"] {
            if bad == "10" {
                continue; // seconds since the epoch
            }
            let e = parse_since(bad, now).unwrap_err();
            assert!(e.contains("duration"), "{bad}: {e}");
        }
    }
}
