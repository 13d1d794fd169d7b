//! FlatBuffers bytes → the model: [`IndexFile`], an index (memory mapped
//! or in memory) read one package at a time or whole, each package verified
//! when it is first read (see "Verification" in the module docs of
//! [`crate::fb`]).
//!
//! Reading applies SPK's reader defaults where SPK has one (an out-of-range
//! enum reads as SPK reads it, a requirement without value is skipped as SPK
//! skips it) and refuses, as [`FbError::Semantics`], what would make SPK
//! panic or misread the index.

use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use flatbuffers::{ForwardsUOffset, InvalidFlatbuffer, Vector, Verifiable, Verifier};
use rayon::prelude::*;

use super::encode::{blob_root, DIRECTORY_ENTRY, DIRECTORY_HEADER};
use super::generated as fbs;
use super::{
    verifier_options, verify_at, FbError, IndexCounts, DIRECTORY_MAGIC, FULL_VERIFY_FROM,
    SCHEMA_VERSION,
};
use crate::indexed::{
    BuildId, BuildIndex, CompatRule, Component, ComponentEmbedded, ComponentSpec, EmbeddedParent,
    EmbeddedSpec, FilterRule, GlobalVars, InclusionPolicy, Inheritance, Opt, OptionValue,
    PackageIndex, PinPolicy, PkgOpt, PkgRequest, PreReleasePolicy, RangeOp, RepositoryIndex,
    Requirement, TagItem, VarOpt, VarRequest, Version, VersionIndex,
};

type Tables<'a, T> = Vector<'a, ForwardsUOffset<T>>;
type GlobalVarsVector<'a> = Tables<'a, fbs::GlobalVar<'a>>;

/// What [`IndexFile::package_names`] gives for a package whose name cannot
/// be read (its table is damaged); never a valid package name.
pub const UNREADABLE_NAME: &str = "<unreadable package>";

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// One blob of the directory: `[start, end)`, the crc32 of those bytes and
/// the package's counts.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: usize,
    end: usize,
    crc: u32,
    counts: IndexCounts,
}

/// An index file. Opening checks the root table, the packages vector's
/// bounds, the global vars, the schema version and the blob directory's
/// shape (the whole file too when it is [`FULL_VERIFY_FROM`] or larger, or
/// with [`IndexFile::open_verified`]); each package is verified when it is
/// read, as far as it is read.
pub struct IndexFile {
    path: Option<PathBuf>,
    bytes: Bytes,
    /// Position of the packages vector's first element (its uoffsets are
    /// verified to lie in the file, 4-aligned), and their number.
    elements: usize,
    len: usize,
    /// Position of the root table's `global_vars` field (a uoffset), if
    /// present; what it points to was verified deeply.
    globals_slot: Option<usize>,
    /// The blobs, for files we wrote.
    directory: Option<Directory>,
    /// Whether package names are in strictly ascending byte order (SPK's
    /// binary search needs it), found out only when a search misses.
    sorted: OnceLock<bool>,
}

impl fmt::Debug for IndexFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexFile")
            .field("path", &self.path)
            .field("bytes", &self.bytes.len())
            .field("packages", &self.len)
            .field("sorted", &self.sorted.get())
            .field("directory", &self.directory.is_some())
            .finish()
    }
}

/// The bytes of one package in a file we wrote, to be copied verbatim into a
/// new file by [`crate::fb::assemble`]. Made only by
/// [`IndexFile::raw_package`], which checks their crc32.
#[derive(Clone, Copy)]
pub struct RawPackage<'a> {
    name: &'a str,
    bytes: &'a [u8],
    crc: u32,
    counts: IndexCounts,
    /// The whole file the bytes are in, and where they start in it.
    file_bytes: &'a [u8],
    start: usize,
}

impl<'a> RawPackage<'a> {
    pub fn name(&self) -> &'a str {
        self.name
    }
    /// A finished FlatBuffers buffer whose root is the `PackageIndex`.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// The crc32 of [`RawPackage::bytes`], as recorded and checked.
    pub fn crc(&self) -> u32 {
        self.crc
    }
    /// The whole file the bytes are in, and where they start in it: a
    /// writer can then write a run of packages that lie one after the other
    /// in the file with one system call, straight from the file's map.
    pub fn in_file(&self) -> (&'a [u8], usize) {
        (self.file_bytes, self.start)
    }

    /// Versions, builds and deprecated builds, as the directory recorded
    /// them when the blob was encoded (the directory's own crc32 matched).
    pub fn counts(&self) -> IndexCounts {
        self.counts
    }
}

impl fmt::Debug for RawPackage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawPackage")
            .field("name", &self.name)
            .field("bytes", &self.bytes.len())
            .field("crc", &self.crc)
            .finish()
    }
}

/// A little-endian u32 at `at`, if it is in `bytes`.
fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// Where a uoffset at `pos` points (the verifier checks the uoffset).
fn follow(v: &mut Verifier<'_, '_>, pos: usize) -> Result<usize, InvalidFlatbuffer> {
    Ok(pos.saturating_add(v.get_uoffset(pos)? as usize))
}

/// What the shallow verification at open found.
struct Root {
    elements: usize,
    len: usize,
    globals_slot: Option<usize>,
}

