//! A filesystem repository: `<root>/packages/<name>/<version>/<build>.yaml`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use spk_messaging_core::{Build, PkgName, RepoAddress, Version};

use crate::model::{PackageEntry, VersionEntry};
use crate::spec::{read_spec, SpecProblem};

/// Called with a spec's path just before it is read. A test hook: it lets a
/// test make one read slow without touching the filesystem.
pub type ReadHook = Arc<dyn Fn(&Path) + Send + Sync>;

/// A repository that cannot be used at all (as opposed to one bad spec).
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(
        "repository {address} does not exist (no directory {path}); check the repository's address"
    )]
    Missing { address: String, path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The index file's name; it carries the index format version.
pub const INDEX_FILE_NAME: &str = "index.v1.spki";

/// A filesystem repository.
#[derive(Debug, Clone)]
pub struct Repository {
    address: RepoAddress,
}

/// Names a directory entry when it is a directory to descend into, skipping
/// hidden entries; anything else is a problem.
fn list_dir(dir: &Path, what: &str) -> Result<(Vec<String>, Vec<SpecProblem>), std::io::Error> {
    let mut names = Vec::new();
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            problems.push(SpecProblem::new(
                entry.path(),
                format!("the {what} name is not UTF-8"),
            ));
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        names.push(name.to_string());
    }
    names.sort();
    Ok((names, problems))
}

impl Repository {
    /// Opens the repository at `address`; its root must exist. A root with
    /// no `packages` directory is an empty repository.
    pub fn open(address: &RepoAddress) -> Result<Self, RepoError> {
        let root = address.path();
        if !root.is_dir() {
            return Err(RepoError::Missing {
                address: address.to_url(),
                path: root.to_path_buf(),
            });
        }
        Ok(Repository {
            address: address.clone(),
        })
    }

    pub fn address(&self) -> &RepoAddress {
        &self.address
    }
    pub fn root(&self) -> &Path {
        self.address.path()
    }
    pub fn packages_dir(&self) -> PathBuf {
        self.root().join("packages")
    }
    pub fn index_dir(&self) -> PathBuf {
        self.root().join("index").join("spk")
    }
    pub fn index_path(&self) -> PathBuf {
        self.index_dir().join(INDEX_FILE_NAME)
    }

