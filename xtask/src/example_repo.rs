//! `cargo xtask example-repo [--check]`
//!
//! (Re)generates the bundled example repository `examples/origin`, an spfs
//! filesystem repository as SPK leaves it after `spk publish`, from the
//! readable build specs in `examples/origin-specs/*.yaml` (one build each):
//! each spec becomes a payload, its spec tag
//! `spk/spec/<name>/<version>/<build>` and one component tag
//! `spk/pkg/<name>/<version>/<build>/<component>` per component the spec
//! declares (`src` for a source build, none for an embed stub, which SPK
//! publishes without components).
//!
//! `objects/` holds only an empty `.gitkeep`, so that git keeps the
//! directory spfs insists on.
//!
//! Deterministic: every tag record carries the same user and time, so
//! running it again gives the same bytes, and `--check` regenerates into
//! `target/` and fails if `examples/origin` differs (a spec was edited
//! without regenerating, or the repository was edited by hand).
//!
//! The index that `spk repo index --repo examples/origin` (or `cargo xtask
//! demo` in its copy) writes under `index/` is not part of the example.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use spk_repo::indexed::BuildId;
use spk_repo::spfs::SpfsWriter;

use crate::util::root;

/// The time and user of every tag record.
const FIXED_TIME: &str = "2024-05-01T10:00:00Z";
const USER: &str = "spk-example@localhost";

/// What the generator writes at the repository's root (the rest, such as
/// `README.md` and an `index/`, is not its business).
const PARTS: [&str; 4] = ["VERSION", "tags", "objects", "payloads"];

pub fn run(args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [a] if a == "--check" => true,
        _ => bail!("usage: cargo xtask example-repo [--check]"),
    };
    let specs = root().join("examples/origin-specs");
    let repo = root().join("examples/origin");
    if check {
        let fresh = root().join("target/example-repo-check");
        remove_parts(&fresh)?;
        generate(&specs, &fresh)?;
        let (want, have) = (files(&fresh)?, files(&repo)?);
        let mut problems = Vec::new();
        for (path, bytes) in &want {
            match have.get(path) {
                None => problems.push(format!("missing: {path}")),
                Some(b) if b != bytes => problems.push(format!("differs: {path}")),
                Some(_) => {}
            }
        }
        for path in have.keys().filter(|p| !want.contains_key(*p)) {
            problems.push(format!("not generated: {path}"));
        }
        if !problems.is_empty() {
            bail!(
                "examples/origin is not what examples/origin-specs gives; run `cargo xtask example-repo`:\n  {}",
                problems.join("\n  ")
            );
        }
        println!(
            "examples/origin is up to date ({} files from {})",
            want.len(),
            specs.display()
        );
        return Ok(());
    }
    remove_parts(&repo)?;
    let n = generate(&specs, &repo)?;
    println!(
        "wrote {n} builds from {} into {}",
        specs.display(),
        repo.display()
    );
    Ok(())
}

/// Removes what a previous run wrote.
fn remove_parts(repo: &Path) -> Result<()> {
    for part in PARTS {
        let p = repo.join(part);
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", p.display())),
        }
    }
    Ok(())
}

/// The spec files, sorted by name.
fn spec_files(specs: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(specs).with_context(|| format!("cannot read {}", specs.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("no *.yaml specs in {}", specs.display());
    }
    Ok(out)
}

/// Publishes every spec of `specs` into the spfs repository `repo`; returns
/// how many builds.
pub fn generate(specs: &Path, repo: &Path) -> Result<usize> {
    let time = chrono::DateTime::parse_from_rfc3339(FIXED_TIME)
        .context("FIXED_TIME")?
        .with_timezone(&chrono::Utc);
    let w = SpfsWriter::create(repo)?
        .with_user(USER)
        .with_fixed_time(time);
    // Nothing here is stored under `objects/` (SPK's ls and index never read
    // it), but spfs refuses a repository without that directory, and git
    // keeps no empty directory.
    let keep = repo.join("objects/.gitkeep");
    std::fs::write(&keep, "").with_context(|| format!("cannot write {}", keep.display()))?;
    let files = spec_files(specs)?;
    for f in &files {
        let yaml =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let parsed = spk_repo::v0::parse_build_spec(yaml.as_bytes())
            .with_context(|| format!("{} is not a build spec SPK can index", f.display()))?;
        let components: Vec<String> = match &parsed.build.build {
            BuildId::Source => vec!["src".to_string()],
            BuildId::Embedded(_) => Vec::new(),
            BuildId::Digest(_) => parsed
                .build
                .component_specs
                .iter()
                .map(|c| c.name.as_str().to_string())
                .collect(),
        };
        let refs: Vec<&str> = components.iter().map(String::as_str).collect();
        let tag = spk_repo::publish::publish(&w, &yaml, &refs)
            .with_context(|| format!("cannot publish {}", f.display()))?;
        println!("  {tag}  [{}]", components.join(", "));
    }
    Ok(files.len())
}

/// Every file the generator owns under `repo`, by relative path.
fn files(repo: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
        for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                walk(&p, base, out)?;
            } else {
                let rel = p.strip_prefix(base)?.to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p)?);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    for part in PARTS {
        let p = repo.join(part);
        if p.is_dir() {
            walk(&p, repo, &mut out)?;
        } else if p.is_file() {
            out.insert(part.to_string(), std::fs::read(&p)?);
        }
    }
    Ok(out)
}
