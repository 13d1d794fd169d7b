//! SPK's spfs repositories and SPK's own index, `index/spk/index_v1.fb`.
//!
//! - [`spfs`]: an spfs filesystem repository: tag streams, payloads, the
//!   spec and component tags SPK writes, spfs's config (where a named
//!   repository lives), and a writer for tests and the generator;
//! - [`v0`]: one published SPK v0 build spec (YAML) into what the index
//!   holds for it, rule by rule as SPK 0.44.0 does;
//! - [`indexed`]: the index's content as plain values, one type per table;
//! - [`fb`]: those values as SPK's FlatBuffers index and back, verified
//!   with SPK's own limits;
//! - [`walk`]: a repository read in parallel into index values;
//! - [`run_index`]: full generation or `--update`, under SPK's write lock,
//!   reporting status through an
//!   [`IndexStatusReporter`](spk_messaging_core::IndexStatusReporter);
//! - [`listing`]: what `spk repo ls` and `spk repo show` print, from the
//!   index or the repository, the same for both.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod fb;
pub mod generate;
pub mod indexed;
pub mod listing;
pub mod lock;
pub mod problem;
pub mod publish;
pub mod retire;
pub mod spfs;
pub mod v0;
pub mod walk;

pub use generate::{
    index_dir, index_path, run_index, Counts, IndexError, IndexMode, IndexRequest, IndexSummary,
    INDEX_FILE_NAME,
};
pub use lock::LockHolder;
pub use problem::SpecProblem;
pub use walk::{ProgressFn, ReadHook};
