//! The model → FlatBuffers bytes: one blob per package, then the file
//! (see the layout in the module docs of [`crate::fb`]).

use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, UnionWIPOffset, Vector, WIPOffset};
use rayon::prelude::*;

use super::decode::{check_package, RawPackage};
use super::generated as fbs;
use super::{verifier_options, FbError, IndexCounts, DIRECTORY_MAGIC};
use crate::indexed::{
    BuildId, BuildIndex, CompatRule, Component, ComponentEmbedded, ComponentSpec, EmbeddedParent,
    EmbeddedSpec, FilterRule, GlobalVars, InclusionPolicy, Inheritance, Opt, OptionValue,
    PackageIndex, PinPolicy, PkgRequest, PreReleasePolicy, RangeOp, RepositoryIndex, Requirement,
    TagItem, Version, VersionIndex,
};

type Fbb<'a> = FlatBufferBuilder<'a>;
type TableVec<'a, T> = WIPOffset<Vector<'a, ForwardsUOffset<T>>>;

/// Alignment of every blob in the file: at least the largest alignment a
/// builder uses for this schema (4), so blobs keep their inner alignment.
const BLOB_ALIGN: usize = 8;

/// One directory entry: `start`, `end`, `crc32`, versions, builds and
/// deprecated builds, each a u32.
pub(super) const DIRECTORY_ENTRY: usize = 24;
/// The directory's header: magic, count, crc32 of the entries.
pub(super) const DIRECTORY_HEADER: usize = 16;

/// One package, encoded: a finished FlatBuffers buffer whose root is its
/// `PackageIndex` table. Made only by [`encode_package`] (or [`assemble`]
/// of a fresh package), which verifies it standalone; one that failed is
/// refused by [`assemble`] ([`EncodedPackage::verified`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPackage {
    name: String,
    bytes: Vec<u8>,
    crc: u32,
    counts: IndexCounts,
    /// Why the blob did not verify, if it did not.
    failure: Option<String>,
}

impl EncodedPackage {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Whether the blob passed verification when it was encoded.
    pub fn verified(&self) -> Result<(), FbError> {
        match &self.failure {
            None => Ok(()),
            Some(problem) => Err(FbError::Encode {
                package: self.name.clone(),
                problem: problem.clone(),
            }),
        }
    }
}

/// One package of a file being assembled.
#[derive(Debug, Clone)]
pub enum PackagePart<'a> {
    /// From the model: encoded and verified by [`assemble`] (in parallel
    /// with the others).
    Fresh(PackageIndex),
    /// Already encoded (and verified) by [`encode_package`].
    Encoded(EncodedPackage),
    /// The bytes of a package in a file we wrote, copied verbatim
    /// ([`crate::fb::IndexFile::raw_package`]: their crc32 matched).
    Raw(RawPackage<'a>),
}

/// A part ready to be placed: its bytes, their crc32, its counts.
enum Ready<'a> {
    Encoded(EncodedPackage),
    Raw(RawPackage<'a>, IndexCounts),
}

impl Ready<'_> {
    fn name(&self) -> &str {
        match self {
            Ready::Encoded(e) => &e.name,
            Ready::Raw(r, _) => r.name(),
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            Ready::Encoded(e) => &e.bytes,
            Ready::Raw(r, _) => r.bytes(),
        }
    }
    fn crc(&self) -> u32 {
        match self {
            Ready::Encoded(e) => e.crc,
            Ready::Raw(r, _) => r.crc(),
        }
    }
    fn counts(&self) -> IndexCounts {
        match self {
            Ready::Encoded(e) => e.counts,
            Ready::Raw(_, c) => *c,
        }
    }
    fn in_file(&self) -> Option<(&[u8], usize)> {
        match self {
            Ready::Encoded(_) => None,
            Ready::Raw(r, _) => Some(r.in_file()),
        }
    }
}

/// An assembled index file, ready to be written: the head (root table,
/// packages vector, directory, global vars) and the package blobs, which
/// are written from where they are (a copied blob straight from the old
/// file's map) rather than gathered into one buffer first.
pub struct Assembled<'a> {
    head: Vec<u8>,
    blobs: Vec<Ready<'a>>,
    len: usize,
    /// Counted from the parts: fresh ones from the model, copied ones from
    /// their bytes.
    pub counts: IndexCounts,
}

