//! End-to-end tests against a real broker; run by `cargo xtask test`.