/// The root table, the packages vector's bounds (as a vector of u32: not
/// the packages), the schema version, and the global vars (deeply, and as
/// [`IndexFile::global_vars`] reads them).
fn verify_root(bytes: &[u8], path: Option<&Path>) -> Result<Root, FbError> {
    let path_buf = || path.map(Path::to_path_buf);
    if bytes.is_empty() {
        return Err(FbError::Empty { path: path_buf() });
    }
    let fail = |source| FbError::Verify {
        path: path_buf(),
        source,
    };
    let opts = verifier_options();
    let mut v = Verifier::new(&opts, bytes);
    let root = follow(&mut v, 0).map_err(fail)?;
    type RI<'a> = fbs::RepositoryIndex<'a>;
    let mut t = v
        .visit_table(root)
        .and_then(|t| {
            t.visit_field::<u32>("index_schema_version", RI::VT_INDEX_SCHEMA_VERSION, false)
        })
        .and_then(|t| {
            t.visit_field::<ForwardsUOffset<Vector<'_, u32>>>("packages", RI::VT_PACKAGES, false)
        })
        .and_then(|t| {
            t.visit_field::<ForwardsUOffset<GlobalVarsVector<'_>>>(
                "global_vars",
                RI::VT_GLOBAL_VARS,
                false,
            )
        })
        .map_err(fail)?;
    let version = match t.deref(RI::VT_INDEX_SCHEMA_VERSION).map_err(fail)? {
        Some(at) => t.verifier().get_uoffset(at).map_err(fail)?,
        None => 1,
    };
    let (elements, len) = match t.deref(RI::VT_PACKAGES).map_err(fail)? {
        Some(slot) => {
            let vector = follow(t.verifier(), slot).map_err(fail)?;
            let n = t.verifier().get_uoffset(vector).map_err(fail)? as usize;
            (vector + 4, n)
        }
        None => (0, 0),
    };
    let globals_slot = t.deref(RI::VT_GLOBAL_VARS).map_err(fail)?;
    t.finish();
    if version != SCHEMA_VERSION {
        return Err(FbError::SchemaVersion {
            path: path_buf(),
            found: version,
        });
    }
    if let Some(slot) = globals_slot {
        // As `global_vars` will read them: verified from the slot on.
        flatbuffers::root_with_opts::<GlobalVarsVector<'_>>(&opts, &bytes[slot..]).map_err(fail)?;
    }
    Ok(Root {
        elements,
        len,
        globals_slot,
    })
}

impl IndexFile {
    /// Memory-maps `path` read-only and checks what every reader needs (see
    /// [`IndexFile`]); packages are verified as they are read.
    pub fn open(path: impl AsRef<Path>) -> Result<IndexFile, FbError> {
        IndexFile::open_with(path.as_ref(), false)
    }

    /// [`IndexFile::open`], and the whole file verified up front as SPK
    /// verifies it (FlatBuffers verification with SPK's limits).
    pub fn open_verified(path: impl AsRef<Path>) -> Result<IndexFile, FbError> {
        IndexFile::open_with(path.as_ref(), true)
    }

