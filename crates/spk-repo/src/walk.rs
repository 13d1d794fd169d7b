//! Reading an spfs repository into index values: packages, their versions,
//! their builds, and the global vars the builds contribute.
//!
//! The walk is in two steps so that both cores stay busy whatever the shape
//! of the repository (a few packages with thousands of builds, or thousands
//! of packages with a few): first the tag folders are listed (one
//! `read_dir` per package and per version, in parallel across packages),
//! then every build is read and parsed in parallel across builds (its spec
//! tag, its spec payload, its component tags). Nothing is read twice.
//!
//! What SPK would skip (an unreadable tag, a missing payload, a spec that
//! does not parse or names another build, a build with no component tags)
//! is skipped here too, and each skip is a [`SpecProblem`] naming the tag.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use crate::indexed::{BuildIndex, Component, GlobalVars, PackageIndex, VersionIndex};
use crate::problem::SpecProblem;
use crate::spfs::SpfsRepo;
use crate::v0;

/// Called with a spec tag's path before it is read. A test hook: it lets a
/// test make one read slow without touching the filesystem.
pub type ReadHook = Arc<dyn Fn(&Path) + Send + Sync>;

/// Which versions of a package to read.
#[derive(Debug, Clone)]
pub enum Want {
    All,
    /// Only versions equal (SPK equality) to one of these.
    Versions(Vec<crate::indexed::Version>),
}

/// What a walk found: packages sorted by name (only those that have at
/// least one version), global-var contributions (not yet filtered by
/// package names), problems.
#[derive(Debug, Default)]
pub struct Walked {
    pub packages: Vec<PackageIndex>,
    pub vars: Vec<(String, String)>,
    pub problems: Vec<SpecProblem>,
}

/// Progress of the reading phase: builds read of builds to read.
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// One build read: its index entry and global-var contributions, or why
/// it was skipped.
type BuildRead = Result<(BuildIndex, Vec<(String, String)>), SpecProblem>;

/// One version folder of one package, listed.
struct ListedVersion {
    folder: String,
    version: crate::indexed::Version,
    builds: Vec<String>,
}