    /// The package directories' names, sorted; invalid names are problems.
    pub fn package_names(&self) -> Result<(Vec<String>, Vec<SpecProblem>), RepoError> {
        let dir = self.packages_dir();
        if !dir.exists() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (names, mut problems) = list_dir(&dir, "package").map_err(|source| RepoError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut good = Vec::with_capacity(names.len());
        for n in names {
            let p = dir.join(&n);
            if let Err(e) = n.parse::<PkgName>() {
                problems.push(SpecProblem::new(p, format!("not a package directory: {e}")));
            } else if !p.is_dir() {
                problems.push(SpecProblem::new(
                    p,
                    "not a directory; packages/ holds one directory per package",
                ));
            } else {
                good.push(n);
            }
        }
        Ok((good, problems))
    }

    /// Reads every build of one version; `None` when it has no usable build
    /// (or does not exist).
    pub fn read_version(
        &self,
        name: &str,
        version: &str,
        hook: Option<&ReadHook>,
    ) -> (Option<VersionEntry>, Vec<SpecProblem>) {
        let dir = self.packages_dir().join(name).join(version);
        let mut problems = Vec::new();
        if !dir.exists() {
            return (None, problems);
        }
        if let Err(e) = version.parse::<Version>() {
            problems.push(SpecProblem::new(
                &dir,
                format!("not a version directory: {e}"),
            ));
            return (None, problems);
        }
        let files = match list_dir(&dir, "file") {
            Ok((files, p)) => {
                problems.extend(p);
                files
            }
            Err(e) => {
                problems.push(SpecProblem::new(
                    &dir,
                    format!("cannot read the version directory: {e}"),
                ));
                return (None, problems);
            }
        };
        let mut builds = Vec::with_capacity(files.len());
        for f in files {
            let path = dir.join(&f);
            let Some(build) = f.strip_suffix(".yaml") else {
                problems.push(SpecProblem::new(
                    path,
                    "not a build spec; expected <build>.yaml",
                ));
                continue;
            };
            if let Err(e) = build.parse::<Build>() {
                problems.push(SpecProblem::new(
                    path,
                    format!("not a build spec file name: {e}"),
                ));
                continue;
            }
            if let Some(h) = hook {
                h(&path);
            }
            match read_spec(&path, name, version, build) {
                Ok(b) => builds.push(b),
                Err(p) => problems.push(p),
            }
        }
        if builds.is_empty() {
            return (None, problems);
        }
        builds.sort_by(|a, b| a.build.cmp(&b.build));
        (
            Some(VersionEntry {
                version: version.to_string(),
                builds,
            }),
            problems,
        )
    }

    /// Reads every version of one package; `None` when it has no usable
    /// build (or does not exist).
    pub fn read_package(
        &self,
        name: &str,
        hook: Option<&ReadHook>,
    ) -> (Option<PackageEntry>, Vec<SpecProblem>) {
        let dir = self.packages_dir().join(name);
        let mut problems = Vec::new();
        if !dir.is_dir() {
            return (None, problems);
        }
        let versions = match list_dir(&dir, "version") {
            Ok((v, p)) => {
                problems.extend(p);
                v
            }
            Err(e) => {
                problems.push(SpecProblem::new(
                    &dir,
                    format!("cannot read the package directory: {e}"),
                ));
                return (None, problems);
            }
        };
        let mut entry = PackageEntry {
            name: name.to_string(),
            versions: Vec::with_capacity(versions.len()),
        };
        for v in versions {
            let (ve, p) = self.read_version(name, &v, hook);
            problems.extend(p);
            entry.versions.extend(ve);
        }
        if entry.versions.is_empty() {
            return (None, problems);
        }
        entry.sort();
        (Some(entry), problems)
    }

    /// Reads the named packages in parallel (rayon, one thread per core);
    /// `on_done` is called after each package. Results keep `names`' order.
    pub fn read_packages(
        &self,
        names: &[String],
        hook: Option<&ReadHook>,
        on_done: &(dyn Fn() + Sync),
    ) -> Vec<(Option<PackageEntry>, Vec<SpecProblem>)> {
        names
            .par_iter()
            .map(|n| {
                let r = self.read_package(n, hook);
                on_done();
                r
            })
            .collect()
    }

    /// Every package with at least one usable build, read from the
    /// repository itself (no index), and the problems met.
    pub fn read_all(
        &self,
        hook: Option<&ReadHook>,
    ) -> Result<(Vec<PackageEntry>, Vec<SpecProblem>), RepoError> {
        let (names, mut problems) = self.package_names()?;
        let mut packages = Vec::with_capacity(names.len());
        for (p, probs) in self.read_packages(&names, hook, &|| {}) {
            packages.extend(p);
            problems.extend(probs);
        }
        Ok((packages, problems))
    }
}

/// The floor for benchmarks: walks, reads and parses every spec exactly as
/// index generation does (the same [`Repository::read_package`], on all
/// cores), and nothing else: each package is dropped once read. Returns
/// (builds read, problems).
pub fn read_all_specs(repo: &Repository) -> Result<(u64, Vec<SpecProblem>), RepoError> {
    let (names, mut problems) = repo.package_names()?;
    let read: Vec<(u64, Vec<SpecProblem>)> = names
        .par_iter()
        .map(|n| {
            let (p, probs) = repo.read_package(n, None);
            (p.map(|p| p.counts().builds).unwrap_or(0), probs)
        })
        .collect();
    let mut builds = 0;
    for (b, p) in read {
        builds += b;
        problems.extend(p);
    }
    Ok((builds, problems))
}
