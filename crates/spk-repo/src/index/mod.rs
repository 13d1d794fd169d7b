//! The index file format and its reader and writer.

pub mod codec;
pub mod file;

pub use file::{Index, IndexFileError, IndexMeta, Section, FORMAT_VERSION};
