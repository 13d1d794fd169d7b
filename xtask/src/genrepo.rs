//! `cargo xtask gen-repo --out DIR [--packages N] [--versions V] [--builds B] [--seed S]`
//!
//! A deterministic synthetic spfs filesystem repository, laid out as SPK
//! publishes packages (`tags/spk/spec/...`, `tags/spk/pkg/...`,
//! `payloads/`), so that SPK 0.44.0 itself lists, shows and indexes it, and
//! with it `DIR/truth.json`: what the index of that repository must hold.
//!
//! The same arguments always give the same files, byte for byte (tags carry
//! a fixed time). Specs look like published SPK v0 build specs and cover
//! what the index takes from them: compat variants, var options (static,
//! default, required, compat, inheritance, namespaced, empty), pkg options
//! (static, prerelease policy, components), install requirements with every
//! range operator (bare, `Binary:`, `API:`, `==`, `!==`, `=`, `>`, `>=`,
//! `<`, `<=`, `~`, `!=`, `^`, wildcards, comma lists, pre-release tags),
//! request components, builds and policies, option values attached to
//! requests, components with `uses`, `requirements` and `embedded`,
//! `install.embedded` packages and the embed stubs SPK publishes for them,
//! `src` builds, pre- and post-release versions (`2.1.0+r.3` in folder
//! `2.1.0..r.3`), specs writing `1.2` in folder `1.2.0`, deprecated builds,
//! versions with only a recipe, builds stored the legacy way, builds with
//! fewer published components than declared, and builds with no component
//! tags (which SPK lists but leaves out of its index).
//!
//! The truth is computed here from the generator's own intent, alongside
//! the YAML and never by parsing it, so comparing a spec parser's output
//! with it can fail. Where SPK's rule is intricate (the `embedded:` lists it
//! fabricates for components) most specs spell the lists out, and a few
//! leave them to be fabricated in the simplest case (one embedded package).
//!
//! truth.json: `{"index": RepositoryIndex, "skipped": [...], "counts":
//! {...}}` with packages sorted by name, versions highest first, builds in
//! SPK's order (src, embed stubs, digests by name), sets (components) in
//! SPK's order; `skipped` lists the builds that have a spec but no
//! component tags (`name/version-folder/build`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use spk_repo::indexed::{
    BuildId, BuildIndex, CompatRule, Component, ComponentEmbedded, ComponentSpec, EmbeddedParent,
    EmbeddedSpec, FilterRule, InclusionPolicy, Inheritance, Opt, OptionValue, PackageIndex,
    PinPolicy, PkgOpt, PkgRequest, PreReleasePolicy, RangeOp, RepositoryIndex, Requirement,
    TagItem, VarOpt, VarRequest, Version, VersionIndex,
};
use spk_repo::spfs::{embed_stub_tag_name, Digest, SpfsWriter};

/// splitmix64: small, fast, deterministic; no dependency needed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "core", "render", "image", "math", "audio", "mesh", "usd", "qt", "boost", "tbb", "ocio",
    "oiio", "alembic", "vdb", "ptex", "embree", "python", "numpy", "pyside", "zlib", "png", "jpeg",
    "tiff", "exr", "hdf5", "ffmpeg",
];

/// The name of generated package `i`.
pub fn package_name(i: usize) -> String {
    format!("{}-p{:05}", WORDS[i % WORDS.len()], i)
}

/// The time every tag records, so that generated repositories are the same
/// byte for byte.
const TAG_TIME_UNIX: i64 = 1_764_000_000;

/// Packages that other packages embed, with the version they are embedded
/// at (as written) and their components beyond build and run.
const EMBEDDED_POOL: &[(&str, &[u32], &[&str])] = &[
    ("emb-pyside", &[5, 15, 2], &[]),
    ("emb-numpy", &[1, 24], &["lib"]),
    ("emb-ocio", &[2, 0], &["docs", "lib"]),
];

// ---- versions -------------------------------------------------------------

/// A version as the generator intends it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct V {
    parts: Vec<u32>,
    pre: Option<(&'static str, u32)>,
    post: Option<(&'static str, u32)>,
}

impl V {
    fn plain(parts: &[u32]) -> V {
        V {
            parts: parts.to_vec(),
            pre: None,
            post: None,
        }
    }

    fn tags_text(&self, parts: &[u32], post_sep: &str) -> String {
        let mut s = parts
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".");
        if let Some((n, v)) = self.pre {
            let _ = write!(s, "-{n}.{v}");
        }
        if let Some((n, v)) = self.post {
            let _ = write!(s, "{post_sep}{n}.{v}");
        }
        s
    }

    /// As written in a spec.
    fn text(&self) -> String {
        self.tags_text(&self.parts, "+")
    }

    /// SPK's storage normalisation: trailing zeros dropped, at least 3 parts.
    fn norm_parts(&self) -> Vec<u32> {
        let mut p = self.parts.clone();
        while p.last() == Some(&0) {
            p.pop();
        }
        while p.len() < 3 {
            p.push(0);
        }
        p
    }

    /// Normalised text (`2.1.0+r.3`): an embed stub's parent version.
    fn storage(&self) -> String {
        self.tags_text(&self.norm_parts(), "+")
    }

    /// The tag folder (`2.1.0..r.3`).
    fn folder(&self) -> String {
        self.tags_text(&self.norm_parts(), "..")
    }

    fn model_of(&self, parts: Vec<u32>) -> Version {
        let tag = |t: Option<(&str, u32)>| {
            t.map(|(name, number)| TagItem {
                name: name.to_string(),
                number,
            })
            .into_iter()
            .collect()
        };
        Version {
            parts,
            pre: tag(self.pre),
            post: tag(self.post),
        }
    }

    fn model(&self) -> Version {
        self.model_of(self.parts.clone())
    }

    fn norm_model(&self) -> Version {
        self.model_of(self.norm_parts())
    }

    /// SPK's version order (single tags here, so tag sets compare simply).
    fn spk_cmp(&self, other: &V) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let (a, b) = (self.norm_parts(), other.norm_parts());
        let n = a.len().max(b.len());
        for i in 0..n {
            let (x, y) = (a.get(i).unwrap_or(&0), b.get(i).unwrap_or(&0));
            match x.cmp(y) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match (&self.pre, &other.pre) {
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
        self.post.cmp(&other.post)
    }
}

fn ver(parts: &[u32]) -> Version {
    Version {
        parts: parts.to_vec(),
        pre: Vec::new(),
        post: Vec::new(),
    }
}

// ---- YAML text ------------------------------------------------------------

/// A YAML scalar: plain when it is unambiguously a string, else quoted.
fn y(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'+'))
        && s.as_bytes()[0].is_ascii_alphabetic()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// YAML lines under construction; `item` starts a list entry.
struct Lines {
    out: String,
}

impl Lines {
    fn new() -> Self {
        Lines {
            out: String::with_capacity(2048),
        }
    }
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push(' ');
        }
        self.out.push_str(text);
        self.out.push('\n');
    }
}

// ---- requests and options -----------------------------------------------

fn sorted(mut c: Vec<Component>) -> Vec<Component> {
    c.sort();
    c.dedup();
    c
}

fn rule(op: RangeOp, parts: &[u32]) -> FilterRule {
    FilterRule {
        op,
        version: Some(ver(parts)),
        required: CompatRule::None,
        parts: None,
    }
}