impl std::fmt::Debug for Assembled<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assembled")
            .field("len", &self.len)
            .field("packages", &self.blobs.len())
            .field("counts", &self.counts)
            .finish()
    }
}

impl Assembled<'_> {
    /// The file's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the file: the head, then each blob, zero-padded to the next
    /// 8-aligned position (as [`layout`] placed them). Through a large
    /// buffer, so small blobs do not each cost a system call.
    ///
    /// Copied blobs that lie one after the other in the old file (each at
    /// the 8-aligned position after the previous one's end, as we place
    /// them) are written as one run straight from the old file's map: one
    /// system call for the thousands of packages an update keeps, and no
    /// copy through the buffer. Their padding is the old file's, which is
    /// what we would write (blobs start 8-aligned in both files, so the
    /// padding has the same length; it is never read).
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, w);
        w.write_all(&self.head)?;
        let mut at = self.head.len();
        let mut i = 0;
        while i < self.blobs.len() {
            let (bytes, blobs) = self.run_from(i).unwrap_or((self.blobs[i].bytes(), 1));
            w.write_all(bytes)?;
            at += bytes.len();
            i += blobs;
            let end = align_up(at, BLOB_ALIGN);
            w.write_all(&[0u8; BLOB_ALIGN][..end - at])?;
            at = end;
        }
        debug_assert_eq!(at, self.len);
        w.flush()
    }

    /// The run of copied blobs from `i` on that lie one after the other in
    /// one old file: its bytes, from the first blob's start to the last
    /// one's end (the padding between them included), and how many blobs
    /// it holds. `None` for a blob that is not copied.
    fn run_from(&self, i: usize) -> Option<(&[u8], usize)> {
        let (file, start) = self.blobs.get(i)?.in_file()?;
        let mut end = start + self.blobs[i].bytes().len();
        let mut blobs = 1;
        for b in &self.blobs[i + 1..] {
            match b.in_file() {
                Some((f, s)) if std::ptr::eq(f, file) && s == align_up(end, BLOB_ALIGN) => {
                    end = s + b.bytes().len();
                    blobs += 1;
                }
                _ => break,
            }
        }
        Some((file.get(start..end)?, blobs))
    }

    /// The file as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        match self.write_to(&mut out) {
            Ok(()) => out,
            Err(e) => unreachable!("writing to a Vec cannot fail: {e}"),
        }
    }
}

/// The whole index file for `index`.
///
/// # Panics
/// If a package's bytes do not verify (see [`assemble`], which returns the
/// error instead): a bug in the encoder, or a model no parser makes. For
/// tests and tools; index generation uses [`assemble`].
pub fn encode(index: &RepositoryIndex) -> Vec<u8> {
    let encoded: Vec<PackagePart<'_>> = index
        .packages
        .par_iter()
        .map_init(
            || FlatBufferBuilder::with_capacity(16 * 1024),
            |fbb, p| PackagePart::Encoded(encode_with(fbb, p)),
        )
        .collect();
    match assemble(encoded, &index.global_vars) {
        Ok(a) => a.to_bytes(),
        Err(e) => panic!("encode: {e}"),
    }
}

/// One package as a self-contained blob, verified, for
/// [`PackagePart::Encoded`] (a blob that failed verification says so in
/// [`EncodedPackage::verified`], and [`assemble`] refuses it).
pub fn encode_package(package: &PackageIndex) -> EncodedPackage {
    encode_with(&mut FlatBufferBuilder::with_capacity(16 * 1024), package)
}

/// Encodes `package` and verifies the blob standalone, as SPK would verify
/// it (FlatBuffers verification with SPK's options, then the decoder's
/// semantic checks): the one verification a package gets on its way into
/// a file (see the module docs).
fn encode_with(fbb: &mut Fbb<'_>, package: &PackageIndex) -> EncodedPackage {
    fbb.reset();
    let root = package_index(fbb, package);
    fbb.finish_minimal(root);
    let bytes = fbb.finished_data().to_vec();
    let failure =
        match flatbuffers::root_with_opts::<fbs::PackageIndex<'_>>(&verifier_options(), &bytes) {
            Ok(table) => check_package(table)
                .err()
                .map(|b| b.into_error(None, &package.name).to_string()),
            Err(e) => Some(super::one_line(&e)),
        };
    EncodedPackage {
        name: package.name.clone(),
        crc: crc32fast::hash(&bytes),
        counts: IndexCounts::of(package),
        bytes,
        failure,
    }
}

