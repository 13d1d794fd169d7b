//! Test-only hooks, read from the environment, for the tests that must slow
//! an index run down or stop it at a precise moment. They are compiled only
//! with the cargo feature `test-hooks` (which `cargo xtask test` enables);
//! the `spk` users install has none, and ignores these variables.
//!
//! - `SPK_TEST_SLOW_SPEC_READ_MS`: sleep this long before reading each spec;
//! - `SPK_TEST_PAUSE_BEFORE_RENAME_MS`: sleep this long after the new index
//!   is written and verified and before it is renamed in.

use spk_repo::IndexRequest;

/// Applies whichever hooks are set to `req`.
#[cfg(feature = "test-hooks")]
pub fn apply(req: &mut IndexRequest) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::time::Duration;

    const SLOW_READ_ENV: &str = "SPK_TEST_SLOW_SPEC_READ_MS";
    const PAUSE_ENV: &str = "SPK_TEST_PAUSE_BEFORE_RENAME_MS";

    fn millis(var: &str) -> anyhow::Result<Option<Duration>> {
        match std::env::var(var) {
            Err(_) => Ok(None),
            Ok(v) => v
                .parse::<u64>()
                .map(|ms| Some(Duration::from_millis(ms)))
                .map_err(|_| anyhow::anyhow!("{var}={v:?} is not a number of milliseconds")),
        }
    }

    if let Some(d) = millis(SLOW_READ_ENV)? {
        req.read_hook = Some(Arc::new(move |_path| std::thread::sleep(d)));
    }
    if let Some(d) = millis(PAUSE_ENV)? {
        req.pause_before_rename = Some(d);
    }
    Ok(())
}

/// Without the `test-hooks` feature there are no hooks.
#[cfg(not(feature = "test-hooks"))]
pub fn apply(_req: &mut IndexRequest) -> anyhow::Result<()> {
    Ok(())
}