fn wildcard(parts: &[u32]) -> FilterRule {
    FilterRule {
        op: RangeOp::Wildcard,
        version: None,
        required: CompatRule::None,
        parts: Some(parts.to_vec()),
    }
}

/// Number of range forms [`range`] knows.
const RANGE_FORMS: u64 = 19;

/// A version range in one of SPK's forms (`form` picks which) and its
/// rules, as SPK stores them (sorted by operator).
fn range(rng: &mut Rng, form: u64) -> (String, Vec<FilterRule>) {
    const STAR: u32 = u32::MAX;
    let a = 1 + rng.below(4) as u32;
    let b = rng.below(10) as u32;
    let c = rng.below(20) as u32;
    let (text, mut rules) = match form % RANGE_FORMS {
        0 => (format!("{a}.{b}"), vec![rule(RangeOp::Compat, &[a, b])]),
        1 => (
            format!("Binary:{a}.{b}.{c}"),
            vec![FilterRule {
                required: CompatRule::Binary,
                ..rule(RangeOp::Compat, &[a, b, c])
            }],
        ),
        2 => (
            format!("API:{a}.{b}"),
            vec![FilterRule {
                required: CompatRule::API,
                ..rule(RangeOp::Compat, &[a, b])
            }],
        ),
        3 => (
            format!("=={a}.{b}.{c}"),
            vec![rule(RangeOp::DoubleEquals, &[a, b, c])],
        ),
        4 => (
            format!("!=={a}.{b}"),
            vec![rule(RangeOp::DoubleNotEquals, &[a, b])],
        ),
        5 => (
            format!("={a}.{b}.{c}"),
            vec![rule(RangeOp::Equals, &[a, b, c])],
        ),
        6 => (
            format!(">{a}.{b}"),
            vec![rule(RangeOp::GreaterThan, &[a, b])],
        ),
        7 => (
            format!(">={a}.{b}"),
            vec![rule(RangeOp::GreaterThanOrEqualTo, &[a, b])],
        ),
        8 => (format!("<{a}"), vec![rule(RangeOp::LessThan, &[a])]),
        9 => (
            format!("<={a}.{b}"),
            vec![rule(RangeOp::LessThanOrEqualTo, &[a, b])],
        ),
        10 => (
            format!("~{a}.{b}"),
            vec![rule(RangeOp::LowestSpecified, &[a, b])],
        ),
        11 => (
            format!("!={a}.{b}"),
            vec![rule(RangeOp::NotEquals, &[a, b])],
        ),
        12 => (format!("^{a}.{b}"), vec![rule(RangeOp::Semver, &[a, b])]),
        13 => (format!("{a}.*"), vec![wildcard(&[a, STAR])]),
        14 => (format!("{a}.*.{c}"), vec![wildcard(&[a, STAR, c])]),
        15 => ("*".to_string(), vec![wildcard(&[STAR])]),
        // comma lists, written out of SPK's order
        16 => (
            format!("<{},>={a}.{b}", a + 1),
            vec![
                rule(RangeOp::LessThan, &[a + 1]),
                rule(RangeOp::GreaterThanOrEqualTo, &[a, b]),
            ],
        ),
        17 => (
            format!("^{a},!={a}.{b}"),
            vec![
                rule(RangeOp::Semver, &[a]),
                rule(RangeOp::NotEquals, &[a, b]),
            ],
        ),
        _ => (
            format!(">={a}.{b}-rc.{}", 1 + c % 3),
            vec![FilterRule {
                version: Some(Version {
                    parts: vec![a, b],
                    pre: vec![TagItem {
                        name: "rc".into(),
                        number: 1 + c % 3,
                    }],
                    post: Vec::new(),
                }),
                ..rule(RangeOp::GreaterThanOrEqualTo, &[a, b])
            }],
        ),
    };
    rules.sort_by_key(|r| r.op as u8);
    (text, rules)
}

/// One requirement: its YAML entry lines (relative indent) and its truth
/// (options attached later).
struct Req {
    yaml: Vec<String>,
    truth: Requirement,
}

/// A package request for `name` with a range of form `form` and, now and
/// then, components, a build, policies.
fn pkg_request(rng: &mut Rng, name: &str, form: u64, extras: bool) -> Req {
    let mut truth = PkgRequest::named(name);
    let mut text = name.to_string();
    if extras {
        match rng.below(8) {
            0 => {
                text.push_str(":run");
                truth.components = vec![Component::Run];
            }
            1 => {
                text.push_str(":{run,build}");
                truth.components = vec![Component::Build, Component::Run];
            }
            2 => {
                text.push_str(":{lib,run}");
                truth.components = sorted(vec![Component::Run, Component::Named("lib".into())]);
            }
            _ => {}
        }
    }
    let mut yaml = Vec::new();
    if extras && rng.one_in(25) {
        // a pinned build: `=1.2.3/src` or `=1.2.3/DIGEST`
        let (a, b, c) = (
            1 + rng.below(3) as u32,
            rng.below(10) as u32,
            rng.below(9) as u32,
        );
        let build = if rng.one_in(2) {
            truth.build = Some(BuildId::Source);
            "src".to_string()
        } else {
            let d = digest8(rng);
            truth.build = Some(BuildId::Digest(d.clone()));
            d
        };
        let _ = write!(text, "/={a}.{b}.{c}/{build}");
        truth.version_filter = Some(vec![rule(RangeOp::Equals, &[a, b, c])]);
    } else if extras && rng.one_in(12) {
        // no version at all
    } else {
        let (r, rules) = range(rng, form);
        let _ = write!(text, "/{r}");
        truth.version_filter = Some(rules);
    }
    yaml.push(format!("- pkg: {}", y(&text)));
    if extras {
        match rng.below(12) {
            0 => {
                yaml.push("  include: IfAlreadyPresent".into());
                truth.inclusion_policy = InclusionPolicy::IfAlreadyPresent;
            }
            1 => {
                yaml.push("  prereleasePolicy: IncludeAll".into());
                truth.prerelease_policy = PreReleasePolicy::IncludeAll;
            }
            2 => {
                yaml.push("  prereleasePolicy: ExcludeAll".into());
                truth.prerelease_policy = PreReleasePolicy::ExcludeAll;
            }
            3 => {
                yaml.push("  ifPresentInBuildEnv: true".into());
                truth.pin_policy = PinPolicy::IfPresentInBuildEnv;
            }
            _ => {}
        }
    }
    Req {
        yaml,
        truth: Requirement::Pkg(truth),
    }
}

fn var_request(name: &str, value: &str) -> Req {
    Req {
        yaml: vec![format!("- var: {}", y(&format!("{name}/{value}")))],
        truth: Requirement::Var(VarRequest {
            name: name.to_string(),
            value: value.to_string(),
        }),
    }
}

/// SPK's rule for option values attached to package requests: namespaced
/// values (`ns.name`) go to the request for package `ns`, sorted by name.
fn attach_options(reqs: &mut [Requirement], namespaced: &BTreeMap<String, String>) {
    for r in reqs.iter_mut() {
        if let Requirement::Pkg(p) = r {
            let prefix = format!("{}.", p.name);
            p.options = namespaced
                .iter()
                .filter(|(k, v)| k.starts_with(&prefix) && !v.is_empty())
                .map(|(k, v)| OptionValue {
                    name: k.clone(),
                    value: v.clone(),
                    is_complete: true,
                })
                .collect();
        }
    }
}