/// The whole index file from its packages (any mix of fresh, encoded and
/// copied ones; sorted here by name) and global vars, with its counts.
///
/// Fresh packages are encoded and verified in parallel; a package that
/// does not verify is an error ([`FbError::Encode`]) and nothing is made.
/// Copied packages are counted by the old file's directory.
///
/// Names must be unique; a duplicate would make SPK's binary search return
/// either entry, so only the last part given for a name is kept (with a
/// warning).
pub fn assemble<'a>(
    parts: Vec<PackagePart<'a>>,
    global_vars: &GlobalVars,
) -> Result<Assembled<'a>, FbError> {
    let mut blobs: Vec<Ready<'a>> = parts
        .into_par_iter()
        .map_init(
            || FlatBufferBuilder::with_capacity(16 * 1024),
            |fbb, part| match part {
                PackagePart::Fresh(p) => {
                    let e = encode_with(fbb, &p);
                    e.verified().map(|()| Ready::Encoded(e))
                }
                PackagePart::Encoded(e) => e.verified().map(|()| Ready::Encoded(e)),
                PackagePart::Raw(r) => Ok(Ready::Raw(r, r.counts())),
            },
        )
        .collect::<Result<_, _>>()?;
    // Stable: among equal names the later part stays last.
    blobs.sort_by(|a, b| a.name().as_bytes().cmp(b.name().as_bytes()));
    let before = blobs.len();
    dedup_keep_last(&mut blobs);
    if blobs.len() != before {
        tracing::warn!(
            dropped = before - blobs.len(),
            "index assembled from parts with duplicate package names; kept the last of each"
        );
    }
    let mut counts = IndexCounts::default();
    for b in &blobs {
        counts.add(b.counts());
    }
    let globals = encode_global_vars(global_vars)?;
    let (head, len) = layout(&blobs, globals.as_deref());
    Ok(Assembled {
        head,
        blobs,
        len,
        counts,
    })
}

fn dedup_keep_last(blobs: &mut Vec<Ready<'_>>) {
    let mut out: Vec<Ready<'_>> = Vec::with_capacity(blobs.len());
    for b in blobs.drain(..) {
        match out.last_mut() {
            Some(last) if last.name() == b.name() => *last = b,
            _ => out.push(b),
        }
    }
    *blobs = out;
}

/// The global vars as a blob whose root is the `[GlobalVar]` vector; `None`
/// when there are none (the field is then left out). Verified like a
/// package blob.
fn encode_global_vars(vars: &GlobalVars) -> Result<Option<Vec<u8>>, FbError> {
    let mut fbb = FlatBufferBuilder::with_capacity(4096);
    let mut offsets = Vec::with_capacity(vars.len());
    for (name, values) in vars {
        // A var without values is skipped by SPK's reader; leave it out.
        if values.is_empty() {
            continue;
        }
        let values: Vec<_> = values.iter().map(|v| string(&mut fbb, v)).collect();
        let values = fbb.create_vector(&values);
        let name = string(&mut fbb, name);
        offsets.push(fbs::GlobalVar::create(
            &mut fbb,
            &fbs::GlobalVarArgs {
                name: Some(name),
                values: Some(values),
            },
        ));
    }
    if offsets.is_empty() {
        return Ok(None);
    }
    let vector = fbb.create_vector(&offsets);
    fbb.finish_minimal(vector);
    let bytes = fbb.finished_data().to_vec();
    flatbuffers::root_with_opts::<Vector<'_, ForwardsUOffset<fbs::GlobalVar<'_>>>>(
        &verifier_options(),
        &bytes,
    )
    .map_err(|e| FbError::Encode {
        package: "(the global vars)".into(),
        problem: super::one_line(&e),
    })?;
    Ok(Some(bytes))
}

fn align_up(n: usize, a: usize) -> usize {
    n.div_ceil(a) * a
}

