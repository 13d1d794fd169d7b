//! Version range text → the index's flat list of [`FilterRule`]s.
//!
//! SPK parses `>=1.2,<2` into a set of rules and writes one
//! `VersionFilterRule` per rule. The set decides two things we must copy:
//! which rules count as duplicates (SPK's own equality, where `1.2` equals
//! `1.2.0`, but `~1.2` and `~1.2.0` differ because they specify a different
//! number of parts) and the order of the written list (operator number,
//! then the rule's own fields). The last of two equal rules is the one kept.
//!
//! Separator commas are told apart from tag-set commas by looking ahead: in
//! `>=1.0-a.0,<2` the comma ends the tag set because `<2` is not a tag.

use std::cmp::Ordering;

use super::version::{display_padded, number, version_cmp, version_prefix, PErr, PResult};
use crate::indexed::{CompatRule, FilterRule, RangeOp, Version};

/// A version range text that SPK would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version range `{text}`: {problem}; a range is comma-separated rules such as `1.2`, `Binary:1.2`, `>=1.2,<2`, `~1.2.3`, `^1`, `=1.2.3`, `!=1.2`, `1.*`")]
pub struct RangeError {
    pub text: String,
    pub problem: String,
}

/// The wildcard marker stored in `VersionFilterRule.parts`.
pub const WILDCARD: u32 = u32::MAX;

fn rule(op: RangeOp, version: Version) -> FilterRule {
    FilterRule {
        op,
        version: Some(version),
        required: CompatRule::None,
        parts: None,
    }
}

/// After an operator: a version, or a hard failure.
fn operand<'a>(op: RangeOp, rest: &'a str) -> PResult<'a, FilterRule> {
    let (v, rest) = version_prefix(rest).map_err(PErr::into_cut)?;
    if op == RangeOp::LowestSpecified && v.parts.len() < 2 {
        return Err(PErr::cut(
            "`~` needs at least two version parts, e.g. `~1.2`",
        ));
    }
    Ok((rule(op, v), rest))
}

/// `1.*`, `*`, `1.*.3`: numbers and exactly one `*`.
fn wildcard(input: &str) -> PResult<'_, FilterRule> {
    fn elem(s: &str) -> PResult<'_, u32> {
        match s.strip_prefix('*') {
            Some(r) => Ok((WILDCARD, r)),
            None => number(s),
        }
    }
    let (first, mut rest) = elem(input)?;
    let mut parts = vec![first];
    while let Some(after) = rest.strip_prefix('.') {
        match elem(after) {
            Ok((p, r)) => {
                parts.push(p);
                rest = r;
            }
            Err(_) => break,
        }
    }
    if parts.iter().filter(|p| **p == WILDCARD).count() != 1 {
        return Err(PErr::soft("a wildcard needs exactly one `*`"));
    }
    Ok((
        FilterRule {
            op: RangeOp::Wildcard,
            version: None,
            required: CompatRule::None,
            parts: Some(parts),
        },
        rest,
    ))
}

/// One rule at the start of `input`.
fn one_rule(input: &str) -> PResult<'_, FilterRule> {
    const OPS: [(&str, RangeOp); 10] = [
        ("^", RangeOp::Semver),
        ("~", RangeOp::LowestSpecified),
        (">=", RangeOp::GreaterThanOrEqualTo),
        ("<=", RangeOp::LessThanOrEqualTo),
        (">", RangeOp::GreaterThan),
        ("<", RangeOp::LessThan),
        ("==", RangeOp::DoubleEquals),
        ("=", RangeOp::Equals),
        ("!==", RangeOp::DoubleNotEquals),
        ("!=", RangeOp::NotEquals),
    ];
    for (prefix, op) in OPS {
        if let Some(rest) = input.strip_prefix(prefix) {
            return operand(op, rest);
        }
    }
    for (prefix, required) in [("Binary", CompatRule::Binary), ("API", CompatRule::API)] {
        if let Some(rest) = input.strip_prefix(prefix) {
            let rest = rest
                .strip_prefix(':')
                .ok_or(PErr::cut("expected `:` and a version after `Binary`/`API`"))?;
            let (v, rest) = version_prefix(rest).map_err(PErr::into_cut)?;
            let mut r = rule(RangeOp::Compat, v);
            r.required = required;
            return Ok((r, rest));
        }
    }
    match wildcard(input) {
        Ok(ok) => return Ok(ok),
        Err(e) if e.fatal => return Err(e),
        Err(_) => {}
    }
    let (v, rest) = version_prefix(input)?;
    Ok((rule(RangeOp::Compat, v), rest))
}

