//! Package identifiers: names, versions, builds and their combinations.
//!
//! SPK names a build `name/version/build`. Every command that takes a package
//! from an operator (`--update`, `--package`, event payloads) parses it here,
//! so a typo is caught before anything touches a repository or a broker, and
//! the error says what a valid value looks like.
//!
//! Version ordering follows SPK: numeric parts compare as numbers with missing
//! trailing parts as zero (`1.10` after `1.9`, `1.0` equal to `1.0.0`); a
//! pre-release sorts before its release and a post-release after it.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// What went wrong parsing an identifier; the message says what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    #[error("invalid package name {value:?}: {reason}; a valid name is 2 to 64 characters of lowercase ASCII letters, digits and '-', not starting with '-' (e.g. `my-pkg`)")]
    Name { value: String, reason: String },
    #[error("invalid version {value:?}: {reason}; a valid version is dot-separated non-negative integers with optional `-pre` and `+post` tags (e.g. `1.2.3`, `1.2.3-alpha.1+r.2`)")]
    Version { value: String, reason: String },
    #[error("invalid build {value:?}: {reason}; a valid build is an 8-character base32 digest of A-Z and 2-7 (e.g. `3I42H3S6`), `src`, `embedded`, `embedded[parent/1.0/3I42H3S6]` or `embedded-by-<BASE32>`")]
    Build { value: String, reason: String },
    #[error("invalid package identifier {value:?}: {reason}; expected `name`, `name/version` or `name/version/build` (e.g. `my-pkg/1.2.3/3I42H3S6`)")]
    Ident { value: String, reason: String },
}

/// A validated package name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PkgName(String);

impl PkgName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PkgName {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| IdentError::Name {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let len = s.chars().count();
        if len < 2 {
            return Err(err("it is shorter than 2 characters"));
        }
        if len > 64 {
            return Err(err("it is longer than 64 characters"));
        }
        if s.starts_with('-') {
            return Err(err("it starts with '-'"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(err(&format!("it contains {c:?}")));
        }
        Ok(PkgName(s.to_string()))
    }
}

impl fmt::Display for PkgName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One release tag such as `alpha.1`: a name and a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    pub name: String,
    pub number: u64,
}

/// A validated version. Equality and ordering are SPK's (`1.0 == 1.0.0`),
/// while `Display` keeps the text as written.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    parts: Vec<u64>,
    pre: Vec<Tag>,
    post: Vec<Tag>,
}

impl Version {
    pub fn as_str(&self) -> &str {
        &self.text
    }
    pub fn parts(&self) -> &[u64] {
        &self.parts
    }
    pub fn pre(&self) -> &[Tag] {
        &self.pre
    }
    pub fn post(&self) -> &[Tag] {
        &self.post
    }
}

fn parse_tags(all: &str, which: &str, s: &str) -> Result<Vec<Tag>, IdentError> {
    let err = |reason: String| IdentError::Version {
        value: all.to_string(),
        reason,
    };
    let mut tags = Vec::new();
    for t in s.split(',') {
        let (name, num) = t.split_once('.').ok_or_else(|| {
            err(format!(
                "{which} tag {t:?} is not `name.number` (e.g. `alpha.1`)"
            ))
        })?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(err(format!(
                "{which} tag name {name:?} must be non-empty ASCII letters and digits"
            )));
        }
        let number = num.parse::<u64>().map_err(|_| {
            err(format!(
                "{which} tag {t:?} must end in a non-negative integer"
            ))
        })?;
        if tags.iter().any(|x: &Tag| x.name == name) {
            return Err(err(format!("{which} tag {name:?} appears twice")));
        }
        tags.push(Tag {
            name: name.to_string(),
            number,
        });
    }
    tags.sort();
    Ok(tags)
}

