//! What the index holds about each build: exactly what a solver needs.

use serde::Serialize;

/// Whether an option or requirement names a variable or a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReqKind {
    /// `var: name/value`
    Var,
    /// `pkg: name/range`
    Pkg,
}

impl ReqKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReqKind::Var => "var",
            ReqKind::Pkg => "pkg",
        }
    }
}

/// One `build.options` or `install.requirements` entry: `var: name/value`
/// or `pkg: name/range`. `value` is empty when the entry has no `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    pub kind: ReqKind,
    pub name: String,
    pub value: String,
}

impl Requirement {
    /// Splits `name/value` at the first `/`.
    pub fn parse(kind: ReqKind, text: &str) -> Self {
        let (name, value) = text.split_once('/').unwrap_or((text, ""));
        Requirement {
            kind,
            name: name.to_string(),
            value: value.to_string(),
        }
    }
}

/// One build of one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildEntry {
    /// `src`, `embedded` or an 8-character digest.
    pub build: String,
    pub deprecated: bool,
    pub compat: Option<String>,
    pub options: Vec<Requirement>,
    pub requirements: Vec<Requirement>,
    pub components: Vec<String>,
}

/// One version of a package, its builds sorted by build text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionEntry {
    /// The version as written in the repository.
    pub version: String,
    pub builds: Vec<BuildEntry>,
}

/// One package, versions in SPK order (lowest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageEntry {
    pub name: String,
    pub versions: Vec<VersionEntry>,
}

/// Builds, versions and deprecated builds of one or more packages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub packages: u64,
    pub versions: u64,
    pub builds: u64,
    pub deprecated: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.packages += other.packages;
        self.versions += other.versions;
        self.builds += other.builds;
        self.deprecated += other.deprecated;
    }
}

impl PackageEntry {
    pub fn counts(&self) -> Counts {
        Counts {
            packages: 1,
            versions: self.versions.len() as u64,
            builds: self.versions.iter().map(|v| v.builds.len() as u64).sum(),
            deprecated: self
                .versions
                .iter()
                .flat_map(|v| &v.builds)
                .filter(|b| b.deprecated)
                .count() as u64,
        }
    }

    /// Sorts versions in SPK order (text breaks ties such as `1.0`/`1.0.0`)
    /// and builds by their text.
    pub fn sort(&mut self) {
        self.versions.sort_by_cached_key(|v| {
            (
                v.version.parse::<spk_messaging_core::Version>().ok(),
                v.version.clone(),
            )
        });
        for v in &mut self.versions {
            v.builds.sort_by(|a, b| a.build.cmp(&b.build));
        }
    }
}