    fn open_with(path: &Path, whole: bool) -> Result<IndexFile, FbError> {
        let io = |source| FbError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Err(FbError::Empty {
                path: Some(path.to_path_buf()),
            });
        }
        let started = std::time::Instant::now();
        // SAFETY: index files are replaced by rename and never changed in
        // place (SPK's write protocol and ours), so the mapped bytes do not
        // change under us. A foreign writer truncating the file in place
        // could still fault this process, as it would SPK.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let index = IndexFile::new(Bytes::Mapped(map), Some(path.to_path_buf()), whole)?;
        tracing::debug!(
            path = %path.display(),
            bytes = len,
            packages = index.len(),
            directory = index.directory.is_some(),
            whole,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "index opened"
        );
        Ok(index)
    }

    /// Index bytes in memory (tests, or a file just assembled), checked as
    /// by [`IndexFile::open`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<IndexFile, FbError> {
        IndexFile::new(Bytes::Owned(bytes), None, false)
    }

    fn new(bytes: Bytes, path: Option<PathBuf>, whole: bool) -> Result<IndexFile, FbError> {
        if whole || bytes.len() >= FULL_VERIFY_FROM {
            verify_at(&bytes, path.as_deref())?;
        }
        let root = verify_root(&bytes, path.as_deref())?;
        let directory = read_directory(&bytes, root.elements, root.len);
        Ok(IndexFile {
            path,
            bytes,
            elements: root.elements,
            len: root.len,
            globals_slot: root.globals_slot,
            directory,
            sorted: OnceLock::new(),
        })
    }

    /// The file, if the index came from one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of packages.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the file has our blob directory (it was written by us), so
    /// that [`IndexFile::raw_package`] can hand out package bytes.
    pub fn has_directory(&self) -> bool {
        self.directory.is_some()
    }

    /// Position of the `i`-th element of the packages vector (a uoffset to
    /// the package's table), for `i < len`.
    fn element(&self, i: usize) -> usize {
        self.elements + 4 * i
    }

    /// The `i`-th package's name. Verified first, as far as it is read: the
    /// package's table (its vtable and bounds) and its name string (bounds,
    /// UTF-8, terminator), by the FlatBuffers verifier with SPK's options.
    fn name_at(&self, i: usize) -> Result<&str, FbError> {
        let bytes: &[u8] = &self.bytes;
        let read = || -> Result<&str, InvalidFlatbuffer> {
            let opts = verifier_options();
            let mut v = Verifier::new(&opts, bytes);
            let table = follow(&mut v, self.element(i))?;
            let mut t = v.visit_table(table)?;
            let Some(slot) = t.deref(fbs::PackageIndex::VT_NAME)? else {
                return InvalidFlatbuffer::new_missing_required("name");
            };
            <ForwardsUOffset<&str>>::run_verifier(t.verifier(), slot)?;
            let at = follow(t.verifier(), slot)?;
            let n = t.verifier().get_uoffset(at)? as usize;
            t.finish();
            // Verified above: in the buffer, and UTF-8.
            let s = bytes
                .get(at + 4..at + 4 + n)
                .and_then(|b| std::str::from_utf8(b).ok());
            s.ok_or(InvalidFlatbuffer::RangeOutOfBounds {
                range: at..at + 4 + n,
                error_trace: Default::default(),
            })
        };
        read().map_err(|source| FbError::Package {
            path: self.path.clone(),
            index: i,
            name: None,
            source: Box::new(source),
        })
    }

    /// The `i`-th package's table, verified whole (FlatBuffers verification
    /// with SPK's options) by `root_with_opts` of the bytes from its
    /// packages-vector element on: the element's uoffset is read as the
    /// root offset, so everything the package refers to must lie after it,
    /// as it does in every file a FlatBuffers builder writes.
    fn verified_package(&self, i: usize) -> Result<fbs::PackageIndex<'_>, FbError> {
        let from = &self.bytes[self.element(i)..];
        flatbuffers::root_with_opts::<fbs::PackageIndex<'_>>(&verifier_options(), from).map_err(
            |source| FbError::Package {
                path: self.path.clone(),
                index: i,
                name: self.name_at(i).ok().map(str::to_string),
                source: Box::new(source),
            },
        )
    }

    /// For a file with a directory, package `i`'s blob after checking that
    /// the packages vector points at its root and that its bytes have the
    /// crc32 recorded when it was written, with its directory entry; `None`
    /// without a directory.
    fn checked_blob(&self, i: usize) -> Option<Result<(&[u8], Entry), FbError>> {
        let damaged = |problem: String| FbError::Damaged {
            path: self.path.clone(),
            index: i,
            name: self.name_at(i).ok().map(str::to_string),
            problem,
        };
        let Some(e) = self.directory?.entry(&self.bytes, i) else {
            return Some(Err(damaged(
                "has a directory entry that is not a place in the file".into(),
            )));
        };
        let blob = &self.bytes[e.start..e.end];
        let element = self.element(i);
        // In the verified vector.
        let target = u32_at(&self.bytes, element).map(|o| element + o);
        let root = e.start + blob_root(blob);
        if target != Some(root) || root >= e.end {
            return Some(Err(damaged(format!(
                "is not where the directory says (bytes {}..{})",
                e.start, e.end
            ))));
        }
        let crc = crc32fast::hash(blob);
        if crc != e.crc {
            return Some(Err(damaged(format!(
                "does not match the crc32 recorded when it was written (bytes {}..{}: {crc:08x}, recorded {:08x})",
                e.start, e.end, e.crc
            ))));
        }
        Some(Ok((blob, e)))
    }

    /// Package names, in file order (sorted, for a valid index). Each is
    /// verified as it is read; a package whose name cannot be read is given
    /// as [`UNREADABLE_NAME`], with a warning (reading it reports what is
    /// wrong). [`IndexFile::try_package_names`] fails instead.
    pub fn package_names(&self) -> Vec<&str> {
        (0..self.len)
            .map(|i| {
                self.name_at(i).unwrap_or_else(|e| {
                    tracing::warn!("{e}");
                    UNREADABLE_NAME
                })
            })
            .collect()
    }

    /// Package names, in file order; the first name that cannot be read is
    /// the error.
    pub fn try_package_names(&self) -> Result<Vec<&str>, FbError> {
        (0..self.len).map(|i| self.name_at(i)).collect()
    }

    /// Where the package `name` is (binary search, as SPK does); `None` also
    /// when the search met a package it cannot read and did not find `name`
    /// (see [`IndexFile::package`], which says so).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.find(name).ok().flatten()
    }

    /// Binary search over verified names. A probed package whose name cannot
    /// be read does not stop the search: the rest of the range is searched
    /// linearly, and only if `name` is not found is the damage the answer.
    /// A miss in a file whose names turn out not to be sorted (SPK's binary
    /// search would miss too) is retried linearly, with a warning.
    fn find(&self, name: &str) -> Result<Option<usize>, FbError> {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.name_at(mid) {
                Ok(probe) => match probe.as_bytes().cmp(name.as_bytes()) {
                    std::cmp::Ordering::Less => lo = mid + 1,
                    std::cmp::Ordering::Greater => hi = mid,
                    std::cmp::Ordering::Equal => return Ok(Some(mid)),
                },
                Err(e) => {
                    return match self.scan(lo..hi, name) {
                        Some(i) => Ok(Some(i)),
                        None => Err(e),
                    }
                }
            }
        }
        if self.is_sorted()? {
            return Ok(None);
        }
        Ok(self.scan(0..self.len, name))
    }

    /// The first package named `name` in `range`, skipping names that
    /// cannot be read.
    fn scan(&self, range: std::ops::Range<usize>, name: &str) -> Option<usize> {
        range
            .into_iter()
            .find(|&i| self.name_at(i).is_ok_and(|n| n == name))
    }

    /// Whether names are strictly ascending (found once, when a search
    /// misses); an unreadable name is the error.
    fn is_sorted(&self) -> Result<bool, FbError> {
        if let Some(&s) = self.sorted.get() {
            return Ok(s);
        }
        let names = self.try_package_names()?;
        let sorted = names
            .iter()
            .zip(names.iter().skip(1))
            .all(|(a, b)| a.as_bytes() < b.as_bytes());
        if !sorted {
            tracing::warn!(
                path = ?self.path,
                "index packages are not sorted by name: SPK's binary search will miss some"
            );
        }
        Ok(*self.sorted.get_or_init(|| sorted))
    }

    /// The package `name`, decoded; `None` if the index has no such package.
    pub fn package(&self, name: &str) -> Option<Result<PackageIndex, FbError>> {
        match self.find(name) {
            Ok(found) => found.and_then(|i| self.package_at(i)),
            Err(e) => Some(Err(e)),
        }
    }

    /// The `i`-th package, verified (FlatBuffers, then the semantic checks
    /// while decoding, then its crc32 if the file has a directory) and
    /// decoded.
    pub fn package_at(&self, i: usize) -> Option<Result<PackageIndex, FbError>> {
        if i >= self.len {
            return None;
        }
        Some(self.verified_package(i).and_then(|p| {
            let decoded = package(p).map_err(|b| b.into_error(self.path.clone(), p.name()))?;
            if let Some(Err(e)) = self.checked_blob(i) {
                return Err(e);
            }
            Ok(decoded)
        }))
    }

    /// Every package and the global vars (packages verified and decoded in
    /// parallel).
    pub fn decode(&self) -> Result<RepositoryIndex, FbError> {
        let packages = (0..self.len)
            .into_par_iter()
            .with_min_len(64)
            .map(|i| {
                self.package_at(i)
                    .unwrap_or_else(|| unreachable!("package {i} is within the vector"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RepositoryIndex {
            packages,
            global_vars: self.global_vars(),
        })
    }

    /// The checks of [`IndexFile::decode`] (verification, what would make
    /// SPK panic or misread, the crc32 of our blobs), without decoding.
    /// Packages are checked in parallel.
    pub fn check(&self) -> Result<(), FbError> {
        (0..self.len)
            .into_par_iter()
            .with_min_len(64)
            .try_for_each(|i| {
                let p = self.verified_package(i)?;
                check_package(p).map_err(|b| b.into_error(self.path.clone(), p.name()))?;
                match self.checked_blob(i) {
                    Some(Err(e)) => Err(e),
                    _ => Ok(()),
                }
            })
    }

    /// For a file this tool just wrote, before it is installed: what
    /// [`IndexFile::open`] checked, the directory present, and every blob
    /// where the directory says with the crc32 it was written with, checked
    /// in parallel (a torn or damaged write). Each blob was verified when it
    /// was made (see the module docs); a file of [`FULL_VERIFY_FROM`] or more
    /// was also verified whole when opened.
    pub fn check_written(&self) -> Result<(), FbError> {
        if self.directory.is_none() && self.len > 0 {
            return Err(FbError::Layout {
                path: self.path.clone(),
                problem: format!(
                    "its blob directory ({}) is missing or does not match its {} packages",
                    String::from_utf8_lossy(DIRECTORY_MAGIC),
                    self.len
                ),
            });
        }
        (0..self.len)
            .into_par_iter()
            .with_min_len(16)
            .try_for_each(|i| match self.checked_blob(i) {
                Some(r) => r.map(drop),
                None => unreachable!("the directory has an entry per package"),
            })
    }

    /// The global vars, as SPK reads them: a var without values is skipped,
    /// and of duplicate names the values of all are kept.
    pub fn global_vars(&self) -> GlobalVars {
        let mut vars = GlobalVars::new();
        let Some(slot) = self.globals_slot else {
            return vars;
        };
        let globals = match flatbuffers::root_with_opts::<GlobalVarsVector<'_>>(
            &verifier_options(),
            &self.bytes[slot..],
        ) {
            Ok(g) => g,
            Err(e) => unreachable!("the global vars passed this verification when opened: {e}"),
        };
        for g in globals.iter() {
            if let Some(values) = g.values() {
                vars.entry(g.name().to_string())
                    .or_default()
                    .extend(values.iter().map(str::to_string));
            }
        }
        vars
    }

    /// The bytes of the `i`-th package, if this file was written by us (it
    /// has the blob directory), the packages vector points at them and they
    /// have the crc32 recorded when they were written: then they are, byte
    /// for byte, a blob that was verified when it was encoded (see the
    /// module docs), and are not verified again. `None` means: decode it
    /// (which reports what is wrong, if anything) and encode it again.
    pub fn raw_package(&self, i: usize) -> Option<RawPackage<'_>> {
        let checked = self
            .checked_blob(i)?
            .and_then(|b| Ok((b, self.name_at(i)?)));
        match checked {
            Ok(((bytes, e), name)) => Some(RawPackage {
                name,
                bytes,
                crc: e.crc,
                counts: e.counts,
                file_bytes: &self.bytes,
                start: e.start,
            }),
            Err(e) => {
                tracing::warn!("{e}; the package will not be copied as it is");
                None
            }
        }
    }
}

