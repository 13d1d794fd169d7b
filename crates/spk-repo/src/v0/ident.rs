//! Identity and request texts: `name/1.2/GMTG3CXY`,
//! `[repo/]name[:comp|:{a,b}][/range[/build]]`, component sets, build
//! strings (`src`, a digest, `embedded`, `embedded[parent:run/1.2.0/DIGEST]`).
//!
//! The grammar follows SPK's parsers, including how it decides whether a
//! leading `x/` is a repository name: it is one when what follows reads as a
//! package name and neither as a version nor as `version/build` (so
//! `python/3.7` is a package and a range, `origin/python/3.7` a repository,
//! a package and a range). SPK also treats the names of the repositories in
//! its spfs config as repositories; only `local` is known here, which
//! matters only for texts such as `origin/37` (an unusual package name made
//! of digits).

use super::range::range_prefix;
use super::version::{storage_string, version_prefix, PErr, PResult};
use crate::indexed::{BuildId, Component, EmbeddedParent, FilterRule, Version};

/// A request, option or identity text that SPK would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{text}`: {problem}; expected {expected}")]
pub struct IdentError {
    pub what: &'static str,
    pub text: String,
    pub problem: String,
    pub expected: &'static str,
}

const REQUEST_FORM: &str =
    "`[repo/]name[:component|:{a,b}][/range[/build]]`, e.g. `python:run/~3.7.3` or `gcc/=9.3.1/GMTG3CXY`";
const BUILD_IDENT_FORM: &str = "`name/version/build`, e.g. `my-tool/1.2/GMTG3CXY`, `my-tool/1.2/src` or `my-tool/1.2/embedded`";

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// Where a run of name bytes at the start of `input` ends, at most 64
/// characters in (longer runs stop there, as SPK's parser does).
fn name_run_end(input: &str) -> usize {
    input
        .bytes()
        .take(64)
        .position(|b| !is_name_byte(b))
        .unwrap_or(input.len().min(64))
}

/// A package name: 2 to 64 of `a-z0-9-`, not starting with `-`.
pub(crate) fn package_name(input: &str) -> PResult<'_, &str> {
    if input.starts_with('-') {
        return Err(PErr::soft("a package name may not start with `-`"));
    }
    let end = name_run_end(input);
    if end < 2 {
        return Err(PErr::soft(
            "expected a package name (2 to 64 of lowercase letters, digits, `-`)",
        ));
    }
    Ok((&input[..end], &input[end..]))
}

/// Is `text` a whole valid package name?
pub fn is_package_name(text: &str) -> bool {
    matches!(package_name(text), Ok((_, "")))
}

/// Is `text` a valid option name (`name` or `ns.name`, where `ns` is a
/// package name and `name` is 2 to 64 of `a-z0-9-_`)?
pub fn is_option_name(text: &str) -> bool {
    let base = match text.split_once('.') {
        Some((ns, base)) => {
            if !is_package_name(ns) {
                return false;
            }
            base
        }
        None => text,
    };
    (2..=64).contains(&base.len()) && base.bytes().all(|b| is_name_byte(b) || b == b'_')
}

fn component(input: &str) -> PResult<'_, Component> {
    let end = name_run_end(input);
    if end < 2 {
        return Err(PErr::soft(
            "expected a component name (2 to 64 of lowercase letters, digits, `-`)",
        ));
    }
    Ok((Component::parse(&input[..end]), &input[end..]))
}

/// `comp` or `{a,b}`, as a sorted set.
pub(crate) fn components(input: &str) -> PResult<'_, Vec<Component>> {
    let mut set = Vec::new();
    let rest = if let Some(mut rest) = input.strip_prefix('{') {
        loop {
            let (c, r) = component(rest).map_err(PErr::into_cut)?;
            set.push(c);
            rest = r;
            match rest.strip_prefix(',') {
                Some(r) => rest = r,
                None => break,
            }
        }
        rest.strip_prefix('}')
            .ok_or(PErr::cut("expected `}` to close the component set"))?
    } else {
        let (c, r) = component(input)?;
        set.push(c);
        r
    };
    set.sort();
    set.dedup();
    Ok((set, rest))
}

