//! One published v0 build spec (YAML) → one [`BuildIndex`].
//!
//! The YAML is read once into a plain tree (module `yaml`) and
//! walked by hand: that keeps the key path of every value for error
//! messages, lets option and request keys match case-insensitively as SPK's
//! do, applies SPK's rule for repeated keys section by section, and ignores
//! every key the index does not need (SPK ignores unknown keys too; keys it
//! knows but the index does not store, such as `meta`, `sources` or
//! `install.environment`, are not checked here at all).
//!
//! The build's identity comes from the spec's own `pkg:`, as in SPK: SPK
//! also reads the published components at that identity, so a spec whose
//! `pkg:` name or build differs from its tag folder is left out of SPK's
//! index, while another spelling of the same version (`1.0.0.0` in folder
//! `1.0.0`) is indexed with that spelling as `published_version`.
//!
//! Checked against SPK 0.44.0 (see `tests.rs`), including these quirks:
//! rules equal under SPK's version equality collapse to the last written;
//! `static: 3.10` is stored as `3.1` (SPK stringifies the YAML number);
//! compat text after the last rule is ignored (`x.y` → `x`).
//!
//! Known, deliberate differences from SPK's loader (none affects specs
//! that SPK writes):
//! - SPK refuses `key: ~` for a list or section but accepts `key:` with
//!   nothing; our YAML reader sees both as null and accepts both.
//! - SPK reads YAML with serde_yaml 0.8; we use 0.9. They agree on every
//!   scalar SPK writes and on the odd ones we tried (`True`, `0x10`, `1e3`,
//!   `010`, `.inf`, `yes`), but may differ on other hand-written oddities.
//! - Malformed values under keys the index does not use (`meta`,
//!   `sources`, `install.environment`, a test's `stage` or `script`) make
//!   SPK skip the spec; we index it.
//! - A request's leading `name/` is a repository name if SPK's spfs config
//!   names such a repository; only `local` is known here (see
//!   [`super::ident`]), which matters only for package names made of digits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use super::compat::{canonical_compat, DEFAULT_COMPAT};
use super::ident::{
    is_option_name, parse_build_ident, parse_component_embedded, parse_range_ident, split_var,
    BuildIdent,
};
use super::range::range_text;
use super::version::version_eq;
use super::yaml::{Map, Node};
use crate::indexed::{
    BuildId, BuildIndex, Component, ComponentEmbedded, ComponentSpec, EmbeddedSpec,
    InclusionPolicy, Inheritance, Opt, OptionValue, PinPolicy, PkgOpt, PkgRequest,
    PreReleasePolicy, Requirement, VarOpt, VarRequest, Version,
};

/// Why a build spec cannot be indexed, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("the build spec is not valid YAML: {0}")]
    Yaml(String),
    #[error("the build spec is not a YAML mapping; expected a mapping with keys such as `pkg:`, `build:`, `install:`")]
    NotAMapping,
    #[error("`{path}` is missing; expected {expected}")]
    Missing { path: String, expected: String },
    #[error("`{path}`: {problem}")]
    Invalid { path: String, problem: String },
}

/// What one build spec contributes to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedBuild {
    /// The package name from `pkg:`.
    pub name: String,
    /// The version exactly as `pkg:` writes it (`1.2`).
    pub version_text: String,
    /// Everything the index stores for this build except
    /// `published_components`, which the repository's component tags give.
    pub build: BuildIndex,
    /// `(name, value)` of every global var this build contributes, in spec
    /// order, **before** dropping names that are package names in the
    /// repository: that filter needs the whole repository, so the caller
    /// applies it (SPK drops a var whose name is any package's name).
    pub global_vars: Vec<(String, String)>,
}

impl ParsedBuild {
    /// The version as the repository lists it (storage form, `1.2.0`).
    pub fn listed_version(&self) -> Version {
        super::version::storage_version(&self.build.published_version)
    }
}

// ---- locations ----------------------------------------------------------

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

/// A key path such as `install.requirements[2].pkg`, built without
/// allocating and rendered only for an error.
#[derive(Clone, Copy)]
struct Loc<'a> {
    parent: Option<&'a Loc<'a>>,
    seg: Seg<'a>,
}

