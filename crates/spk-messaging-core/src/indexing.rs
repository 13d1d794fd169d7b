//! What an Indexer service asks of the index code.
//!
//! The Indexer lives with the Kafka code and the index with the repository
//! code, and neither depends on the other: the binary joins them by
//! implementing [`IndexRunner`] over `spk-repo`. The Indexer decides *when*
//! to run and *what* to cover; the runner does one run and says whether the
//! lock was busy (try again later, events kept) or it failed.

use crate::ident::PkgIdent;
use crate::status::IndexStatusReporter;

/// What one run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexScope {
    /// Generate the whole index.
    Full,
    /// Re-read these packages or package versions, keep the rest.
    Update(Vec<PkgIdent>),
}

/// How many targets a log line names before "and N more".
const NAMED: usize = 5;

/// For logs: "a full generation", or "an update of 3 target(s): a/1.0, b,
/// c/2" (long lists cut short, so a backlog of thousands stays one line).
impl std::fmt::Display for IndexScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexScope::Full => f.write_str("a full generation"),
            IndexScope::Update(ids) => {
                write!(f, "an update of {} target(s): ", ids.len())?;
                for (i, id) in ids.iter().take(NAMED).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{id}")?;
                }
                if ids.len() > NAMED {
                    write!(f, " and {} more", ids.len() - NAMED)?;
                }
                Ok(())
            }
        }
    }
}

/// Why a run did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexRunError {
    /// Someone else holds the index write lock; nothing was changed.
    #[error("the index lock is busy: {0}")]
    LockBusy(String),
    /// The run failed; nothing was changed.
    #[error("{0}")]
    Failed(String),
}

/// Runs one index generation or update, reporting status to `reporter`.
pub trait IndexRunner: Send + Sync {
    /// Returns a one-line summary of what was done.
    fn run(
        &self,
        scope: &IndexScope,
        reporter: &dyn IndexStatusReporter,
    ) -> Result<String, IndexRunError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_read_as_one_short_line() {
        assert_eq!(IndexScope::Full.to_string(), "a full generation");
        let ids: Vec<PkgIdent> = (0..8)
            .map(|i| format!("pkg-{i}/1.0.0").parse().unwrap())
            .collect();
        assert_eq!(
            IndexScope::Update(ids[..2].to_vec()).to_string(),
            "an update of 2 target(s): pkg-0/1.0.0, pkg-1/1.0.0"
        );
        assert_eq!(
            IndexScope::Update(ids).to_string(),
            "an update of 8 target(s): pkg-0/1.0.0, pkg-1/1.0.0, pkg-2/1.0.0, pkg-3/1.0.0, pkg-4/1.0.0 and 3 more"
        );
    }
}