impl IndexFile {
    /// [`IndexFile::raw_package`] of every package, checked in parallel.
    pub fn raw_packages(&self) -> Vec<Option<RawPackage<'_>>> {
        (0..self.len)
            .into_par_iter()
            .with_min_len(64)
            .map(|i| self.raw_package(i))
            .collect()
    }
}

/// [`crate::fb::verify`], then the semantic checks of
/// [`IndexFile::decode`] (what would make SPK panic or misread), without
/// decoding or copying.
pub fn check(bytes: &[u8]) -> Result<(), FbError> {
    let root = verify_at(bytes, None)?;
    let Some(packages) = root.packages() else {
        return Ok(());
    };
    (0..packages.len())
        .into_par_iter()
        .with_min_len(64)
        .try_for_each(|i| {
            let p = packages.get(i);
            check_package(p).map_err(|b| b.into_error(None, p.name()))
        })
}

/// The blob directory after the packages vector of a file we wrote, found
/// by its header (magic, count, the crc32 of its entries); `None` when
/// absent (SPK's files, or ours of an earlier directory format) or when its
/// entries do not match their crc32. Entries are read when used
/// ([`Directory::entry`]), not gathered at open: `ls` of one package reads
/// one.
fn read_directory(bytes: &[u8], elements: usize, n: usize) -> Option<Directory> {
    if n == 0 {
        return None;
    }
    let dir = (elements + 4 * n).div_ceil(8) * 8;
    if bytes.get(dir..dir + 8)? != DIRECTORY_MAGIC || u32_at(bytes, dir + 8)? != n {
        return None;
    }
    let table = dir + DIRECTORY_HEADER;
    let end = table.checked_add(DIRECTORY_ENTRY.checked_mul(n)?)?;
    if crc32fast::hash(bytes.get(table..end)?) != u32_at(bytes, dir + 12)? as u32 {
        tracing::debug!("index blob directory does not match its crc32");
        return None;
    }
    Some(Directory { table, n })
}