impl<'a> Loc<'a> {
    const ROOT: Loc<'static> = Loc {
        parent: None,
        seg: Seg::Root,
    };
    fn key<'b>(&'b self, key: &'b str) -> Loc<'b> {
        Loc {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }
    fn index<'b>(&'b self, i: usize) -> Loc<'b> {
        Loc {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }
    fn invalid(&self, problem: impl fmt::Display) -> SpecError {
        SpecError::Invalid {
            path: self.to_string(),
            problem: problem.to_string(),
        }
    }
    fn missing(&self, expected: &str) -> SpecError {
        SpecError::Missing {
            path: self.to_string(),
            expected: expected.to_string(),
        }
    }
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.parent {
            p.fmt(f)?;
        }
        match self.seg {
            Seg::Root => Ok(()),
            Seg::Key(k) => match self.parent {
                Some(p) if !matches!(p.seg, Seg::Root) => write!(f, ".{k}"),
                _ => f.write_str(k),
            },
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

// ---- scalars ------------------------------------------------------------

fn number_text(n: &Node) -> Option<String> {
    match n {
        Node::Int(i) => Some(i.to_string()),
        Node::UInt(u) => Some(u.to_string()),
        Node::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

/// Any scalar as text, as SPK's "stringified" values (`static:`,
/// `default:`): `true` → "true", `3.10` → "3.1", nothing → "".
fn stringified(v: &Node, at: &Loc) -> Result<String, SpecError> {
    match v {
        Node::Null => Ok(String::new()),
        Node::Bool(b) => Ok(b.to_string()),
        Node::Str(s) => Ok(s.clone()),
        Node::Int(_) | Node::UInt(_) | Node::Float(_) => Ok(number_text(v).unwrap_or_default()),
        other => Err(at.invalid(format!("expected a single value, found {other}"))),
    }
}

/// A value SPK reads as a string: it must be a YAML string (SPK's YAML
/// reader refuses a number or a boolean where it expects a string).
fn text<'v>(v: &'v Node, at: &Loc) -> Result<&'v str, SpecError> {
    match v {
        Node::Str(s) => Ok(s.as_str()),
        other => Err(at.invalid(format!(
            "expected a string, found {other} (quote it if it is meant as text)"
        ))),
    }
}

fn boolean(v: &Node, at: &Loc) -> Result<bool, SpecError> {
    match v {
        Node::Bool(b) => Ok(*b),
        other => Err(at.invalid(format!("expected `true` or `false`, found {other}"))),
    }
}

fn mapping<'v>(v: &'v Node, at: &Loc, what: &str) -> Result<&'v Map, SpecError> {
    match v {
        Node::Map(m) => Ok(m),
        other => Err(at.invalid(format!("expected {what} (a mapping), found {other}"))),
    }
}

/// A list, or nothing (an absent or empty key is an empty list).
fn sequence<'v>(v: Option<&'v Node>, at: &Loc) -> Result<&'v [Node], SpecError> {
    match v {
        None | Some(Node::Null) => Ok(&[]),
        Some(Node::Seq(s)) => Ok(s),
        Some(other) => Err(at.invalid(format!("expected a list, found {other}"))),
    }
}

/// A key of a section SPK reads with a derived struct, where a repeated key
/// is an error.
fn field<'m>(map: &'m Map, key: &str, at: &Loc) -> Result<Option<&'m Node>, SpecError> {
    map.get_unique(key).map_err(|()| {
        at.key(key)
            .invalid("the key is given more than once; give it once")
    })
}

/// A mapping key as text, lowercased (option and request keys are
/// case-insensitive in SPK).
fn lower_key(k: &Node) -> Option<String> {
    match k {
        Node::Str(s) => Some(s.to_ascii_lowercase()),
        Node::Bool(b) => Some(b.to_string()),
        n => number_text(n),
    }
}

fn enum_value<T: Copy>(
    v: &Node,
    at: &Loc,
    choices: &[(&str, T)],
    expected: &str,
) -> Result<T, SpecError> {
    let s = text(v, at)?;
    choices
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, t)| *t)
        .ok_or_else(|| at.invalid(format!("unknown value `{s}`; expected {expected}")))
}

