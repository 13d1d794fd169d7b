//! A build (or a listing) that was skipped, and why.
//!
//! SPK skips what it cannot read and counts it; so do we, but every skip
//! names the spfs tag it came from and what is wrong, so an operator can
//! find it (`--strict` makes any skip fatal).

use std::fmt;

/// One skipped build, version or listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpecProblem {
    /// The spfs tag (or tag folder) concerned, e.g. `spk/spec/zlib/1.3.1/KQYBVT4U`.
    pub tag: String,
    pub problem: String,
}

impl SpecProblem {
    pub fn new(tag: impl Into<String>, problem: impl Into<String>) -> Self {
        SpecProblem {
            tag: tag.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.tag, self.problem)
    }
}
