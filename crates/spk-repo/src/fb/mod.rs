//! SPK's index file, `index/spk/index_v1.fb`, as FlatBuffers bytes.
//!
//! The wire format is SPK 0.44.0's, described by our schema
//! `crates/spk-repo/schema/spk_index.fbs` (wire-identical to SPK's own; the
//! Rust in [`generated`] is what `cargo xtask codegen` makes of it). This
//! module turns the plain model of [`crate::indexed`] into those bytes
//! ([`encode`], [`assemble`]) and back ([`IndexFile`]), and checks bytes the
//! way SPK does before it trusts them ([`verify`]).
//!
//! # Layout of the files we write
//!
//! Every FlatBuffers offset is relative and uoffsets point forward, so a
//! package's whole subtree (its `PackageIndex` table and everything below
//! it) can live in a contiguous, self-contained byte range anywhere after
//! the vector that points at it. We use that:
//!
//! ```text
//! 0      root uoffset → root table
//! 4      root vtable, root table (packages, global_vars; the schema version
//!        is left out, as SPK does: its default is 1)
//!        packages vector: n uoffsets, one per package blob
//! D      (8-aligned, referenced by nothing) directory:
//!        "SPKTBLB3", n: u32, crc32 of the n entries: u32,
//!        then n × (start: u32, end: u32, crc32 of the blob's bytes: u32,
//!                  versions: u32, builds: u32, deprecated builds: u32)
//!        global vars: a blob of its own
//!        package blobs, each at an 8-aligned position, sorted by name
//! ```
//!
//! Each package blob is a finished FlatBuffers buffer of its own
//! (`[uoffset to its PackageIndex][...]`), made by its own builder. Why:
//! - packages are encoded in parallel (one builder per package, rayon), then
//!   the file is put together with one copy per blob;
//! - an update can copy an unchanged package's bytes verbatim from the
//!   previous file ([`IndexFile::raw_package`], [`PackagePart::Raw`]) instead
//!   of decoding and re-encoding it.
//!
//! Blobs stay valid when moved because a builder aligns everything relative
//! to the end of its buffer and pads the finished buffer to a multiple of its
//! largest alignment (at most 4 for this schema), so a blob placed at an
//! 8-aligned position keeps every alignment relative to the file start.
//!
//! The directory is how a later update finds the blobs of a file *we*
//! wrote, and their counts (for its summary) without walking them;
//! FlatBuffers readers (SPK, flatc) never look at bytes nothing points to.
//! A file without it (SPK's own, or one written with an earlier directory
//! format) is simply decoded and re-encoded.
//!
//! # Verification: each blob once, when it is made
//!
//! SPK verifies a whole index before it reads any of it; at 100,000 builds
//! that is half a second of CPU, which an `ls` of one package or an update
//! of one package cannot afford three times over. What we verify instead,
//! and why it is enough:
//!
//! - **Writing.** Every package blob is verified standalone when it is
//!   encoded ([`encode_package`], [`assemble`] of a fresh package, in
//!   parallel as part of encoding): FlatBuffers verification with SPK's
//!   options, and the semantic checks of the decoder (what would make SPK
//!   panic or misread). A failure is [`FbError::Encode`], and nothing is
//!   written: an encoder bug cannot reach an installed index. The blob's
//!   crc32 is recorded in the directory. A package copied from the old file
//!   ([`PackagePart::Raw`]) is copied only if its bytes still have the crc32
//!   recorded when it was written, so it is, byte for byte, a blob that was
//!   verified when it was made; it is not verified again.
//! - **Why the blobs' verification covers the file.** A blob that verifies
//!   standalone verifies the same inside the file: all its offsets are
//!   relative and stay inside the blob, and it sits at an 8-aligned position,
//!   so every alignment is kept. The rest of the file (root table, packages
//!   vector, directory, global vars) is checked when the file is read back
//!   before it is installed, and the packages vector must point at each
//!   blob's root. What per-blob verification cannot see are FlatBuffers'
//!   global limits: 2 GiB of apparent size, 100 million tables (SPK's
//!   limit), depth 64. None can be exceeded by a file of ours under
//!   [`FULL_VERIFY_FROM`] (256 MiB): a table takes at least 4 bytes, our
//!   blobs share no tables, only vtables (at most 28 bytes, each used by
//!   a table of at least 8) and strings of at most `SHARED_STRING_MAX`
//!   (16) bytes (21 as the verifier counts them, each reached through an
//!   offset of 4 bytes), so the apparent size is at most 6.25 times the
//!   bytes (1.6 GiB at 256 MiB), and the schema is not recursive (its
//!   deepest path, root table included, is 11 tables). Files of 256 MiB or
//!   more are verified whole, as SPK does, when opened and before they are
//!   installed.
//! - **Installing** (`generate::install`): the written file is read back
//!   from disk and opened as below, the directory must be there, and every
//!   blob's crc32 must match (about 10 ms for 100 MB), which catches a torn
//!   or damaged write.
//! - **Reading** ([`IndexFile::open`], used by `ls`, `show` and an update's
//!   old file): only the root table, the packages vector's bounds, the
//!   global vars (deeply: they are small), the schema version and the
//!   directory's header and the crc32 of its entries are verified up front
//!   (an entry is checked to be a place in the file when it is used). Each
//!   package is verified when it is first used, and only as far as it is
//!   read: a package's name (its table and name string) before a binary
//!   search compares it, the whole
//!   package (FlatBuffers verification with SPK's options, then the semantic
//!   checks, then, in a file of ours, its crc32, which catches damage
//!   FlatBuffers cannot see, such as a changed string byte) before it is
//!   decoded. A damaged package is then an error about that package, and
//!   the others still read (an update re-reads it from the repository; a
//!   binary search that meets a package whose name cannot be read searches
//!   the rest of its range linearly). [`IndexFile::open_verified`] verifies
//!   everything up front, as before. Per-package verification is SPK's
//!   verification of that package, but for the global counters: a foreign
//!   file whose packages share tables (no FlatBuffers builder writes one)
//!   could pass it and still exceed SPK's limits. We then read it safely,
//!   and what we write from it has our layout again.
//!
//! Nothing here reads unverified bytes through the generated accessors:
//! there is no `root_unchecked`. A package is read through
//! `flatbuffers::root_with_opts` of the bytes from its packages-vector
//! element on (the element's uoffset is read as a root offset), which
//! verifies it; names, positions and counts are read through the
//! FlatBuffers `Verifier`'s own bounds-checked getters. The crc32 detects
//! accidental damage, not forgery: a file crafted to match its checksums can
//! at worst make an update copy blobs that SPK's own verification then
//! refuses, never make this process read out of bounds.
//!
//! # Rules the encoder follows (SPK's reader depends on them)
//! - packages sorted byte-wise by name (binary search), no empty vectors,
//!   no default-valued scalars, no union type without its value;
//! - every `Version` stores `epsilon = None (1)` (the schema default is
//!   Minus, which SPK reads as "just below the version");
//! - wildcard rules carry `parts` and no version; named components carry
//!   their name, built-ins don't.
//!
//! The decoder refuses what would make SPK panic or misread (a build id not
//! 8 characters long, a named component without name, an option without
//! value, operator 4 or unknown, a rule without version, a bad compat
//! text, a version without epsilon None) with [`FbError::Semantics`] naming
//! the package, version and build.

