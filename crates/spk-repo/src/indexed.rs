//! What SPK's index holds, as plain Rust values.
//!
//! One type per table of SPK's index schema (`index/spk/index_v1.fb`, see
//! `schema/spk_index.fbs`), with the same fields in the same order and the
//! same meaning. Three parts of the crate meet here and nowhere else:
//! - [`crate::v0`] turns a build spec (YAML) into a [`BuildIndex`];
//! - [`crate::fb`] writes these values as FlatBuffers and reads them back;
//! - `spk repo show` and the tests print them as JSON.
//!
//! Keeping the model apart from the wire format means the spec rules and the
//! encoding can each be tested alone, and two indexes (ours and SPK's) can be
//! compared field by field after decoding.
//!
//! Absent and empty lists are one thing here (SPK writes neither an empty
//! vector nor reads one differently), except [`FilterRule::parts`] and
//! [`PkgRequest::version_filter`], where absence has a meaning of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

/// A version as SPK stores it: parts verbatim (no padding, no stripping),
/// tags sorted by name. The epsilon is always "none" for versions that come
/// from text, so it is not a field here; the writer always writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub struct Version {
    pub parts: Vec<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<TagItem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<TagItem>,
}

/// One pre- or post-release tag, `rc.1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TagItem {
    pub name: String,
    pub number: u32,
}

/// A component name: the four built-ins or a named one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    All,
    Build,
    Run,
    Source,
    Named(String),
}

/// How a build is identified.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildId {
    /// `src`
    Source,
    /// An embed stub `embedded[parent...]`, or `None` for the bare legacy
    /// build string `embedded`.
    Embedded(Option<EmbeddedParent>),
    /// An 8-character base32 digest.
    Digest(String),
}

/// The parent of an embed stub.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EmbeddedParent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_name: Option<String>,
    pub pkg_name: String,
    /// The parent's version in normalised storage form (`1.2.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_str: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_str: Option<String>,
    /// The parent's components that carry the embedded package.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

/// `Inheritance` (stored values 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub enum Inheritance {
    #[default]
    Weak = 0,
    StrongForBuildOnly = 1,
    Strong = 2,
}

/// `PreReleasePolicy` (0 means not specified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub enum PreReleasePolicy {
    #[default]
    None = 0,
    ExcludeAll = 1,
    IncludeAll = 2,
}

/// `LoneCompatRule` (0 means no rule given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub enum CompatRule {
    #[default]
    None = 0,
    API = 1,
    Binary = 2,
}

/// `InclusionPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub enum InclusionPolicy {
    #[default]
    Always = 0,
    IfAlreadyPresent = 1,
}

/// `PinPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub enum PinPolicy {
    #[default]
    Required = 0,
    IfPresentInBuildEnv = 1,
}

/// `VersionRangeOperator`; the numbers are the stored values. `Filter` (4)
/// is never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum RangeOp {
    Compat = 0,
    DoubleEquals = 1,
    DoubleNotEquals = 2,
    Equals = 3,
    GreaterThan = 5,
    GreaterThanOrEqualTo = 6,
    LessThan = 7,
    LessThanOrEqualTo = 8,
    LowestSpecified = 9,
    NotEquals = 10,
    Semver = 11,
    Wildcard = 12,
}

/// One rule of a version range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FilterRule {
    pub op: RangeOp,
    /// Every operator but `Wildcard` has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// Only for `Compat`: `API:` or `Binary:`.
    #[serde(skip_serializing_if = "is_default")]
    pub required: CompatRule,
    /// Only for `Wildcard`: one entry per position, `u32::MAX` for `*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<u32>>,
}

/// A `pkg:` build option.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PkgOpt {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    #[serde(skip_serializing_if = "is_default")]
    pub prerelease_policy: PreReleasePolicy,
    #[serde(skip_serializing_if = "is_default")]
    pub required_compat: CompatRule,
    pub value: String,
}

/// A `var:` build option.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct VarOpt {
    pub name: String,
    #[serde(skip_serializing_if = "is_default")]
    pub inheritance: Inheritance,
    /// `None`: no compat rule (not the default compat).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub required: bool,
    pub value: String,
}

/// One `build.options` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Opt {
    Pkg(PkgOpt),
    Var(VarOpt),
}

/// An option value attached to a package request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct OptionValue {
    pub name: String,
    pub value: String,
    pub is_complete: bool,
}

/// A package requirement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PkgRequest {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    /// `None`: no `/range` at all (not the same as `*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_filter: Option<Vec<FilterRule>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildId>,
    #[serde(skip_serializing_if = "is_default")]
    pub prerelease_policy: PreReleasePolicy,
    #[serde(skip_serializing_if = "is_default")]
    pub inclusion_policy: InclusionPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub pin_policy: PinPolicy,
    #[serde(skip_serializing_if = "is_default")]
    pub required_compat: CompatRule,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<OptionValue>,
}