fn prerelease(v: &Node, at: &Loc) -> Result<PreReleasePolicy, SpecError> {
    enum_value(
        v,
        at,
        &[
            ("ExcludeAll", PreReleasePolicy::ExcludeAll),
            ("IncludeAll", PreReleasePolicy::IncludeAll),
        ],
        "`ExcludeAll` or `IncludeAll`",
    )
}

// ---- options -------------------------------------------------------------

/// One parsed build option, with the value SPK reads back from it.
struct ParsedOpt {
    opt: Opt,
}

impl ParsedOpt {
    fn full_name(&self) -> &str {
        match &self.opt {
            Opt::Pkg(p) => &p.name,
            Opt::Var(v) => &v.name,
        }
    }
    /// The option's effective value (what SPK's `get_value` gives).
    fn value(&self) -> &str {
        match &self.opt {
            Opt::Pkg(p) => &p.value,
            Opt::Var(v) => &v.value,
        }
    }
}

fn parse_option(v: &Node, at: &Loc) -> Result<ParsedOpt, SpecError> {
    let map = mapping(v, at, "an option")?;
    let mut pkg: Option<(String, Vec<Component>)> = None;
    let mut var: Option<String> = None;
    let mut prerelease_policy = PreReleasePolicy::None;
    let mut inheritance = Inheritance::Weak;
    let mut compat = None;
    let mut required = false;
    let mut default: Option<String> = None;
    let mut value: Option<String> = None;
    const BOTH: &str =
        "an option cannot give both `default:` and a default in the form `<name>/<default>`";
    for (k, val) in map.iter() {
        let Some(key) = lower_key(k) else { continue };
        let at = at.key(&key);
        match key.as_str() {
            "pkg" => {
                let t = text(val, &at)?;
                let r = parse_range_ident(t).map_err(|e| at.invalid(e))?;
                if r.repository_name.is_some() {
                    return Err(at.invalid(format!(
                        "`{t}`: a repository name is not supported in a pkg option; expected `name[:components][/range]`"
                    )));
                }
                if r.build.is_some() {
                    return Err(at.invalid(format!(
                        "`{t}`: a build is not supported in a pkg option; expected `name[:components][/range]`"
                    )));
                }
                if let Some(rules) = r.version_filter.as_deref().filter(|r| !r.is_empty()) {
                    if default.is_some() {
                        return Err(at.invalid(BOTH));
                    }
                    default = Some(range_text(rules));
                }
                pkg = Some((r.name, r.components));
            }
            "prereleasepolicy" => prerelease_policy = prerelease(val, &at)?,
            "var" => {
                let t = text(val, &at)?;
                let (name, val) = split_var(t);
                if !is_option_name(name) {
                    return Err(at.invalid(format!(
                        "invalid option name `{name}`; expected `name` or `package.name` of lowercase letters, digits, `-`, `_` (2 to 64 characters)"
                    )));
                }
                if val.is_some() && default.is_some() {
                    return Err(at.invalid(BOTH));
                }
                // As in SPK, `var: name` after `default:` clears the default.
                default = val.map(str::to_string);
                var = Some(name.to_string());
            }
            "inheritance" => {
                inheritance = enum_value(
                    val,
                    &at,
                    &[
                        ("Weak", Inheritance::Weak),
                        ("StrongForBuildOnly", Inheritance::StrongForBuildOnly),
                        ("Strong", Inheritance::Strong),
                    ],
                    "`Weak`, `StrongForBuildOnly` or `Strong`",
                )?
            }
            "default" => {
                if default.is_some() {
                    return Err(at.invalid(BOTH));
                }
                default = Some(stringified(val, &at)?);
            }
            "static" => value = Some(stringified(val, &at)?),
            "compat" => {
                let t = text(val, &at)?;
                compat = Some(canonical_compat(t).map_err(|e| at.invalid(e))?);
            }
            "required" => required = boolean(val, &at)?,
            _ => {}
        }
    }
    let opt = match (pkg, var) {
        (Some((name, components)), None) => Opt::Pkg(PkgOpt {
            name,
            components,
            prerelease_policy,
            required_compat: Default::default(),
            value: value.or(default).unwrap_or_default(),
        }),
        (None, Some(name)) => {
            let value = match (value, default) {
                (Some(v), _) if !v.is_empty() => v,
                (_, Some(d)) => d,
                _ => String::new(),
            };
            Opt::Var(VarOpt {
                name,
                inheritance: if required {
                    Inheritance::Strong
                } else {
                    inheritance
                },
                compat,
                required,
                value,
            })
        }
        (Some(_), Some(_)) => {
            return Err(at.invalid("an option may only contain one of the `pkg` or `var` keys"))
        }
        (None, None) => return Err(at.missing("`pkg:` or `var:` (every option is one of the two)")),
    };
    Ok(ParsedOpt { opt })
}

