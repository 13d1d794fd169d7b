//! The repository on disk and its index.