/// A var option entry: its YAML lines and its truth.
struct VarIntent<'a> {
    name: &'a str,
    default: Option<&'a str>,
    stat: Option<&'a str>,
    inheritance: Option<Inheritance>,
    required: bool,
    compat: Option<(&'a str, &'a str)>,
    choices: &'a [&'a str],
}

impl<'a> VarIntent<'a> {
    fn new(name: &'a str) -> Self {
        VarIntent {
            name,
            default: None,
            stat: None,
            inheritance: None,
            required: false,
            compat: None,
            choices: &[],
        }
    }

    /// The value SPK stores (static, else default, else empty).
    fn value(&self) -> String {
        self.stat
            .filter(|s| !s.is_empty())
            .or(self.default)
            .unwrap_or("")
            .to_string()
    }

    fn effective_inheritance(&self) -> Inheritance {
        if self.required {
            Inheritance::Strong
        } else {
            self.inheritance.unwrap_or_default()
        }
    }

    fn emit(&self, out: &mut Lines, indent: usize) -> Opt {
        let head = match self.default {
            Some(d) => format!("{}/{d}", self.name),
            None => self.name.to_string(),
        };
        out.line(indent, &format!("- var: {}", y(&head)));
        if let Some(s) = self.stat {
            out.line(indent + 2, &format!("static: {}", y(s)));
        }
        if !self.choices.is_empty() {
            let c: Vec<String> = self.choices.iter().map(|c| y(c)).collect();
            out.line(indent + 2, &format!("choices: [{}]", c.join(", ")));
        }
        if let Some(i) = self.inheritance {
            out.line(indent + 2, &format!("inheritance: {i:?}"));
        }
        if self.required {
            out.line(indent + 2, "required: true");
        }
        if let Some((written, _)) = self.compat {
            out.line(indent + 2, &format!("compat: {}", y(written)));
        }
        Opt::Var(VarOpt {
            name: self.name.to_string(),
            inheritance: self.effective_inheritance(),
            compat: self.compat.map(|(_, canonical)| canonical.to_string()),
            required: self.required,
            value: self.value(),
        })
    }
}

fn digest8(rng: &mut Rng) -> String {
    const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..8)
        .map(|_| B32[rng.below(32) as usize] as char)
        .collect()
}

// ---- builds ---------------------------------------------------------------

/// How a build's components are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publish {
    /// A tag for every declared component (and the legacy tag).
    All,
    /// One declared component left unpublished.
    Fewer,
    /// Only the legacy `spk/pkg/<name>/<version>/<build>` tag.
    Legacy,
    /// No component tags at all: SPK skips the build when indexing.
    Nothing,
}

/// An embedded package inside a parent build: entry YAML, truth, and what
/// its stub needs.
struct EmbeddedIntent {
    name: &'static str,
    version: V,
    /// Components beyond build and run.
    extra: Vec<&'static str>,
    compat: Option<(&'static str, &'static str)>,
    /// `var` options (name, default, inheritance).
    options: Vec<(&'static str, &'static str)>,
    /// Requirements (YAML lines relative to the list, truth).
    reqs: Vec<(Vec<String>, Requirement)>,
}

impl EmbeddedIntent {
    fn component_specs(&self) -> Vec<ComponentSpec> {
        let mut c: Vec<Component> = vec![Component::Build, Component::Run];
        c.extend(self.extra.iter().map(|e| Component::Named(e.to_string())));
        sorted(c).into_iter().map(ComponentSpec::plain).collect()
    }

    fn components(&self) -> Vec<Component> {
        self.component_specs().into_iter().map(|c| c.name).collect()
    }

    fn var_opts(&self) -> Vec<Opt> {
        self.options
            .iter()
            .map(|(n, d)| {
                Opt::Var(VarOpt {
                    name: n.to_string(),
                    inheritance: Inheritance::Weak,
                    compat: None,
                    required: false,
                    value: d.to_string(),
                })
            })
            .collect()
    }

    /// The body of the entry (`build:` and `install:`), shared by the
    /// parent's `install.embedded` entry and by the stub spec.
    fn body(&self, out: &mut Lines, indent: usize, extra_reqs: &[Req]) {
        if let Some((written, _)) = self.compat {
            out.line(indent, &format!("compat: {}", y(written)));
        }
        if !self.options.is_empty() {
            out.line(indent, "build:");
            out.line(indent + 2, "options:");
            for (n, d) in &self.options {
                out.line(indent + 2, &format!("- var: {}", y(&format!("{n}/{d}"))));
            }
        }
        if !self.reqs.is_empty() || !extra_reqs.is_empty() || !self.extra.is_empty() {
            out.line(indent, "install:");
            if !self.reqs.is_empty() || !extra_reqs.is_empty() {
                out.line(indent + 2, "requirements:");
                for (yaml, _) in &self.reqs {
                    for l in yaml {
                        out.line(indent + 2, l);
                    }
                }
                for r in extra_reqs {
                    for l in &r.yaml {
                        out.line(indent + 2, l);
                    }
                }
            }
            if !self.extra.is_empty() {
                out.line(indent + 2, "components:");
                for c in &self.extra {
                    out.line(indent + 2, &format!("- name: {c}"));
                }
            }
        }
    }

    fn truth(&self) -> EmbeddedSpec {
        let mut requirements: Vec<Requirement> = self.reqs.iter().map(|(_, t)| t.clone()).collect();
        attach_options(&mut requirements, &BTreeMap::new());
        EmbeddedSpec {
            ident: format!("{}/{}/embedded", self.name, self.version.text()),
            compat: self.compat.map(|(_, c)| c.to_string()),
            deprecated: false,
            build_options: self.var_opts(),
            component_specs: self.component_specs(),
            requirements,
        }
    }
}

/// One embed stub to write: in package `name`, version folder `folder`.
struct Stub {
    name: &'static str,
    version: V,
    tag: String,
    spec: String,
    truth: BuildIndex,
    vars: Vec<(String, String)>,
}

/// What generating one build produced.
struct BuiltBuild {
    id: String,
    spec: String,
    truth: BuildIndex,
    declared: Vec<Component>,
    publish: Publish,
    vars: Vec<(String, String)>,
    stubs: Vec<Stub>,
}

/// Everything one package's generation decides, given its index.
struct PkgGen {
    index: usize,
    name: String,
    packages: usize,
    rng: Rng,
    /// Running count of pkg requests, so every range form shows up early.
    form: u64,
}

const COMPATS: &[(&str, Option<&str>)] = &[
    ("x.a.b", None),
    ("x.ab", Some("x.ab")),
    ("x.x.b", Some("x.x.b")),
    ("x.ba", Some("x.ab")),
    ("x.x.x", Some("x.x.x")),
    ("x.a.b.x", Some("x.a.b.x")),
];