fn put_u16(out: &mut [u8], at: usize, v: u16) {
    out[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Reads the root uoffset at the start of a finished blob.
pub(super) fn blob_root(blob: &[u8]) -> usize {
    let mut b = [0u8; 4];
    b.copy_from_slice(&blob[..4]);
    u32::from_le_bytes(b) as usize
}

/// Offsets in the file are u32; the verifier stops at 2 GiB anyway.
fn off32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or_else(|_| {
        panic!("index file larger than 4 GiB ({n} bytes): FlatBuffers offsets are 32-bit")
    })
}

/// A count as the directory's u32: the index has far fewer than 4 billion
/// versions or builds (a build takes more than one byte), so this holds.
fn count32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or_else(|_| panic!("a package with {n} versions or builds"))
}

/// Lays the file out: header (root offset, root vtable and table, the
/// packages vector), directory (each blob's place, crc32 and counts, and
/// the crc32 of the entries), global vars blob, then the package blobs, one
/// after the other at 8-aligned positions. Returns the bytes up to the
/// first package blob (all of the file when there is none) and the file's
/// length.
fn layout(packages: &[Ready<'_>], globals: Option<&[u8]>) -> (Vec<u8>, usize) {
    let n = packages.len();
    let has_pkgs = n > 0;
    let has_globals = globals.is_some();

    // Root vtable at 4: [vtable size, table size, field offsets...],
    // trailing absent fields trimmed. Field 0 (schema version) is absent.
    let fields: usize = if has_globals {
        3
    } else if has_pkgs {
        2
    } else {
        0
    };
    let vt_pos = 4;
    let vt_len = 4 + 2 * fields;
    let table_pos = align_up(vt_pos + vt_len, 4);
    let pkgs_slot = table_pos + 4;
    let globals_slot = pkgs_slot + if has_pkgs { 4 } else { 0 };
    let table_len = globals_slot + if has_globals { 4 } else { 0 } - table_pos;
    let vec_pos = table_pos + table_len;
    let header_end = if has_pkgs {
        vec_pos + 4 + 4 * n
    } else {
        vec_pos
    };

    // Directory, then the blobs.
    let dir_pos = align_up(header_end, BLOB_ALIGN);
    let dir_end = if has_pkgs {
        dir_pos + DIRECTORY_HEADER + DIRECTORY_ENTRY * n
    } else {
        dir_pos
    };
    let mut cursor = align_up(dir_end, BLOB_ALIGN);
    let globals_pos = cursor;
    if let Some(g) = globals {
        cursor = align_up(cursor + g.len(), BLOB_ALIGN);
    }
    let mut starts = Vec::with_capacity(n);
    for p in packages {
        starts.push(cursor);
        cursor = align_up(cursor + p.bytes().len(), BLOB_ALIGN);
    }
    let total = cursor;
    let head_len = starts.first().copied().unwrap_or(total);

    let mut out = vec![0u8; head_len];
    put_u32(&mut out, 0, off32(table_pos));
    put_u16(&mut out, vt_pos, off32(vt_len) as u16);
    put_u16(&mut out, vt_pos + 2, table_len as u16);
    if fields >= 2 {
        // Field 0 (index_schema_version) stays 0: absent.
        put_u16(&mut out, vt_pos + 6, if has_pkgs { 4 } else { 0 });
    }
    if fields >= 3 {
        put_u16(&mut out, vt_pos + 8, (globals_slot - table_pos) as u16);
    }
    // soffset from the table back to its vtable.
    put_u32(&mut out, table_pos, off32(table_pos - vt_pos));
    if has_pkgs {
        put_u32(&mut out, pkgs_slot, off32(vec_pos - pkgs_slot));
        put_u32(&mut out, vec_pos, off32(n));
        out[dir_pos..dir_pos + 8].copy_from_slice(DIRECTORY_MAGIC);
        put_u32(&mut out, dir_pos + 8, off32(n));
        for (i, (p, &start)) in packages.iter().zip(&starts).enumerate() {
            let slot = vec_pos + 4 + 4 * i;
            put_u32(&mut out, slot, off32(start + blob_root(p.bytes()) - slot));
            let d = dir_pos + DIRECTORY_HEADER + DIRECTORY_ENTRY * i;
            let counts = p.counts();
            put_u32(&mut out, d, off32(start));
            put_u32(&mut out, d + 4, off32(start + p.bytes().len()));
            put_u32(&mut out, d + 8, p.crc());
            put_u32(&mut out, d + 12, count32(counts.versions));
            put_u32(&mut out, d + 16, count32(counts.builds));
            put_u32(&mut out, d + 20, count32(counts.deprecated));
        }
        let entries = dir_pos + DIRECTORY_HEADER..dir_end;
        let crc = crc32fast::hash(&out[entries]);
        put_u32(&mut out, dir_pos + 12, crc);
    }
    if let Some(g) = globals {
        put_u32(
            &mut out,
            globals_slot,
            off32(globals_pos + blob_root(g) - globals_slot),
        );
        out[globals_pos..globals_pos + g.len()].copy_from_slice(g);
    }
    (out, total)
}

// ---- tables ---------------------------------------------------------------

/// The longest string written once and shared by every field of a package
/// that holds it (option and var names, component names, `x86_64`, package
/// names in requests, short versions). Sharing makes the index about a
/// fifth smaller, so faster to write, update and map; SPK writes no sharing
/// but reads it (it is plain FlatBuffers). Only short strings are shared so
/// that FlatBuffers' apparent size, which counts a shared string once per
/// reference, stays a small multiple of the bytes: a reference takes at
/// least 4 bytes and adds at most `4 + SHARED_STRING_MAX + 1` apparent
/// bytes, so a file under [`super::FULL_VERIFY_FROM`] (256 MiB) stays
/// under SPK's 2 GiB limit (see "Why the blobs' verification covers the
/// file" in [`crate::fb`]).
pub(super) const SHARED_STRING_MAX: usize = 16;

fn string<'a>(fbb: &mut Fbb<'a>, s: &str) -> WIPOffset<&'a str> {
    if s.len() <= SHARED_STRING_MAX {
        fbb.create_shared_string(s)
    } else {
        fbb.create_string(s)
    }
}