/// Where the directory's entries are, and how many.
#[derive(Debug, Clone, Copy)]
struct Directory {
    table: usize,
    n: usize,
}

impl Directory {
    /// Entry `i`, if its blob is a place in the file: 8-aligned, after the
    /// directory and after the previous entry's blob, at least a root
    /// offset long, inside the file.
    fn entry(&self, bytes: &[u8], i: usize) -> Option<Entry> {
        if i >= self.n {
            return None;
        }
        let at = self.table + DIRECTORY_ENTRY * i;
        let floor = match i {
            0 => self.table + DIRECTORY_ENTRY * self.n,
            _ => u32_at(bytes, at - DIRECTORY_ENTRY + 4)?,
        };
        let (start, end) = (u32_at(bytes, at)?, u32_at(bytes, at + 4)?);
        let ok = start >= floor && start % 8 == 0 && end > start + 4 && end <= bytes.len();
        if !ok {
            tracing::debug!(
                package = i,
                start,
                end,
                "index blob directory entry is not a place in the file"
            );
            return None;
        }
        Some(Entry {
            start,
            end,
            crc: u32_at(bytes, at + 8)? as u32,
            counts: IndexCounts {
                packages: 1,
                versions: u32_at(bytes, at + 12)? as u64,
                builds: u32_at(bytes, at + 16)? as u64,
                deprecated: u32_at(bytes, at + 20)? as u64,
            },
        })
    }
}

// ---- tables → model --------------------------------------------------------

/// A semantic problem, with where it is (innermost first).
pub(super) struct Bad {
    at: Vec<String>,
    problem: String,
}

impl Bad {
    pub(super) fn into_error(mut self, path: Option<PathBuf>, package: &str) -> FbError {
        self.at.push(format!("package {package}"));
        self.at.reverse();
        FbError::Semantics {
            path,
            at: self.at.join(", "),
            problem: self.problem,
        }
    }
}

type R<T> = Result<T, Bad>;

fn bad<T>(problem: impl Into<String>) -> R<T> {
    Err(Bad {
        at: Vec::new(),
        problem: problem.into(),
    })
}

trait At<T> {
    fn at(self, f: impl FnOnce() -> String) -> R<T>;
}

impl<T> At<T> for R<T> {
    fn at(self, f: impl FnOnce() -> String) -> R<T> {
        self.map_err(|mut b| {
            b.at.push(f());
            b
        })
    }
}

/// Each item converted; a problem names the field and the item's position.
fn list<'a, T: flatbuffers::Follow<'a> + 'a, U>(
    v: Option<Vector<'a, T>>,
    field: &str,
    mut f: impl FnMut(T::Inner) -> R<U>,
) -> R<Vec<U>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(v.len());
    for (i, item) in v.iter().enumerate() {
        out.push(f(item).at(|| format!("{field}[{i}]"))?);
    }
    Ok(out)
}

fn package(p: fbs::PackageIndex<'_>) -> R<PackageIndex> {
    let mut versions = Vec::new();
    for v in p.versions().iter().flatten() {
        versions.push(version_index(v).at(|| format!("version {}", version_label(v.version())))?);
    }
    Ok(PackageIndex {
        name: p.name().to_string(),
        versions,
    })
}

/// A version for messages, without checks.
fn version_label(v: fbs::Version<'_>) -> String {
    let mut s = v
        .parts()
        .map(|p| {
            p.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(".")
        })
        .unwrap_or_default();
    for (sep, tags) in [('-', v.pre()), ('+', v.post())] {
        if let Some(tags) = tags {
            s.push(sep);
            let t: Vec<String> = tags
                .iter()
                .map(|t| format!("{}.{}", t.name(), t.number()))
                .collect();
            s.push_str(&t.join(","));
        }
    }
    s
}

fn version_index(v: fbs::VersionIndex<'_>) -> R<VersionIndex> {
    let version = version(v.version()).at(|| "version".into())?;
    let mut builds = Vec::new();
    for (i, b) in v.builds().iter().flatten().enumerate() {
        builds.push(build_index(b).at(|| format!("build #{i} ({})", build_label(b)))?);
    }
    Ok(VersionIndex { version, builds })
}

fn build_label(b: fbs::BuildIndex<'_>) -> String {
    match b.build_type() {
        fbs::Build::Source => "src".into(),
        fbs::Build::BuildId => b
            .build_as_build_id()
            .map_or_else(|| "?".into(), |i| format!("{:?}", i.id())),
        fbs::Build::EmbeddedSource => "embedded".into(),
        _ => "no build id".into(),
    }
}

fn build_index(b: fbs::BuildIndex<'_>) -> R<BuildIndex> {
    let published_version = match b.published_version() {
        Some(v) => version(v).at(|| "published_version".into())?,
        None => bad(NO_PUBLISHED_VERSION)?,
    };
    let build = match (b.build_type(), b.build()) {
        // SPK (release build) reads a missing or unknown build as src.
        (_, None) => BuildId::Source,
        (t, Some(_)) => build_union(t, b.build_as_embedded_source(), b.build_as_build_id())
            .at(|| "build".into())?,
    };
    Ok(BuildIndex {
        published_version,
        build,
        deprecated: b.is_deprecated(),
        compat: compat(b.compat()).at(|| "compat".into())?,
        build_options: list(b.build_options(), "build_options", opt)?,
        embedded: list(b.embedded(), "embedded", embedded_spec)?,
        component_specs: list(b.component_specs(), "component_specs", component_spec)?,
        runtime_requirements: requirements(b.runtime_requirements(), "runtime_requirements")?,
        published_components: list(b.published_components(), "published_components", component)?,
    })
}

const NO_PUBLISHED_VERSION: &str =
    "published_version is absent; every build must store the version its spec names";
