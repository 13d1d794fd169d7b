//! Reading SPK's packages out of an spfs filesystem repository.
//!
//! SPK keeps no list of packages: everything is found by listing tag
//! directories (`tags/spk/spec/<name>/<version>/<build>.tag`) and following
//! tags to payloads. An index generator does that for every build, so the
//! listing here costs one `read_dir` per directory and no `stat` per entry
//! (the entry's file type comes with the directory listing on Linux), and
//! every method takes `&self` so rayon can call them from many threads.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::digest::Digest;
use super::tag::latest_record;
use super::SpfsError;
use crate::v0::ident::is_package_name;

/// The suffix of a tag stream file.
const TAG_EXT: &str = ".tag";
/// The suffix of a tag namespace directory (ignored here).
const NAMESPACE_MARKER: &str = "#ns";
/// The build-name prefix of an embed stub's tag.
pub const EMBEDDED_BY_PREFIX: &str = "embedded-by-";

/// The largest build spec read (16 MiB): SPK's specs are a few KiB, so a
/// larger payload is a spec problem (reported, the build skipped), never an
/// allocation of whatever size the file has.
pub const MAX_SPEC_BYTES: u64 = 16 * 1024 * 1024;

/// An opened spfs filesystem repository.
#[derive(Debug, Clone)]
pub struct SpfsRepo {
    root: PathBuf,
    tags: PathBuf,
    payloads: PathBuf,
}

/// One version of a package as the repository lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionEntry {
    /// The name on disk (`2.1.0..r.3`): what [`SpfsRepo::builds`] and the
    /// other per-version methods take.
    pub folder: String,
    /// The version text with spfs's `..` decoded back to `+` (`2.1.0+r.3`).
    pub version: String,
    /// True when there is a folder of builds; false for a version that has
    /// only its recipe tag (`<version>.tag`), which SPK lists too.
    pub has_builds: bool,
}

/// What kind of build a build name is, as SPK tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildName {
    /// `src`
    Source,
    /// Eight characters of base32 (A–Z, 2–7).
    Digest(String),
    /// `embedded-by-<BASE32>`: an embed stub; the decoded build text,
    /// `embedded[parent:run/1.2.0/GMTG3CXY]`.
    EmbedStub(String),
    /// Anything else; SPK warns and ignores it.
    Invalid,
}

impl BuildName {
    /// Classifies a build name from a tag file name.
    pub fn classify(build: &str) -> BuildName {
        if build == "src" {
            return BuildName::Source;
        }
        if let Some(encoded) = build.strip_prefix(EMBEDDED_BY_PREFIX) {
            return data_encoding::BASE32_NOPAD
                .decode(encoded.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|text| text.starts_with("embedded[") && text.ends_with(']'))
                .map_or(BuildName::Invalid, BuildName::EmbedStub);
        }
        if build.len() == 8
            && build
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        {
            return BuildName::Digest(build.to_string());
        }
        BuildName::Invalid
    }
}

/// The tag file name of an embed stub whose build text is `text`
/// (`embedded[parent:run/1.2.0/GMTG3CXY]`): `embedded-by-` and the text in
/// base32 without padding, as SPK names it.
pub fn embed_stub_tag_name(text: &str) -> String {
    format!(
        "{EMBEDDED_BY_PREFIX}{}",
        data_encoding::BASE32_NOPAD.encode(text.as_bytes())
    )
}

/// Entries of a tags directory: sub-directories and tag names. Hidden
/// entries, lock/work files and namespace directories are left out. A
/// missing directory is empty.
struct Listing {
    folders: Vec<String>,
    tags: Vec<String>,
}