fn parse_options(v: Option<&Node>, at: &Loc) -> Result<Vec<ParsedOpt>, SpecError> {
    sequence(v, at)?
        .iter()
        .enumerate()
        .map(|(i, o)| parse_option(o, &at.index(i)))
        .collect()
}

// ---- requests ------------------------------------------------------------

/// One request; `None` for a var request without a value, which SPK drops.
fn parse_request(v: &Node, at: &Loc) -> Result<Option<Requirement>, SpecError> {
    let map = mapping(v, at, "a requirement")?;
    let mut pkg = None;
    let mut var: Option<String> = None;
    let mut value: Option<String> = None;
    let mut prerelease_policy = PreReleasePolicy::None;
    let mut inclusion_policy = InclusionPolicy::Always;
    let mut pin: Option<String> = None;
    let mut pin_policy = PinPolicy::Required;
    for (k, val) in map.iter() {
        let Some(key) = lower_key(k) else { continue };
        let at = at.key(&key);
        match key.as_str() {
            "pkg" => {
                let t = text(val, &at)?;
                pkg = Some(parse_range_ident(t).map_err(|e| at.invalid(e))?);
            }
            "prereleasepolicy" => prerelease_policy = prerelease(val, &at)?,
            "include" => {
                inclusion_policy = enum_value(
                    val,
                    &at,
                    &[
                        ("Always", InclusionPolicy::Always),
                        ("IfAlreadyPresent", InclusionPolicy::IfAlreadyPresent),
                    ],
                    "`Always` or `IfAlreadyPresent`",
                )?
            }
            "ifpresentinbuildenv" => {
                let present = match val {
                    Node::Bool(b) => *b,
                    Node::Str(s) if s.eq_ignore_ascii_case("true") => true,
                    Node::Str(s) if s.eq_ignore_ascii_case("false") => false,
                    other => {
                        return Err(at.invalid(format!(
                            "expected `true` or `false`, found {}",
                            match other {
                                Node::Str(s) => format!("`{s}`"),
                                o => o.to_string(),
                            }
                        )))
                    }
                };
                pin_policy = if present {
                    PinPolicy::IfPresentInBuildEnv
                } else {
                    PinPolicy::Required
                };
            }
            "frombuildenv" => {
                pin = match val {
                    Node::Bool(true) => Some("Binary".to_string()),
                    Node::Bool(false) => None,
                    Node::Str(s) => Some(s.clone()),
                    other => {
                        return Err(at.invalid(format!(
                        "expected `true`, `false` or a pin template such as `x.x`, found {other}"
                    )))
                    }
                }
            }
            "var" => {
                let t = text(val, &at)?;
                let (name, val) = split_var(t);
                if !is_option_name(name) {
                    return Err(at.invalid(format!(
                        "invalid var name `{name}`; expected `name` or `package.name` of lowercase letters, digits, `-`, `_` (2 to 64 characters)"
                    )));
                }
                var = Some(name.to_string());
                value = val.map(str::to_string);
            }
            "value" => value = Some(text(val, &at)?.to_string()),
            _ => {}
        }
    }
    match (pkg, var) {
        (Some(r), None) => {
            if pin.is_some() && r.version_filter.is_some() {
                return Err(at.invalid(format!(
                    "request for `{}` cannot give a version range when `fromBuildEnv` is set; remove one of the two",
                    r.name
                )));
            }
            Ok(Some(Requirement::Pkg(PkgRequest {
                name: r.name,
                repo_name: r.repository_name,
                components: r.components,
                version_filter: r.version_filter,
                build: r.build,
                prerelease_policy,
                inclusion_policy,
                pin,
                pin_policy,
                required_compat: Default::default(),
                options: Vec::new(),
            })))
        }
        (None, Some(name)) => Ok(value
            .filter(|v| !v.is_empty())
            .map(|value| Requirement::Var(VarRequest { name, value }))),
        (Some(_), Some(_)) => {
            Err(at.invalid("a requirement may only contain one of the `pkg` or `var` keys"))
        }
        (None, None) => Err(at.missing("`pkg:` or `var:` (every requirement is one of the two)")),
    }
}