/// `name[:components]`.
fn name_and_components(input: &str) -> PResult<'_, (&str, Vec<Component>)> {
    let (name, rest) = package_name(input)?;
    match rest.strip_prefix(':') {
        Some(after) => {
            let (comps, rest) = components(after).map_err(PErr::into_cut)?;
            Ok(((name, comps), rest))
        }
        None => Ok(((name, Vec::new()), rest)),
    }
}

fn is_base32_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)
}

/// A build string at the start of `input`.
pub(crate) fn build(input: &str) -> PResult<'_, BuildId> {
    if let Some(rest) = input.strip_prefix("src") {
        return Ok((BuildId::Source, rest));
    }
    if let Some(rest) = input.strip_prefix("embedded") {
        let Some(inner) = rest.strip_prefix('[') else {
            return Ok((BuildId::Embedded(None), rest));
        };
        let ((name, comps), mut rest) = name_and_components(inner).map_err(PErr::into_cut)?;
        let mut parent = EmbeddedParent {
            repository_name: None,
            pkg_name: name.to_string(),
            version_str: None,
            build_str: None,
            components: comps,
        };
        if let Some(after) = rest.strip_prefix('/') {
            if let Ok((v, r)) = version_prefix(after) {
                parent.version_str = Some(storage_string(&v));
                rest = r;
                if let Some(after) = rest.strip_prefix('/') {
                    let (_, r) = build(after).map_err(PErr::into_cut)?;
                    parent.build_str = Some(after[..after.len() - r.len()].to_string());
                    rest = r;
                }
            }
        }
        let rest = rest
            .strip_prefix(']')
            .ok_or(PErr::cut("expected `]` to close `embedded[...]`"))?;
        return Ok((BuildId::Embedded(Some(parent)), rest));
    }
    if input.len() >= 8 && input.as_bytes()[..8].iter().all(|b| is_base32_byte(*b)) {
        return Ok((BuildId::Digest(input[..8].to_string()), &input[8..]));
    }
    Err(PErr::soft(
        "expected a build: `src`, `embedded`, or an 8-character digest of A-Z and 2-7",
    ))
}

/// Parse a whole build string.
pub fn parse_build(text: &str) -> Result<BuildId, IdentError> {
    let err = |problem: &str| {
        IdentError {
        what: "build",
        text: text.to_string(),
        problem: problem.to_string(),
        expected: "`src`, `embedded`, `embedded[parent:run/1.2.0/DIGEST]` or an 8-character digest of A-Z and 2-7 such as `GMTG3CXY`",
    }
    };
    match build(text) {
        Ok((b, "")) => Ok(b),
        Ok(_) => Err(err("unexpected text after the build")),
        Err(e) => Err(err(e.msg)),
    }
}

/// `name/version/build`: a build spec's `pkg:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildIdent {
    pub name: String,
    pub version: Version,
    /// The version text exactly as written.
    pub version_text: String,
    pub build: BuildId,
}

impl BuildIdent {
    /// `name/version/build` with the version verbatim, as SPK prints an
    /// embedded package's identity in the index.
    pub fn to_verbatim_string(&self) -> String {
        format!("{}/{}/{}", self.name, self.version_text, self.build)
    }
}

/// Parse `name/version/build`.
pub fn parse_build_ident(text: &str) -> Result<BuildIdent, IdentError> {
    let err = |problem: &str| IdentError {
        what: "package identity",
        text: text.to_string(),
        problem: problem.to_string(),
        expected: BUILD_IDENT_FORM,
    };
    let (name, rest) = package_name(text).map_err(|e| err(e.msg))?;
    let rest = rest
        .strip_prefix('/')
        .ok_or_else(|| err("expected `/` and a version after the name"))?;
    let (version, after_version) = version_prefix(rest).map_err(|e| err(e.msg))?;
    let version_text = rest[..rest.len() - after_version.len()].to_string();
    let rest = after_version.strip_prefix('/').ok_or_else(|| {
        err("expected `/` and a build after the version (a build spec names its build)")
    })?;
    let (build, rest) = build(rest).map_err(|e| err(e.msg))?;
    if !rest.is_empty() {
        return Err(err(&format!("unexpected text `{rest}`")));
    }
    Ok(BuildIdent {
        name: name.to_string(),
        version,
        version_text,
        build,
    })
}

