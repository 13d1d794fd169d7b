//! SPK v0 build specs (YAML) → the index model ([`crate::indexed`]).
//!
//! SPK's index stores, for each build, what SPK's own loader makes of the
//! published build spec: parsed requests, canonical compat text, components
//! with the `embedded:` lists SPK fabricates, option values attached to
//! requests. To write the index byte for byte as SPK 0.44.0 does, this
//! module re-implements those rules (reference: `spk-index-format.md` §4,
//! §5) without depending on SPK:
//! - [`version`]: version text, SPK's ordering, the storage form and its
//!   spfs tag spelling;
//! - [`range`]: version ranges → the flat, sorted rule list SPK writes;
//! - [`ident`]: request, identity, build and component texts;
//! - [`compat`]: compat text in SPK's canonical spelling;
//! - [`spec`]: one build spec → [`ParsedBuild`] ([`parse_build_spec`]);
//! - [`flatc_json`]: a [`BuildIndex`](crate::indexed::BuildIndex) as `flatc`
//!   prints SPK's index, to compare ours with SPK's field by field.
//!
//! Each spec is read on its own: an embed stub's spec (written by SPK at
//! `spk/spec/<emb>/<ver>/embedded-by-<BASE32>`) carries its parent in its
//! own `pkg:` (`my-embedded/2.0/embedded[my-tool:run/1.2.0/GMTG3CXY]`) and
//! the parent's inherited requirements in its own `install.requirements`.

pub mod compat;
pub mod flatc_json;
pub mod ident;
pub mod range;
pub mod spec;
pub mod version;
mod yaml;

pub use compat::{canonical_compat, CompatError, DEFAULT_COMPAT};
pub use ident::{
    parse_build, parse_build_ident, parse_range_ident, BuildIdent, IdentError, RangeIdent,
};
pub use range::{parse_range, range_text, rule_cmp, rule_text, RangeError, WILDCARD};
pub use spec::{parse_build_spec, ParsedBuild, SpecError};
pub use version::{
    display_padded, parse_tag_folder, parse_version, storage_string, storage_version, tag_folder,
    version_cmp, version_eq, VersionError,
};

#[cfg(test)]
mod tests;