/// A requirements list: empty var requests dropped (SPK tolerates them
/// there, as older SPK versions wrote them), names unique.
fn parse_requirements(v: Option<&Node>, at: &Loc) -> Result<Vec<Requirement>, SpecError> {
    let items = sequence(v, at)?;
    let mut out: Vec<Requirement> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = at.index(i);
        if item.has_repeated_key() {
            return Err(at.invalid("a key is given more than once in this requirement"));
        }
        if let Some(req) = parse_request(item, &at)? {
            if out.iter().any(|r| r.name() == req.name()) {
                return Err(at.invalid(format!(
                    "found multiple requirements for `{}`; a list may name each package or var once",
                    req.name()
                )));
            }
            out.push(req);
        }
    }
    Ok(out)
}

/// Attach option values to package requests (§5.6): every namespaced
/// `ns.name` option value and var request goes to the request named `ns`.
fn attach_options<'o>(
    options: impl Iterator<Item = (&'o str, &'o str)>,
    reqs: &mut [Requirement],
    at: &Loc,
) -> Result<(), SpecError> {
    let mut index: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    let mut add = |name: &str, value: &str| -> Result<(), SpecError> {
        let Some((ns, _)) = name.split_once('.') else {
            return Ok(());
        };
        let slot = index.entry(ns.to_string()).or_default();
        match slot.get(name) {
            Some(existing) if existing != value => Err(at.invalid(format!(
                "conflicting values for `{name}`: `{existing}` and `{value}` (SPK cannot load such a spec); give one value"
            ))),
            Some(_) => Ok(()),
            None => {
                slot.insert(name.to_string(), value.to_string());
                Ok(())
            }
        }
    };
    for (name, value) in options {
        add(name, value)?;
    }
    for r in reqs.iter() {
        if let Requirement::Var(v) = r {
            add(&v.name, &v.value)?;
        }
    }
    if index.is_empty() {
        return Ok(());
    }
    for r in reqs.iter_mut() {
        if let Requirement::Pkg(p) = r {
            if let Some(opts) = index.get(p.name.as_str()) {
                p.options = opts
                    .iter()
                    .map(|(name, value)| OptionValue {
                        name: name.clone(),
                        value: value.clone(),
                        is_complete: true,
                    })
                    .collect();
            }
        }
    }
    Ok(())
}

fn var_option_values(opts: &[ParsedOpt]) -> impl Iterator<Item = (&str, &str)> {
    opts.iter().filter_map(|o| match &o.opt {
        Opt::Var(v) if !v.value.is_empty() => Some((v.name.as_str(), v.value.as_str())),
        _ => None,
    })
}

// ---- components -----------------------------------------------------------

struct ParsedComponents {
    specs: Vec<ComponentSpec>,
}

fn component_name(v: &Node, at: &Loc) -> Result<Component, SpecError> {
    let t = text(v, at)?;
    let ok = (2..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(at.invalid(format!(
            "invalid component name `{t}`; expected 2 to 64 of lowercase letters, digits, `-` (e.g. `run`, `build`, `lib`)"
        )));
    }
    Ok(Component::parse(t))
}