const NO_BUILD_ID_TABLE: &str = "build type BuildId without a BuildId table";
const NO_EMBEDDED_SOURCE_TABLE: &str = "build type EmbeddedSource without an EmbeddedSource table";

fn build_union(
    t: fbs::Build,
    embedded: Option<fbs::EmbeddedSource<'_>>,
    id: Option<fbs::BuildId<'_>>,
) -> R<BuildId> {
    Ok(match t {
        fbs::Build::BuildId => match id {
            Some(id) => build_digest(id.id())?,
            None => bad(NO_BUILD_ID_TABLE)?,
        },
        fbs::Build::EmbeddedSource => match embedded {
            Some(e) => BuildId::Embedded(match e.source() {
                Some(s) => Some(embedded_parent(s).at(|| "source".into())?),
                None => None,
            }),
            None => bad(NO_EMBEDDED_SOURCE_TABLE)?,
        },
        // Source, and SPK's reading of an unknown type.
        _ => BuildId::Source,
    })
}

fn build_digest(id: &str) -> R<BuildId> {
    let n = id.chars().count();
    if n != 8 {
        return bad(format!(
            "build id {id:?} has {n} characters; SPK panics on any build id that is not exactly 8 characters (base32, e.g. \"GMTG3CXY\")"
        ));
    }
    Ok(BuildId::Digest(id.to_string()))
}

fn embedded_parent(s: fbs::EmbeddedSourcePackage<'_>) -> R<EmbeddedParent> {
    let ident = s.ident();
    Ok(EmbeddedParent {
        repository_name: ident.repository_name().map(str::to_string),
        pkg_name: ident.pkg_name().to_string(),
        version_str: ident.version_str().map(str::to_string),
        build_str: ident.build_str().map(str::to_string),
        components: list(s.components(), "components", component)?,
    })
}

fn version_epsilon(v: fbs::Version<'_>) -> R<()> {
    match v.epsilon() {
        fbs::Epsilon::Minus => bad(format!(
            "version {} has epsilon Minus (0, or the field absent), which SPK reads as {}-ε, just below it; versions must store epsilon None (1)",
            version_label(v),
            version_label(v)
        )),
        fbs::Epsilon::Plus => bad(format!(
            "version {} has epsilon Plus (2), which SPK reads as just above it; versions must store epsilon None (1)",
            version_label(v)
        )),
        _ => Ok(()),
    }
}

/// Versions must say epsilon None (1): absent or 0 reads as Minus, which
/// SPK treats as "just below" the version; Plus is "just above". Values out
/// of range read as None, as in SPK.
fn version(v: fbs::Version<'_>) -> R<Version> {
    version_epsilon(v)?;
    Ok(Version {
        parts: v.parts().map(|p| p.iter().collect()).unwrap_or_default(),
        pre: list(v.pre(), "pre", tag)?,
        post: list(v.post(), "post", tag)?,
    })
}

fn tag(t: fbs::TagSetItem<'_>) -> R<TagItem> {
    Ok(TagItem {
        name: t.name().to_string(),
        number: t.number(),
    })
}

fn component(c: fbs::Component<'_>) -> R<Component> {
    Ok(match c.kind() {
        fbs::ComponentEnum::All => Component::All,
        fbs::ComponentEnum::Build => Component::Build,
        fbs::ComponentEnum::Source => Component::Source,
        fbs::ComponentEnum::Named => match c.name() {
            Some(n) => Component::Named(n.to_string()),
            None => bad("component of kind Named has no name; SPK panics on it (write the name, or a built-in kind)")?,
        },
        // Run, and SPK's reading of an unknown kind.
        _ => Component::Run,
    })
}

/// SPK parses compat text and panics when that fails: it must start with
/// a rule letter (`x`, `a` or `b`), as in `x.a.b`.
fn compat(c: Option<&str>) -> R<Option<String>> {
    match c {
        None => Ok(None),
        Some(s) if s.starts_with(['x', 'a', 'b']) => Ok(Some(s.to_string())),
        Some(s) => bad(format!(
            "compat {s:?} is not compat text; SPK panics on it (expected e.g. \"x.a.b\", or the field absent for the default)"
        )),
    }
}

fn prerelease(p: fbs::PreReleasePolicy) -> PreReleasePolicy {
    match p {
        fbs::PreReleasePolicy::ExcludeAll => PreReleasePolicy::ExcludeAll,
        fbs::PreReleasePolicy::IncludeAll => PreReleasePolicy::IncludeAll,
        _ => PreReleasePolicy::None,
    }
}

fn lone_compat(c: fbs::LoneCompatRule) -> CompatRule {
    match c {
        fbs::LoneCompatRule::API => CompatRule::API,
        fbs::LoneCompatRule::Binary => CompatRule::Binary,
        _ => CompatRule::None,
    }
}

fn opt(o: fbs::Opt<'_>) -> R<Opt> {
    if let Some(p) = o.opt_as_pkg_opt() {
        return Ok(Opt::Pkg(PkgOpt {
            name: p.name().to_string(),
            components: list(p.components(), "components", component)
                .at(|| format!("pkg option {}", p.name()))?,
            prerelease_policy: prerelease(p.prerelease_policy()),
            required_compat: lone_compat(p.required_compat()),
            value: p.value().unwrap_or_default().to_string(),
        }));
    }
    if let Some(v) = o.opt_as_var_opt() {
        return Ok(Opt::Var(VarOpt {
            name: v.name().to_string(),
            inheritance: match v.inheritance() {
                fbs::Inheritance::StrongForBuildOnly => Inheritance::StrongForBuildOnly,
                fbs::Inheritance::Strong => Inheritance::Strong,
                _ => Inheritance::Weak,
            },
            compat: compat(v.compat()).at(|| format!("var option {}", v.name()))?,
            required: v.required(),
            value: v.value().unwrap_or_default().to_string(),
        }));
    }
    bad(no_opt_value(o))
}

