//! Publishing and removing a build the way SPK leaves it in an spfs
//! repository (a spec payload, its spec tag, one tag per component), for
//! tests, the demo and the Indexer's end-to-end runs. SPK itself publishes
//! with `spk publish`; this writes the same tags without building anything.

use crate::indexed::BuildId;
use crate::spfs::{embed_stub_tag_name, Digest, SpfsError, SpfsWriter};
use crate::v0;

/// Why a build could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the spec cannot be published: {0}")]
    Spec(#[from] v0::SpecError),
    #[error(transparent)]
    Spfs(#[from] SpfsError),
}

/// Where a build's tags live: `(name, version folder, build tag name)`.
pub fn tag_parts(parsed: &v0::ParsedBuild) -> (String, String, String) {
    let folder = v0::tag_folder(&parsed.listed_version());
    let build = match &parsed.build.build {
        BuildId::Source => "src".to_string(),
        BuildId::Digest(d) => d.clone(),
        other => embed_stub_tag_name(&other.to_string()),
    };
    (parsed.name.clone(), folder, build)
}

/// Publishes the build spec `yaml` with the given published components
/// (`build`, `run`, `src`, named ones). Returns the spec tag's path.
pub fn publish(w: &SpfsWriter, yaml: &str, components: &[&str]) -> Result<String, PublishError> {
    let parsed = v0::parse_build_spec(yaml.as_bytes())?;
    let (name, folder, build) = tag_parts(&parsed);
    let digest = w.write_payload(yaml.as_bytes())?;
    let spec_tag = format!("spk/spec/{name}/{folder}/{build}");
    w.write_tag(&spec_tag, digest)?;
    for c in components {
        let tag = format!("spk/pkg/{name}/{folder}/{build}/{c}");
        // A component's layer is not needed to list or index a build; the
        // tag points at a digest unique to it.
        w.write_tag(&tag, Digest::of(tag.as_bytes()))?;
    }
    Ok(spec_tag)
}

/// Removes a published build: its spec tag and its component tags.
pub fn unpublish(
    w: &SpfsWriter,
    name: &str,
    version: &str,
    build: &str,
) -> Result<(), PublishError> {
    let v = v0::parse_version(version).map_err(|e| v0::SpecError::Invalid {
        path: "pkg".into(),
        problem: e.to_string(),
    })?;
    let folder = v0::tag_folder(&v0::storage_version(&v));
    w.remove_tag(&format!("spk/spec/{name}/{folder}/{build}"))?;
    let dir = w
        .root()
        .join(format!("tags/spk/pkg/{name}/{folder}/{build}"));
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if let Some(c) = e.file_name().to_string_lossy().strip_suffix(".tag") {
                w.remove_tag(&format!("spk/pkg/{name}/{folder}/{build}/{c}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spfs::SpfsRepo;

    #[test]
    fn published_builds_are_listed_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let w = SpfsWriter::create(d.path()).unwrap();
        let yaml = "pkg: zlib/1.2/ABCDEFGH\napi: v0/package\n";
        let tag = publish(&w, yaml, &["build", "run"]).unwrap();
        assert_eq!(tag, "spk/spec/zlib/1.2.0/ABCDEFGH");
        let r = SpfsRepo::open(d.path()).unwrap();
        assert_eq!(
            r.read_spec("zlib", "1.2.0", "ABCDEFGH").unwrap(),
            yaml.as_bytes()
        );
        assert_eq!(
            r.components("zlib", "1.2.0", "ABCDEFGH").unwrap(),
            ["build", "run"]
        );
        unpublish(&w, "zlib", "1.2", "ABCDEFGH").unwrap();
        assert!(r.read_spec("zlib", "1.2.0", "ABCDEFGH").is_err());
        assert!(r.components("zlib", "1.2.0", "ABCDEFGH").is_err());
    }
}
