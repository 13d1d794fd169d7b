//! The one rule for "is this message about repository R".
//!
//! A message names its repository twice: by configured name (`name` /
//! `repo_name`) and by address (`repo`). Sites write the address in several
//! spellings (`file:/x`, `file:///x/`, `/x`), and SPK compares it exactly,
//! which is how events get silently ignored. Every reader here (the Indexer,
//! the waiter, `tail` and `status`) asks this module instead: a message is
//! about R when its name is R's name, or its address, normalised, is R's.
//! A relative address in a message cannot be resolved against anything
//! meaningful on the reader's host, so it matches by name only.

use std::path::Path;

use crate::address::RepoAddress;

/// The repository a reader cares about: its configured name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoTarget {
    pub name: String,
    pub address: Option<RepoAddress>,
}

impl RepoTarget {
    pub fn new(name: impl Into<String>, address: Option<RepoAddress>) -> Self {
        RepoTarget {
            name: name.into(),
            address,
        }
    }

    /// A target given as one string by a user: a name (`origin`) or an
    /// address (`/srv/origin`, `file:///srv/origin/`). A string that parses
    /// as an absolute address matches by address; any string also matches by
    /// name.
    pub fn from_user(text: &str) -> Self {
        let address = absolute_address(text);
        RepoTarget {
            name: text.to_string(),
            address,
        }
    }

    /// True when a message naming `msg_name` with address `msg_repo` is
    /// about this repository.
    pub fn matches(&self, msg_name: &str, msg_repo: &str) -> bool {
        if !self.name.is_empty() && msg_name == self.name {
            return true;
        }
        match (&self.address, absolute_address(msg_repo)) {
            (Some(mine), Some(theirs)) => *mine == theirs,
            _ => false,
        }
    }
}

/// `text` as an address when it is absolute (`/x` or a `file:` URL).
fn absolute_address(text: &str) -> Option<RepoAddress> {
    let t = text.trim();
    if !(t.starts_with('/') || t.starts_with("file:")) {
        return None;
    }
    RepoAddress::parse(t, Path::new("/")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> RepoTarget {
        RepoTarget::new(
            "origin",
            Some(RepoAddress::parse("/srv/origin", Path::new("/")).unwrap()),
        )
    }

    #[test]
    fn every_spelling_of_the_address_matches() {
        let t = origin();
        for repo in [
            "file:///srv/origin/",
            "file:///srv/origin",
            "file:/srv/origin",
            "/srv/origin",
            "/srv/origin/",
            "file://localhost/srv/origin",
            "/srv/./x/../origin",
        ] {
            assert!(t.matches("other-name", repo), "{repo}");
        }
    }

    #[test]
    fn name_alone_matches_and_other_repositories_do_not() {
        let t = origin();
        assert!(t.matches("origin", "file:///elsewhere/"));
        assert!(!t.matches("other", "file:///srv/origin2/"));
        assert!(!t.matches("other", "srv/origin"), "relative never matches");
        assert!(!t.matches("other", "file://host/srv/origin"));
        assert!(!t.matches("", ""));
    }

    #[test]
    fn an_empty_name_matches_nothing_by_name() {
        let t = RepoTarget::new("", None);
        assert!(!t.matches("", "/srv/origin"));
    }

    #[test]
    fn percent_escapes_and_non_ascii_round_trip() {
        let a = RepoAddress::parse("/srv/my repo/ü%x", Path::new("/")).unwrap();
        let t = RepoTarget::new("r", Some(a.clone()));
        assert!(t.matches("x", &a.to_url()));
        assert!(t.matches("x", "/srv/my repo/ü%x"));
    }

    #[test]
    fn a_user_string_is_a_name_or_an_address() {
        let t = RepoTarget::from_user("file:///srv/origin/");
        assert!(t.matches("n", "/srv/origin"));
        let t = RepoTarget::from_user("origin");
        assert!(t.matches("origin", "/x"));
        assert!(!t.matches("n", "/srv/origin"));
    }
}
