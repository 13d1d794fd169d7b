//! SPK's config: the keys of `repositories`, `messaging` and `indexers`,
//! read from SPK's own layered files.
//!
//! Layers, lowest first: built-in defaults, `/etc/spk.<ext>`,
//! `~/.config/spk/spk.<ext>`, environment `SPK_<SECTION>__<KEY>`. A
//! `--config FILE` (or `SPK_CONFIG`) replaces the two files. Unknown keys are
//! errors with a suggestion: operators copy SPK's docs, whose `_s` keys SPK
//! itself never reads.

mod check;
mod load;
mod model;
mod node;

pub use check::{broker_problem, topic_name_problem};
pub use load::{load, ConfigError, LoadOptions, Loaded, FOREIGN_SECTIONS};
pub use model::*;

/// A `${VAR}` in a property value names an unset variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("environment variable {0} is not set")]
    Unset(String),
    #[error("unterminated ${{...}} in a property value")]
    Unterminated,
}

/// Replaces each `${VAR}` with the variable's value; `$$` is a literal `$`.
pub fn expand_env(value: &str) -> Result<String, ExpandError> {
    expand_with(value, |k| std::env::var(k).ok())
}

/// [`expand_env`] with a given lookup (for tests).
pub fn expand_with(
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r.find('}').ok_or(ExpandError::Unterminated)?;
            let name = &r[..end];
            out.push_str(&lookup(name).ok_or_else(|| ExpandError::Unset(name.to_string()))?);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether a librdkafka property holds a secret that must never be printed.
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "key.pem",
        "ssl.key",
        "token",
        "credentials",
    ]
    .iter()
    .any(|s| k.contains(s))
}
