//! What `spk repo ls` and `spk repo show` print: packages; a package's
//! versions; a version's builds with their deprecation and published
//! components; everything the index holds for one build.
//!
//! The index and the repository give the same answer for the same state,
//! because both are turned into the same [`PackageIndex`] values first: the
//! index by decoding one package (a binary search, nothing else decoded),
//! the repository by reading that one package's tags and specs
//! ([`crate::walk`]).

use serde::Serialize;

use crate::fb::{FbError, IndexFile};
use crate::indexed::{BuildIndex, Component, PackageIndex, Version};
use crate::problem::SpecProblem;
use crate::spfs::{SpfsError, SpfsRepo};
use crate::v0;
use crate::walk::{self, Want};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedBuild {
    pub build: String,
    pub deprecated: bool,
    /// The components published for this build.
    pub components: Vec<Component>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedVersion {
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builds: Option<Vec<ListedBuild>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedPackage {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<ListedVersion>>,
}

/// `{"packages": [...]}`, only the part asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    pub packages: Vec<ListedPackage>,
}

/// What to list: everything, a package, or a package version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub name: Option<String>,
    pub version: Option<Version>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("package {name} is not in repository {repo}{from}")]
    NoPackage {
        name: String,
        repo: String,
        from: &'static str,
    },
    #[error("package {name} has no version {version} in repository {repo}{from} (it has {have})")]
    NoVersion {
        name: String,
        version: String,
        repo: String,
        from: &'static str,
        have: String,
    },
    /// `version` is `name/version`.
    #[error("{version} has no build {build} in repository {repo}{from} (it has {have})")]
    NoBuild {
        version: String,
        build: String,
        repo: String,
        from: &'static str,
        have: String,
    },
    #[error("{0}; `--no-index` reads the repository instead")]
    Index(#[from] FbError),
    #[error(transparent)]
    Repo(#[from] SpfsError),
}

/// Where a listing comes from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Index,
    Repository,
}

fn from_text(s: Source) -> &'static str {
    match s {
        Source::Index => " (according to its index; `--no-index` reads the repository)",
        Source::Repository => "",
    }
}

/// The package's entry, from the index or the repository.
fn package(
    from: &From<'_>,
    name: &str,
    repo: &str,
) -> Result<(PackageIndex, Vec<SpecProblem>), ListError> {
    let found = match from {
        From::Index(index) => (index.package(name).transpose()?, Vec::new()),
        From::Repository(r) => {
            let w = walk::walk(r, &[(name.to_string(), Want::All)], None, None);
            (w.packages.into_iter().next(), w.problems)
        }
    };
    match found {
        (Some(p), problems) => Ok((p, problems)),
        (None, _) => Err(ListError::NoPackage {
            name: name.to_string(),
            repo: repo.to_string(),
            from: from_text(from.source()),
        }),
    }
}

/// Where to read from.
#[derive(Debug)]
pub enum From<'a> {
    Index(&'a IndexFile),
    Repository(&'a SpfsRepo),
}

impl From<'_> {
    fn source(&self) -> Source {
        match self {
            From::Index(_) => Source::Index,
            From::Repository(_) => Source::Repository,
        }
    }
}

fn listed_build(b: &BuildIndex) -> ListedBuild {
    // SPK writes published components in no defined order; show them in
    // SPK's set order whatever wrote the index.
    let mut components = b.published_components.clone();
    components.sort();
    ListedBuild {
        build: b.build.to_string(),
        deprecated: b.deprecated,
        components,
    }
}

/// Lists what `query` asks for; also returns what a repository read skipped.
pub fn list(
    from: &From<'_>,
    query: &Query,
    repo: &str,
) -> Result<(Listing, Vec<SpecProblem>), ListError> {
    let Some(name) = &query.name else {
        let packages = match from {
            From::Index(i) => i.package_names().into_iter().map(str::to_string).collect(),
            From::Repository(r) => r.package_names()?,
        };
        return Ok((
            Listing {
                packages: packages
                    .into_iter()
                    .map(|name| ListedPackage {
                        name,
                        versions: None,
                    })
                    .collect(),
            },
            Vec::new(),
        ));
    };
    let (p, problems) = package(from, name, repo)?;
    let versions = match &query.version {
        None => p
            .versions
            .iter()
            .map(|v| ListedVersion {
                version: v.version.to_string(),
                builds: None,
            })
            .collect(),
        Some(want) => {
            let vs: Vec<ListedVersion> = p
                .versions
                .iter()
                .filter(|v| v0::version_eq(&v.version, want))
                .map(|v| ListedVersion {
                    version: v.version.to_string(),
                    builds: Some(v.builds.iter().map(listed_build).collect()),
                })
                .collect();
            if vs.is_empty() {
                return Err(ListError::NoVersion {
                    name: name.clone(),
                    version: want.to_string(),
                    repo: repo.to_string(),
                    from: from_text(from.source()),
                    have: have_versions(&p),
                });
            }
            vs
        }
    };
    Ok((
        Listing {
            packages: vec![ListedPackage {
                name: p.name,
                versions: Some(versions),
            }],
        },
        problems,
    ))
}

fn have_versions(p: &PackageIndex) -> String {
    let v: Vec<String> = p.versions.iter().map(|v| v.version.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Everything the index (or the repository) holds for one build.
pub fn show(
    from: &From<'_>,
    name: &str,
    version: &Version,
    build: &str,
    repo: &str,
) -> Result<(BuildIndex, Vec<SpecProblem>), ListError> {
    let (p, problems) = package(from, name, repo)?;
    let Some(v) = p
        .versions
        .iter()
        .find(|v| v0::version_eq(&v.version, version) && !v.builds.is_empty())
        .or_else(|| {
            p.versions
                .iter()
                .find(|v| v0::version_eq(&v.version, version))
        })
    else {
        return Err(ListError::NoVersion {
            name: name.to_string(),
            version: version.to_string(),
            repo: repo.to_string(),
            from: from_text(from.source()),
            have: have_versions(&p),
        });
    };
    match v.builds.iter().find(|b| b.build.to_string() == build) {
        Some(b) => {
            let mut b = b.clone();
            b.published_components.sort();
            Ok((b, problems))
        }
        None => Err(ListError::NoBuild {
            version: format!("{name}/{}", v.version),
            build: build.to_string(),
            repo: repo.to_string(),
            from: from_text(from.source()),
            have: {
                let b: Vec<String> = v.builds.iter().map(|b| b.build.to_string()).collect();
                if b.is_empty() {
                    "none".into()
                } else {
                    b.join(", ")
                }
            },
        }),
    }
}
