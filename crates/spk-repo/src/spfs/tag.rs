//! spfs tag streams: the `.tag` files under `<root>/tags/`.
//!
//! A tag file is the history of one tag, oldest record first, with no
//! header: each record is an 8-byte big-endian length followed by that many
//! bytes of encoded tag (org, name, target, user, time, parent). The newest
//! record, the last one, is the tag's current target. A record's digest
//! (SHA-256 of its encoded bytes, without the length) is the `parent` of the
//! record after it, as spfs computes it when pushing a tag.
//!
//! Parsing is strict and typed, because a truncated or foreign file must
//! become an error naming the file, never a panic or a wrong target.

use std::fmt;
use std::path::{Path, PathBuf};

use super::digest::{Digest, DIGEST_SIZE};

/// One record of a tag stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    /// The tag's directory part, `spk/spec/zlib/1.3.1` (empty for a tag at
    /// the top of `tags/`).
    pub org: String,
    /// The last part, `KQYBVT4U`.
    pub name: String,
    /// What the tag points to.
    pub target: Digest,
    /// `name@domain` of whoever pushed it.
    pub user: String,
    /// RFC 3339 text, as written (spfs writes `+00:00` and 0, 3 or 6
    /// fraction digits).
    pub time: String,
    /// The digest of the previous record, [`Digest::NULL`] for the first.
    pub parent: Digest,
}

/// What is wrong with a tag file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagProblem {
    /// The file has no bytes: no record, no target.
    Empty,
    /// Fewer than 8 bytes left where a record length should start.
    TruncatedLength { offset: usize, available: usize },
    /// The length is negative, zero or too small to hold a record.
    BadLength { offset: usize, length: i64 },
    /// The length runs past the end of the file.
    TruncatedRecord {
        offset: usize,
        length: i64,
        available: usize,
    },
    /// A text field has no terminating NUL inside its record.
    MissingNul { offset: usize, field: &'static str },
    /// A digest field is cut short by the end of its record.
    ShortDigest { offset: usize, field: &'static str },
    /// A text field is not UTF-8.
    NotUtf8 { offset: usize, field: &'static str },
    /// Bytes left inside a record after its last field.
    TrailingBytes { offset: usize, extra: usize },
}

impl fmt::Display for TagProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagProblem::Empty => f.write_str("the file is empty (a tag stream holds at least one record)"),
            TagProblem::TruncatedLength { offset, available } => write!(
                f,
                "truncated: a record length (8 bytes) starts at byte {offset} but only {available} bytes remain"
            ),
            TagProblem::BadLength { offset, length } => {
                write!(f, "impossible record length {length} at byte {offset}")
            }
            TagProblem::TruncatedRecord {
                offset,
                length,
                available,
            } => write!(
                f,
                "truncated: the record at byte {offset} declares {length} bytes but only {available} remain"
            ),
            TagProblem::MissingNul { offset, field } => write!(
                f,
                "the {field} field at byte {offset} has no terminating NUL within its record"
            ),
            TagProblem::ShortDigest { offset, field } => write!(
                f,
                "the {field} digest at byte {offset} is cut short (32 bytes expected)"
            ),
            TagProblem::NotUtf8 { offset, field } => {
                write!(f, "the {field} field at byte {offset} is not UTF-8")
            }
            TagProblem::TrailingBytes { offset, extra } => write!(
                f,
                "the record ending at byte {offset} has {extra} unexplained bytes after its parent digest"
            ),
        }
    }
}

/// A tag file that cannot be read as a tag stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: not a valid spfs tag stream: {problem}", path.display())]
pub struct TagStreamError {
    pub path: PathBuf,
    pub problem: TagProblem,
}

/// The smallest possible record: four empty strings (4 NULs) and two digests.
const MIN_RECORD: usize = 4 + 2 * DIGEST_SIZE;