#[allow(
    unsafe_code,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    missing_debug_implementations,
    unused_imports,
    dead_code,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unused_extern_crates,
    deprecated
)]
#[rustfmt::skip]
pub mod generated;

mod decode;
mod encode;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

pub use decode::{check, IndexFile, RawPackage};
pub use encode::{assemble, encode, encode_package, Assembled, EncodedPackage, PackagePart};

/// The schema version SPK 0.44.0 reads (`index_v1.fb`).
pub const SCHEMA_VERSION: u32 = 1;

/// The 8 bytes that start the blob directory of a file we wrote (the `3`:
/// entries carry a crc32 and the package's counts, and the header the
/// crc32 of the entries; directories of the earlier formats `SPKTBLB1`,
/// without checksums, and `SPKTBLB2`, without counts, are ignored, so such
/// a file is decoded and encoded again once).
pub const DIRECTORY_MAGIC: &[u8; 8] = b"SPKTBLB3";

/// Files this large or larger are verified whole, as SPK does, when opened
/// and before they are installed: below it, FlatBuffers' global limits
/// cannot be reached (see the module docs), so verifying each package on
/// its own is the same verification.
pub const FULL_VERIFY_FROM: usize = 256 << 20;

/// Packages, versions, builds and deprecated builds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexCounts {
    pub packages: u64,
    pub versions: u64,
    pub builds: u64,
    pub deprecated: u64,
}

impl IndexCounts {
    /// The counts of one package of the model.
    pub fn of(p: &crate::indexed::PackageIndex) -> IndexCounts {
        let builds = p.versions.iter().flat_map(|v| &v.builds);
        IndexCounts {
            packages: 1,
            versions: p.versions.len() as u64,
            builds: builds.clone().count() as u64,
            deprecated: builds.filter(|b| b.deprecated).count() as u64,
        }
    }

    pub fn add(&mut self, o: IndexCounts) {
        self.packages += o.packages;
        self.versions += o.versions;
        self.builds += o.builds;
        self.deprecated += o.deprecated;
    }
}

/// SPK's verifier options: the crate defaults, but 100 million tables
/// (SPK raises the limit of 1 million, too small for real indexes).
pub fn verifier_options() -> flatbuffers::VerifierOptions {
    flatbuffers::VerifierOptions {
        max_depth: 64,
        max_tables: 100_000_000,
        max_apparent_size: 1 << 31,
        ignore_missing_null_terminator: false,
    }
}

