//! Repository addresses.
//!
//! A filesystem repository may be written as a plain path or a `file:` URL
//! (`file:/x`, `file:///x`, `file:///x/` are one repository). We
//! normalise once, here, to an absolute path, so that every comparison (an
//! indexer matching an event's `repo` to its repository) compares like with
//! like. The canonical text is SPK's own: `file:///abs/path/` (three slashes,
//! a trailing slash, the path percent-encoded as a URL's is), because SPK's
//! Indexer keeps only events whose `repo` equals its address string exactly.

use std::fmt;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid repository address {value:?}: {reason}; expected an absolute or relative path, or a `file:` URL such as `file:///srv/spk/origin`")]
pub struct AddressError {
    pub value: String,
    pub reason: String,
}

/// A normalised filesystem repository address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoAddress {
    path: PathBuf,
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Removes `.` and resolves `..` lexically (the repository may not exist yet).
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

impl RepoAddress {
    /// Parses `value`; a relative path is taken relative to `base`.
    pub fn parse(value: &str, base: &Path) -> Result<Self, AddressError> {
        let err = |reason: &str| AddressError {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let v = value.trim();
        if v.is_empty() {
            return Err(err("it is empty"));
        }
        let path = if let Some(rest) = v.strip_prefix("file:") {
            let rest = if let Some(after) = rest.strip_prefix("//") {
                // file://host/path: only an empty host or localhost is local.
                let (host, p) = match after.find('/') {
                    Some(i) => (&after[..i], &after[i..]),
                    None => (after, ""),
                };
                if !(host.is_empty() || host == "localhost") {
                    return Err(err(&format!("host {host:?} is not local; only local filesystem repositories are supported")));
                }
                p
            } else {
                rest
            };
            if !rest.starts_with('/') {
                return Err(err("a file: URL must hold an absolute path"));
            }
            PathBuf::from(percent_decode(rest).ok_or_else(|| err("it has an invalid %-escape"))?)
        } else if let Some((scheme, _)) = v.split_once("://") {
            return Err(err(&format!("scheme {scheme:?} is not supported")));
        } else {
            let p = PathBuf::from(v);
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };
        Ok(RepoAddress { path: clean(&path) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The canonical form sent in messages, exactly as SPK writes it for the
    /// same repository: `file:///abs/path/`.
    pub fn to_url(&self) -> String {
        let mut out = String::from("file://");
        for seg in self.path.iter().skip(1) {
            out.push('/');
            for &b in seg.to_string_lossy().as_bytes() {
                if needs_escape(b) {
                    out.push_str(&format!("%{b:02X}"));
                } else {
                    out.push(b as char);
                }
            }
        }
        out.push('/');
        out
    }
}

/// The bytes a URL path segment escapes (the `url` crate's path-segment set,
/// which SPK's addresses come from): controls, space, `"#<>?`{}/%` and
/// everything outside ASCII.
fn needs_escape(b: u8) -> bool {
    b <= 0x20 || b >= 0x7f || b"\"#<>?`{}/%".contains(&b)
}

impl fmt::Display for RepoAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_one_address() {
        let base = Path::new("/cwd");
        let a = RepoAddress::parse("file:/x/y", base).unwrap();
        for s in [
            "file:///x/y",
            "file://localhost/x/y",
            "/x/y",
            "/x/./z/../y",
            "file:/x/y/",
        ] {
            assert_eq!(RepoAddress::parse(s, base).unwrap(), a, "{s}");
        }
        assert_eq!(a.to_url(), "file:///x/y/");
        assert_eq!(
            RepoAddress::parse("rel/r", base).unwrap().to_url(),
            "file:///cwd/rel/r/"
        );
        // SPK's form round-trips, including characters a URL escapes.
        for p in ["/srv/a b/%x/é", "/", "/x#y?z"] {
            let a = RepoAddress::parse(p, base).unwrap();
            let url = a.to_url();
            assert!(url.starts_with("file:///") && url.ends_with('/'), "{url}");
            assert!(!url[7..].contains(' ') && url.is_ascii(), "{url}");
            assert_eq!(RepoAddress::parse(&url, base).unwrap(), a, "{url}");
        }
        assert_eq!(
            RepoAddress::parse("/srv/a b", base).unwrap().to_url(),
            "file:///srv/a%20b/"
        );
        assert_eq!(
            RepoAddress::parse("file:/a%20b", base).unwrap().path(),
            Path::new("/a b")
        );
    }

    #[test]
    fn bad_addresses() {
        let base = Path::new("/");
        for s in [
            "",
            "file://remote/x",
            "file:x",
            "s3://bucket/x",
            "file:/%zz",
        ] {
            let e = RepoAddress::parse(s, base).unwrap_err().to_string();
            assert!(e.contains("file:///srv/spk/origin"), "{e}");
        }
    }
}