/// A cursor over one record's bytes; offsets reported are file offsets.
struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Fields<'a> {
    fn string(&mut self, field: &'static str) -> Result<String, TagProblem> {
        let offset = self.base + self.pos;
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or(TagProblem::MissingNul { offset, field })?;
        let text =
            std::str::from_utf8(&rest[..end]).map_err(|_| TagProblem::NotUtf8 { offset, field })?;
        self.pos += end + 1;
        Ok(text.to_string())
    }

    fn digest(&mut self, field: &'static str) -> Result<Digest, TagProblem> {
        let offset = self.base + self.pos;
        let d = self
            .bytes
            .get(self.pos..self.pos + DIGEST_SIZE)
            .and_then(Digest::from_slice)
            .ok_or(TagProblem::ShortDigest { offset, field })?;
        self.pos += DIGEST_SIZE;
        Ok(d)
    }
}

impl TagRecord {
    /// The encoded record (without its length prefix), as spfs writes and
    /// hashes it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.org.len() + self.name.len() + self.user.len() + self.time.len() + MIN_RECORD,
        );
        for (text, digest) in [
            (&self.org, None),
            (&self.name, Some(&self.target)),
            (&self.user, None),
            (&self.time, Some(&self.parent)),
        ] {
            out.extend_from_slice(text.as_bytes());
            out.push(0);
            if let Some(d) = digest {
                out.extend_from_slice(&d.0);
            }
        }
        out
    }

    /// The record with its 8-byte big-endian length in front: what a tag
    /// file holds for it.
    pub fn encode_framed(&self) -> Vec<u8> {
        let body = self.encode();
        let mut out = Vec::with_capacity(body.len() + 8);
        out.extend_from_slice(&(body.len() as i64).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// This record's digest: what the next record names as its parent.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.encode())
    }

    /// `org/name`, the tag's path (without `.tag`).
    pub fn path(&self) -> String {
        if self.org.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.org, self.name)
        }
    }

    /// Decodes one record body (no length prefix); `base` is its offset in
    /// the file, for messages.
    fn decode(bytes: &[u8], base: usize) -> Result<TagRecord, TagProblem> {
        let mut f = Fields {
            bytes,
            pos: 0,
            base,
        };
        let record = TagRecord {
            org: f.string("org")?,
            name: f.string("name")?,
            target: f.digest("target")?,
            user: f.string("user")?,
            time: f.string("time")?,
            parent: f.digest("parent")?,
        };
        if f.pos != bytes.len() {
            return Err(TagProblem::TrailingBytes {
                offset: base + f.pos,
                extra: bytes.len() - f.pos,
            });
        }
        Ok(record)
    }
}

/// Parses a whole tag file's bytes into its records, oldest first. `path`
/// only names the file in errors.
pub fn parse_tag_stream(path: &Path, bytes: &[u8]) -> Result<Vec<TagRecord>, TagStreamError> {
    let fail = |problem| TagStreamError {
        path: path.to_path_buf(),
        problem,
    };
    if bytes.is_empty() {
        return Err(fail(TagProblem::Empty));
    }
    let mut records = Vec::with_capacity(1);
    let mut offset = 0usize;
    while offset < bytes.len() {
        let available = bytes.len() - offset;
        let Some(len_bytes) = bytes.get(offset..offset + 8) else {
            return Err(fail(TagProblem::TruncatedLength { offset, available }));
        };
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(len_bytes);
        let length = i64::from_be_bytes(len8);
        if length < MIN_RECORD as i64 {
            return Err(fail(TagProblem::BadLength { offset, length }));
        }
        let body_start = offset + 8;
        let body_len = usize::try_from(length).ok();
        let body = body_len
            .and_then(|n| body_start.checked_add(n))
            .and_then(|end| bytes.get(body_start..end))
            .ok_or(TagProblem::TruncatedRecord {
                offset,
                length,
                available: available - 8,
            })
            .map_err(fail)?;
        records.push(TagRecord::decode(body, body_start).map_err(fail)?);
        offset = body_start + body.len();
    }
    Ok(records)
}

