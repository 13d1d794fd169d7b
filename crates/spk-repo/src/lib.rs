//! The repository on disk and its index.
//!
//! - [`Repository`]: a filesystem repository,
//!   `<root>/packages/<name>/<version>/<build>.yaml`;
//! - [`index::Index`]: the index file, opened in milliseconds, one package
//!   read without reading the others;
//! - [`run_index`]: full generation or `--update`, under the write lock,
//!   reporting status through an
//!   [`IndexStatusReporter`](spk_messaging_core::IndexStatusReporter);
//! - [`listing`]: what `spk repo ls` shows, from the index or the repository.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod generate;
pub mod index;
pub mod fb;
pub mod indexed;
pub mod listing;
pub mod lock;
pub mod model;
pub mod repository;
pub mod spec;
pub mod spfs;
pub mod v0;

pub use generate::{
    run_index, IndexError, IndexMode, IndexRequest, IndexSummary, Progress, ProgressFn,
};
pub use index::{Index, IndexFileError};
pub use lock::LockHolder;
pub use model::{BuildEntry, Counts, PackageEntry, ReqKind, Requirement, VersionEntry};
pub use repository::{read_all_specs, ReadHook, RepoError, Repository, INDEX_FILE_NAME};
pub use spec::SpecProblem;
