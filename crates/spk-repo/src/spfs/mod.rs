//! spfs filesystem repositories, as SPK sites store packages in them.
//!
//! An SPK site's repositories (`origin` and friends) are spfs repositories,
//! and only filesystem ones (`file:///...`) can carry an index, so the index
//! generator reads packages straight from spfs's layout on disk:
//!
//! - [`Digest`]: SHA-256 in spfs's padded base32 spelling; a payload lives at
//!   `<root>/payloads/<D[0:2]>/<D[2:]>`;
//! - [`tag`]: tag streams (`tags/<path>.tag`), history records whose last
//!   one is the current target;
//! - [`SpfsRepo`]: listing packages, versions, builds and published
//!   components, and reading build specs (tag → payload), cheaply enough to
//!   walk 100,000 builds in parallel;
//! - [`config`]: where a named repository lives, from spfs's config files
//!   and `SPFS_...` environment variables, as SPK itself finds it;
//! - [`write`]: writing payloads and tags the way spfs does, for the
//!   synthetic repository generator and for tests.
//!
//! SPK's tags (see `spfs-repo-format.md`):
//! `spk/spec/<name>/<version>` (recipe), `spk/spec/<name>/<version>/<build>`
//! (build spec), `spk/pkg/<name>/<version>/<build>/<component>` (one per
//! published component) and the legacy `spk/pkg/<name>/<version>/<build>`.
//! Versions in tag paths are normalised and spell `+` as `..`.
//!
//! Readers of specs need only `payloads/`: spfs also stores a Blob object
//! for each payload under `objects/`, but SPK's `ls`, `info` and
//! `repo index` never read it, so [`write`] does not write one.

pub mod config;
mod digest;
mod repo;
pub mod tag;
pub mod write;

use std::io;
use std::path::{Path, PathBuf};

pub use digest::{Digest, DigestParseError, DIGEST_SIZE, DIGEST_TEXT_LEN};
pub use repo::{
    embed_stub_tag_name, BuildName, SpfsRepo, VersionEntry, EMBEDDED_BY_PREFIX, MAX_SPEC_BYTES,
};
pub use tag::{TagProblem, TagRecord, TagStreamError};
pub use write::SpfsWriter;

/// Reading an spfs repository went wrong.
#[derive(Debug, thiserror::Error)]
pub enum SpfsError {
    #[error(
        "{} is not an spfs filesystem repository: one has a `tags` directory and a `VERSION` file \
         (beside `objects/` and `payloads/`), and this has neither",
        path.display()
    )]
    NotARepository { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    TagStream(#[from] TagStreamError),
    #[error("no tag {}", path.display())]
    NoSuchTag { path: PathBuf },
    #[error("tag {tag} points to payload {digest}, which is missing ({})", path.display())]
    MissingPayload {
        tag: String,
        digest: Digest,
        path: PathBuf,
    },
    #[error(
        "tag {tag} points to a spec of {size} bytes ({}), more than the {max} bytes a spec may have; it is skipped",
        path.display()
    )]
    PayloadTooLarge {
        tag: String,
        path: PathBuf,
        size: u64,
        max: u64,
    },
    #[error(
        "{build} has no published components: no component tags in {} and no legacy tag {}",
        dir.display(),
        legacy.display()
    )]
    NoComponents {
        build: String,
        dir: PathBuf,
        legacy: PathBuf,
    },
    #[error(
        "{build} is an embed stub: it has no component tags; its spec declares its components"
    )]
    EmbedStub { build: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path:?} is not a tag path usable here: {reason}")]
    BadTagPath { path: String, reason: &'static str },
}

impl SpfsError {
    pub(crate) fn io(path: &Path, source: io::Error) -> SpfsError {
        SpfsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn write(path: &Path, source: io::Error) -> SpfsError {
        SpfsError::Write {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The build has neither component tags nor a legacy tag: SPK leaves
    /// such builds out of its index.
    pub fn is_no_components(&self) -> bool {
        matches!(self, SpfsError::NoComponents { .. })
    }

    /// The build is an embed stub, whose components come from its spec.
    pub fn is_embed_stub(&self) -> bool {
        matches!(self, SpfsError::EmbedStub { .. })
    }
}

#[cfg(test)]
mod tests;
