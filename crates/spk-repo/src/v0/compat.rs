//! Compat text (`x.a.b`, `x.ab`, `x.x.b-a+x`) in SPK's canonical spelling.
//!
//! SPK stores a compat rule by re-printing what it parsed: each dotted
//! position is a set of letters (`x` none, `a` API, `b` binary), printed in
//! the order `a`, `b`, `x` with repeats dropped (`ba` → `ab`). Optional
//! `-rules` and `+rules` follow for pre- and post-release tags; when either
//! appears twice the last one counts. Like SPK, text after the last rule
//! that parses is ignored.

/// The default compat, stored as "absent" for builds and embedded specs.
pub const DEFAULT_COMPAT: &str = "x.a.b";

/// Compat text that SPK would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid compat `{text}`: expected dot-separated sets of the letters `x`, `a`, `b` (e.g. `x.a.b`, `x.ab`), optionally followed by `-<letters>` and `+<letters>`")]
pub struct CompatError {
    pub text: String,
}

/// One set of rule letters; bit 0 = a, bit 1 = b, bit 2 = x.
fn rule_set(input: &str) -> Option<(u8, &str)> {
    let end = input
        .bytes()
        .position(|b| !matches!(b, b'a' | b'b' | b'x'))
        .unwrap_or(input.len());
    if end == 0 {
        return None;
    }
    let mut set = 0u8;
    for b in input[..end].bytes() {
        set |= match b {
            b'a' => 1,
            b'b' => 2,
            _ => 4,
        };
    }
    Some((set, &input[end..]))
}

fn push_set(out: &mut String, set: u8) {
    for (bit, letter) in [(1, 'a'), (2, 'b'), (4, 'x')] {
        if set & bit != 0 {
            out.push(letter);
        }
    }
}

/// Parse compat text and return SPK's canonical spelling of it.
pub fn canonical_compat(text: &str) -> Result<String, CompatError> {
    let err = || CompatError {
        text: text.to_string(),
    };
    let (first, mut rest) = rule_set(text).ok_or_else(err)?;
    let mut parts = vec![first];
    while let Some(after) = rest.strip_prefix('.') {
        match rule_set(after) {
            Some((set, r)) => {
                parts.push(set);
                rest = r;
            }
            None => break,
        }
    }
    let (mut pre, mut post) = (None, None);
    loop {
        if let Some((set, r)) = rest.strip_prefix('-').and_then(rule_set) {
            pre = Some(set);
            rest = r;
        } else if let Some((set, r)) = rest.strip_prefix('+').and_then(rule_set) {
            post = Some(set);
            rest = r;
        } else {
            break;
        }
    }
    let mut out = String::with_capacity(text.len());
    for (i, set) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_set(&mut out, set);
    }
    if let Some(set) = pre {
        out.push('-');
        push_set(&mut out, set);
    }
    if let Some(set) = post {
        out.push('+');
        push_set(&mut out, set);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_spelling() {
        for (text, canon) in [
            ("x.a.b", "x.a.b"),
            ("x.ab", "x.ab"),
            ("x.ba", "x.ab"),
            ("bax.xx.a", "abx.x.a"),
            ("x.x.b-a+x", "x.x.b-a+x"),
            ("x.a.b+b-a", "x.a.b-a+b"),
            ("x.a.b-a-b", "x.a.b-b"),
            ("x.a.b.", "x.a.b"),
            ("x.a.bzz", "x.a.b"),
            ("b", "b"),
        ] {
            assert_eq!(canonical_compat(text).unwrap(), canon, "{text}");
        }
    }

    #[test]
    fn rejects_text_without_rules() {
        for bad in ["", "y", ".x", "X.A.B", "1.2"] {
            assert!(canonical_compat(bad).is_err(), "{bad:?}");
        }
        assert!(canonical_compat("q")
            .unwrap_err()
            .to_string()
            .contains("`x`, `a`, `b`"));
    }
}
