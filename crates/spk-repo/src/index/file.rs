//! The index file: a fixed header, a JSON metadata block, a sorted package
//! directory, a name table, then one section per package.
//!
//! ```text
//! header (80 bytes, little-endian)
//!    0  magic "SPKINDEX"           8  format version u32
//!   12  crc32 of bytes 16..80 + metadata + directory + names
//!   16  file length u64           24  metadata offset u64, 32 length u64
//!   40  directory offset u64      48  directory entries u64
//!   56  names offset u64          64  names length u64     72 reserved
//! metadata  JSON (IndexMeta)
//! directory entries of 40 bytes, sorted by package name:
//!    name offset u32, name length u32 (into the name table),
//!    section offset u64, section length u64, section crc32 u32,
//!    versions u32, builds u32, deprecated u32
//! names     package names, concatenated
//! sections  one per package (see `codec`)
//! ```
//! Opening reads the header, metadata, directory and names and checks their
//! crc; finding a package is a binary search in the directory; reading it
//! reads, checks and decodes that one section. Nothing else is touched.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::codec;
use crate::model::{Counts, PackageEntry};

pub const MAGIC: &[u8; 8] = b"SPKINDEX";
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 80;
const ENTRY_LEN: usize = 40;

/// Why an index file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexFileError {
    #[error("cannot read the index {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an SPK index (it starts with {found}, an index starts with \"SPKINDEX\"); remove it and run `spk repo index`")]
    NotAnIndex { path: PathBuf, found: String },
    #[error("{path} is an index of format version {found}; this tool reads version {supported}; run `spk repo index` to write a version {supported} index")]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("the index {path} is damaged: {detail}; run `spk repo index` (without --update) to regenerate it")]
    Damaged { path: PathBuf, detail: String },
    #[error("the index {path} is damaged in the section of package {package}: {detail}; run `spk repo index` (without --update) to regenerate it")]
    DamagedSection {
        path: PathBuf,
        package: String,
        detail: String,
    },
}

/// What the index records about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub format_version: u32,
    pub repo_name: String,
    pub repo_address: String,
    /// RFC 3339, UTC.
    pub generated_at: String,
    /// `full` or `update`.
    pub mode: String,
    /// For `update`: the packages and versions re-read.
    #[serde(default)]
    pub updated: Vec<String>,
    pub packages: u64,
    pub versions: u64,
    pub builds: u64,
    pub deprecated: u64,
    /// Specs skipped because they could not be used.
    pub skipped: u64,
    /// The tool that wrote the index.
    pub tool: String,
}

/// One package's section, ready to be written.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub bytes: Vec<u8>,
    pub crc: u32,
    pub counts: Counts,
}

