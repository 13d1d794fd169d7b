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