/// Reads `names` (each with its `Want`) from `repo`.
pub fn walk(
    repo: &SpfsRepo,
    names: &[(String, Want)],
    hook: Option<&ReadHook>,
    progress: Option<&ProgressFn>,
) -> Walked {
    // Step 1: list versions and builds, in parallel across packages.
    let listed: Vec<(Vec<ListedVersion>, Vec<SpecProblem>)> = names
        .par_iter()
        .map(|(name, want)| list_package(repo, name, want))
        .collect();
    let mut problems = Vec::new();
    let mut jobs: Vec<(usize, usize, &str)> = Vec::new();
    for (p, (versions, probs)) in listed.iter().enumerate() {
        problems.extend(probs.iter().cloned());
        for (v, lv) in versions.iter().enumerate() {
            for b in &lv.builds {
                jobs.push((p, v, b.as_str()));
            }
        }
    }
    let total = jobs.len() as u64;
    let done = AtomicU64::new(0);
    if let Some(p) = progress {
        p(0, total);
    }
    // Step 2: read and parse every build, in parallel across builds.
    let read: Vec<BuildRead> = jobs
        .par_iter()
        .map(|&(p, v, build)| {
            let name = &names[p].0;
            let lv = &listed[p].0[v];
            let r = read_build(repo, name, lv, build, hook);
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(pr) = progress {
                if d % 1024 == 0 || d == total {
                    pr(d, total);
                }
            }
            r
        })
        .collect();
    // Regroup in listing order.
    let mut builds: Vec<Vec<Vec<BuildIndex>>> = listed
        .iter()
        .map(|(vs, _)| vs.iter().map(|_| Vec::new()).collect())
        .collect();
    let mut vars = Vec::new();
    for (&(p, v, _), r) in jobs.iter().zip(read) {
        match r {
            Ok((b, mut vs)) => {
                builds[p][v].push(b);
                vars.append(&mut vs);
            }
            Err(e) => problems.push(e),
        }
    }
    let mut packages = Vec::with_capacity(names.len());
    for ((name, _), ((versions, _), mut bs)) in names.iter().zip(listed.into_iter().zip(builds)) {
        if versions.is_empty() {
            continue;
        }
        let mut out: Vec<VersionIndex> = versions
            .into_iter()
            .zip(bs.drain(..))
            .map(|(lv, mut builds)| {
                builds.sort_by(|a, b| a.build.cmp(&b.build));
                VersionIndex {
                    version: lv.version,
                    builds,
                }
            })
            .collect();
        sort_versions(&mut out);
        packages.push(PackageIndex {
            name: name.clone(),
            versions: out,
        });
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Walked {
        packages,
        vars,
        problems,
    }
}

/// Highest version first, as SPK's full generation writes them.
pub fn sort_versions(versions: &mut [VersionIndex]) {
    versions.sort_by(|a, b| v0::version_cmp(&b.version, &a.version));
}

fn list_package(
    repo: &SpfsRepo,
    name: &str,
    want: &Want,
) -> (Vec<ListedVersion>, Vec<SpecProblem>) {
    let mut problems = Vec::new();
    let folders = match repo.versions(name) {
        Ok(f) => f,
        Err(e) => {
            problems.push(SpecProblem::new(
                format!("spk/spec/{name}"),
                format!("cannot list the package's versions: {e}"),
            ));
            return (Vec::new(), problems);
        }
    };
    let mut out = Vec::new();
    for entry in folders {
        let folder = entry.folder;
        let version = match v0::parse_version(&entry.version) {
            Ok(v) => v,
            Err(e) => {
                problems.push(SpecProblem::new(
                    format!("spk/spec/{name}/{folder}"),
                    format!("not a version folder: {e}"),
                ));
                continue;
            }
        };
        if let Want::Versions(vs) = want {
            if !vs.iter().any(|w| v0::version_eq(w, &version)) {
                continue;
            }
        }
        let listed = if entry.has_builds {
            repo.builds(name, &folder)
        } else {
            Ok(Vec::new())
        };
        let builds = match listed {
            Ok(b) => b,
            Err(e) => {
                problems.push(SpecProblem::new(
                    format!("spk/spec/{name}/{folder}"),
                    format!("cannot list the version's builds: {e}"),
                ));
                Vec::new()
            }
        };
        out.push(ListedVersion {
            folder,
            version,
            builds,
        });
    }
    (out, problems)
}

fn read_build(
    repo: &SpfsRepo,
    name: &str,
    lv: &ListedVersion,
    build: &str,
    hook: Option<&ReadHook>,
) -> BuildRead {
    let tag = format!("spk/spec/{name}/{}/{build}", lv.folder);
    let problem = |p: String| SpecProblem::new(tag.clone(), p);
    if let Some(h) = hook {
        h(Path::new(&tag));
    }
    let bytes = repo
        .read_spec(name, &lv.folder, build)
        .map_err(|e| problem(e.to_string()))?;
    let parsed = v0::parse_build_spec(&bytes).map_err(|e| problem(e.to_string()))?;
    if parsed.name != name {
        return Err(problem(format!(
            "the spec is of package {:?}, not {name:?} (its pkg: names another package)",
            parsed.name
        )));
    }
    if !v0::version_eq(&parsed.build.published_version, &lv.version) {
        return Err(problem(format!(
            "the spec is of version {}, not {} (its pkg: names another version)",
            parsed.version_text, lv.version
        )));
    }
    if !build_matches_tag(&parsed.build.build, build) {
        return Err(problem(format!(
            "the spec is of build {}, not {build} (its pkg: names another build)",
            parsed.build.build
        )));
    }
    let mut published: Vec<Component> = match repo.components(name, &lv.folder, build) {
        Ok(names) => names.iter().map(|c| Component::parse(c)).collect(),
        // An embed stub has no component tags; SPK takes its components
        // from its spec (checked against SPK 0.44.0 by the interop tests).
        Err(e) if e.is_embed_stub() => parsed
            .build
            .component_specs
            .iter()
            .map(|c| c.name.clone())
            .collect(),
        Err(e) if e.is_no_components() => {
            return Err(problem(format!(
                "{e}; SPK leaves such builds out of its index"
            )))
        }
        Err(e) => return Err(problem(e.to_string())),
    };
    published.sort();
    published.dedup();
    let mut index = parsed.build;
    index.published_components = published;
    Ok((index, parsed.global_vars))
}

/// Whether a spec's build is the one its tag names: `src`, the digest, or
/// for an embed stub (`embedded-by-<BASE32 of the build text>`) any
/// embedded build.
fn build_matches_tag(build: &crate::indexed::BuildId, tag: &str) -> bool {
    use crate::indexed::BuildId;
    match build {
        BuildId::Source => tag == "src",
        BuildId::Digest(d) => d == tag,
        BuildId::Embedded(_) => tag.starts_with(crate::spfs::EMBEDDED_BY_PREFIX),
    }
}

/// Adds global-var contributions to `into`: names that are package names
/// are dropped (SPK's rule), values are sets.
pub fn add_global_vars(
    into: &mut GlobalVars,
    vars: impl IntoIterator<Item = (String, String)>,
    package_names: &BTreeSet<&str>,
) {
    for (name, value) in vars {
        if !package_names.contains(name.as_str()) {
            into.entry(name).or_default().insert(value);
        }
    }
}
