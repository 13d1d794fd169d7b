//! What `spk repo ls` shows: packages; a package's versions; a version's
//! builds. The index and the repository give the same [`Listing`] for the
//! same state, because both hold the same [`PackageEntry`] values.

use serde::Serialize;
use spk_messaging_core::{PkgIdent, Version};

use crate::index::{Index, IndexFileError};
use crate::model::PackageEntry;
use crate::repository::{RepoError, Repository};
use crate::spec::SpecProblem;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedBuild {
    pub build: String,
    pub deprecated: bool,
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

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("package {name} is not in repository {repo}{from}")]
    NoPackage {
        name: String,
        repo: String,
        from: String,
    },
    #[error("package {name} has no version {version} in repository {repo}{from} (it has {have})")]
    NoVersion {
        name: String,
        version: String,
        repo: String,
        from: String,
        have: String,
    },
    #[error(transparent)]
    Index(#[from] IndexFileError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Where a listing comes from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Index,
    Repository,
}

fn from_text(s: Source) -> String {
    match s {
        Source::Index => " (according to its index; `--no-index` reads the repository)".into(),
        Source::Repository => String::new(),
    }
}

fn shape(
    p: PackageEntry,
    version: Option<&Version>,
    repo: &str,
    source: Source,
) -> Result<ListedPackage, ListError> {
    let Some(want) = version else {
        return Ok(ListedPackage {
            versions: Some(
                p.versions
                    .into_iter()
                    .map(|v| ListedVersion {
                        version: v.version,
                        builds: None,
                    })
                    .collect(),
            ),
            name: p.name,
        });
    };
    let have: Vec<String> = p.versions.iter().map(|v| v.version.clone()).collect();
    let versions: Vec<ListedVersion> = p
        .versions
        .into_iter()
        .filter(|v| v.version.parse::<Version>().is_ok_and(|x| &x == want))
        .map(|v| ListedVersion {
            version: v.version,
            builds: Some(
                v.builds
                    .into_iter()
                    .map(|b| ListedBuild {
                        build: b.build,
                        deprecated: b.deprecated,
                    })
                    .collect(),
            ),
        })
        .collect();
    if versions.is_empty() {
        return Err(ListError::NoVersion {
            name: p.name,
            version: want.to_string(),
            repo: repo.to_string(),
            from: from_text(source),
            have: have.join(", "),
        });
    }
    Ok(ListedPackage {
        name: p.name,
        versions: Some(versions),
    })
}

/// Lists from an index.
pub fn list_index(
    index: &Index,
    what: Option<&PkgIdent>,
    repo: &str,
) -> Result<Listing, ListError> {
    let Some(id) = what else {
        return Ok(Listing {
            packages: index
                .package_names()
                .map(|n| ListedPackage {
                    name: n.to_string(),
                    versions: None,
                })
                .collect(),
        });
    };
    let name = id.name.as_str();
    let p = index.package(name)?.ok_or_else(|| ListError::NoPackage {
        name: name.to_string(),
        repo: repo.to_string(),
        from: from_text(Source::Index),
    })?;
    Ok(Listing {
        packages: vec![shape(p, id.version.as_ref(), repo, Source::Index)?],
    })
}

/// Lists from the repository itself; also returns the specs it skipped.
pub fn list_repository(
    repo: &Repository,
    what: Option<&PkgIdent>,
) -> Result<(Listing, Vec<SpecProblem>), ListError> {
    let url = repo.address().to_url();
    let Some(id) = what else {
        let (packages, problems) = repo.read_all(None)?;
        let packages = packages
            .into_iter()
            .map(|p| ListedPackage {
                name: p.name,
                versions: None,
            })
            .collect();
        return Ok((Listing { packages }, problems));
    };
    let name = id.name.as_str();
    let (p, problems) = repo.read_package(name, None);
    let p = p.ok_or_else(|| ListError::NoPackage {
        name: name.to_string(),
        repo: url.clone(),
        from: from_text(Source::Repository),
    })?;
    Ok((
        Listing {
            packages: vec![shape(p, id.version.as_ref(), &url, Source::Repository)?],
        },
        problems,
    ))
}