fn no_opt_value(o: fbs::Opt<'_>) -> String {
    format!(
        "option of type {} has no PkgOpt or VarOpt value; SPK panics on it",
        o.opt_type().0
    )
}

/// Requirements as SPK reads them: one without a request, of an unknown
/// type, or a var without value is skipped.
fn requirements(
    v: Option<Tables<'_, fbs::RequirementWithOptions<'_>>>,
    field: &str,
) -> R<Vec<Requirement>> {
    let mut out = Vec::new();
    for (i, r) in v.iter().flatten().enumerate() {
        if let Some(p) = r.request_as_pkg_request_with_options() {
            out.push(Requirement::Pkg(
                pkg_request(p).at(|| format!("{field}[{i}] (pkg {})", p.name()))?,
            ));
        } else if let Some(v) = r.request_as_var_request_pinned_value() {
            if let Some(value) = v.value() {
                out.push(Requirement::Var(VarRequest {
                    name: v.name().to_string(),
                    value: value.to_string(),
                }));
            }
        }
    }
    Ok(out)
}

fn pkg_request(p: fbs::PkgRequestWithOptions<'_>) -> R<PkgRequest> {
    let version_filter = match p.version_filter() {
        Some(rules) if !rules.is_empty() => Some(list(Some(rules), "version_filter", filter_rule)?),
        _ => None,
    };
    let build = match p.build() {
        None => None,
        Some(_) => Some(
            build_union(
                p.build_type(),
                p.build_as_embedded_source(),
                p.build_as_build_id(),
            )
            .at(|| "build".into())?,
        ),
    };
    Ok(PkgRequest {
        name: p.name().to_string(),
        repo_name: p.repo_name().map(str::to_string),
        components: list(p.components(), "components", component)?,
        version_filter,
        build,
        prerelease_policy: prerelease(p.prerelease_policy()),
        inclusion_policy: match p.inclusion_policy() {
            fbs::InclusionPolicy::IfAlreadyPresent => InclusionPolicy::IfAlreadyPresent,
            _ => InclusionPolicy::Always,
        },
        pin: p.pin().map(str::to_string),
        pin_policy: match p.pin_policy() {
            fbs::PinPolicy::IfPresentInBuildEnv => PinPolicy::IfPresentInBuildEnv,
            _ => PinPolicy::Required,
        },
        required_compat: lone_compat(p.required_compat()),
        options: list(p.options(), "options", |o| {
            Ok(OptionValue {
                name: o.name().to_string(),
                value: o.value().unwrap_or_default().to_string(),
                is_complete: o.is_complete(),
            })
        })?,
    })
}

fn filter_rule(r: fbs::VersionFilterRule<'_>) -> R<FilterRule> {
    let op = filter_op(r)?;
    let version = match r.version() {
        Some(v) => Some(version(v).at(|| "version".into())?),
        None => {
            rule_without_version(op)?;
            None
        }
    };
    Ok(FilterRule {
        op,
        version,
        required: lone_compat(r.required()),
        parts: r.parts().map(|p| p.iter().collect()),
    })
}

fn filter_op(r: fbs::VersionFilterRule<'_>) -> R<RangeOp> {
    use fbs::VersionRangeOperator as V;
    Ok(match r.filter_op() {
        V::Compat => RangeOp::Compat,
        V::DoubleEquals => RangeOp::DoubleEquals,
        V::DoubleNotEquals => RangeOp::DoubleNotEquals,
        V::Equals => RangeOp::Equals,
        V::GreaterThan => RangeOp::GreaterThan,
        V::GreaterThanOrEqualTo => RangeOp::GreaterThanOrEqualTo,
        V::LessThan => RangeOp::LessThan,
        V::LessThanOrEqualTo => RangeOp::LessThanOrEqualTo,
        V::LowestSpecified => RangeOp::LowestSpecified,
        V::NotEquals => RangeOp::NotEquals,
        V::Semver => RangeOp::Semver,
        V::Wildcard => RangeOp::Wildcard,
        V::Filter => bad("operator Filter (4) is stored; SPK panics on it (a nested range must be flattened into its rules)")?,
        other => bad(format!(
            "operator {} is not a VersionRangeOperator (0-12); SPK panics on it",
            other.0
        ))?,
    })
}

/// Only wildcard rules go without a version.
fn rule_without_version(op: RangeOp) -> R<()> {
    if op == RangeOp::Wildcard {
        Ok(())
    } else {
        bad(format!(
            "a {op:?} rule has no version; SPK panics on it (only Wildcard rules go without)"
        ))
    }
}

fn component_spec(c: fbs::SolverComponentSpec<'_>) -> R<ComponentSpec> {
    Ok(ComponentSpec {
        name: component(c.name()).at(|| "name".into())?,
        uses: list(c.uses(), "uses", component)?,
        requirements: requirements(c.requirements_with_options(), "requirements_with_options")?,
        embedded: list(c.embedded_components(), "embedded_components", |e| {
            Ok(ComponentEmbedded {
                name: e.name().to_string(),
                version: match e.version() {
                    Some(v) => Some(version(v).at(|| "version".into())?),
                    None => None,
                },
                components: list(e.components(), "components", component)?,
            })
        })?,
    })
}

fn embedded_spec(e: fbs::SolverEmbeddedPackageSpec<'_>) -> R<EmbeddedSpec> {
    let ident = e.ident();
    embedded_ident(ident)?;
    Ok(EmbeddedSpec {
        ident: ident.to_string(),
        compat: compat(e.compat()).at(|| "compat".into())?,
        deprecated: e.deprecated(),
        build_options: list(e.build_options(), "build_options", opt)?,
        component_specs: list(e.component_specs(), "component_specs", component_spec)?,
        requirements: requirements(e.requirements(), "requirements")?,
    })
}