fn list_tags_dir(dir: &Path) -> Result<Listing, SpfsError> {
    let mut listing = Listing {
        folders: Vec::new(),
        tags: Vec::new(),
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => return Err(SpfsError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| SpfsError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::debug!(dir = %dir.display(), name = ?name, "ignoring a non-UTF-8 tag entry");
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(|e| SpfsError::io(dir, e))?;
        // A symlink says nothing about its target: follow it (rare).
        let is_dir = if file_type.is_symlink() {
            entry.path().is_dir()
        } else {
            file_type.is_dir()
        };
        if is_dir {
            if !name.ends_with(NAMESPACE_MARKER) {
                listing.folders.push(name.to_string());
            }
        } else if let Some(stem) = name.strip_suffix(TAG_EXT) {
            if !stem.is_empty() {
                listing.tags.push(stem.to_string());
            }
        }
    }
    Ok(listing)
}

impl SpfsRepo {
    /// Opens the repository at `root`: a directory with a `tags` directory
    /// and/or a `VERSION` file.
    pub fn open(root: impl AsRef<Path>) -> Result<SpfsRepo, SpfsError> {
        let root = root.as_ref().to_path_buf();
        let meta = fs::metadata(&root).map_err(|e| SpfsError::io(&root, e))?;
        if !meta.is_dir() {
            return Err(SpfsError::NotARepository { path: root });
        }
        let tags = root.join("tags");
        if !tags.is_dir() && !root.join("VERSION").is_file() {
            return Err(SpfsError::NotARepository { path: root });
        }
        Ok(SpfsRepo {
            payloads: root.join("payloads"),
            tags,
            root,
        })
    }

    /// The repository's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of the tag `path` (`spk/spec/zlib/1.2.13`), whether or not
    /// it exists.
    pub fn tag_file(&self, path: &str) -> PathBuf {
        let mut p = self.tags.join(path);
        p.as_mut_os_string().push(TAG_EXT);
        p
    }

    /// The file holding the payload `digest`.
    pub fn payload_path(&self, digest: &Digest) -> PathBuf {
        digest.path_in(&self.payloads)
    }

    /// The current target of the tag `path`, or `None` if there is no such
    /// tag.
    pub fn resolve_tag(&self, path: &str) -> Result<Option<Digest>, SpfsError> {
        let file = self.tag_file(path);
        let bytes = match fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SpfsError::io(&file, e)),
        };
        Ok(Some(latest_record(&file, &bytes)?.target))
    }

    /// The bytes of the payload `digest`; `tag` names what pointed there,
    /// for the message if it is missing.
    pub fn read_payload(&self, tag: &str, digest: &Digest) -> Result<Vec<u8>, SpfsError> {
        let path = self.payload_path(digest);
        fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SpfsError::MissingPayload {
                    tag: tag.to_string(),
                    digest: *digest,
                    path,
                }
            } else {
                SpfsError::io(&path, e)
            }
        })
    }

    /// Package names: the folders under `tags/spk/spec/` that are valid
    /// package names, sorted.
    pub fn package_names(&self) -> Result<Vec<String>, SpfsError> {
        let mut names: Vec<String> = list_tags_dir(&self.tags.join("spk/spec"))?
            .folders
            .into_iter()
            .filter(|n| {
                let ok = is_package_name(n);
                if !ok {
                    tracing::debug!(name = %n, "ignoring a tag folder that is not a package name");
                }
                ok
            })
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    /// Whether [`SpfsRepo::package_names`] would list `name`, found without
    /// listing every package (an update of a few packages of many).
    pub fn has_package(&self, name: &str) -> Result<bool, SpfsError> {
        if !is_package_name(name) || name.starts_with('.') || name.ends_with(NAMESPACE_MARKER) {
            return Ok(false);
        }
        let dir = self.tags.join("spk/spec").join(name);
        match fs::metadata(&dir) {
            Ok(m) => Ok(m.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(SpfsError::io(&dir, e)),
        }
    }

    /// The versions of `name`: version folders under
    /// `tags/spk/spec/<name>/`, and recipe tags `<version>.tag` with no
    /// folder (SPK lists both), sorted by folder name. Versions are not
    /// parsed here.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionEntry>, SpfsError> {
        let listing = list_tags_dir(&self.tags.join("spk/spec").join(name))?;
        let mut out: Vec<VersionEntry> = listing
            .folders
            .iter()
            .map(|f| (f, true))
            .chain(
                listing
                    .tags
                    .iter()
                    .filter(|t| !listing.folders.contains(t))
                    .map(|t| (t, false)),
            )
            .map(|(folder, has_builds)| VersionEntry {
                version: folder.replace("..", "+"),
                folder: folder.clone(),
                has_builds,
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The builds of one version: the tag names in
    /// `tags/spk/spec/<name>/<version_folder>/` (`src`, digests and
    /// `embedded-by-...` stubs; see [`BuildName::classify`]), sorted.
    pub fn builds(&self, name: &str, version_folder: &str) -> Result<Vec<String>, SpfsError> {
        let dir = self.tags.join("spk/spec").join(name).join(version_folder);
        let mut builds = list_tags_dir(&dir)?.tags;
        builds.sort_unstable();
        Ok(builds)
    }

    /// The build spec (YAML bytes) of one build: its spec tag's current
    /// target, read from `payloads/`.
    pub fn read_spec(
        &self,
        name: &str,
        version_folder: &str,
        build: &str,
    ) -> Result<Vec<u8>, SpfsError> {
        let tag = format!("spk/spec/{name}/{version_folder}/{build}");
        let digest = self
            .resolve_tag(&tag)?
            .ok_or_else(|| SpfsError::NoSuchTag {
                path: self.tag_file(&tag),
            })?;
        self.read_payload_at_most(&tag, &digest, MAX_SPEC_BYTES)
    }

    /// [`Self::read_payload`], refusing a payload larger than `max` bytes
    /// without reading (or allocating) more than `max + 1` of them.
    pub fn read_payload_at_most(
        &self,
        tag: &str,
        digest: &Digest,
        max: u64,
    ) -> Result<Vec<u8>, SpfsError> {
        use std::io::Read as _;
        let path = self.payload_path(digest);
        let missing = |e: io::Error| {
            if e.kind() == io::ErrorKind::NotFound {
                SpfsError::MissingPayload {
                    tag: tag.to_string(),
                    digest: *digest,
                    path: path.clone(),
                }
            } else {
                SpfsError::io(&path, e)
            }
        };
        let f = fs::File::open(&path).map_err(missing)?;
        let too_large = |size: u64| SpfsError::PayloadTooLarge {
            tag: tag.to_string(),
            path: path.clone(),
            size,
            max,
        };
        if let Ok(m) = f.metadata() {
            if m.len() > max {
                return Err(too_large(m.len()));
            }
        }
        let mut bytes = Vec::new();
        f.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| SpfsError::io(&path, e))?;
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if len > max {
            return Err(too_large(len));
        }
        Ok(bytes)
    }

    /// The components published for one build, sorted: the component tags
    /// in `tags/spk/pkg/<name>/<version>/<build>/`; for a build stored the
    /// legacy way (only `tags/spk/pkg/<name>/<version>/<build>.tag`),
    /// `[src]` for `src` and `[build, run]` otherwise.
    ///
    /// Errors to tell apart ([`SpfsError::is_no_components`],
    /// [`SpfsError::is_embed_stub`]): a build with neither (SPK skips it
    /// when indexing), and an embed stub, which has no component tags at
    /// all: its components are the ones its spec declares.
    pub fn components(
        &self,
        name: &str,
        version_folder: &str,
        build: &str,
    ) -> Result<Vec<String>, SpfsError> {
        let base = format!("spk/pkg/{name}/{version_folder}/{build}");
        if build.starts_with(EMBEDDED_BY_PREFIX) {
            return Err(SpfsError::EmbedStub {
                build: format!("{name}/{version_folder}/{build}"),
            });
        }
        let dir = self.tags.join(&base);
        let mut names: Vec<String> = list_tags_dir(&dir)?
            .tags
            .into_iter()
            .filter(|c| is_package_name(c))
            .collect();
        if !names.is_empty() {
            names.sort_unstable();
            return Ok(names);
        }
        let legacy = self.tag_file(&base);
        match fs::metadata(&legacy) {
            Ok(m) if m.is_file() => Ok(if build == "src" {
                vec!["src".to_string()]
            } else {
                vec!["build".to_string(), "run".to_string()]
            }),
            Ok(_) => Err(SpfsError::NoComponents {
                build: format!("{name}/{version_folder}/{build}"),
                dir,
                legacy,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SpfsError::NoComponents {
                build: format!("{name}/{version_folder}/{build}"),
                dir,
                legacy,
            }),
            Err(e) => Err(SpfsError::io(&legacy, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_names_are_classified_as_spk_does() {
        assert_eq!(BuildName::classify("src"), BuildName::Source);
        assert_eq!(
            BuildName::classify("GMTG3CXY"),
            BuildName::Digest("GMTG3CXY".into())
        );
        for bad in [
            "gmtg3cxy",
            "GMTG3CX",
            "GMTG3CXY1",
            "GMTG3CX1",
            "embedded-by-!!",
        ] {
            assert_eq!(BuildName::classify(bad), BuildName::Invalid, "{bad}");
        }
        let text = "embedded[my-tool:run/1.2.0/GMTG3CXY]";
        let tag = embed_stub_tag_name(text);
        assert!(tag.starts_with("embedded-by-"));
        assert!(!tag.contains('='));
        assert_eq!(BuildName::classify(&tag), BuildName::EmbedStub(text.into()));
    }

    #[test]
    fn names() {
        // Package and component names: SPK's rule, as the spec parser has it.
        assert!(is_package_name("my-tool2"));
        for bad in ["a", "-ab", "Abc", "a_b", "a.b", &"x".repeat(65)] {
            assert!(!is_package_name(bad), "{bad}");
        }
    }
}