fn opt_str<'a>(fbb: &mut Fbb<'a>, s: Option<&str>) -> Option<WIPOffset<&'a str>> {
    s.map(|s| string(fbb, s))
}

/// A vector of tables, or `None` (field absent) when there are no items:
/// SPK never writes empty vectors.
fn tables<'a, T, X>(
    fbb: &mut Fbb<'a>,
    items: &[T],
    mut f: impl FnMut(&mut Fbb<'a>, &T) -> WIPOffset<X>,
) -> Option<TableVec<'a, X>> {
    if items.is_empty() {
        return None;
    }
    let offsets: Vec<WIPOffset<X>> = items.iter().map(|i| f(fbb, i)).collect();
    Some(fbb.create_vector(&offsets))
}

fn u32s<'a>(fbb: &mut Fbb<'a>, items: &[u32]) -> Option<WIPOffset<Vector<'a, u32>>> {
    if items.is_empty() {
        None
    } else {
        Some(fbb.create_vector(items))
    }
}

fn package_index<'a>(fbb: &mut Fbb<'a>, p: &PackageIndex) -> WIPOffset<fbs::PackageIndex<'a>> {
    let versions = tables(fbb, &p.versions, version_index);
    let name = string(fbb, &p.name);
    fbs::PackageIndex::create(
        fbb,
        &fbs::PackageIndexArgs {
            name: Some(name),
            versions,
        },
    )
}

fn version_index<'a>(fbb: &mut Fbb<'a>, v: &VersionIndex) -> WIPOffset<fbs::VersionIndex<'a>> {
    let builds = tables(fbb, &v.builds, build_index);
    let version = version(fbb, &v.version);
    fbs::VersionIndex::create(
        fbb,
        &fbs::VersionIndexArgs {
            version: Some(version),
            builds,
        },
    )
}

fn build_index<'a>(fbb: &mut Fbb<'a>, b: &BuildIndex) -> WIPOffset<fbs::BuildIndex<'a>> {
    let published_version = version(fbb, &b.published_version);
    let (build_type, build) = build_id(fbb, &b.build);
    let compat = opt_str(fbb, b.compat.as_deref());
    let build_options = tables(fbb, &b.build_options, opt);
    let embedded = tables(fbb, &b.embedded, embedded_spec);
    let component_specs = tables(fbb, &b.component_specs, component_spec);
    let runtime_requirements = tables(fbb, &b.runtime_requirements, requirement);
    let published_components = tables(fbb, &b.published_components, component);
    fbs::BuildIndex::create(
        fbb,
        &fbs::BuildIndexArgs {
            published_version: Some(published_version),
            build_type,
            build: Some(build),
            is_deprecated: b.deprecated,
            compat,
            build_options,
            embedded,
            component_specs,
            runtime_requirements,
            published_components,
        },
    )
}