impl FromStr for Version {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| IdentError::Version {
            value: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(err("it is empty".into()));
        }
        let (rest, post) = match s.split_once('+') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let (base, pre) = match rest.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (rest, None),
        };
        let mut parts = Vec::new();
        for p in base.split('.') {
            if p.is_empty() {
                return Err(err("it has an empty numeric part".into()));
            }
            if !p.chars().all(|c| c.is_ascii_digit()) {
                return Err(err(format!("part {p:?} is not a non-negative integer")));
            }
            parts.push(
                p.parse::<u64>()
                    .map_err(|_| err(format!("part {p:?} is too large")))?,
            );
        }
        let pre = match pre {
            Some(t) => parse_tags(s, "pre-release", t)?,
            None => Vec::new(),
        };
        let post = match post {
            Some(t) => parse_tags(s, "post-release", t)?,
            None => Vec::new(),
        };
        Ok(Version {
            text: s.to_string(),
            parts,
            pre,
            post,
        })
    }
}

fn cmp_parts(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    Ordering::Equal
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_parts(&self.parts, &other.parts)
            // A pre-release sorts before the release itself: no tags is greatest.
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
            // A post-release sorts after: no tags is least.
            .then_with(|| self.post.cmp(&other.post))
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A validated build, in every form SPK names one: an 8-character base32
/// digest, `src`, `embedded`, `embedded[PARENT]` (the build of a package
/// embedded in PARENT, e.g. `embedded[pkg/1.0/3I42H3S6]` or
/// `embedded[pkg:run/1.0/3I42H3S6]`), and `embedded-by-<BASE32>` (the name
/// spfs gives an embed stub: base32 of the `embedded[...]` text).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Build {
    Source,
    Embedded,
    /// `embedded[...]`, the whole text.
    EmbeddedIn(String),
    /// `embedded-by-<BASE32>`, the whole text.
    EmbeddedBy(String),
    Digest(String),
}

impl Build {
    pub fn as_str(&self) -> &str {
        match self {
            Build::Source => "src",
            Build::Embedded => "embedded",
            Build::EmbeddedIn(s) | Build::EmbeddedBy(s) | Build::Digest(s) => s,
        }
    }
}

/// The longest build text accepted (an `embedded[...]` names a parent
/// package; nothing SPK writes comes near this).
const MAX_BUILD_LEN: usize = 1024;

impl FromStr for Build {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "src" => return Ok(Build::Source),
            "embedded" => return Ok(Build::Embedded),
            _ => {}
        }
        let err = |reason: String| IdentError::Build {
            value: s.to_string(),
            reason,
        };
        if s.len() > MAX_BUILD_LEN {
            return Err(err(format!("it is longer than {MAX_BUILD_LEN} bytes")));
        }
        if let Some(inner) = s.strip_prefix("embedded[") {
            let Some(parent) = inner.strip_suffix(']') else {
                return Err(err("`embedded[` is not closed by a final `]`".into()));
            };
            embedded_parent_problem(parent).map_or(Ok(()), |r| Err(err(r)))?;
            return Ok(Build::EmbeddedIn(s.to_string()));
        }
        if let Some(code) = s.strip_prefix("embedded-by-") {
            let body = code.trim_end_matches('=');
            if body.is_empty() {
                return Err(err("nothing follows `embedded-by-`".into()));
            }
            if let Some(c) = body
                .chars()
                .find(|c| !(c.is_ascii_uppercase() || ('2'..='7').contains(c)))
            {
                return Err(err(format!(
                    "{c:?} is not a base32 character (after `embedded-by-`)"
                )));
            }
            return Ok(Build::EmbeddedBy(s.to_string()));
        }
        if s.len() != 8 {
            return Err(err(format!(
                "a digest has 8 characters, this has {}",
                s.chars().count()
            )));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_uppercase() || ('2'..='7').contains(c)))
        {
            return Err(err(format!("{c:?} is not a base32 character")));
        }
        Ok(Build::Digest(s.to_string()))
    }
}