/// The parts of a request text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeIdent {
    pub repository_name: Option<String>,
    pub name: String,
    /// Sorted set.
    pub components: Vec<Component>,
    /// `None`: no `/range` at all.
    pub version_filter: Option<Vec<FilterRule>>,
    pub build: Option<BuildId>,
}

/// `range[/build]`.
fn range_and_build(input: &str) -> PResult<'_, (Vec<FilterRule>, Option<BuildId>)> {
    let (rules, rest) = range_prefix(input)?;
    match rest.strip_prefix('/') {
        Some(after) => {
            let (b, rest) = build(after).map_err(PErr::into_cut)?;
            Ok(((rules, Some(b)), rest))
        }
        None => Ok(((rules, None), rest)),
    }
}

fn at_end(rest: &str) -> bool {
    rest.is_empty() || rest.starts_with(']') || rest.starts_with(',')
}

/// Would SPK read `input` (what follows `x/`) as a package name, so that
/// `x` is a repository name?
fn looks_like_package_after_repo(input: &str) -> Result<bool, PErr> {
    name_and_components(input)?;
    if matches!(range_prefix(input), Ok((_, rest)) if at_end(rest)) {
        return Ok(false);
    }
    if matches!(range_and_build(input), Ok(((_, Some(_)), rest)) if at_end(rest)) {
        return Ok(false);
    }
    Ok(true)
}

/// An optional leading `repo/`.
fn repo_prefix(input: &str) -> PResult<'_, Option<&str>> {
    if let Some(after) = input.strip_prefix("local/") {
        let n = after.bytes().take_while(|b| is_name_byte(*b)).count();
        if n > 0 && (after.len() == n || after[n..].starts_with(']')) {
            return Ok((Some("local"), after));
        }
    }
    let n = input.bytes().take_while(|b| is_name_byte(*b)).count();
    if n > 0 {
        if let Some(after) = input[n..].strip_prefix('/') {
            match looks_like_package_after_repo(after) {
                Ok(true) => return Ok((Some(&input[..n]), after)),
                Ok(false) => {}
                Err(e) if e.fatal => return Err(e),
                Err(_) => {}
            }
        }
    }
    Ok((None, input))
}

/// Parse a request text `[repo/]name[:comp|:{a,b}][/range[/build]]`.
pub fn parse_range_ident(text: &str) -> Result<RangeIdent, IdentError> {
    let err = |problem: &str| IdentError {
        what: "package request",
        text: text.to_string(),
        problem: problem.to_string(),
        expected: REQUEST_FORM,
    };
    let (repo, rest) = repo_prefix(text).map_err(|e| err(e.msg))?;
    let ((name, components), rest) = name_and_components(rest).map_err(|e| err(e.msg))?;
    let mut ident = RangeIdent {
        repository_name: repo.map(str::to_string),
        name: name.to_string(),
        components,
        version_filter: None,
        build: None,
    };
    let rest = match rest.strip_prefix('/') {
        Some(after) => {
            let ((rules, build), rest) = range_and_build(after).map_err(|e| err(e.msg))?;
            ident.version_filter = Some(rules);
            ident.build = build;
            rest
        }
        None => rest,
    };
    if !rest.is_empty() {
        return Err(err(&format!("unexpected text `{rest}`")));
    }
    Ok(ident)
}

/// An entry of a component's `embedded:` list:
/// `name:comp[/version]` or `name:{a,b}[/version]`. SPK ignores text after
/// the part it can read.
pub fn parse_component_embedded(
    text: &str,
) -> Result<(String, Vec<Component>, Option<Version>), IdentError> {
    let err = |problem: &str| {
        IdentError {
        what: "embedded component entry",
        text: text.to_string(),
        problem: problem.to_string(),
        expected: "`name:component[/version]` or `name:{a,b}[/version]`; use `name:all` for every component",
    }
    };
    let ((name, comps), rest) = name_and_components(text).map_err(|e| err(e.msg))?;
    let version = match rest.strip_prefix('/') {
        Some(after) => Some(version_prefix(after).map_err(|e| err(e.msg))?.0),
        None => None,
    };
    if comps.is_empty() {
        return Err(err(
            "the components embedded in this component must not be empty",
        ));
    }
    Ok((name.to_string(), comps, version))
}