/// The current (newest) record of a tag file's bytes.
pub fn latest_record(path: &Path, bytes: &[u8]) -> Result<TagRecord, TagStreamError> {
    let mut records = parse_tag_stream(path, bytes)?;
    records.pop().ok_or_else(|| TagStreamError {
        path: path.to_path_buf(),
        problem: TagProblem::Empty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(target: &[u8], parent: Digest) -> TagRecord {
        TagRecord {
            org: "spk/spec/zlib/1.2.13".into(),
            name: "ZLIBD3XH".into(),
            target: Digest::of(target),
            user: "spk@localhost".into(),
            time: "2026-11-25T00:00:00.000000+00:00".into(),
            parent,
        }
    }

    #[test]
    fn encoding_matches_the_documented_layout() {
        let r = record(b"spec", Digest::NULL);
        let bytes = r.encode_framed();
        let body_len = i64::from_be_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(body_len, bytes.len() - 8);
        let mut expected = b"spk/spec/zlib/1.2.13\0ZLIBD3XH\0".to_vec();
        expected.extend_from_slice(&Digest::of(b"spec").0);
        expected.extend_from_slice(b"spk@localhost\0");
        expected.extend_from_slice(b"2026-11-25T00:00:00.000000+00:00\0");
        expected.extend_from_slice(&[0; 32]);
        assert_eq!(&bytes[8..], &expected[..]);
        assert_eq!(r.digest(), Digest::of(&expected));
    }

    #[test]
    fn a_stream_reads_back_and_its_last_record_is_current() {
        let first = record(b"one", Digest::NULL);
        let second = record(b"two", first.digest());
        let mut bytes = first.encode_framed();
        bytes.extend(second.encode_framed());
        let p = Path::new("t.tag");
        let records = parse_tag_stream(p, &bytes).unwrap();
        assert_eq!(records, vec![first.clone(), second.clone()]);
        assert_eq!(latest_record(p, &bytes).unwrap().target, Digest::of(b"two"));
        assert_eq!(records[1].parent, records[0].digest());
    }

    #[test]
    fn damaged_streams_are_typed_errors_naming_the_file() {
        let good = record(b"one", Digest::NULL).encode_framed();
        let p = Path::new("/repo/tags/spk/spec/zlib/1.2.13/ZLIBD3XH.tag");
        let problem = |bytes: &[u8]| {
            let e = parse_tag_stream(p, bytes).unwrap_err();
            assert!(e.to_string().contains("ZLIBD3XH.tag"), "{e}");
            e.problem
        };
        assert_eq!(problem(b""), TagProblem::Empty);
        assert!(matches!(
            problem(&good[..5]),
            TagProblem::TruncatedLength { .. }
        ));
        assert!(matches!(
            problem(&good[..good.len() - 1]),
            TagProblem::TruncatedRecord { .. }
        ));
        let mut negative = good.clone();
        negative[0] = 0xff;
        assert!(matches!(problem(&negative), TagProblem::BadLength { .. }));
        let mut huge = good.clone();
        huge[..8].copy_from_slice(&i64::MAX.to_be_bytes());
        assert!(matches!(problem(&huge), TagProblem::TruncatedRecord { .. }));
        // a record of the right size with no NUL at all
        let mut no_nul = (MIN_RECORD as i64).to_be_bytes().to_vec();
        no_nul.extend(std::iter::repeat_n(b'x', MIN_RECORD));
        assert!(matches!(
            problem(&no_nul),
            TagProblem::MissingNul { field: "org", .. }
        ));
        // a good record followed by a few stray bytes
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"abc");
        assert!(matches!(
            problem(&trailing),
            TagProblem::TruncatedLength { .. }
        ));
        // a record whose declared length is larger than its fields
        let body = record(b"one", Digest::NULL).encode();
        let mut padded = ((body.len() + 2) as i64).to_be_bytes().to_vec();
        padded.extend_from_slice(&body);
        padded.extend_from_slice(&[1, 2]);
        assert!(matches!(
            problem(&padded),
            TagProblem::TrailingBytes { extra: 2, .. }
        ));
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic pseudo-random garbage, including plausible lengths.
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let p = Path::new("garbage.tag");
        let good = record(b"one", Digest::NULL).encode_framed();
        for round in 0..5000 {
            let len = (next() % 200) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 3 == 0 && len >= 8 {
                let claimed = (next() % 160) as i64;
                bytes[..8].copy_from_slice(&claimed.to_be_bytes());
            }
            if round % 5 == 0 {
                // flip bytes of a good record
                bytes = good.clone();
                for _ in 0..3 {
                    let i = (next() as usize) % bytes.len();
                    bytes[i] = next() as u8;
                }
            }
            let _ = parse_tag_stream(p, &bytes);
        }
    }
}