/// Every version stores epsilon None (1): absent would read as Minus.
fn version<'a>(fbb: &mut Fbb<'a>, v: &Version) -> WIPOffset<fbs::Version<'a>> {
    let parts = u32s(fbb, &v.parts);
    let pre = tables(fbb, &v.pre, tag_item);
    let post = tables(fbb, &v.post, tag_item);
    fbs::Version::create(
        fbb,
        &fbs::VersionArgs {
            parts,
            epsilon: fbs::Epsilon::None,
            pre,
            post,
        },
    )
}

fn tag_item<'a>(fbb: &mut Fbb<'a>, t: &TagItem) -> WIPOffset<fbs::TagSetItem<'a>> {
    let name = string(fbb, &t.name);
    fbs::TagSetItem::create(
        fbb,
        &fbs::TagSetItemArgs {
            name: Some(name),
            number: t.number,
        },
    )
}

fn component<'a>(fbb: &mut Fbb<'a>, c: &Component) -> WIPOffset<fbs::Component<'a>> {
    let (kind, name) = match c {
        Component::All => (fbs::ComponentEnum::All, None),
        Component::Build => (fbs::ComponentEnum::Build, None),
        Component::Run => (fbs::ComponentEnum::Run, None),
        Component::Source => (fbs::ComponentEnum::Source, None),
        Component::Named(n) => (fbs::ComponentEnum::Named, Some(string(fbb, n))),
    };
    fbs::Component::create(fbb, &fbs::ComponentArgs { kind, name })
}

/// The `Build` union: its type and its (always present) value.
fn build_id<'a>(fbb: &mut Fbb<'a>, b: &BuildId) -> (fbs::Build, WIPOffset<UnionWIPOffset>) {
    match b {
        BuildId::Source => (
            fbs::Build::Source,
            fbs::Source::create(fbb, &fbs::SourceArgs {}).as_union_value(),
        ),
        BuildId::Digest(id) => {
            // Never shared: a digest names one build, and the builder's
            // pool of shared strings grows by insertion into a sorted
            // vector, which thousands of unique digests would make slow.
            let id = fbb.create_string(id);
            (
                fbs::Build::BuildId,
                fbs::BuildId::create(fbb, &fbs::BuildIdArgs { id: Some(id) }).as_union_value(),
            )
        }
        BuildId::Embedded(parent) => {
            let source = parent.as_ref().map(|p| embedded_parent(fbb, p));
            (
                fbs::Build::EmbeddedSource,
                fbs::EmbeddedSource::create(fbb, &fbs::EmbeddedSourceArgs { source })
                    .as_union_value(),
            )
        }
    }
}

fn embedded_parent<'a>(
    fbb: &mut Fbb<'a>,
    p: &EmbeddedParent,
) -> WIPOffset<fbs::EmbeddedSourcePackage<'a>> {
    let repository_name = opt_str(fbb, p.repository_name.as_deref());
    let pkg_name = string(fbb, &p.pkg_name);
    let version_str = opt_str(fbb, p.version_str.as_deref());
    let build_str = opt_str(fbb, p.build_str.as_deref());
    let ident = fbs::IdentPartsBuf::create(
        fbb,
        &fbs::IdentPartsBufArgs {
            repository_name,
            pkg_name: Some(pkg_name),
            version_str,
            build_str,
        },
    );
    let components = tables(fbb, &p.components, component);
    fbs::EmbeddedSourcePackage::create(
        fbb,
        &fbs::EmbeddedSourcePackageArgs {
            ident: Some(ident),
            components,
        },
    )
}

fn prerelease(p: PreReleasePolicy) -> fbs::PreReleasePolicy {
    match p {
        PreReleasePolicy::None => fbs::PreReleasePolicy::None,
        PreReleasePolicy::ExcludeAll => fbs::PreReleasePolicy::ExcludeAll,
        PreReleasePolicy::IncludeAll => fbs::PreReleasePolicy::IncludeAll,
    }
}