/// What is wrong with the parent named in `embedded[PARENT]`, if anything:
/// `name[:components]` then optionally `/version` and `/build`. The parts
/// are checked as far as the Indexer needs (a name; no stray brackets);
/// components (`run`, `{run,lib}`) are not interpreted.
fn embedded_parent_problem(parent: &str) -> Option<String> {
    if parent.is_empty() {
        return Some("`embedded[]` names no parent package".into());
    }
    let mut parts = parent.splitn(3, '/');
    let head = parts.next().unwrap_or_default();
    let name = head.split(':').next().unwrap_or_default();
    if let Err(e) = name.parse::<PkgName>() {
        return Some(format!("the parent inside `embedded[...]`: {e}"));
    }
    if let Some(v) = parts.next() {
        if let Err(e) = v.parse::<Version>() {
            return Some(format!("the parent inside `embedded[...]`: {e}"));
        }
    }
    if let Some(b) = parts.next() {
        if let Err(e) = b.parse::<Build>() {
            return Some(format!("the parent inside `embedded[...]`: {e}"));
        }
    }
    None
}

impl fmt::Display for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `name`, `name/version` or `name/version/build`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgIdent {
    pub name: PkgName,
    pub version: Option<Version>,
    pub build: Option<Build>,
}

impl PkgIdent {
    /// Parses and requires all three parts, as package events do.
    pub fn parse_full(s: &str) -> Result<Self, IdentError> {
        let id: PkgIdent = s.parse()?;
        if id.build.is_none() {
            return Err(IdentError::Ident {
                value: s.to_string(),
                reason: "a build is required here".into(),
            });
        }
        Ok(id)
    }
}

impl FromStr for PkgIdent {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The build may itself hold '/' (`embedded[pkg/1.0/3I42H3S6]`):
        // name and version never do, so the third part is the rest.
        let parts: Vec<&str> = s.splitn(3, '/').collect();
        if parts.len() == 3 && parts[2].contains('/') && !parts[2].starts_with("embedded[") {
            return Err(IdentError::Ident {
                value: s.to_string(),
                reason: format!("it has {} parts separated by '/'", s.split('/').count()),
            });
        }
        let name = parts[0].parse()?;
        let version = parts.get(1).map(|v| v.parse()).transpose()?;
        let build = parts.get(2).map(|b| b.parse()).transpose()?;
        Ok(PkgIdent {
            name,
            version,
            build,
        })
    }
}