/// What went wrong with an index file. Every message names the file (or
/// says it was bytes in memory), what is wrong, and what would be right.
#[derive(Debug, thiserror::Error)]
pub enum FbError {
    #[error("cannot read the SPK index {}: {source}", Shown(.path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is empty (0 bytes), so it is not an SPK index (a valid one holds at least a root table); {REGENERATE}",
        Where(.path)
    )]
    Empty { path: Option<PathBuf> },
    #[error(
        "{} is not a valid SPK index (FlatBuffers verification failed: {}); {REGENERATE}",
        Where(.path), one_line(.source)
    )]
    Verify {
        path: Option<PathBuf>,
        #[source]
        source: flatbuffers::InvalidFlatbuffer,
    },
    #[error(
        "{} has index schema version {found}, but SPK 0.44.0 and this tool read only version {SCHEMA_VERSION} (index_v{SCHEMA_VERSION}.fb); {REGENERATE}",
        Where(.path)
    )]
    SchemaVersion { path: Option<PathBuf>, found: u32 },
    #[error(
        "{} holds data SPK cannot use, at {at}: {problem}; {REGENERATE}",
        Where(.path)
    )]
    Semantics {
        path: Option<PathBuf>,
        /// Package, version, build and field.
        at: String,
        problem: String,
    },
    /// One package failed the FlatBuffers verification it gets when it is
    /// first read (the rest of the file may be fine).
    #[error(
        "{} is not a valid SPK index (FlatBuffers verification of package #{index}{} failed: {}); {REGENERATE}",
        Where(.path), Named(.name), one_line(.source)
    )]
    Package {
        path: Option<PathBuf>,
        /// Position in the packages vector.
        index: usize,
        /// The package's name, when that much of it could be read.
        name: Option<String>,
        #[source]
        source: Box<flatbuffers::InvalidFlatbuffer>,
    },
    /// A package blob of a file we wrote is not what was written: its bytes
    /// do not match the crc32 recorded with them, or the packages vector
    /// does not point at it.
    #[error(
        "{} is damaged: package #{index}{} {problem}; {REGENERATE}",
        Where(.path), Named(.name)
    )]
    Damaged {
        path: Option<PathBuf>,
        index: usize,
        name: Option<String>,
        problem: String,
    },
    /// A file just written lacks what this tool always writes.
    #[error("{} does not have the layout this tool writes: {problem}", Where(.path))]
    Layout {
        path: Option<PathBuf>,
        problem: String,
    },
    /// A freshly encoded package did not verify: a bug in this encoder (or
    /// in what produced the model). Nothing is written.
    #[error(
        "encoding package {package} made bytes that do not pass verification ({problem}); this is a bug in spk-repo's encoder, and nothing was written"
    )]
    Encode { package: String, problem: String },
}

const REGENERATE: &str = "regenerate it with `spk repo index --repo <repository>`";

impl FbError {
    /// The file the error is about, if it came from a file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            FbError::Io { path, .. } => Some(path),
            FbError::Empty { path }
            | FbError::Verify { path, .. }
            | FbError::SchemaVersion { path, .. }
            | FbError::Semantics { path, .. }
            | FbError::Package { path, .. }
            | FbError::Damaged { path, .. }
            | FbError::Layout { path, .. } => path.as_deref(),
            FbError::Encode { .. } => None,
        }
    }
}

/// `the SPK index /x/index_v1.fb` or `the index bytes (not from a file)`.
struct Where<'a>(&'a Option<PathBuf>);

impl fmt::Display for Where<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "the SPK index {}", p.display()),
            None => f.write_str("the index bytes (not from a file)"),
        }
    }
}

/// ` (name)`, or nothing when the name is not known.
struct Named<'a>(&'a Option<String>);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, " ({n})"),
            None => Ok(()),
        }
    }
}

struct Shown<'a>(&'a Path);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// The verifier's messages span lines (an error trace); ours are one line.
fn one_line(e: &flatbuffers::InvalidFlatbuffer) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks `bytes` as SPK does before it uses an index: FlatBuffers
/// verification with SPK's limits ([`verifier_options`]), then the schema
/// version (absent reads as 1).
pub fn verify(bytes: &[u8]) -> Result<(), FbError> {
    verify_at(bytes, None).map(|_| ())
}

/// [`verify`], naming `path` in errors; returns the verified root.
fn verify_at<'b>(
    bytes: &'b [u8],
    path: Option<&Path>,
) -> Result<generated::RepositoryIndex<'b>, FbError> {
    let path_buf = || path.map(Path::to_path_buf);
    if bytes.is_empty() {
        return Err(FbError::Empty { path: path_buf() });
    }
    let root = generated::root_as_repository_index_with_opts(&verifier_options(), bytes).map_err(
        |source| FbError::Verify {
            path: path_buf(),
            source,
        },
    )?;
    let found = root.index_schema_version();
    if found != SCHEMA_VERSION {
        return Err(FbError::SchemaVersion {
            path: path_buf(),
            found,
        });
    }
    Ok(root)
}