fn lone_compat(c: CompatRule) -> fbs::LoneCompatRule {
    match c {
        CompatRule::None => fbs::LoneCompatRule::None,
        CompatRule::API => fbs::LoneCompatRule::API,
        CompatRule::Binary => fbs::LoneCompatRule::Binary,
    }
}

fn inheritance(i: Inheritance) -> fbs::Inheritance {
    match i {
        Inheritance::Weak => fbs::Inheritance::Weak,
        Inheritance::StrongForBuildOnly => fbs::Inheritance::StrongForBuildOnly,
        Inheritance::Strong => fbs::Inheritance::Strong,
    }
}

fn range_op(op: RangeOp) -> fbs::VersionRangeOperator {
    use fbs::VersionRangeOperator as V;
    match op {
        RangeOp::Compat => V::Compat,
        RangeOp::DoubleEquals => V::DoubleEquals,
        RangeOp::DoubleNotEquals => V::DoubleNotEquals,
        RangeOp::Equals => V::Equals,
        RangeOp::GreaterThan => V::GreaterThan,
        RangeOp::GreaterThanOrEqualTo => V::GreaterThanOrEqualTo,
        RangeOp::LessThan => V::LessThan,
        RangeOp::LessThanOrEqualTo => V::LessThanOrEqualTo,
        RangeOp::LowestSpecified => V::LowestSpecified,
        RangeOp::NotEquals => V::NotEquals,
        RangeOp::Semver => V::Semver,
        RangeOp::Wildcard => V::Wildcard,
    }
}

fn opt<'a>(fbb: &mut Fbb<'a>, o: &Opt) -> WIPOffset<fbs::Opt<'a>> {
    let (opt_type, value) = match o {
        Opt::Pkg(p) => {
            let name = string(fbb, &p.name);
            let components = tables(fbb, &p.components, component);
            // Always written, even "" (as SPK does).
            let value = string(fbb, &p.value);
            let t = fbs::PkgOpt::create(
                fbb,
                &fbs::PkgOptArgs {
                    name: Some(name),
                    components,
                    prerelease_policy: prerelease(p.prerelease_policy),
                    required_compat: lone_compat(p.required_compat),
                    value: Some(value),
                },
            );
            (fbs::OptEnum::PkgOpt, t.as_union_value())
        }
        Opt::Var(v) => {
            let name = string(fbb, &v.name);
            let compat = opt_str(fbb, v.compat.as_deref());
            let value = string(fbb, &v.value);
            let t = fbs::VarOpt::create(
                fbb,
                &fbs::VarOptArgs {
                    name: Some(name),
                    inheritance: inheritance(v.inheritance),
                    compat,
                    required: v.required,
                    value: Some(value),
                },
            );
            (fbs::OptEnum::VarOpt, t.as_union_value())
        }
    };
    fbs::Opt::create(
        fbb,
        &fbs::OptArgs {
            opt_type,
            opt: Some(value),
        },
    )
}

fn requirement<'a>(
    fbb: &mut Fbb<'a>,
    r: &Requirement,
) -> WIPOffset<fbs::RequirementWithOptions<'a>> {
    let (request_type, value) = match r {
        Requirement::Pkg(p) => (
            fbs::RequestWithOptions::PkgRequestWithOptions,
            pkg_request(fbb, p).as_union_value(),
        ),
        Requirement::Var(v) => {
            let name = string(fbb, &v.name);
            let value = string(fbb, &v.value);
            let t = fbs::VarRequestPinnedValue::create(
                fbb,
                &fbs::VarRequestPinnedValueArgs {
                    name: Some(name),
                    value: Some(value),
                },
            );
            (
                fbs::RequestWithOptions::VarRequestPinnedValue,
                t.as_union_value(),
            )
        }
    };
    fbs::RequirementWithOptions::create(
        fbb,
        &fbs::RequirementWithOptionsArgs {
            request_type,
            request: Some(value),
        },
    )
}