impl fmt::Display for PkgIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(v) = &self.version {
            write!(f, "/{v}")?;
        }
        if let Some(b) = &self.build {
            write!(f, "/{b}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn names() {
        assert!("ab".parse::<PkgName>().is_ok());
        assert!("my-pkg2".parse::<PkgName>().is_ok());
        for bad in ["a", "-ab", "MyPkg", "my_pkg", "", &"a".repeat(65)] {
            let e = bad.parse::<PkgName>().unwrap_err().to_string();
            assert!(e.contains("valid name is"), "{e}");
        }
        assert!("a".repeat(64).parse::<PkgName>().is_ok());
    }

    #[test]
    fn version_order() {
        assert!(v("1.10") > v("1.9"));
        assert_eq!(v("1.0"), v("1.0.0"));
        assert!(v("1.0.0-alpha.1") < v("1.0.0"));
        assert!(v("1.0.0-alpha.1") < v("1.0.0-alpha.2"));
        assert!(v("1.0.0-alpha.9") < v("1.0.0-beta.1"));
        assert!(v("1.0.0+r.1") > v("1.0.0"));
        assert!(v("1.0.0+r.1") < v("1.0.1-alpha.1"));
        assert!(v("1.2.3-alpha.1+r.2") > v("1.2.3-alpha.1"));
        let mut vs = [v("2.0"), v("1.10"), v("1.9"), v("1.9+r.1"), v("1.9-a.1")];
        vs.sort();
        let s: Vec<_> = vs.iter().map(|x| x.as_str()).collect();
        assert_eq!(s, ["1.9-a.1", "1.9", "1.9+r.1", "1.10", "2.0"]);
    }

    #[test]
    fn bad_versions() {
        for bad in [
            "",
            "1..2",
            "1.a",
            "-1",
            "1.0-alpha",
            "1.0+r.x",
            "1.0-a.1,a.2",
        ] {
            let e = bad.parse::<Version>().unwrap_err().to_string();
            assert!(e.contains("valid version is"), "{bad}: {e}");
        }
    }

    #[test]
    fn builds() {
        assert_eq!("src".parse::<Build>().unwrap(), Build::Source);
        assert!("3I42H3S6".parse::<Build>().is_ok());
        let e = "ABCDEF".parse::<Build>().unwrap_err().to_string();
        assert!(e.contains("8-character base32"), "{e}");
        assert!("ABCDEFG1".parse::<Build>().is_err());
        assert!("abcdefgh".parse::<Build>().is_err());
    }

    #[test]
    fn every_build_spk_names_is_accepted() {
        for (text, want) in [
            ("embedded", Build::Embedded),
            (
                "embedded[pkg/1.0/3I42H3S6]",
                Build::EmbeddedIn("embedded[pkg/1.0/3I42H3S6]".into()),
            ),
            (
                "embedded[my-tool:run/1.2.0/GMTG3CXY]",
                Build::EmbeddedIn("embedded[my-tool:run/1.2.0/GMTG3CXY]".into()),
            ),
            (
                "embedded[my-tool:{run,lib}/1.2.3+r.1/src]",
                Build::EmbeddedIn("embedded[my-tool:{run,lib}/1.2.3+r.1/src]".into()),
            ),
            ("embedded[pkg]", Build::EmbeddedIn("embedded[pkg]".into())),
            (
                "embedded-by-MVWWEZLEMRSWIW3NPEWXI33PNQ5HE5LOF4YS4MROGAXUORFVKRDTGQ2YLFOQ====",
                Build::EmbeddedBy(
                    "embedded-by-MVWWEZLEMRSWIW3NPEWXI33PNQ5HE5LOF4YS4MROGAXUORFVKRDTGQ2YLFOQ===="
                        .into(),
                ),
            ),
            ("src", Build::Source),
        ] {
            let b: Build = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(b, want);
            assert_eq!(b.to_string(), text, "round trip");
            let full = format!("emb/2.0/{text}");
            let id = PkgIdent::parse_full(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
            assert_eq!(id.name.as_str(), "emb");
            assert_eq!(id.version.as_ref().map(|v| v.as_str()), Some("2.0"));
            assert_eq!(id.to_string(), full);
        }
        for bad in [
            "embedded[",
            "embedded[]",
            "embedded[Pkg/1.0]",
            "embedded[pkg/1.x]",
            "embedded[pkg/1.0/ABC]",
            "embedded-by-",
            "embedded-by-abc",
            "embeddedx",
        ] {
            let e = bad.parse::<Build>().unwrap_err().to_string();
            assert!(e.contains("embedded-by-<BASE32>"), "{bad}: {e}");
        }
        assert!(PkgIdent::parse_full("a-b/1.0/3I42H3S6/x").is_err());
    }

    #[test]
    fn idents() {
        let id: PkgIdent = "my-pkg/1.2.3/3I42H3S6".parse().unwrap();
        assert_eq!(id.to_string(), "my-pkg/1.2.3/3I42H3S6");
        assert!("my-pkg".parse::<PkgIdent>().unwrap().version.is_none());
        assert!(PkgIdent::parse_full("my-pkg/1.2").is_err());
        // The seed's illustrative example is not a valid build digest.
        let e = PkgIdent::parse_full("mypkg/1.2.3/ABCDEF")
            .unwrap_err()
            .to_string();
        assert!(e.contains("3I42H3S6"), "{e}");
        assert!("a/b/c/d".parse::<PkgIdent>().is_err());
    }
}
