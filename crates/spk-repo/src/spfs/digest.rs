//! spfs digests: SHA-256, written as RFC 4648 base32 (uppercase, padded).
//!
//! Every object, payload and tag record in an spfs repository is named by
//! one; the text form is also the file name in a store
//! (`<store>/<D[0:2]>/<D[2:]>`), so it must match spfs's spelling exactly.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use data_encoding::BASE32;
use sha2::{Digest as _, Sha256};

/// Bytes in a digest.
pub const DIGEST_SIZE: usize = 32;

/// Characters in a digest's text form (base32 of 32 bytes, with `====`).
pub const DIGEST_TEXT_LEN: usize = 56;

/// A SHA-256 digest as spfs uses it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; DIGEST_SIZE]);

/// Text that is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an spfs digest (56 characters of uppercase base32 ending in \"====\"): {reason}")]
pub struct DigestParseError {
    pub text: String,
    pub reason: String,
}

impl Digest {
    /// All zeros: the parent of a tag stream's first record.
    pub const NULL: Digest = Digest([0; DIGEST_SIZE]);

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// Parses spfs's text form.
    pub fn parse(text: &str) -> Result<Digest, DigestParseError> {
        let fail = |reason: String| DigestParseError {
            text: text.to_string(),
            reason,
        };
        if text.len() != DIGEST_TEXT_LEN {
            return Err(fail(format!("it has {} characters", text.len())));
        }
        let bytes = BASE32
            .decode(text.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        let bytes: [u8; DIGEST_SIZE] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| fail(format!("it decodes to {} bytes", b.len())))?;
        Ok(Digest(bytes))
    }

    /// A digest from exactly 32 raw bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Digest> {
        let bytes: [u8; DIGEST_SIZE] = bytes.try_into().ok()?;
        Some(Digest(bytes))
    }

    /// The 56-character text form.
    pub fn to_base32(&self) -> String {
        BASE32.encode(&self.0)
    }

    /// Where this digest's file lives in a store such as `<root>/payloads`:
    /// `<store>/<first two characters>/<the rest>`.
    pub fn path_in(&self, store: &Path) -> PathBuf {
        let text = self.to_base32();
        let (dir, file) = text.split_at(2);
        store.join(dir).join(file)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base32())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input_in_spfs_spelling() {
        // SHA-256("") is e3b0c442...; spfs spells it in padded base32.
        let d = Digest::of(b"");
        assert_eq!(
            d.to_base32(),
            "4OYMIQUY7QOBJGX36TEJS35ZEQT24QPEMSNZGTFESWMRW6CSXBKQ===="
        );
        assert_eq!(d.to_string().len(), DIGEST_TEXT_LEN);
    }

    #[test]
    fn text_round_trip_and_store_path() {
        let d = Digest::of(b"pkg: zlib/1.2.13/src\n");
        let text = d.to_string();
        assert_eq!(Digest::parse(&text).unwrap(), d);
        let p = d.path_in(Path::new("/r/payloads"));
        assert_eq!(
            p,
            Path::new("/r/payloads").join(&text[..2]).join(&text[2..])
        );
    }

    #[test]
    fn bad_text_is_refused() {
        for bad in [
            "",
            "abc",
            // right length, lowercase
            "4oymiquy7qobjgx36tejs35zeqt24qpemsnzgtfeswmrw6csxbkq====",
            // right length, no padding
            "4OYMIQUY7QOBJGX36TEJS35ZEQT24QPEMSNZGTFESWMRW6CSXBKQAAAA",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(Digest::from_slice(&[0; 31]).is_none());
        assert_eq!(Digest::from_slice(&[0; 32]), Some(Digest::NULL));
    }
}