fn parse_component(v: &Node, at: &Loc) -> Result<(ComponentSpec, bool), SpecError> {
    let map = mapping(v, at, "a component")?;
    let name_at = at.key("name");
    let name = component_name(
        field(map, "name", at)?
            .ok_or_else(|| name_at.missing("the component's name, e.g. `name: run`"))?,
        &name_at,
    )?;
    let mut spec = ComponentSpec::plain(name);
    let uses_at = at.key("uses");
    for (i, u) in sequence(field(map, "uses", at)?, &uses_at)?
        .iter()
        .enumerate()
    {
        spec.uses.push(component_name(u, &uses_at.index(i))?);
    }
    let req_at = at.key("requirements");
    spec.requirements = parse_requirements(field(map, "requirements", at)?, &req_at)?;
    attach_options(std::iter::empty(), &mut spec.requirements, &req_at)?;
    let emb_at = at.key("embedded");
    for (i, e) in sequence(field(map, "embedded", at)?, &emb_at)?
        .iter()
        .enumerate()
    {
        let at = emb_at.index(i);
        let t = text(e, &at)?;
        let (name, components, version) = parse_component_embedded(t).map_err(|e| at.invalid(e))?;
        spec.embedded.push(ComponentEmbedded {
            name,
            version,
            components,
        });
    }
    let remaining = match field(map, "file_match_mode", at)? {
        None => false,
        Some(v) => {
            let at = at.key("file_match_mode");
            enum_value(
                v,
                &at,
                &[("All", false), ("Remaining", true)],
                "`All` or `Remaining`",
            )?
        }
    };
    Ok((spec, remaining))
}