impl Section {
    pub fn encode(p: &PackageEntry) -> Self {
        let bytes = codec::encode(p);
        Section {
            name: p.name.clone(),
            crc: crc32fast::hash(&bytes),
            bytes,
            counts: p.counts(),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Writes a complete index to `file` (sections sorted by name, unique),
/// flushes it and syncs it to disk.
pub fn write_index(
    file: File,
    path: &Path,
    meta: &IndexMeta,
    sections: &[Section],
) -> Result<u64, IndexFileError> {
    let io = |source| IndexFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta_bytes = serde_json::to_vec(meta).map_err(|e| io(std::io::Error::other(e)))?;
    let names_len: usize = sections.iter().map(|s| s.name.len()).sum();
    let meta_off = HEADER_LEN;
    let dir_off = meta_off + meta_bytes.len();
    let names_off = dir_off + sections.len() * ENTRY_LEN;
    let mut sec_off = (names_off + names_len) as u64;
    let mut dir = Vec::with_capacity(sections.len() * ENTRY_LEN);
    let mut names = Vec::with_capacity(names_len);
    for s in sections {
        dir.extend_from_slice(&(names.len() as u32).to_le_bytes());
        dir.extend_from_slice(&(s.name.len() as u32).to_le_bytes());
        dir.extend_from_slice(&sec_off.to_le_bytes());
        dir.extend_from_slice(&(s.bytes.len() as u64).to_le_bytes());
        dir.extend_from_slice(&s.crc.to_le_bytes());
        for n in [s.counts.versions, s.counts.builds, s.counts.deprecated] {
            dir.extend_from_slice(&(n.min(u32::MAX as u64) as u32).to_le_bytes());
        }
        names.extend_from_slice(s.name.as_bytes());
        sec_off += s.bytes.len() as u64;
    }
    let file_len = sec_off;
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    for (at, v) in [
        (16, file_len),
        (24, meta_off as u64),
        (32, meta_bytes.len() as u64),
        (40, dir_off as u64),
        (48, sections.len() as u64),
        (56, names_off as u64),
        (64, names_len as u64),
    ] {
        header[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[16..]);
    crc.update(&meta_bytes);
    crc.update(&dir);
    crc.update(&names);
    header[12..16].copy_from_slice(&crc.finalize().to_le_bytes());

    let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
    w.write_all(&header).map_err(io)?;
    w.write_all(&meta_bytes).map_err(io)?;
    w.write_all(&dir).map_err(io)?;
    w.write_all(&names).map_err(io)?;
    for s in sections {
        w.write_all(&s.bytes).map_err(io)?;
    }
    w.flush().map_err(io)?;
    drop(w);
    let t = std::time::Instant::now();
    file.sync_all().map_err(io)?;
    tracing::debug!("fsync of {file_len} bytes took {:?}", t.elapsed());
    Ok(file_len)
}

/// One directory entry.
#[derive(Debug, Clone)]
pub struct DirEntry<'a> {
    pub name: &'a str,
    pub offset: u64,
    pub len: u64,
    pub crc: u32,
    pub counts: Counts,
}

/// An open index. Only the header, metadata and directory are in memory.
#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    file: File,
    meta: IndexMeta,
    dir: Vec<u8>,
    names: Vec<u8>,
    file_len: u64,
}

impl Index {
    /// Opens and checks the header, metadata and directory.
    pub fn open(path: &Path) -> Result<Index, IndexFileError> {
        let file = File::open(path).map_err(|source| IndexFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_file(file, path)
    }

    pub(crate) fn from_file(file: File, path: &Path) -> Result<Index, IndexFileError> {
        let p = || path.to_path_buf();
        let io = |source| IndexFileError::Io { path: p(), source };
        let damaged = |detail: String| IndexFileError::Damaged { path: p(), detail };
        let actual_len = file.metadata().map_err(io)?.len();
        let mut head = [0u8; HEADER_LEN];
        let got = read_up_to(&file, &mut head).map_err(io)?;
        if got < 8 || &head[0..8] != MAGIC {
            let shown: String = head[..got.min(8)]
                .iter()
                .map(|b| {
                    if b.is_ascii_graphic() {
                        (*b as char).to_string()
                    } else {
                        format!("\\x{b:02x}")
                    }
                })
                .collect();
            return Err(IndexFileError::NotAnIndex {
                path: p(),
                found: if got == 0 {
                    "nothing (the file is empty)".into()
                } else {
                    format!("\"{shown}\"")
                },
            });
        }
        if got < 12 {
            return Err(damaged(format!("truncated: the file is {actual_len} bytes, shorter than the {HEADER_LEN}-byte header")));
        }
        let version = u32_at(&head, 8);
        if version != FORMAT_VERSION {
            return Err(IndexFileError::UnsupportedVersion {
                path: p(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if got < HEADER_LEN {
            return Err(damaged(format!("truncated: the file is {actual_len} bytes, shorter than the {HEADER_LEN}-byte header")));
        }
        let file_len = u64_at(&head, 16);
        if file_len != actual_len {
            return Err(damaged(format!(
                "truncated or extended: the file is {actual_len} bytes, its header says {file_len}"
            )));
        }
        let region = |off: u64, len: u64, what: &str| -> Result<Vec<u8>, IndexFileError> {
            let end = off.checked_add(len).filter(|e| *e <= file_len);
            if end.is_none() || len > (1 << 32) {
                return Err(damaged(format!(
                    "the {what} (offset {off}, {len} bytes) lies outside the {file_len}-byte file"
                )));
            }
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, off).map_err(io)?;
            Ok(buf)
        };
        let meta_bytes = region(u64_at(&head, 24), u64_at(&head, 32), "metadata")?;
        let count = u64_at(&head, 48);
        let dir = region(
            u64_at(&head, 40),
            count.saturating_mul(ENTRY_LEN as u64),
            "directory",
        )?;
        let names = region(u64_at(&head, 56), u64_at(&head, 64), "name table")?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head[16..]);
        crc.update(&meta_bytes);
        crc.update(&dir);
        crc.update(&names);
        let want = u32_at(&head, 12);
        let have = crc.finalize();
        if want != have {
            return Err(damaged(format!(
                "the header and directory checksum is {have:08x}, the header says {want:08x}"
            )));
        }
        let meta: IndexMeta = serde_json::from_slice(&meta_bytes)
            .map_err(|e| damaged(format!("its metadata cannot be read: {e}")))?;
        let index = Index {
            path: p(),
            file,
            meta,
            dir,
            names,
            file_len,
        };
        index.check_directory()?;
        Ok(index)
    }

    /// Names in bounds, UTF-8 and strictly sorted; sections in bounds.
    fn check_directory(&self) -> Result<(), IndexFileError> {
        let mut prev: Option<&str> = None;
        for i in 0..self.len() {
            let e = self.entry(i).map_err(|detail| IndexFileError::Damaged {
                path: self.path.clone(),
                detail,
            })?;
            if prev.is_some_and(|p| p >= e.name) {
                return Err(IndexFileError::Damaged {
                    path: self.path.clone(),
                    detail: format!("the directory is not sorted at package {:?}", e.name),
                });
            }
            if e.offset
                .checked_add(e.len)
                .is_none_or(|end| end > self.file_len)
            {
                return Err(IndexFileError::DamagedSection {
                    path: self.path.clone(),
                    package: e.name.to_string(),
                    detail: format!(
                        "its section (offset {}, {} bytes) lies outside the {}-byte file",
                        e.offset, e.len, self.file_len
                    ),
                });
            }
            prev = Some(e.name);
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn meta(&self) -> &IndexMeta {
        &self.meta
    }
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
    /// Number of packages.
    pub fn len(&self) -> usize {
        self.dir.len() / ENTRY_LEN
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Directory entry `i` (< `len()`).
    pub fn entry(&self, i: usize) -> Result<DirEntry<'_>, String> {
        let at = i * ENTRY_LEN;
        let d = self
            .dir
            .get(at..at + ENTRY_LEN)
            .ok_or_else(|| format!("directory entry {i} is missing"))?;
        let noff = u32_at(d, 0) as usize;
        let nlen = u32_at(d, 4) as usize;
        let name = noff
            .checked_add(nlen)
            .and_then(|end| self.names.get(noff..end))
            .ok_or_else(|| format!("directory entry {i} names bytes outside the name table"))?;
        let name = std::str::from_utf8(name)
            .map_err(|_| format!("directory entry {i} has a name that is not UTF-8"))?;
        Ok(DirEntry {
            name,
            offset: u64_at(d, 8),
            len: u64_at(d, 16),
            crc: u32_at(d, 24),
            counts: Counts {
                packages: 1,
                versions: u64::from(u32_at(d, 28)),
                builds: u64::from(u32_at(d, 32)),
                deprecated: u64::from(u32_at(d, 36)),
            },
        })
    }

    fn name_at(&self, i: usize) -> &str {
        // Checked by `check_directory` when the index was opened.
        self.entry(i).map(|e| e.name).unwrap_or("")
    }

    /// Package names, sorted.
    pub fn package_names(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.name_at(i))
    }

    /// Binary search for a package.
    pub fn find(&self, name: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.name_at(mid).cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Totals from the directory, without reading any section.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for i in 0..self.len() {
            if let Ok(e) = self.entry(i) {
                c.add(e.counts);
            }
        }
        c
    }

    /// The raw bytes of section `i`, their crc checked.
    pub fn section(&self, i: usize) -> Result<Section, IndexFileError> {
        let e = self.entry(i).map_err(|detail| IndexFileError::Damaged {
            path: self.path.clone(),
            detail,
        })?;
        let mut bytes = vec![0u8; e.len as usize];
        self.file
            .read_exact_at(&mut bytes, e.offset)
            .map_err(|source| IndexFileError::Io {
                path: self.path.clone(),
                source,
            })?;
        let crc = crc32fast::hash(&bytes);
        if crc != e.crc {
            return Err(IndexFileError::DamagedSection {
                path: self.path.clone(),
                package: e.name.to_string(),
                detail: format!(
                    "its checksum is {crc:08x}, the directory says {:08x}",
                    e.crc
                ),
            });
        }
        Ok(Section {
            name: e.name.to_string(),
            bytes,
            crc,
            counts: e.counts,
        })
    }

    /// Every section's raw bytes, each crc-checked, read on all cores (for
    /// `--update`, which copies them). A damaged section is an `Err` in its
    /// place; the others are still returned. (Small reads into small buffers:
    /// one large buffer was measured slower, its page faults dominating.)
    pub fn all_sections(&self) -> Vec<Result<Section, IndexFileError>> {
        use rayon::prelude::*;
        (0..self.len())
            .into_par_iter()
            .map(|i| self.section(i))
            .collect()
    }

    /// Reads, checks and decodes section `i`.
    pub fn package_at(&self, i: usize) -> Result<PackageEntry, IndexFileError> {
        let s = self.section(i)?;
        let damaged = |detail: String| IndexFileError::DamagedSection {
            path: self.path.clone(),
            package: s.name.clone(),
            detail,
        };
        let p = codec::decode(&s.bytes).map_err(damaged)?;
        if p.name != s.name {
            return Err(damaged(format!("the section holds package {:?}", p.name)));
        }
        if p.counts() != s.counts {
            return Err(damaged("its counts differ from the directory's".into()));
        }
        Ok(p)
    }

    /// One package, or `None` when the index does not have it.
    pub fn package(&self, name: &str) -> Result<Option<PackageEntry>, IndexFileError> {
        self.find(name).map(|i| self.package_at(i)).transpose()
    }

    /// Checks every section (crc and decoding) and the metadata's counts.
    pub fn verify_all(&self) -> Result<Counts, IndexFileError> {
        let mut c = Counts::default();
        for i in 0..self.len() {
            c.add(self.package_at(i)?.counts());
        }
        self.check_meta_counts(c)
    }

    /// [`Index::verify_all`] on all cores.
    pub fn verify_all_parallel(&self) -> Result<Counts, IndexFileError> {
        use rayon::prelude::*;
        let c = (0..self.len())
            .into_par_iter()
            .map(|i| self.package_at(i).map(|p| p.counts()))
            .try_reduce(Counts::default, |mut a, b| {
                a.add(b);
                Ok(a)
            })?;
        self.check_meta_counts(c)
    }

    /// Checks every section's crc (on all cores) and decodes those for
    /// which `decode(name)` is true, checking their counts against the
    /// directory; then the metadata's counts. An update uses it to decode
    /// only the sections it wrote afresh: the others were copied byte for
    /// byte from a crc-checked section.
    pub fn verify_some(
        &self,
        decode: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Counts, IndexFileError> {
        use rayon::prelude::*;
        let c = (0..self.len())
            .into_par_iter()
            .map(|i| {
                let s = self.section(i)?;
                if decode(&s.name) {
                    self.package_at(i).map(|p| p.counts())
                } else {
                    Ok(s.counts)
                }
            })
            .try_reduce(Counts::default, |mut a, b| {
                a.add(b);
                Ok(a)
            })?;
        self.check_meta_counts(c)
    }

    fn check_meta_counts(&self, c: Counts) -> Result<Counts, IndexFileError> {
        let m = &self.meta;
        let said = (m.packages, m.versions, m.builds, m.deprecated);
        if said != (c.packages, c.versions, c.builds, c.deprecated) {
            return Err(IndexFileError::Damaged {
                path: self.path.clone(),
                detail: format!("its metadata counts {said:?} differ from its contents {c:?}"),
            });
        }
        Ok(c)
    }
}

fn read_up_to(file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}