impl PkgGen {
    fn dep_names(&mut self, n: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if self.packages < 2 {
            return out;
        }
        for _ in 0..n * 3 {
            if out.len() == n {
                break;
            }
            let j = (self.index + 1 + self.rng.below(self.packages as u64 - 1) as usize)
                % self.packages;
            let d = package_name(j);
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// A source build: SPK strips options and requirements when loading it.
    fn src_build(&mut self, version: &V, written: &V, compat: &(&str, Option<&str>)) -> BuiltBuild {
        let name = self.name.clone();
        let mut s = Lines::new();
        s.line(0, "api: v0/package");
        s.line(
            0,
            &format!("pkg: {}", y(&format!("{name}/{}/src", written.text()))),
        );
        if compat.1.is_some() || self.rng.one_in(2) {
            s.line(0, &format!("compat: {}", y(compat.0)));
        }
        s.line(0, "sources:");
        s.line(0, &format!("- git: https://git.example.com/{name}.git"));
        s.line(2, &format!("ref: {}", y(&format!("v{}", version.text()))));
        if self.rng.one_in(3) {
            // present in the YAML, dropped by SPK when it loads a src build
            s.line(0, "build:");
            s.line(2, "options:");
            s.line(2, "- var: arch/x86_64");
            s.line(0, "install:");
            s.line(2, "requirements:");
            s.line(2, "- pkg: gcc/>=9");
        }
        let mut truth = BuildIndex::bare(written.model(), BuildId::Source);
        truth.compat = compat.1.map(str::to_string);
        truth.component_specs = vec![ComponentSpec::plain(Component::Source)];
        BuiltBuild {
            id: "src".into(),
            spec: s.out,
            truth,
            declared: vec![Component::Source],
            publish: if self.rng.one_in(10) {
                Publish::Legacy
            } else {
                Publish::All
            },
            vars: Vec::new(),
            stubs: Vec::new(),
        }
    }

    /// A digest build with the full variety.
    fn digest_build(
        &mut self,
        id: &str,
        version: &V,
        written: &V,
        compat: &(&str, Option<&str>),
    ) -> BuiltBuild {
        let name = self.name.clone();
        let n_deps = 1 + self.rng.below(4) as usize;
        let deps = self.dep_names(n_deps);
        let first_form = self.form;
        self.form += deps.len() as u64;
        let rng = &mut self.rng;
        let deprecated = rng.one_in(20);
        let mut s = Lines::new();
        let mut vars: Vec<(String, String)> = Vec::new();
        s.line(0, "api: v0/package");
        s.line(
            0,
            &format!("pkg: {}", y(&format!("{name}/{}/{id}", written.text()))),
        );
        if compat.1.is_some() || rng.one_in(3) {
            s.line(0, &format!("compat: {}", y(compat.0)));
        }
        if deprecated {
            s.line(0, "deprecated: true");
        }
        s.line(0, "meta:");
        s.line(2, "license: Apache-2.0");
        s.line(
            2,
            &format!("description: {}", y(&format!("synthetic package {name}"))),
        );
        s.line(2, "labels:");
        s.line(4, "team: pipeline");
        s.line(0, "sources:");
        s.line(0, &format!("- git: https://git.example.com/{name}.git"));
        s.line(2, &format!("ref: {}", y(&format!("v{}", version.text()))));

        // ---- build options
        let mut opts: Vec<Opt> = Vec::new();
        let mut namespaced: BTreeMap<String, String> = BTreeMap::new();
        s.line(0, "build:");
        s.line(2, "options:");
        let debug_value = if rng.one_in(2) { "on" } else { "off" };
        let cuda = if rng.one_in(4) {
            Some(*rng.pick(&["11.8", "12.2"]))
        } else {
            None
        };
        let abi = format!("cp3{}", 7 + rng.below(5));
        let level = (1 + rng.below(3)).to_string();
        let mut var_intents = vec![
            VarIntent {
                stat: Some("x86_64"),
                ..VarIntent::new("arch")
            },
            VarIntent {
                default: Some("linux"),
                ..VarIntent::new("os")
            },
            VarIntent {
                default: Some("rocky-9"),
                stat: Some("rocky-9"),
                ..VarIntent::new("distro")
            },
            VarIntent {
                default: Some("off"),
                stat: Some(debug_value),
                choices: &["on", "off"],
                inheritance: if rng.one_in(2) {
                    Some(Inheritance::StrongForBuildOnly)
                } else {
                    None
                },
                ..VarIntent::new("debug")
            },
        ];
        if let Some(c) = cuda {
            var_intents.push(VarIntent {
                default: Some(c),
                required: true,
                compat: Some(*rng.pick(&[("x.ab", "x.ab"), ("x.a.b", "x.a.b"), ("x.ba", "x.ab")])),
                inheritance: if rng.one_in(2) {
                    Some(Inheritance::Weak)
                } else {
                    None
                },
                ..VarIntent::new("cuda")
            });
        }
        if rng.one_in(3) {
            var_intents.push(VarIntent {
                default: Some(&level),
                inheritance: Some(Inheritance::Strong),
                ..VarIntent::new("level")
            });
        }
        if rng.one_in(5) {
            // no default and no value: stored as ""
            var_intents.push(VarIntent::new("flags"));
        }
        let ns_name;
        let abi_opt = if !deps.is_empty() && rng.one_in(2) {
            ns_name = format!("{}.abi", deps[0]);
            Some(ns_name.as_str())
        } else {
            None
        };
        if let Some(n) = abi_opt {
            var_intents.push(VarIntent {
                default: Some(&abi),
                ..VarIntent::new(n)
            });
        }
        for v in &var_intents {
            let opt = v.emit(&mut s, 2);
            if v.name.contains('.') {
                if !v.value().is_empty() {
                    namespaced.insert(v.name.to_string(), v.value());
                }
            } else {
                vars.push((v.name.to_string(), v.value()));
            }
            opts.push(opt);
        }
        // strong var options are what an embed stub inherits
        let strong: Vec<(String, String)> = var_intents
            .iter()
            .filter(|v| v.effective_inheritance() == Inheritance::Strong && !v.value().is_empty())
            .map(|v| {
                let n = if v.name.contains('.') {
                    v.name.to_string()
                } else {
                    format!("{name}.{}", v.name)
                };
                (n, v.value())
            })
            .collect();
        // pkg options
        for (k, d) in deps.iter().enumerate().take(2) {
            let (a, b, c) = (1 + rng.below(3), rng.below(10), rng.below(20));
            let mut head = d.clone();
            let mut components = Vec::new();
            if k == 1 && rng.one_in(4) {
                head.push_str(":{run,build}");
                components = vec![Component::Build, Component::Run];
            }
            let _ = write!(head, "/{a}.{b}");
            s.line(2, &format!("- pkg: {}", y(&head)));
            let value = format!("~{a}.{b}.{c}");
            s.line(4, &format!("static: {}", y(&value)));
            let mut pp = PreReleasePolicy::None;
            if rng.one_in(6) {
                s.line(4, "prereleasePolicy: IncludeAll");
                pp = PreReleasePolicy::IncludeAll;
            }
            vars.push((d.clone(), value.clone()));
            opts.push(Opt::Pkg(PkgOpt {
                name: d.clone(),
                components,
                prerelease_policy: pp,
                required_compat: CompatRule::None,
                value,
            }));
        }
        if rng.one_in(6) {
            // a pkg option naming a package that is not in the repository:
            // it becomes a global var
            s.line(2, "- pkg: cmake/3.20");
            s.line(4, "static: '~3.20.1'");
            vars.push(("cmake".into(), "~3.20.1".into()));
            opts.push(Opt::Pkg(PkgOpt {
                name: "cmake".into(),
                components: Vec::new(),
                prerelease_policy: PreReleasePolicy::None,
                required_compat: CompatRule::None,
                value: "~3.20.1".into(),
            }));
        }
        s.line(2, "variants:");
        s.line(2, "- {debug: 'off'}");
        s.line(2, "- {debug: 'on'}");
        s.line(2, "script:");
        s.line(2, "- cmake -S . -B build -DCMAKE_INSTALL_PREFIX=/spfs");
        s.line(2, "- cmake --build build --target install -j $SPK_CPUS");

        // ---- install requirements
        let mut reqs: Vec<Req> = Vec::new();
        for (k, d) in deps.iter().enumerate() {
            reqs.push(pkg_request(rng, d, first_form + k as u64, true));
        }
        if rng.one_in(3) {
            reqs.push(pkg_request(rng, "gcc", 1, false));
        }
        reqs.push(var_request("arch", "x86_64"));
        vars.push(("arch".into(), "x86_64".into()));
        if let Some(n) = abi_opt {
            if rng.one_in(2) {
                // the same namespaced value as the option: one attached value
                reqs.push(var_request(n, &abi));
                vars.push(("abi".into(), abi.clone()));
            }
        } else if !deps.is_empty() && rng.one_in(3) {
            let n = format!("{}.variant", deps[0]);
            let v = format!("v{}", rng.below(3));
            namespaced.insert(n.clone(), v.clone());
            reqs.push(var_request(&n, &v));
            vars.push(("variant".into(), v));
        }
        let mut runtime: Vec<Requirement> = reqs.iter().map(|r| r.truth.clone()).collect();
        attach_options(&mut runtime, &namespaced);

        // ---- embedded packages
        let mut embedded: Vec<EmbeddedIntent> = Vec::new();
        if rng.one_in(12) {
            let n = if rng.one_in(4) { 2 } else { 1 };
            let first = rng.below(EMBEDDED_POOL.len() as u64) as usize;
            for k in 0..n {
                let (ename, ever, extra) = EMBEDDED_POOL[(first + k) % EMBEDDED_POOL.len()];
                let mut e = EmbeddedIntent {
                    name: ename,
                    version: V::plain(ever),
                    extra: extra.to_vec(),
                    compat: None,
                    options: Vec::new(),
                    reqs: Vec::new(),
                };
                if rng.one_in(3) {
                    e.compat = Some(("x.ab", "x.ab"));
                }
                if n == 1 && rng.one_in(2) {
                    e.options.push(("flavor", *rng.pick(&["full", "lite"])));
                }
                if rng.one_in(2) {
                    let r = pkg_request(rng, "zlib", 7, false);
                    e.reqs.push((r.yaml, r.truth));
                }
                embedded.push(e);
            }
        }

        // ---- components
        let mut declared: Vec<(Component, Vec<String>)> = Vec::new();
        let explicit_embedded = embedded.len() > 1 || rng.below(3) != 0;
        let mut comp_specs: Vec<ComponentSpec> = Vec::new();
        let list_components = !embedded.is_empty() || !rng.one_in(4);
        if list_components {
            let mut names: Vec<Component> = vec![Component::Run, Component::Build];
            if rng.one_in(2) {
                names.push(Component::Named("lib".into()));
            }
            if rng.one_in(3) {
                names.push(Component::Named("docs".into()));
            }
            if !embedded.is_empty() && !explicit_embedded && rng.one_in(2) {
                // leave build to be added by SPK (with a fabricated list)
                names.retain(|c| *c != Component::Build);
            }
            let has_lib = names.contains(&Component::Named("lib".into()));
            for c in &names {
                let mut spec = ComponentSpec::plain(c.clone());
                let mut lines = vec![format!("- name: {c}")];
                match c {
                    Component::Run => {
                        lines.push("  files: ['lib/', 'bin/', 'share/']".into());
                        if has_lib && rng.one_in(2) {
                            lines.push("  uses: [lib]".into());
                            spec.uses = vec![Component::Named("lib".into())];
                        }
                    }
                    Component::Build => {
                        lines.push("  files: ['include/', 'lib/*.a', 'lib/cmake/']".into());
                        if rng.one_in(2) {
                            lines.push("  uses: [run]".into());
                            spec.uses = vec![Component::Run];
                        }
                    }
                    Component::Named(n) if n == "lib" => {
                        lines.push("  files: ['lib/*.so*']".into());
                        if rng.one_in(2) {
                            let dep = if deps.is_empty() {
                                "openssl".to_string()
                            } else {
                                deps[deps.len() - 1].clone()
                            };
                            let r = pkg_request(rng, &dep, 5, false);
                            lines.push("  requirements:".into());
                            for l in &r.yaml {
                                lines.push(format!("  {l}"));
                            }
                            let mut creqs = vec![r.truth];
                            let mut cns = BTreeMap::new();
                            if rng.one_in(2) {
                                let n = format!("{dep}.shared");
                                let vr = var_request(&n, "on");
                                for l in &vr.yaml {
                                    lines.push(format!("  {l}"));
                                }
                                cns.insert(n, "on".to_string());
                                creqs.push(vr.truth);
                            }
                            attach_options(&mut creqs, &cns);
                            spec.requirements = creqs;
                        }
                    }
                    _ => {
                        lines.push("  files: ['share/doc/']".into());
                    }
                }
                if explicit_embedded && !embedded.is_empty() {
                    // spelled out: each component names what it carries
                    lines.push("  embedded:".into());
                    for e in &embedded {
                        let ecomps = e.components();
                        let mut carried: Vec<Component> = if ecomps.contains(c) {
                            vec![c.clone()]
                        } else {
                            vec![Component::Run]
                        };
                        if rng.one_in(3) && *c != Component::Build {
                            carried.push(Component::Build);
                        }
                        let carried = sorted(carried);
                        let set = if carried.len() == 1 {
                            format!(":{}", carried[0])
                        } else {
                            let n: Vec<String> = carried.iter().map(|c| c.to_string()).collect();
                            format!(":{{{}}}", n.join(","))
                        };
                        let with_version = rng.one_in(3);
                        let text = if with_version {
                            format!("{}{set}/{}", e.name, e.version.text())
                        } else {
                            format!("{}{set}", e.name)
                        };
                        lines.push(format!("  - {}", y(&text)));
                        spec.embedded.push(ComponentEmbedded {
                            name: e.name.to_string(),
                            version: with_version.then(|| e.version.model()),
                            components: carried,
                        });
                    }
                }
                declared.push((c.clone(), lines));
                comp_specs.push(spec);
            }
        }
        // SPK adds build and run when missing, then sorts.
        for must in [Component::Build, Component::Run] {
            if !comp_specs.iter().any(|c| c.name == must) {
                comp_specs.push(ComponentSpec::plain(must));
            }
        }
        comp_specs.sort_by(|a, b| a.name.cmp(&b.name));
        if !explicit_embedded && embedded.len() == 1 {
            // SPK fabricates: each component without a list carries the
            // embedded package's component of the same name, if it has one.
            let e = &embedded[0];
            let ecomps = e.components();
            for spec in &mut comp_specs {
                if ecomps.contains(&spec.name) {
                    spec.embedded = vec![ComponentEmbedded {
                        name: e.name.to_string(),
                        version: None,
                        components: vec![spec.name.clone()],
                    }];
                }
            }
        }

        s.line(0, "install:");
        s.line(2, "requirements:");
        for r in &reqs {
            for l in &r.yaml {
                s.line(2, l);
            }
        }
        if list_components {
            s.line(2, "components:");
            for (_, lines) in &declared {
                for l in lines {
                    s.line(2, l);
                }
            }
        }
        if !embedded.is_empty() {
            s.line(2, "embedded:");
            for e in &embedded {
                s.line(
                    2,
                    &format!(
                        "- pkg: {}",
                        y(&format!("{}/{}/embedded", e.name, e.version.text()))
                    ),
                );
                e.body(&mut s, 4, &[]);
            }
        }
        s.line(2, "environment:");
        s.line(
            2,
            &format!(
                "- set: {}",
                y(&format!("{}_ROOT", name.to_uppercase().replace('-', "_")))
            ),
        );
        s.line(4, "value: /spfs");
        if rng.one_in(4) {
            s.line(0, "tests:");
            s.line(0, "- stage: install");
            s.line(2, "script: ['test -d /spfs/lib']");
            s.line(2, "requirements:");
            s.line(2, "- var: testmode/smoke");
            vars.push(("testmode".into(), "smoke".into()));
        }

        // ---- truth
        let mut truth = BuildIndex::bare(written.model(), BuildId::Digest(id.to_string()));
        truth.deprecated = deprecated;
        truth.compat = compat.1.map(str::to_string);
        truth.build_options = opts;
        truth.embedded = embedded.iter().map(EmbeddedIntent::truth).collect();
        truth.component_specs = comp_specs.clone();
        truth.runtime_requirements = runtime;
        let declared_names: Vec<Component> = comp_specs.iter().map(|c| c.name.clone()).collect();

        // ---- embed stubs
        let stubs = embedded
            .iter()
            .map(|e| {
                let parent = format!("embedded[{name}:run/{}/{id}]", version.storage());
                let down: Vec<Req> = strong.iter().map(|(n, v)| var_request(n, v)).collect();
                let mut st = Lines::new();
                st.line(0, "api: v0/package");
                st.line(
                    0,
                    &format!(
                        "pkg: {}",
                        y(&format!("{}/{}/{parent}", e.name, e.version.text()))
                    ),
                );
                if deprecated {
                    st.line(0, "deprecated: true");
                }
                e.body(&mut st, 0, &down);
                let mut t = BuildIndex::bare(
                    e.version.model(),
                    BuildId::Embedded(Some(EmbeddedParent {
                        repository_name: None,
                        pkg_name: name.clone(),
                        version_str: Some(version.storage()),
                        build_str: Some(id.to_string()),
                        components: vec![Component::Run],
                    })),
                );
                t.deprecated = deprecated;
                t.compat = e.compat.map(|(_, c)| c.to_string());
                t.build_options = e.var_opts();
                t.component_specs = e.component_specs();
                let mut rr: Vec<Requirement> = e.reqs.iter().map(|(_, r)| r.clone()).collect();
                rr.extend(down.iter().map(|r| r.truth.clone()));
                attach_options(&mut rr, &BTreeMap::new());
                t.runtime_requirements = rr;
                t.published_components = e.components();
                let mut svars: Vec<(String, String)> = e
                    .options
                    .iter()
                    .map(|(n, d)| (n.to_string(), d.to_string()))
                    .collect();
                for (n, v) in &strong {
                    let base = n.rsplit_once('.').map_or(n.as_str(), |(_, b)| b);
                    svars.push((base.to_string(), v.clone()));
                }
                Stub {
                    name: e.name,
                    version: e.version.clone(),
                    tag: embed_stub_tag_name(&parent),
                    spec: st.out,
                    truth: t,
                    vars: svars,
                }
            })
            .collect();

        let publish = match self.rng.below(60) {
            0..=5 => Publish::Fewer,
            6 | 7 => Publish::Legacy,
            8 => Publish::Nothing,
            _ => Publish::All,
        };
        BuiltBuild {
            id: id.to_string(),
            spec: s.out,
            truth,
            declared: declared_names,
            publish,
            vars,
            stubs,
        }
    }
}

// ---- writing --------------------------------------------------------------

/// What one package produced.
struct PkgOut {
    index: PackageIndex,
    stubs: Vec<Stub>,
    vars: Vec<(String, String)>,
    skipped: Vec<String>,
    skipped_deprecated: u64,
    builds: u64,
}

/// The versions package `p` has, in ascending SPK order, with what its
/// specs write (`1.2` for folder `1.2.0` now and then).
fn plan_versions(rng: &mut Rng, p: usize, versions: usize) -> Vec<V> {
    let mut out = Vec::with_capacity(versions);
    for k in 0..versions {
        let major = 1 + (k / 5) as u32;
        let minor = (k % 5) as u32 * 2;
        let mut v = V::plain(&[major, minor, rng.below(12) as u32]);
        match (p % 7, k) {
            // a release candidate and its release share a base
            (3, 0) => {
                v = V::plain(&[1, 0, 0]);
                v.pre = Some(("rc", 1));
            }
            (3, 1) => v = V::plain(&[1, 0, 0]),
            // a release and its post-release
            (4, 0) => v = V::plain(&[1, 0, 0]),
            (4, 1) => {
                v = V::plain(&[1, 0, 0]);
                v.post = Some(("r", 3));
            }
            _ => match rng.below(20) {
                0 => v.pre = Some(("beta", 1 + rng.below(3) as u32)),
                1 => v.post = Some(("r", 1 + rng.below(4) as u32)),
                2 => v.parts.push(1 + rng.below(3) as u32),
                3 => v.parts[2] = 0,
                _ => {}
            },
        }
        out.push(v);
    }
    out
}

fn write_build(
    w: &SpfsWriter,
    name: &str,
    folder: &str,
    b: &BuiltBuild,
    files: &mut u64,
) -> Result<Option<BuildIndex>> {
    let digest = w.write_payload(b.spec.as_bytes())?;
    w.create_tag(&format!("spk/spec/{name}/{folder}/{}", b.id), digest)?;
    *files += 2;
    let layer = |c: &str| Digest::of(format!("layer {name}/{folder}/{}/{c}", b.id).as_bytes());
    let base = format!("spk/pkg/{name}/{folder}/{}", b.id);
    let mut published: Vec<Component> = match b.publish {
        Publish::Nothing => return Ok(None),
        Publish::Legacy => {
            if b.truth.build == BuildId::Source {
                vec![Component::Source]
            } else {
                vec![Component::Build, Component::Run]
            }
        }
        Publish::All => b.declared.clone(),
        Publish::Fewer => {
            // leave out the last declared component (named ones sort last)
            let mut d = b.declared.clone();
            if d.len() > 1 {
                d.pop();
            }
            d
        }
    };
    // SPK always writes the legacy tag too (the run or src layer).
    let legacy = if b.truth.build == BuildId::Source {
        "src"
    } else {
        "run"
    };
    w.create_tag(&base, layer(legacy))?;
    *files += 1;
    if b.publish != Publish::Legacy {
        for c in &published {
            w.create_tag(&format!("{base}/{c}"), layer(c.as_str()))?;
            *files += 1;
        }
    }
    published.sort();
    let mut t = b.truth.clone();
    t.published_components = published;
    Ok(Some(t))
}

fn recipe(name: &str, v: &V) -> String {
    format!(
        "api: v0/package\npkg: {}\nbuild:\n  options:\n  - var: arch\n  - var: os/linux\n  script:\n  - cmake --build build --target install\n",
        y(&format!("{name}/{}", v.text()))
    )
}

fn gen_package(
    w: &SpfsWriter,
    p: usize,
    packages: usize,
    versions: usize,
    builds: usize,
    seed: u64,
) -> Result<PkgOut> {
    let name = package_name(p);
    let mut g = PkgGen {
        index: p,
        name: name.clone(),
        packages,
        rng: Rng::new(seed ^ (p as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D)),
        form: (p as u64) * 3,
    };
    let mut out = PkgOut {
        index: PackageIndex {
            name: name.clone(),
            versions: Vec::new(),
        },
        stubs: Vec::new(),
        vars: Vec::new(),
        skipped: Vec::new(),
        skipped_deprecated: 0,
        builds: 0,
    };
    let mut files = 0u64;
    let plan = plan_versions(&mut g.rng, p, versions);
    let n = plan.len();
    for (k, v) in plan.into_iter().enumerate() {
        let folder = v.folder();
        let recipe_digest = w.write_payload(recipe(&name, &v).as_bytes())?;
        w.create_tag(&format!("spk/spec/{name}/{folder}"), recipe_digest)?;
        // the newest version of one package in nine has only its recipe
        let recipe_only = n > 1 && k == n - 1 && p % 9 == 5;
        let mut vi = VersionIndex {
            version: v.norm_model(),
            builds: Vec::new(),
        };
        if !recipe_only {
            let compat = *g.rng.pick(COMPATS);
            let with_src = g.rng.one_in(4);
            let mut ids: BTreeSet<String> = BTreeSet::new();
            while ids.len() < builds.saturating_sub(usize::from(with_src)) {
                ids.insert(digest8(&mut g.rng));
            }
            let mut built: Vec<BuiltBuild> = Vec::new();
            // specs write `1.2` for `1.2.0` (and `1.2.3.0` for `1.2.3`) now and then
            let written = |rng: &mut Rng| {
                let mut wv = v.clone();
                if wv.parts.len() == 3 && wv.parts[2] == 0 && rng.one_in(2) {
                    wv.parts.pop();
                } else if wv.parts.len() == 3 && rng.one_in(15) {
                    wv.parts.push(0);
                }
                wv
            };
            if with_src {
                let wv = written(&mut g.rng);
                built.push(g.src_build(&v, &wv, &compat));
            }
            for id in &ids {
                let wv = written(&mut g.rng);
                built.push(g.digest_build(id, &v, &wv, &compat));
            }
            for b in built {
                out.builds += 1;
                match write_build(w, &name, &folder, &b, &mut files)? {
                    Some(t) => {
                        out.vars.extend(b.vars);
                        vi.builds.push(t);
                    }
                    None => {
                        out.skipped.push(format!("{name}/{folder}/{}", b.id));
                        out.skipped_deprecated += u64::from(b.truth.deprecated);
                    }
                }
                // A stub is a build of its own (its components come from
                // its spec): indexed even when its parent is skipped.
                out.stubs.extend(b.stubs);
            }
            // SPK's order: src first, then digests by name
            vi.builds.sort_by(|a, b| build_order(&a.build, &b.build));
        }
        out.index.versions.push(vi);
    }
    out.index.versions.reverse(); // highest first (planned ascending)
    Ok(out)
}

fn build_order(a: &BuildId, b: &BuildId) -> std::cmp::Ordering {
    fn rank(b: &BuildId) -> u8 {
        match b {
            BuildId::Source => 0,
            BuildId::Embedded(_) => 1,
            BuildId::Digest(_) => 2,
        }
    }
    rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
        (BuildId::Digest(x), BuildId::Digest(y)) => x.cmp(y),
        (BuildId::Embedded(Some(x)), BuildId::Embedded(Some(y))) => (
            &x.pkg_name,
            &x.version_str,
            &x.build_str,
        )
            .cmp(&(&y.pkg_name, &y.version_str, &y.build_str)),
        _ => std::cmp::Ordering::Equal,
    })
}