/// SPK parses it as a build identity and panics when that fails; we check
/// only its shape: name/version/build.
fn embedded_ident(ident: &str) -> R<()> {
    if ident.split('/').filter(|s| !s.is_empty()).count() < 3 {
        return bad(format!(
            "embedded package ident {ident:?} is not name/version/build; SPK panics on it (e.g. \"my-embedded/2.0/embedded\")"
        ));
    }
    Ok(())
}

// ---- checks without decoding ------------------------------------------------
//
// The same refusals as the decoder above, in the same words, without
// building the model: for package bytes copied verbatim into a new file
// ([`IndexFile::raw_package`]), which must be as usable by SPK as freshly
// encoded ones. Keep the two in step (a test compares their messages).

/// Each item checked; a problem names the field and the item's position.
fn each<'a, T: flatbuffers::Follow<'a> + 'a>(
    v: Option<Vector<'a, T>>,
    field: &str,
    mut f: impl FnMut(T::Inner) -> R<()>,
) -> R<()> {
    for (i, item) in v.iter().flatten().enumerate() {
        f(item).at(|| format!("{field}[{i}]"))?;
    }
    Ok(())
}

pub(super) fn check_package(p: fbs::PackageIndex<'_>) -> R<()> {
    for v in p.versions().iter().flatten() {
        check_version_index(v).at(|| format!("version {}", version_label(v.version())))?;
    }
    Ok(())
}

fn check_version_index(v: fbs::VersionIndex<'_>) -> R<()> {
    check_version(v.version()).at(|| "version".into())?;
    for (i, b) in v.builds().iter().flatten().enumerate() {
        check_build(b).at(|| format!("build #{i} ({})", build_label(b)))?;
    }
    Ok(())
}

fn check_version(v: fbs::Version<'_>) -> R<()> {
    // The decoder's checks, on a version whose parts and tags need no
    // allocation here.
    version_epsilon(v)
}

fn check_build(b: fbs::BuildIndex<'_>) -> R<()> {
    match b.published_version() {
        Some(v) => check_version(v).at(|| "published_version".into())?,
        None => bad(NO_PUBLISHED_VERSION)?,
    }
    if b.build().is_some() {
        check_build_union(
            b.build_type(),
            b.build_as_embedded_source(),
            b.build_as_build_id(),
        )
        .at(|| "build".into())?;
    }
    compat(b.compat()).map(drop).at(|| "compat".into())?;
    each(b.build_options(), "build_options", check_opt)?;
    each(b.embedded(), "embedded", check_embedded_spec)?;
    each(b.component_specs(), "component_specs", check_component_spec)?;
    check_requirements(b.runtime_requirements(), "runtime_requirements")?;
    each(b.published_components(), "published_components", |c| {
        component(c).map(drop)
    })
}

fn check_build_union(
    t: fbs::Build,
    embedded: Option<fbs::EmbeddedSource<'_>>,
    id: Option<fbs::BuildId<'_>>,
) -> R<()> {
    match t {
        fbs::Build::BuildId => match id {
            Some(id) => build_digest(id.id()).map(drop),
            None => bad(NO_BUILD_ID_TABLE),
        },
        fbs::Build::EmbeddedSource => match embedded {
            Some(e) => match e.source() {
                Some(s) => each(s.components(), "components", |c| component(c).map(drop))
                    .at(|| "source".into()),
                None => Ok(()),
            },
            None => bad(NO_EMBEDDED_SOURCE_TABLE),
        },
        _ => Ok(()),
    }
}

fn check_opt(o: fbs::Opt<'_>) -> R<()> {
    if let Some(p) = o.opt_as_pkg_opt() {
        return each(p.components(), "components", |c| component(c).map(drop))
            .at(|| format!("pkg option {}", p.name()));
    }
    if let Some(v) = o.opt_as_var_opt() {
        return compat(v.compat())
            .map(drop)
            .at(|| format!("var option {}", v.name()));
    }
    bad(no_opt_value(o))
}

fn check_requirements(
    v: Option<Tables<'_, fbs::RequirementWithOptions<'_>>>,
    field: &str,
) -> R<()> {
    for (i, r) in v.iter().flatten().enumerate() {
        if let Some(p) = r.request_as_pkg_request_with_options() {
            check_pkg_request(p).at(|| format!("{field}[{i}] (pkg {})", p.name()))?;
        }
    }
    Ok(())
}

fn check_pkg_request(p: fbs::PkgRequestWithOptions<'_>) -> R<()> {
    if let Some(rules) = p.version_filter() {
        each(Some(rules), "version_filter", |r| {
            let op = filter_op(r)?;
            match r.version() {
                Some(v) => check_version(v).at(|| "version".into()),
                None => rule_without_version(op),
            }
        })?;
    }
    if p.build().is_some() {
        check_build_union(
            p.build_type(),
            p.build_as_embedded_source(),
            p.build_as_build_id(),
        )
        .at(|| "build".into())?;
    }
    each(p.components(), "components", |c| component(c).map(drop))
}

fn check_component_spec(c: fbs::SolverComponentSpec<'_>) -> R<()> {
    component(c.name()).map(drop).at(|| "name".into())?;
    each(c.uses(), "uses", |c| component(c).map(drop))?;
    check_requirements(c.requirements_with_options(), "requirements_with_options")?;
    each(c.embedded_components(), "embedded_components", |e| {
        if let Some(v) = e.version() {
            check_version(v).at(|| "version".into())?;
        }
        each(e.components(), "components", |c| component(c).map(drop))
    })
}

fn check_embedded_spec(e: fbs::SolverEmbeddedPackageSpec<'_>) -> R<()> {
    embedded_ident(e.ident())?;
    compat(e.compat()).map(drop).at(|| "compat".into())?;
    each(e.build_options(), "build_options", check_opt)?;
    each(e.component_specs(), "component_specs", check_component_spec)?;
    check_requirements(e.requirements(), "requirements")
}
