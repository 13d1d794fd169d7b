//! Version text as SPK reads and writes it.
//!
//! SPK keeps a version's parts exactly as written (`1.2` stays two parts),
//! because some range rules count the parts (`~1.2` differs from `~1.2.0`).
//! Three spellings of one version matter to the index:
//! - verbatim (`1.2`): [`Version`]'s `Display`, used in `published_version`
//!   and in filter rules;
//! - display (`1.2.0`): padded to at least three parts, which is how SPK
//!   prints a range such as a pkg option's default;
//! - storage (`1.2.0`, and `1.2.3.0` → `1.2.3`): trailing zeros dropped,
//!   then padded to three parts; the spfs tag folder and an embed stub's
//!   parent version use it.
//!
//! Ordering and equality are SPK's, not the model's derived ones: trailing
//! zeros do not count, and a pre-release sorts below its release.

use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::indexed::{TagItem, Version};

/// A version text that SPK would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version `{text}`: {problem}; a version is dot-separated numbers, optionally followed by `-pre` and `+post` tags such as `1.2.3-rc.1+r.2`")]
pub struct VersionError {
    pub text: String,
    pub problem: String,
}

/// A parse failure inside a larger text. `fatal` mirrors a parser "cut":
/// once an operator or separator committed to a form, no other reading of
/// the text is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PErr {
    pub fatal: bool,
    pub msg: &'static str,
}

impl PErr {
    pub(crate) const fn soft(msg: &'static str) -> Self {
        PErr { fatal: false, msg }
    }
    pub(crate) const fn cut(msg: &'static str) -> Self {
        PErr { fatal: true, msg }
    }
    pub(crate) fn into_cut(self) -> Self {
        PErr {
            fatal: true,
            msg: self.msg,
        }
    }
}

pub(crate) type PResult<'a, T> = Result<(T, &'a str), PErr>;

/// Leading ASCII digits as a `u32`.
pub(crate) fn number(input: &str) -> PResult<'_, u32> {
    let end = input
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(input.len());
    if end == 0 {
        return Err(PErr::soft("expected a number"));
    }
    let n = input[..end]
        .parse::<u32>()
        .map_err(|_| PErr::soft("number larger than 4294967295"))?;
    Ok((n, &input[end..]))
}

/// `name.number`, where the name is ASCII letters and digits with at least
/// one letter, followed by something that may end a tag.
fn ptag(input: &str) -> PResult<'_, TagItem> {
    let end = input
        .bytes()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(input.len());
    let name = &input[..end];
    if name.is_empty() || !name.bytes().any(|b| b.is_ascii_alphabetic()) {
        return Err(PErr::soft("expected a tag name (letters and digits)"));
    }
    let rest = input[end..]
        .strip_prefix('.')
        .ok_or(PErr::soft("expected `.` and a number after a tag name"))?;
    let (num, rest) = number(rest)?;
    match rest.chars().next() {
        None | Some(',' | '/' | '+' | ']') => Ok((
            TagItem {
                name: name.to_string(),
                number: num,
            },
            rest,
        )),
        Some(_) => Err(PErr::soft("unexpected character after a tag")),
    }
}

/// A comma-separated tag set, sorted by name. A comma not followed by a tag
/// is left for the caller (it separates range rules).
fn ptagset(input: &str) -> PResult<'_, Vec<TagItem>> {
    let (first, mut rest) = ptag(input)?;
    let mut tags = vec![first];
    while let Some(after) = rest.strip_prefix(',') {
        match ptag(after) {
            Ok((tag, r)) => {
                tags.push(tag);
                rest = r;
            }
            Err(_) => break,
        }
    }
    tags.sort_by(|a, b| a.name.cmp(&b.name));
    if tags.windows(2).any(|w| w[0].name == w[1].name) {
        return Err(PErr::soft("a tag name appears twice in one tag set"));
    }
    Ok((tags, rest))
}

/// A version at the start of `input`; the rest is returned.
pub(crate) fn version_prefix(input: &str) -> PResult<'_, Version> {
    let (first, mut rest) = number(input)?;
    let mut parts = vec![first];
    while let Some(after) = rest.strip_prefix('.') {
        let (n, r) = number(after).map_err(PErr::into_cut)?;
        parts.push(n);
        rest = r;
    }
    let mut version = Version {
        parts,
        pre: Vec::new(),
        post: Vec::new(),
    };
    if let Some(after) = rest.strip_prefix('-') {
        if let Ok((pre, r)) = ptagset(after) {
            version.pre = pre;
            rest = r;
        }
    }
    if let Some(after) = rest.strip_prefix('+') {
        if let Ok((post, r)) = ptagset(after) {
            version.post = post;
            rest = r;
        }
    }
    Ok((version, rest))
}