fn pkg_request<'a>(fbb: &mut Fbb<'a>, p: &PkgRequest) -> WIPOffset<fbs::PkgRequestWithOptions<'a>> {
    let name = string(fbb, &p.name);
    let repo_name = opt_str(fbb, p.repo_name.as_deref());
    let components = tables(fbb, &p.components, component);
    // `Some(vec![])` is treated as no range at all.
    let version_filter = p
        .version_filter
        .as_deref()
        .and_then(|rules| tables(fbb, rules, filter_rule));
    let (build_type, build) = match &p.build {
        Some(b) => {
            let (t, v) = build_id(fbb, b);
            (t, Some(v))
        }
        None => (fbs::Build::NONE, None),
    };
    let pin = opt_str(fbb, p.pin.as_deref());
    let options = tables(fbb, &p.options, option_value);
    fbs::PkgRequestWithOptions::create(
        fbb,
        &fbs::PkgRequestWithOptionsArgs {
            name: Some(name),
            repo_name,
            components,
            version_filter,
            build_type,
            build,
            prerelease_policy: prerelease(p.prerelease_policy),
            inclusion_policy: match p.inclusion_policy {
                InclusionPolicy::Always => fbs::InclusionPolicy::Always,
                InclusionPolicy::IfAlreadyPresent => fbs::InclusionPolicy::IfAlreadyPresent,
            },
            pin,
            pin_policy: match p.pin_policy {
                PinPolicy::Required => fbs::PinPolicy::Required,
                PinPolicy::IfPresentInBuildEnv => fbs::PinPolicy::IfPresentInBuildEnv,
            },
            required_compat: lone_compat(p.required_compat),
            options,
        },
    )
}

fn filter_rule<'a>(fbb: &mut Fbb<'a>, r: &FilterRule) -> WIPOffset<fbs::VersionFilterRule<'a>> {
    let version = r.version.as_ref().map(|v| version(fbb, v));
    // An empty `parts` vector would read as a zero-part wildcard: never
    // write one (absent reads as `*`).
    let parts = r.parts.as_deref().and_then(|p| u32s(fbb, p));
    fbs::VersionFilterRule::create(
        fbb,
        &fbs::VersionFilterRuleArgs {
            filter_op: range_op(r.op),
            version,
            required: lone_compat(r.required),
            parts,
        },
    )
}

fn option_value<'a>(
    fbb: &mut Fbb<'a>,
    o: &OptionValue,
) -> WIPOffset<fbs::PkgRequestOptionValue<'a>> {
    let name = string(fbb, &o.name);
    let value = string(fbb, &o.value);
    fbs::PkgRequestOptionValue::create(
        fbb,
        &fbs::PkgRequestOptionValueArgs {
            name: Some(name),
            value: Some(value),
            is_complete: o.is_complete,
        },
    )
}

fn component_embedded<'a>(
    fbb: &mut Fbb<'a>,
    e: &ComponentEmbedded,
) -> WIPOffset<fbs::ComponentEmbeddedPackage<'a>> {
    let name = string(fbb, &e.name);
    let version = e.version.as_ref().map(|v| version(fbb, v));
    let components = tables(fbb, &e.components, component);
    fbs::ComponentEmbeddedPackage::create(
        fbb,
        &fbs::ComponentEmbeddedPackageArgs {
            name: Some(name),
            version,
            components,
        },
    )
}

fn component_spec<'a>(
    fbb: &mut Fbb<'a>,
    c: &ComponentSpec,
) -> WIPOffset<fbs::SolverComponentSpec<'a>> {
    let name = component(fbb, &c.name);
    let uses = tables(fbb, &c.uses, component);
    let requirements_with_options = tables(fbb, &c.requirements, requirement);
    let embedded_components = tables(fbb, &c.embedded, component_embedded);
    fbs::SolverComponentSpec::create(
        fbb,
        &fbs::SolverComponentSpecArgs {
            name: Some(name),
            uses,
            requirements_with_options,
            embedded_components,
        },
    )
}

fn embedded_spec<'a>(
    fbb: &mut Fbb<'a>,
    e: &EmbeddedSpec,
) -> WIPOffset<fbs::SolverEmbeddedPackageSpec<'a>> {
    let ident = string(fbb, &e.ident);
    let compat = opt_str(fbb, e.compat.as_deref());
    let build_options = tables(fbb, &e.build_options, opt);
    let component_specs = tables(fbb, &e.component_specs, component_spec);
    let requirements = tables(fbb, &e.requirements, requirement);
    fbs::SolverEmbeddedPackageSpec::create(
        fbb,
        &fbs::SolverEmbeddedPackageSpecArgs {
            ident: Some(ident),
            compat,
            deprecated: e.deprecated,
            build_options,
            component_specs,
            requirements,
        },
    )
}