fn parse_components(v: Option<&Node>, at: &Loc) -> Result<ParsedComponents, SpecError> {
    let items = sequence(v, at)?;
    let mut specs: Vec<ComponentSpec> = Vec::with_capacity(items.len() + 2);
    let mut keep_order = false;
    for (i, item) in items.iter().enumerate() {
        let at = at.index(i);
        let (spec, remaining) = parse_component(item, &at)?;
        if specs.iter().any(|s| s.name == spec.name) {
            return Err(at.invalid(format!(
                "found multiple components with the name `{}`",
                spec.name
            )));
        }
        keep_order |= remaining;
        specs.push(spec);
    }
    for builtin in [Component::Build, Component::Run] {
        if !specs.iter().any(|s| s.name == builtin) {
            specs.push(ComponentSpec::plain(builtin));
        }
    }
    if specs.iter().any(|s| s.name == Component::All) {
        return Err(at.invalid("the `all` component is reserved and cannot be defined"));
    }
    for s in &specs {
        for u in &s.uses {
            if !specs.iter().any(|d| d.name == *u) {
                return Err(at.invalid(format!(
                    "component `{}` uses `{u}`, which is not defined; define it or remove it from `uses`",
                    s.name
                )));
            }
        }
    }
    // With `file_match_mode: Remaining` the order has meaning; SPK keeps it.
    if !keep_order {
        specs.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(ParsedComponents { specs })
}

// ---- embedded packages ---------------------------------------------------------

struct ParsedEmbedded {
    spec: EmbeddedSpec,
    name: String,
    version: Version,
}

fn parse_embedded(v: &Node, at: &Loc) -> Result<ParsedEmbedded, SpecError> {
    let map = mapping(v, at, "an embedded package")?;
    let pkg_at = at.key("pkg");
    let pkg = field(map, "pkg", at)?
        .ok_or_else(|| pkg_at.missing("the embedded package's `name/version/embedded`"))?;
    let ident = parse_build_ident(text(pkg, &pkg_at)?).map_err(|e| pkg_at.invalid(e))?;
    let compat = parse_compat(field(map, "compat", at)?, &at.key("compat"))?;
    let deprecated = match field(map, "deprecated", at)? {
        Some(v) => boolean(v, &at.key("deprecated"))?,
        None => false,
    };
    let build_at = at.key("build");
    let options = match field(map, "build", at)? {
        None | Some(Node::Null) => Vec::new(),
        Some(b) => {
            let b = mapping(b, &build_at, "the build section")?;
            let opts_at = build_at.key("options");
            let opts = field(b, "options", &build_at)?.ok_or_else(|| {
                opts_at.missing(
                    "a list of options (an embedded package's `build:` must have `options:`)",
                )
            })?;
            parse_options(Some(opts), &opts_at)?
        }
    };
    let install_at = at.key("install");
    let (mut requirements, components) = match field(map, "install", at)? {
        None | Some(Node::Null) => (Vec::new(), parse_components(None, &install_at)?),
        Some(i) => {
            let i = mapping(i, &install_at, "the install section")?;
            let req_at = install_at.key("requirements");
            (
                parse_requirements(field(i, "requirements", &install_at)?, &req_at)?,
                parse_components(
                    field(i, "components", &install_at)?,
                    &install_at.key("components"),
                )?,
            )
        }
    };
    attach_options(
        var_option_values(&options),
        &mut requirements,
        &install_at.key("requirements"),
    )?;
    Ok(ParsedEmbedded {
        spec: EmbeddedSpec {
            ident: ident.to_verbatim_string(),
            compat,
            deprecated,
            build_options: options.into_iter().map(|o| o.opt).collect(),
            component_specs: components.specs,
            requirements,
        },
        name: ident.name,
        version: ident.version,
    })
}

/// Expand `:all` in component `embedded:` lists and fabricate the default
/// lists SPK adds when a package embeds others (§5.7).
fn fill_component_embedded(components: &mut [ComponentSpec], embedded: &[ParsedEmbedded]) {
    if embedded.is_empty() {
        return;
    }
    let names_of = |e: &ParsedEmbedded| -> Vec<Component> {
        let mut n: Vec<Component> = e
            .spec
            .component_specs
            .iter()
            .map(|c| c.name.clone())
            .collect();
        n.sort();
        n
    };
    for comp in components.iter_mut() {
        for entry in comp.embedded.iter_mut() {
            if !entry.components.contains(&Component::All) {
                continue;
            }
            let mut matching = embedded.iter().filter(|e| {
                e.name == entry.name
                    && entry
                        .version
                        .as_ref()
                        .is_none_or(|v| version_eq(&e.version, v))
            });
            let Some(target) = matching.next() else {
                continue;
            };
            let target_names = names_of(target);
            if matching.any(|other| names_of(other) != target_names) {
                continue;
            }
            if target_names.is_empty() {
                continue;
            }
            let mut set: Vec<Component> = entry
                .components
                .iter()
                .filter(|c| **c != Component::All)
                .cloned()
                .chain(target_names.into_iter().filter(|c| *c != Component::All))
                .collect();
            set.sort();
            set.dedup();
            entry.components = set;
        }
    }
    let mut seen = HashSet::new();
    if !embedded.iter().all(|e| seen.insert(e.name.as_str())) {
        return;
    }
    for comp in components.iter_mut() {
        if !comp.embedded.is_empty() {
            continue;
        }
        comp.embedded = embedded
            .iter()
            .filter(|e| e.spec.component_specs.iter().any(|c| c.name == comp.name))
            .map(|e| ComponentEmbedded {
                name: e.name.clone(),
                version: None,
                components: vec![comp.name.clone()],
            })
            .collect();
    }
}

// ---- the whole spec ------------------------------------------------------------

fn parse_compat(v: Option<&Node>, at: &Loc) -> Result<Option<String>, SpecError> {
    let Some(v) = v else { return Ok(None) };
    let t = text(v, at)?;
    let canon = canonical_compat(t).map_err(|e| at.invalid(e))?;
    Ok((canon != DEFAULT_COMPAT).then_some(canon))
}

/// Turn one published v0 build spec into what the index stores for it.
///
/// Every rule of the reference's §5 applies; `published_components` is left
/// empty for the caller to fill from the repository, and the global vars
/// come back unfiltered (see [`ParsedBuild::global_vars`]).
pub fn parse_build_spec(yaml: &[u8]) -> Result<ParsedBuild, SpecError> {
    let doc: Node = serde_yaml::from_slice(yaml).map_err(|e| SpecError::Yaml(e.to_string()))?;
    let root = match &doc {
        Node::Map(m) => m,
        _ => return Err(SpecError::NotAMapping),
    };
    let top = Loc::ROOT;

    if let Some(api) = root.get("api") {
        let at = top.key("api");
        let api = text(api, &at)?;
        if api != "v0/package" && api != "v0/platform" {
            return Err(at.invalid(format!(
                "`{api}` is not a package build spec this index reads; expected `v0/package` (or `v0/platform`)"
            )));
        }
    }

    let pkg_at = top.key("pkg");
    let pkg = root.get("pkg").ok_or_else(|| {
        pkg_at.missing("`pkg: name/version/build`, e.g. `pkg: my-tool/1.2/GMTG3CXY`")
    })?;
    let BuildIdent {
        name,
        version,
        version_text,
        build: build_id,
    } = parse_build_ident(text(pkg, &pkg_at)?).map_err(|e| pkg_at.invalid(e))?;

    let compat = parse_compat(root.get("compat"), &top.key("compat"))?;
    let deprecated = match root.get("deprecated") {
        Some(v) => boolean(v, &top.key("deprecated"))?,
        None => false,
    };

    let build_at = top.key("build");
    let options = match root.get("build") {
        None | Some(Node::Null) => Vec::new(),
        Some(b) => {
            let b = mapping(b, &build_at, "the build section")?;
            let opts_at = build_at.key("options");
            let opts = parse_options(b.get("options"), &opts_at)?;
            for (i, o) in opts.iter().enumerate() {
                if opts[..i].iter().any(|p| p.full_name() == o.full_name()) {
                    return Err(opts_at.index(i).invalid(format!(
                        "build option `{}` is given more than once; give each option once",
                        o.full_name()
                    )));
                }
            }
            opts
        }
    };

    let install_at = top.key("install");
    let empty = Map::default();
    let install = match root.get("install") {
        None | Some(Node::Null) => &empty,
        Some(i) => mapping(i, &install_at, "the install section")?,
    };
    let req_at = install_at.key("requirements");
    let mut requirements =
        parse_requirements(field(install, "requirements", &install_at)?, &req_at)?;
    attach_options(var_option_values(&options), &mut requirements, &req_at)?;

    let emb_at = install_at.key("embedded");
    let embedded = sequence(field(install, "embedded", &install_at)?, &emb_at)?
        .iter()
        .enumerate()
        .map(|(i, e)| parse_embedded(e, &emb_at.index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut components = parse_components(
        field(install, "components", &install_at)?,
        &install_at.key("components"),
    )?
    .specs;
    fill_component_embedded(&mut components, &embedded);

    let tests_at = top.key("tests");
    let mut test_vars = Vec::new();
    for (i, t) in sequence(root.get("tests"), &tests_at)?.iter().enumerate() {
        let at = tests_at.index(i);
        let t = mapping(t, &at, "a test")?;
        // A test's requirements are a plain list in SPK: a var request
        // without a value is an error there, not dropped.
        let req_at = at.key("requirements");
        for (j, r) in sequence(field(t, "requirements", &at)?, &req_at)?
            .iter()
            .enumerate()
        {
            let at = req_at.index(j);
            match parse_request(r, &at)? {
                Some(Requirement::Var(v)) => test_vars.push(v),
                Some(Requirement::Pkg(_)) => {}
                None => {
                    return Err(at.invalid(
                        "a var request in a test needs a non-empty value, e.g. `var: name/value`",
                    ))
                }
            }
        }
    }

    let is_source = build_id == BuildId::Source;
    let mut build = BuildIndex::bare(version, build_id);
    build.deprecated = deprecated;
    build.compat = compat;
    build.embedded = embedded.into_iter().map(|e| e.spec).collect();

    let mut global_vars = Vec::new();
    if is_source {
        // SPK strips a source build down to its source component (§5.9).
        build.component_specs = vec![ComponentSpec::plain(Component::Source)];
    } else {
        // Build options (names are unique), namespaced ones skipped.
        for o in &options {
            if !o.full_name().contains('.') {
                global_vars.push((o.full_name().to_string(), o.value().to_string()));
            }
        }
        let base = |n: &str| n.split_once('.').map_or(n, |(_, b)| b).to_string();
        for r in &requirements {
            if let Requirement::Var(v) = r {
                global_vars.push((base(&v.name), v.value.clone()));
            }
        }
        for v in test_vars {
            global_vars.push((base(&v.name), v.value));
        }
        build.build_options = options.into_iter().map(|o| o.opt).collect();
        build.runtime_requirements = requirements;
        build.component_specs = components;
    }

    Ok(ParsedBuild {
        name,
        version_text,
        build,
        global_vars,
    })
}