/// A range at the start of `input` (stops at `/`, `]` or anything that
/// is not a rule), as SPK's set: duplicates removed, sorted.
pub(crate) fn range_prefix(input: &str) -> PResult<'_, Vec<FilterRule>> {
    let (first, mut rest) = one_rule(input)?;
    let mut rules = vec![first];
    while let Some(after) = rest.strip_prefix(',') {
        match one_rule(after) {
            Ok((r, tail)) => {
                rules.push(r);
                rest = tail;
            }
            Err(e) if e.fatal => return Err(e),
            Err(_) => break,
        }
    }
    normalise_rules(&mut rules);
    Ok((rules, rest))
}

/// Parse a whole range text into its rules, as SPK writes them.
pub fn parse_range(text: &str) -> Result<Vec<FilterRule>, RangeError> {
    let err = |problem: String| RangeError {
        text: text.to_string(),
        problem,
    };
    if text.is_empty() {
        return Err(err("the range is empty".into()));
    }
    match range_prefix(text) {
        Ok((rules, "")) => Ok(rules),
        Ok((_, rest)) => Err(err(format!("unexpected text `{rest}`"))),
        Err(e) => Err(err(e.msg.to_string())),
    }
}

/// Sort as SPK's rule set iterates and drop rules SPK considers equal,
/// keeping the **last** written (SPK collects the rules into an ordered
/// set in one go, which keeps the last of equal items; SPK 0.44.0 indexes
/// `>=1.2,>=1.2.0` as `[>=1.2.0]`).
pub fn normalise_rules(rules: &mut Vec<FilterRule>) {
    // Reversed, a stable sort puts the last-written of equal rules first,
    // and `dedup_by` keeps the first of each run.
    rules.reverse();
    rules.sort_by(rule_cmp);
    rules.dedup_by(|later, earlier| rule_cmp(earlier, later) == Ordering::Equal);
}

fn op_number(op: RangeOp) -> u8 {
    op as u8
}