/// Parse a whole version text (`1.2.3`, `1.0.0-rc.1`, `3.0-beta.2,alpha.1+post.4`).
pub fn parse_version(text: &str) -> Result<Version, VersionError> {
    let err = |problem: &str| VersionError {
        text: text.to_string(),
        problem: problem.to_string(),
    };
    match version_prefix(text) {
        Ok((v, "")) => Ok(v),
        Ok((_, rest)) => Err(err(&format!("unexpected text `{rest}`"))),
        Err(e) => Err(err(e.msg)),
    }
}

fn write_tags(out: &mut String, sep: char, tags: &[TagItem]) {
    if tags.is_empty() {
        return;
    }
    out.push(sep);
    for (i, t) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}.{}", t.name, t.number);
    }
}

fn write_parts(out: &mut String, parts: impl Iterator<Item = u32>) {
    for (i, p) in parts.enumerate() {
        if i > 0 {
            out.push('.');
        }
        let _ = write!(out, "{p}");
    }
}

/// How SPK prints a version by default: padded with zeros to at least three
/// parts, never stripped (`1.2` → `1.2.0`, `1.2.3.0` stays).
pub fn display_padded(v: &Version) -> String {
    let mut out = String::with_capacity(16);
    let pad = 3usize.saturating_sub(v.parts.len());
    write_parts(
        &mut out,
        v.parts.iter().copied().chain(std::iter::repeat_n(0, pad)),
    );
    write_tags(&mut out, '-', &v.pre);
    write_tags(&mut out, '+', &v.post);
    out
}

/// The parts of the storage form: trailing zeros dropped, padded to three.
fn storage_parts(v: &Version) -> impl Iterator<Item = u32> + '_ {
    let keep = v.parts.iter().rposition(|p| *p != 0).map_or(0, |i| i + 1);
    let pad = 3usize.saturating_sub(keep);
    v.parts[..keep]
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0, pad))
}

/// The normalised storage form (`1.2` → `1.2.0`, `1.2.3.0` → `1.2.3`,
/// `0` → `0.0.0`, `2.1+r.3` → `2.1.0+r.3`): what the repository lists and
/// what an embed stub records as its parent's version.
pub fn storage_string(v: &Version) -> String {
    let mut out = String::with_capacity(16);
    write_parts(&mut out, storage_parts(v));
    write_tags(&mut out, '-', &v.pre);
    write_tags(&mut out, '+', &v.post);
    out
}

/// The storage form as a [`Version`] (what `VersionIndex.version` holds).
pub fn storage_version(v: &Version) -> Version {
    Version {
        parts: storage_parts(v).collect(),
        pre: v.pre.clone(),
        post: v.post.clone(),
    }
}

/// The spfs tag folder name of a version: the storage form with `+` written
/// `..` (spfs tags may not contain `+`).
pub fn tag_folder(v: &Version) -> String {
    storage_string(v).replacen('+', "..", 1)
}

/// Read a tag folder name back (`2.1.0..r.3` → `2.1.0+r.3`).
pub fn parse_tag_folder(folder: &str) -> Result<Version, VersionError> {
    match folder.split_once("..") {
        Some((base, post)) => parse_version(&format!("{base}+{post}")),
        None => parse_version(folder),
    }
}