/// Counts in truth.json.
#[derive(Debug, Serialize, Default)]
struct Counts {
    packages: usize,
    versions: usize,
    /// Builds with a spec tag (including skipped ones and embed stubs).
    builds: u64,
    /// Builds in the index.
    indexed_builds: u64,
    /// Deprecated builds with a spec, as SPK's `repo index` summary counts
    /// them (skipped ones included).
    deprecated: u64,
    /// Deprecated builds in the index.
    indexed_deprecated: u64,
    embed_stubs: u64,
    skipped: usize,
}

#[derive(Debug, Serialize)]
struct Truth<'a> {
    seed: u64,
    index: &'a RepositoryIndex,
    skipped: &'a [String],
    counts: Counts,
}

/// Generates the repository at `out` (an spfs repository root) and
/// `out/truth.json`; returns the number of build specs written.
pub fn generate(
    out: &Path,
    packages: usize,
    versions: usize,
    builds: usize,
    seed: u64,
) -> Result<u64> {
    if out.join("tags").exists() {
        bail!(
            "{} already holds a repository; choose an empty --out directory",
            out.display()
        );
    }
    if builds > 1000 {
        bail!("--builds {builds} is too many for distinct build digests per version");
    }
    let time = chrono::DateTime::from_timestamp(TAG_TIME_UNIX, 0)
        .context("the fixed tag time is a valid time")?;
    let w = SpfsWriter::create(out)?
        .with_user("gen-repo@localhost")
        .with_fixed_time(time);
    let outs: Vec<PkgOut> = (0..packages)
        .into_par_iter()
        .map(|p| gen_package(&w, p, packages, versions, builds, seed))
        .collect::<Result<_>>()?;

    let mut index = RepositoryIndex::default();
    let mut skipped = Vec::new();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut total = 0u64;
    let mut skipped_deprecated = 0u64;
    let mut stubs: BTreeMap<&str, BTreeMap<String, (V, Vec<BuildIndex>)>> = BTreeMap::new();
    let mut all_stubs: Vec<Stub> = Vec::new();
    for o in outs {
        total += o.builds;
        skipped_deprecated += o.skipped_deprecated;
        skipped.extend(o.skipped);
        vars.extend(o.vars);
        index.packages.push(o.index);
        all_stubs.extend(o.stubs);
    }
    // Embed stubs: written in parallel, one spec tag each, no components.
    all_stubs
        .par_iter()
        .map(|s| -> Result<()> {
            let d = w.write_payload(s.spec.as_bytes())?;
            w.create_tag(
                &format!("spk/spec/{}/{}/{}", s.name, s.version.folder(), s.tag),
                d,
            )?;
            Ok(())
        })
        .collect::<Result<()>>()?;
    let n_stubs = all_stubs.len() as u64;
    for s in all_stubs {
        vars.extend(s.vars);
        stubs
            .entry(s.name)
            .or_default()
            .entry(s.version.folder())
            .or_insert_with(|| (s.version.clone(), Vec::new()))
            .1
            .push(s.truth);
    }
    for (name, versions) in stubs {
        let mut vs: Vec<(V, Vec<BuildIndex>)> = versions.into_values().collect();
        vs.sort_by(|a, b| b.0.spk_cmp(&a.0));
        index.packages.push(PackageIndex {
            name: name.to_string(),
            versions: vs
                .into_iter()
                .map(|(v, mut builds)| {
                    builds.sort_by(|a, b| build_order(&a.build, &b.build));
                    VersionIndex {
                        version: v.norm_model(),
                        builds,
                    }
                })
                .collect(),
        });
    }
    index.packages.sort_by(|a, b| a.name.cmp(&b.name));
    let names: BTreeSet<&str> = index.packages.iter().map(|p| p.name.as_str()).collect();
    for (n, v) in vars {
        if !names.contains(n.as_str()) {
            index.global_vars.entry(n).or_default().insert(v);
        }
    }
    let mut counts = Counts {
        packages: index.packages.len(),
        builds: total + n_stubs,
        embed_stubs: n_stubs,
        skipped: skipped.len(),
        ..Counts::default()
    };
    for p in &index.packages {
        counts.versions += p.versions.len();
        for v in &p.versions {
            counts.indexed_builds += v.builds.len() as u64;
            counts.indexed_deprecated += v.builds.iter().filter(|b| b.deprecated).count() as u64;
        }
    }
    counts.deprecated = counts.indexed_deprecated + skipped_deprecated;
    let truth = Truth {
        seed,
        index: &index,
        skipped: &skipped,
        counts,
    };
    let path = out.join("truth.json");
    let file =
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut buf = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut buf, &truth)?;
    buf.flush()?;
    Ok(total + n_stubs)
}