fn opt_version_cmp(a: &Option<Version>, b: &Option<Version>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => version_cmp(a, b),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

fn specified(r: &FilterRule) -> usize {
    r.version.as_ref().map_or(0, |v| v.parts.len())
}

/// SPK's order of rules: operator number, then the rule's own fields in
/// SPK's declaration order (for `!=`, `!==` and `~` the number of parts
/// written comes before the version; for wildcards `*` sorts below numbers).
pub fn rule_cmp(a: &FilterRule, b: &FilterRule) -> Ordering {
    op_number(a.op)
        .cmp(&op_number(b.op))
        .then_with(|| match a.op {
            RangeOp::Compat => opt_version_cmp(&a.version, &b.version)
                .then((a.required as u8).cmp(&(b.required as u8))),
            RangeOp::NotEquals | RangeOp::DoubleNotEquals | RangeOp::LowestSpecified => {
                specified(a)
                    .cmp(&specified(b))
                    .then_with(|| opt_version_cmp(&a.version, &b.version))
            }
            RangeOp::Wildcard => {
                let pa = a.parts.as_deref().unwrap_or(&[WILDCARD]);
                let pb = b.parts.as_deref().unwrap_or(&[WILDCARD]);
                let key = |p: &u32| if *p == WILDCARD { None } else { Some(*p) };
                pa.len()
                    .cmp(&pb.len())
                    .then_with(|| pa.iter().map(key).cmp(pb.iter().map(key)))
            }
            _ => opt_version_cmp(&a.version, &b.version),
        })
}

fn tags_suffix(v: &Version) -> String {
    let padded = display_padded(&Version {
        parts: Vec::new(),
        pre: v.pre.clone(),
        post: v.post.clone(),
    });
    // display_padded of no parts gives "0.0.0" before the tags
    padded["0.0.0".len()..].to_string()
}

fn verbatim_parts(v: &Version) -> String {
    v.parts
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// How SPK prints one rule: most operators pad the version to three parts,
/// while `~`, `!=` and `!==` print the parts as written.
pub fn rule_text(r: &FilterRule) -> String {
    let padded = || r.version.as_ref().map(display_padded).unwrap_or_default();
    let verbatim = || {
        r.version
            .as_ref()
            .map(|v| verbatim_parts(v) + &tags_suffix(v))
            .unwrap_or_default()
    };
    match r.op {
        RangeOp::Compat => match r.required {
            CompatRule::None => padded(),
            CompatRule::API => format!("API:{}", padded()),
            CompatRule::Binary => format!("Binary:{}", padded()),
        },
        RangeOp::DoubleEquals => format!("=={}", padded()),
        RangeOp::DoubleNotEquals => format!("!=={}", verbatim()),
        RangeOp::Equals => format!("={}", padded()),
        RangeOp::GreaterThan => format!(">{}", padded()),
        RangeOp::GreaterThanOrEqualTo => format!(">={}", padded()),
        RangeOp::LessThan => format!("<{}", padded()),
        RangeOp::LessThanOrEqualTo => format!("<={}", padded()),
        RangeOp::LowestSpecified => format!("~{}", verbatim()),
        RangeOp::NotEquals => format!("!={}", verbatim()),
        RangeOp::Semver => format!("^{}", padded()),
        RangeOp::Wildcard => r
            .parts
            .as_deref()
            .unwrap_or(&[WILDCARD])
            .iter()
            .map(|p| {
                if *p == WILDCARD {
                    "*".to_string()
                } else {
                    p.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// How SPK prints a whole range: each rule's text, sorted as strings,
/// joined by commas (`>=3.7,<4` → `<4.0.0,>=3.7.0`).
pub fn range_text(rules: &[FilterRule]) -> String {
    let mut texts: Vec<String> = rules.iter().map(rule_text).collect();
    texts.sort_unstable();
    texts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v0::version::parse_version;

    fn v(t: &str) -> Version {
        parse_version(t).unwrap()
    }
    fn r(op: RangeOp, ver: &str) -> FilterRule {
        rule(op, v(ver))
    }
    fn compat(ver: &str, required: CompatRule) -> FilterRule {
        FilterRule {
            required,
            ..r(RangeOp::Compat, ver)
        }
    }
    fn wild(parts: &[u32]) -> FilterRule {
        FilterRule {
            op: RangeOp::Wildcard,
            version: None,
            required: CompatRule::None,
            parts: Some(parts.to_vec()),
        }
    }
    const W: u32 = WILDCARD;

    /// Every row of §5.5, and the forms SPK's own tests use.
    #[test]
    fn reference_table() {
        use CompatRule as C;
        use RangeOp::*;
        let table: Vec<(&str, Vec<FilterRule>)> = vec![
            ("1.2.3", vec![compat("1.2.3", C::None)]),
            ("Binary:1.2", vec![compat("1.2", C::Binary)]),
            ("API:1.2", vec![compat("1.2", C::API)]),
            ("==1.2.3", vec![r(DoubleEquals, "1.2.3")]),
            ("!==1.2", vec![r(DoubleNotEquals, "1.2")]),
            ("=1.2.3", vec![r(Equals, "1.2.3")]),
            (">1.2", vec![r(GreaterThan, "1.2")]),
            (">=1.2", vec![r(GreaterThanOrEqualTo, "1.2")]),
            ("<2", vec![r(LessThan, "2")]),
            ("<=2.1", vec![r(LessThanOrEqualTo, "2.1")]),
            ("~1.2", vec![r(LowestSpecified, "1.2")]),
            ("!=1.2", vec![r(NotEquals, "1.2")]),
            ("^1.2", vec![r(Semver, "1.2")]),
            ("1.*", vec![wild(&[1, W])]),
            ("*", vec![wild(&[W])]),
            ("1.*.3", vec![wild(&[1, W, 3])]),
            (
                ">=1.2,<2",
                vec![r(GreaterThanOrEqualTo, "1.2"), r(LessThan, "2")],
            ),
            // sorted by operator number, not as written
            (
                "<2,>=1.2",
                vec![r(GreaterThanOrEqualTo, "1.2"), r(LessThan, "2")],
            ),
            ("!=3.1,^3", vec![r(NotEquals, "3.1"), r(Semver, "3")]),
            ("^3,!=3.1", vec![r(NotEquals, "3.1"), r(Semver, "3")]),
            // tags on operator forms
            (">=1.0-rc.1", vec![r(GreaterThanOrEqualTo, "1.0-rc.1")]),
            ("=2.0+r.1", vec![r(Equals, "2.0+r.1")]),
            ("~1.2.3-b.1,a.2", vec![r(LowestSpecified, "1.2.3-a.2,b.1")]),
            // the comma lookahead: `a.0` is a tag, `<2` a new rule
            (
                ">=1.0-a.0,<2",
                vec![r(GreaterThanOrEqualTo, "1.0-a.0"), r(LessThan, "2")],
            ),
            (
                "1.0-a.0,2.0",
                vec![compat("1.0-a.0", C::None), compat("2.0", C::None)],
            ),
            (
                "!=0+a.0,0.0.*",
                vec![r(NotEquals, "0+a.0"), wild(&[0, 0, W])],
            ),
            // duplicates collapse under SPK's equality, the last one stays
            // (SPK wrote [1,2,0] for the first and [1,2] for the second)
            (">=1.2,>=1.2.0", vec![r(GreaterThanOrEqualTo, "1.2.0")]),
            (">=1.2.0,>=1.2", vec![r(GreaterThanOrEqualTo, "1.2")]),
            ("Binary:1.2,Binary:1.2.0", vec![compat("1.2.0", C::Binary)]),
            // ... but `~` and `!=` count the parts written
            (
                "~1.2.0,~1.2",
                vec![r(LowestSpecified, "1.2"), r(LowestSpecified, "1.2.0")],
            ),
            (
                "!=1.2,!=1.2.0",
                vec![r(NotEquals, "1.2"), r(NotEquals, "1.2.0")],
            ),
            // compat: bare < API < Binary for one base version
            (
                "Binary:1.2,1.2,API:1.2",
                vec![
                    compat("1.2", C::None),
                    compat("1.2", C::API),
                    compat("1.2", C::Binary),
                ],
            ),
            // versions in SPK order within one operator
            (
                ">=2,>=1.10,>=1.9,>=1.9-rc.1",
                vec![
                    r(GreaterThanOrEqualTo, "1.9-rc.1"),
                    r(GreaterThanOrEqualTo, "1.9"),
                    r(GreaterThanOrEqualTo, "1.10"),
                    r(GreaterThanOrEqualTo, "2"),
                ],
            ),
            // wildcards: fewer parts first, `*` below numbers
            ("1.*,*.1,*", vec![wild(&[W]), wild(&[W, 1]), wild(&[1, W])]),
            // every operator in one range, written in reverse
            (
                "1.*,^1,!=1,~1.0,<=1,<1,>=1,>1,=1,!==1,==1,1",
                vec![
                    compat("1", C::None),
                    r(DoubleEquals, "1"),
                    r(DoubleNotEquals, "1"),
                    r(Equals, "1"),
                    r(GreaterThan, "1"),
                    r(GreaterThanOrEqualTo, "1"),
                    r(LessThan, "1"),
                    r(LessThanOrEqualTo, "1"),
                    r(LowestSpecified, "1.0"),
                    r(NotEquals, "1"),
                    r(Semver, "1"),
                    wild(&[1, W]),
                ],
            ),
        ];
        for (text, want) in table {
            assert_eq!(parse_range(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn rejects_what_spk_rejects() {
        for bad in [
            "",
            "~1",
            "~",
            ">=",
            ">=x",
            "Binary",
            "Binary:",
            "Binary1.2",
            "API:x",
            "1.*-rc.1",
            "1.*.*",
            "1,",
            ",1",
            "1,,2",
            "1.2/",
            "=1.2 ",
            "binary:1.2",
            "1.x",
            "**",
            "1.2.3a",
            ">=1.0,<",
            "=>1",
            "1.0-a.0,a.1",
        ] {
            assert!(parse_range(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn stops_at_a_build_separator() {
        let (rules, rest) = range_prefix("=1.2.3/src").unwrap();
        assert_eq!(rules, vec![r(RangeOp::Equals, "1.2.3")]);
        assert_eq!(rest, "/src");
        let (_, rest) = range_prefix(">=1.0-a.0,<2/GMTG3CXY").unwrap();
        assert_eq!(rest, "/GMTG3CXY");
    }

    #[test]
    fn texts_as_spk_prints_them() {
        for (range, text) in [
            ("3.7", "3.7.0"),
            ("~3.7.3", "~3.7.3"),
            ("~3.7", "~3.7"),
            (">=3.7,<4", "<4.0.0,>=3.7.0"),
            ("Binary:1.2", "Binary:1.2.0"),
            ("API:1", "API:1.0.0"),
            ("!=1.2-rc.1", "!=1.2-rc.1"),
            ("!==1", "!==1"),
            ("==1.0+r.1", "==1.0.0+r.1"),
            ("=1.2.3.4", "=1.2.3.4"),
            ("^1", "^1.0.0"),
            ("1.*", "1.*"),
            ("<=2", "<=2.0.0"),
            (">2", ">2.0.0"),
        ] {
            assert_eq!(range_text(&parse_range(range).unwrap()), text, "{range}");
        }
    }
}