fn tagset_cmp(a: &[TagItem], b: &[TagItem]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.name.cmp(&y.name).then(x.number.cmp(&y.number)) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

/// SPK's version order: parts compared with missing parts as zero, then a
/// pre-release below the release, then pre tags, then post tags.
pub fn version_cmp(a: &Version, b: &Version) -> Ordering {
    let n = a.parts.len().max(b.parts.len());
    for i in 0..n {
        let x = a.parts.get(i).copied().unwrap_or(0);
        let y = b.parts.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    match (a.pre.is_empty(), b.pre.is_empty()) {
        (true, true) => {}
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => match tagset_cmp(&a.pre, &b.pre) {
            Ordering::Equal => {}
            o => return o,
        },
    }
    tagset_cmp(&a.post, &b.post)
}

/// SPK's version equality (trailing zeros ignored: `1.2` equals `1.2.0`).
pub fn version_eq(a: &Version, b: &Version) -> bool {
    version_cmp(a, b) == Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        parse_version(text).unwrap()
    }
    fn tag(name: &str, number: u32) -> TagItem {
        TagItem {
            name: name.into(),
            number,
        }
    }

    #[test]
    fn parses_the_reference_table() {
        // §4.8 of the reference, row by row.
        assert_eq!(v("1.2.3").parts, vec![1, 2, 3]);
        assert_eq!(v("1.2").parts, vec![1, 2]);
        let rc = v("1.0.0-rc.1");
        assert_eq!((rc.parts, rc.pre), (vec![1, 0, 0], vec![tag("rc", 1)]));
        let post = v("2.1+r.3");
        assert_eq!((post.parts, post.post), (vec![2, 1], vec![tag("r", 3)]));
        let both = v("3.0-beta.2,alpha.1+post.4");
        assert_eq!(both.parts, vec![3, 0]);
        assert_eq!(both.pre, vec![tag("alpha", 1), tag("beta", 2)]);
        assert_eq!(both.post, vec![tag("post", 4)]);
    }

    #[test]
    fn keeps_parts_verbatim() {
        assert_eq!(v("1.2.3.0").parts, vec![1, 2, 3, 0]);
        assert_eq!(v("007.4294967295").parts, vec![7, u32::MAX]);
        assert_eq!(v("1.2").to_string(), "1.2");
        assert_eq!(
            v("3.0-beta.2,alpha.1+post.4").to_string(),
            "3.0-alpha.1,beta.2+post.4"
        );
    }

    #[test]
    fn rejects_what_spk_rejects() {
        for bad in [
            "",
            "a",
            "1.",
            "1..2",
            ".1",
            "1.a",
            "1-",
            "1-rc",
            "1-rc.",
            "1-1.2",
            "1+",
            "1.0-a.1,a.2",
            "4294967296",
            "1.2.3.",
            "1.0+c.0-c.0",
            "1 ",
            "-1",
            "1.0-rc.1-x",
            "1,2",
            "1.0-ä.1",
        ] {
            assert!(parse_version(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn error_says_what_is_wrong() {
        let e = parse_version("1.x").unwrap_err();
        assert!(e.to_string().contains("`1.x`"), "{e}");
        assert!(e.to_string().contains("dot-separated numbers"), "{e}");
    }

    #[test]
    fn storage_form() {
        for (text, storage) in [
            ("1.2", "1.2.0"),
            ("1.2.3.0", "1.2.3"),
            ("1.2.3.4", "1.2.3.4"),
            ("0", "0.0.0"),
            ("0.0.0.0", "0.0.0"),
            ("2.1+r.3", "2.1.0+r.3"),
            ("1.0.0-rc.1", "1.0.0-rc.1"),
            ("1-b.1,a.2+r.1", "1.0.0-a.2,b.1+r.1"),
            ("1.0.2.0.0", "1.0.2"),
        ] {
            assert_eq!(storage_string(&v(text)), storage, "{text}");
            assert_eq!(storage_version(&v(text)), v(storage), "{text}");
        }
    }

    #[test]
    fn padded_display() {
        assert_eq!(display_padded(&v("1.2")), "1.2.0");
        assert_eq!(display_padded(&v("1.2.3.0")), "1.2.3.0");
        assert_eq!(display_padded(&v("3-rc.1")), "3.0.0-rc.1");
    }

    #[test]
    fn tag_folder_round_trip() {
        assert_eq!(tag_folder(&v("2.1+r.3")), "2.1.0..r.3");
        assert_eq!(tag_folder(&v("1.0-a.1+b.2,c.3")), "1.0.0-a.1..b.2,c.3");
        assert_eq!(parse_tag_folder("2.1.0..r.3").unwrap(), v("2.1.0+r.3"));
        assert_eq!(parse_tag_folder("1.2.13").unwrap(), v("1.2.13"));
        assert!(parse_tag_folder("1.2.x").is_err());
    }

    #[test]
    fn ordering_and_equality() {
        assert!(version_eq(&v("1.2"), &v("1.2.0")));
        assert!(version_eq(&v("0"), &v("0.0.0")));
        assert!(!version_eq(&v("1.2"), &v("1.2.1")));
        assert!(!version_eq(&v("1.2-rc.1"), &v("1.2")));
        let order = [
            "0.9",
            "1.0-alpha.1",
            "1.0-alpha.2",
            "1.0-beta.1",
            "1.0",
            "1.0+r.1",
            "1.0+r.2",
            "1.0.1",
            "1.1",
            "1.10",
            "2",
        ];
        for w in order.windows(2) {
            assert_eq!(version_cmp(&v(w[0]), &v(w[1])), Ordering::Less, "{w:?}");
            assert_eq!(version_cmp(&v(w[1]), &v(w[0])), Ordering::Greater, "{w:?}");
        }
    }
}