/// `name` or `name/value` (a `var:` entry). The value is everything after
/// the first `/`.
pub fn split_var(text: &str) -> (&str, Option<&str>) {
    match text.split_once('/') {
        Some((n, v)) => (n, Some(v)),
        None => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indexed::{CompatRule, RangeOp};
    use crate::v0::range::parse_range;
    use crate::v0::version::parse_version;

    #[test]
    fn components_sets() {
        let r = parse_range_ident("gcc:{run,build,run}/Binary:9.3").unwrap();
        assert_eq!(r.components, vec![Component::Build, Component::Run]);
        let r = parse_range_ident("py:{lib,all,src}").unwrap();
        assert_eq!(
            r.components,
            vec![
                Component::All,
                Component::Source,
                Component::Named("lib".into())
            ]
        );
        assert!(parse_range_ident("py:{}").is_err());
        assert!(parse_range_ident("py:{run").is_err());
        assert!(parse_range_ident("py:").is_err());
        assert!(parse_range_ident("py:r").is_err());
    }

    #[test]
    fn request_forms() {
        let r = parse_range_ident("python").unwrap();
        assert_eq!(
            (r.repository_name, r.version_filter, r.build),
            (None, None, None)
        );
        let r = parse_range_ident("python:run/~3.7.3").unwrap();
        assert_eq!(r.components, vec![Component::Run]);
        assert_eq!(r.version_filter.unwrap()[0].op, RangeOp::LowestSpecified);
        let r = parse_range_ident("zlib/>=1.2,<2").unwrap();
        assert_eq!(r.version_filter, Some(parse_range(">=1.2,<2").unwrap()));
        let r = parse_range_ident("gcc/=9.3.1/GMTG3CXY").unwrap();
        assert_eq!(r.build, Some(BuildId::Digest("GMTG3CXY".into())));
        let r = parse_range_ident("gcc/=9.3.1/src").unwrap();
        assert_eq!(r.build, Some(BuildId::Source));
        let r = parse_range_ident("qt/5.*").unwrap();
        assert_eq!(r.version_filter.unwrap()[0].parts, Some(vec![5, u32::MAX]));
        let r = parse_range_ident("gcc/Binary:9.3").unwrap();
        assert_eq!(r.version_filter.unwrap()[0].required, CompatRule::Binary);
    }

    #[test]
    fn repository_prefix() {
        let r = parse_range_ident("origin/python/3").unwrap();
        assert_eq!(r.repository_name.as_deref(), Some("origin"));
        assert_eq!(r.name, "python");
        let r = parse_range_ident("python/37").unwrap();
        assert_eq!((r.repository_name, r.name.as_str()), (None, "python"));
        let r = parse_range_ident("python/3.7/src").unwrap();
        assert_eq!(r.repository_name, None);
        let r = parse_range_ident("gcc/10/ABCDEFGH").unwrap();
        assert_eq!(r.repository_name, None);
        let r = parse_range_ident("local/37").unwrap();
        assert_eq!(
            (r.repository_name.as_deref(), r.name.as_str()),
            (Some("local"), "37")
        );
        let r = parse_range_ident("origin/my-pkg").unwrap();
        assert_eq!(
            (r.repository_name.as_deref(), r.name.as_str()),
            (Some("origin"), "my-pkg")
        );
        let r = parse_range_ident("origin/my-pkg:run/1.0/src").unwrap();
        assert_eq!(r.repository_name.as_deref(), Some("origin"));
        assert_eq!(r.build, Some(BuildId::Source));
    }

    #[test]
    fn request_errors() {
        for bad in [
            "",
            "P",
            "a",
            "-ab",
            "python/",
            "python/x",
            "python/1.0/",
            "python/1.0/bad",
            "python/1.0/ABCDEFG",
            "python 3",
            "python/1.0/src/x",
            "Python",
        ] {
            let e = parse_range_ident(bad);
            assert!(e.is_err(), "{bad:?} gave {e:?}");
        }
        let e = parse_range_ident("python/1.x").unwrap_err().to_string();
        assert!(
            e.contains("`python/1.x`") && e.contains("[repo/]name"),
            "{e}"
        );
    }

    #[test]
    fn builds() {
        assert_eq!(parse_build("src").unwrap(), BuildId::Source);
        assert_eq!(parse_build("embedded").unwrap(), BuildId::Embedded(None));
        assert_eq!(
            parse_build("GMTG3CXY").unwrap(),
            BuildId::Digest("GMTG3CXY".into())
        );
        let BuildId::Embedded(Some(p)) = parse_build("embedded[my-tool:run/1.2/GMTG3CXY]").unwrap()
        else {
            panic!("not a stub");
        };
        assert_eq!(p.pkg_name, "my-tool");
        assert_eq!(p.version_str.as_deref(), Some("1.2.0"));
        assert_eq!(p.build_str.as_deref(), Some("GMTG3CXY"));
        assert_eq!(p.components, vec![Component::Run]);
        assert_eq!(p.repository_name, None);
        let BuildId::Embedded(Some(p)) =
            parse_build("embedded[my-tool:{run,lib}/1.2.3.0+r.1/src]").unwrap()
        else {
            panic!("not a stub");
        };
        assert_eq!(p.version_str.as_deref(), Some("1.2.3+r.1"));
        assert_eq!(
            p.components,
            vec![Component::Run, Component::Named("lib".into())]
        );
        for bad in [
            "",
            "gmtg3cxy",
            "GMTG3CX",
            "GMTG3CXY1",
            "GMTG3CX1",
            "embedded[",
            "embedded[x]",
            "SRC",
        ] {
            assert!(parse_build(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn build_idents() {
        let b = parse_build_ident("my-tool/1.2/GMTG3CXY").unwrap();
        assert_eq!(b.name, "my-tool");
        assert_eq!(b.version, parse_version("1.2").unwrap());
        assert_eq!(b.version_text, "1.2");
        assert_eq!(b.to_verbatim_string(), "my-tool/1.2/GMTG3CXY");
        let b = parse_build_ident("my-embedded/2.0/embedded[my-tool:run/1.2.0/GMTG3CXY]").unwrap();
        assert_eq!(
            b.to_verbatim_string(),
            "my-embedded/2.0/embedded[my-tool:run/1.2.0/GMTG3CXY]"
        );
        for bad in [
            "my-tool",
            "my-tool/1.2",
            "my-tool/1.2/",
            "my-tool//src",
            "my-tool/1.2/src/",
        ] {
            assert!(parse_build_ident(bad).is_err(), "{bad:?}");
        }
        let e = parse_build_ident("my-tool/1.2").unwrap_err().to_string();
        assert!(e.contains("name/version/build"), "{e}");
    }

    #[test]
    fn component_embedded_entries() {
        let (n, c, v) = parse_component_embedded("my-embedded:run").unwrap();
        assert_eq!(
            (n.as_str(), c, v),
            ("my-embedded", vec![Component::Run], None)
        );
        let (_, c, v) = parse_component_embedded("emb:{all,build}/2.0").unwrap();
        assert_eq!(c, vec![Component::All, Component::Build]);
        assert_eq!(v, Some(parse_version("2.0").unwrap()));
        assert!(parse_component_embedded("emb").is_err());
        assert!(parse_component_embedded("emb/2.0").is_err());
    }

    #[test]
    fn names() {
        assert!(is_package_name("my-tool"));
        assert!(!is_package_name("a"));
        assert!(!is_package_name("-ab"));
        assert!(!is_package_name("My"));
        assert!(is_option_name("python.abi"));
        assert!(is_option_name("my_var"));
        assert!(!is_option_name("Py.abi"));
        assert!(!is_option_name("x"));
        assert_eq!(Component::parse("src"), Component::Source);
        assert_eq!(Component::parse("run"), Component::Run);
        assert_eq!(Component::parse("lib"), Component::Named("lib".into()));
    }
}