impl PkgRequest {
    /// A request for `name` with nothing else specified.
    pub fn named(name: impl Into<String>) -> Self {
        PkgRequest {
            name: name.into(),
            repo_name: None,
            components: Vec::new(),
            version_filter: None,
            build: None,
            prerelease_policy: PreReleasePolicy::None,
            inclusion_policy: InclusionPolicy::Always,
            pin: None,
            pin_policy: PinPolicy::Required,
            required_compat: CompatRule::None,
            options: Vec::new(),
        }
    }
}

/// A `var:` requirement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct VarRequest {
    pub name: String,
    pub value: String,
}

/// One install requirement.
// Package requests are most requirements; boxing them would cost an
// allocation each for the rare var request's sake.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    Pkg(PkgRequest),
    Var(VarRequest),
}

impl Requirement {
    pub fn name(&self) -> &str {
        match self {
            Requirement::Pkg(p) => &p.name,
            Requirement::Var(v) => &v.name,
        }
    }
}

/// An entry of a component's `embedded:` list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ComponentEmbedded {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    pub components: Vec<Component>,
}

/// One entry of `install.components`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ComponentSpec {
    pub name: Component,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uses: Vec<Component>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<Requirement>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub embedded: Vec<ComponentEmbedded>,
}

impl ComponentSpec {
    pub fn plain(name: Component) -> Self {
        ComponentSpec {
            name,
            uses: Vec::new(),
            requirements: Vec::new(),
            embedded: Vec::new(),
        }
    }
}

/// One entry of `install.embedded`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EmbeddedSpec {
    /// `name/version/embedded`, the version verbatim.
    pub ident: String,
    /// `None`: the default `x.a.b`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub deprecated: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build_options: Vec<Opt>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub component_specs: Vec<ComponentSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<Requirement>,
}

/// One build of one version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct BuildIndex {
    /// The version exactly as the spec's `pkg:` writes it.
    pub published_version: Version,
    pub build: BuildId,
    #[serde(skip_serializing_if = "is_default")]
    pub deprecated: bool,
    /// `None`: the default `x.a.b`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build_options: Vec<Opt>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub embedded: Vec<EmbeddedSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub component_specs: Vec<ComponentSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtime_requirements: Vec<Requirement>,
    /// What the repository really holds for this build.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub published_components: Vec<Component>,
}

/// One version of a package and its builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionIndex {
    /// The version as the repository lists it (normalised storage form).
    pub version: Version,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<BuildIndex>,
}

/// One package and its versions, highest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageIndex {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<VersionIndex>,
}

/// Global vars: every observed value of each non-namespaced variable.
pub type GlobalVars = BTreeMap<String, BTreeSet<String>>;

/// The whole index: packages sorted by name (byte-wise), and global vars.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RepositoryIndex {
    pub packages: Vec<PackageIndex>,
    pub global_vars: GlobalVars,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

// ---- text forms -------------------------------------------------------

impl Component {
    /// `all`, `build`, `run`, `src` or the name.
    pub fn parse(text: &str) -> Component {
        match text {
            "all" => Component::All,
            "build" => Component::Build,
            "run" => Component::Run,
            "src" => Component::Source,
            other => Component::Named(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Component::All => "all",
            Component::Build => "build",
            Component::Run => "run",
            Component::Source => "src",
            Component::Named(n) => n,
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Component {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.parts.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))?;
        let tags = |t: &[TagItem]| {
            t.iter()
                .map(|t| format!("{}.{}", t.name, t.number))
                .collect::<Vec<_>>()
                .join(",")
        };
        if !self.pre.is_empty() {
            write!(f, "-{}", tags(&self.pre))?;
        }
        if !self.post.is_empty() {
            write!(f, "+{}", tags(&self.post))?;
        }
        Ok(())
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildId::Source => f.write_str("src"),
            BuildId::Digest(d) => f.write_str(d),
            BuildId::Embedded(None) => f.write_str("embedded"),
            BuildId::Embedded(Some(p)) => {
                f.write_str("embedded[")?;
                f.write_str(&p.pkg_name)?;
                if !p.components.is_empty() {
                    let c: Vec<&str> = p.components.iter().map(Component::as_str).collect();
                    if c.len() == 1 {
                        write!(f, ":{}", c[0])?;
                    } else {
                        write!(f, ":{{{}}}", c.join(","))?;
                    }
                }
                if let Some(v) = &p.version_str {
                    write!(f, "/{v}")?;
                }
                if let Some(b) = &p.build_str {
                    write!(f, "/{b}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl BuildIndex {
    /// A build with only its identity set; the rest empty.
    pub fn bare(published_version: Version, build: BuildId) -> Self {
        BuildIndex {
            published_version,
            build,
            deprecated: false,
            compat: None,
            build_options: Vec::new(),
            embedded: Vec::new(),
            component_specs: Vec::new(),
            runtime_requirements: Vec::new(),
            published_components: Vec::new(),
        }
    }
}