fn usage() -> String {
    "usage: cargo xtask gen-repo --out DIR [--packages N] [--versions V] [--builds B] [--seed S]\n\
     (defaults: 30 packages x 3 versions x 4 builds; the bench uses 5000 x 4 x 5 = 100,000)"
        .into()
}

pub fn run(args: &[String]) -> Result<()> {
    let (mut packages, mut versions, mut builds, mut out, mut seed) =
        (30u64, 3u64, 4u64, None::<PathBuf>, 1u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |what: &str| -> Result<String> {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs {what}; {}", usage()))
        };
        let num = |s: String, key: &str| -> Result<u64> {
            s.parse()
                .with_context(|| format!("{key} {s:?} is not a non-negative integer; {}", usage()))
        };
        match a.as_str() {
            "--packages" => packages = num(val("a number")?, a)?,
            "--versions" | "--versions-per-package" => versions = num(val("a number")?, a)?,
            "--builds" | "--builds-per-version" => builds = num(val("a number")?, a)?,
            "--seed" => seed = num(val("a number")?, a)?,
            "--out" => out = Some(PathBuf::from(val("a directory")?)),
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; {}", usage()),
        }
    }
    let Some(out) = out else {
        bail!("{}", usage());
    };
    let t = std::time::Instant::now();
    let n = generate(
        &out,
        packages as usize,
        versions as usize,
        builds as usize,
        seed,
    )?;
    eprintln!(
        "gen-repo: wrote {n} build specs (an spfs repository) under {} in {:.1}s; the expected index is {}",
        out.display(),
        t.elapsed().as_secs_f64(),
        out.join("truth.json").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use spk_repo::spfs::{BuildName, SpfsRepo};

    fn truth(dir: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("truth.json")).unwrap()).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_repository() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        generate(a.path(), 12, 3, 4, 9).unwrap();
        generate(b.path(), 12, 3, 4, 9).unwrap();
        generate(c.path(), 12, 3, 4, 10).unwrap();
        assert_eq!(truth(a.path()), truth(b.path()));
        assert_ne!(truth(a.path()), truth(c.path()));
        let files = |d: &Path| {
            let mut out = BTreeMap::new();
            let mut stack = vec![d.to_path_buf()];
            while let Some(p) = stack.pop() {
                for e in std::fs::read_dir(&p).unwrap() {
                    let e = e.unwrap();
                    if e.file_type().unwrap().is_dir() {
                        stack.push(e.path());
                    } else {
                        let rel = e.path().strip_prefix(d).unwrap().to_path_buf();
                        out.insert(rel, std::fs::read(e.path()).unwrap());
                    }
                }
            }
            out
        };
        assert!(files(a.path()) == files(b.path()), "not byte-identical");
        assert!(
            generate(a.path(), 1, 1, 1, 1).is_err(),
            "refuses a used directory"
        );
    }

    #[test]
    fn the_truth_covers_every_range_operator_and_the_special_cases() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), 30, 3, 4, 1).unwrap();
        let t = truth(dir.path());
        let text = t["index"].to_string();
        for op in [
            "Compat",
            "DoubleEquals",
            "DoubleNotEquals",
            "Equals",
            "GreaterThan",
            "GreaterThanOrEqualTo",
            "LessThan",
            "LessThanOrEqualTo",
            "LowestSpecified",
            "NotEquals",
            "Semver",
            "Wildcard",
        ] {
            assert!(text.contains(&format!("\"op\":\"{op}\"")), "no {op}");
        }
        for needle in [
            "\"required\":\"Binary\"",
            "\"required\":\"API\"",
            "\"pre\":[{\"name\":\"rc\"",
            "\"post\":[{\"name\":\"r\"",
            "\"embedded\":{\"build_str\"",
            "\"build\":\"source\"",
            "\"deprecated\":true",
            "\"options\":[{",
            "\"inclusion_policy\":\"IfAlreadyPresent\"",
            "\"compat\":\"x.ab\"",
        ] {
            assert!(text.contains(needle), "no {needle}");
        }
        assert!(!t["skipped"].as_array().unwrap().is_empty());
    }

    /// Our own spfs reader lists back what the truth holds.
    #[test]
    fn the_repository_lists_back_as_the_truth() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), 20, 3, 3, 4).unwrap();
        let t = truth(dir.path());
        let repo = SpfsRepo::open(dir.path()).unwrap();
        let packages = t["index"]["packages"].as_array().unwrap();
        let names: Vec<&str> = packages
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(repo.package_names().unwrap(), names);
        let skipped: BTreeSet<&str> = t["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let mut seen_skipped = 0;
        for p in packages {
            let name = p["name"].as_str().unwrap();
            let folders = repo.versions(name).unwrap();
            assert_eq!(
                folders.len(),
                p["versions"].as_array().unwrap().len(),
                "{name}"
            );
            for f in &folders {
                for b in repo.builds(name, &f.folder).unwrap() {
                    let key = format!("{name}/{}/{b}", f.folder);
                    match repo.components(name, &f.folder, &b) {
                        Ok(c) => assert!(!c.is_empty()),
                        Err(e) if e.is_embed_stub() => {
                            assert!(matches!(BuildName::classify(&b), BuildName::EmbedStub(_)))
                        }
                        Err(e) if e.is_no_components() => {
                            assert!(skipped.contains(key.as_str()), "{key}");
                            seen_skipped += 1;
                        }
                        Err(e) => panic!("{e}"),
                    }
                    let spec = repo.read_spec(name, &f.folder, &b).unwrap();
                    assert!(spec.starts_with(b"api: v0/package\npkg: "));
                }
            }
        }
        assert_eq!(seen_skipped, skipped.len());
    }
}
