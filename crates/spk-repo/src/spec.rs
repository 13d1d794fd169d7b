//! Reading one build spec (SPK v0 package YAML) into a [`BuildEntry`].
//!
//! Only the keys the index needs are read; every other key is ignored. A
//! spec that cannot be used becomes a [`SpecProblem`] naming the file and
//! what is wrong, never a panic.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spk_messaging_core::PkgIdent;

use crate::model::{BuildEntry, ReqKind, Requirement};

/// A spec (or a directory where specs should be) that was skipped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpecProblem {
    pub path: PathBuf,
    pub problem: String,
}

impl SpecProblem {
    pub fn new(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        SpecProblem {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

#[derive(Debug, Deserialize)]
struct RawSpec {
    pkg: Option<String>,
    deprecated: Option<bool>,
    compat: Option<String>,
    build: Option<RawBuild>,
    install: Option<RawInstall>,
}

#[derive(Debug, Deserialize)]
struct RawBuild {
    options: Option<Vec<RawReq>>,
}

#[derive(Debug, Deserialize)]
struct RawInstall {
    requirements: Option<Vec<RawReq>>,
    components: Option<Vec<RawComponent>>,
}

#[derive(Debug, Deserialize)]
struct RawReq {
    var: Option<String>,
    pkg: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawComponent {
    name: Option<String>,
}

fn convert_reqs(list: Option<Vec<RawReq>>, key: &str) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    for (i, r) in list.unwrap_or_default().into_iter().enumerate() {
        let req = match (r.var, r.pkg) {
            (Some(v), None) => Requirement::parse(ReqKind::Var, &v),
            (None, Some(p)) => Requirement::parse(ReqKind::Pkg, &p),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{key}[{i}] has both `var` and `pkg`; an entry is either `var: name/value` or `pkg: name/range`"
                ))
            }
            (None, None) => {
                return Err(format!(
                    "{key}[{i}] has neither `var` nor `pkg`; an entry is either `var: name/value` or `pkg: name/range`"
                ))
            }
        };
        if req.name.is_empty() {
            return Err(format!(
                "{key}[{i}] has an empty name; expected `name/value`"
            ));
        }
        out.push(req);
    }
    Ok(out)
}

/// Parses the text of `<root>/packages/<name>/<version>/<build>.yaml`;
/// `name`, `version` and `build` come from the path and must match `pkg`.
pub fn parse_spec(
    text: &str,
    name: &str,
    version: &str,
    build: &str,
) -> Result<BuildEntry, String> {
    let raw: RawSpec =
        match serde_yaml::from_str::<Option<RawSpec>>(text) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Err(
                "the file is empty; expected a build spec with at least `pkg: name/version/build`"
                    .into(),
            ),
            Err(e) => return Err(format!("not a valid build spec: {e}")),
        };
    let expected = format!("{name}/{version}/{build}");
    let pkg = raw
        .pkg
        .ok_or_else(|| format!("`pkg` is missing; expected `pkg: {expected}`"))?;
    let ident = PkgIdent::parse_full(&pkg).map_err(|e| format!("`pkg`: {e}"))?;
    let same = ident.name.as_str() == name
        && ident.version.as_ref().map(|v| v.as_str()) == Some(version)
        && ident.build.as_ref().map(|b| b.as_str()) == Some(build);
    if !same {
        return Err(format!(
            "`pkg` is {pkg:?} but the file's path says {expected:?}; a spec lives at packages/<name>/<version>/<build>.yaml"
        ));
    }
    let (options, requirements, components) = {
        let options = convert_reqs(raw.build.and_then(|b| b.options), "build.options")?;
        let (reqs, comps) = match raw.install {
            Some(i) => (i.requirements, i.components),
            None => (None, None),
        };
        let requirements = convert_reqs(reqs, "install.requirements")?;
        let mut components = Vec::new();
        for (i, c) in comps.unwrap_or_default().into_iter().enumerate() {
            match c.name {
                Some(n) if !n.is_empty() => components.push(n),
                _ => {
                    return Err(format!(
                        "install.components[{i}] has no `name`; expected e.g. `- name: run`"
                    ))
                }
            }
        }
        (options, requirements, components)
    };
    Ok(BuildEntry {
        build: build.to_string(),
        deprecated: raw.deprecated.unwrap_or(false),
        compat: raw.compat,
        options,
        requirements,
        components,
    })
}

/// Reads and parses one spec file.
pub fn read_spec(
    path: &Path,
    name: &str,
    version: &str,
    build: &str,
) -> Result<BuildEntry, SpecProblem> {
    let bytes =
        std::fs::read(path).map_err(|e| SpecProblem::new(path, format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| SpecProblem::new(path, format!("not UTF-8 text: {e}")))?;
    parse_spec(text, name, version, build).map_err(|p| SpecProblem::new(path, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
pkg: my-pkg/1.2.3/3I42H3S6
deprecated: true
compat: x.a.b
api: v0/package
sources: [{path: ./}]
build:
  options:
    - var: arch/x86_64
    - var: debug
      default: off
    - pkg: python/3.9
  script: [make]
install:
  requirements:
    - pkg: python/~3.9
      fromBuildEnv: true
    - var: python.abi/cp39
  components:
    - name: run
      files: ["*"]
    - name: build
"#;

    #[test]
    fn reads_what_the_index_needs() {
        let b = parse_spec(FULL, "my-pkg", "1.2.3", "3I42H3S6").unwrap();
        assert!(b.deprecated);
        assert_eq!(b.compat.as_deref(), Some("x.a.b"));
        assert_eq!(b.options.len(), 3);
        assert_eq!(
            b.options[0],
            Requirement::parse(ReqKind::Var, "arch/x86_64")
        );
        assert_eq!(b.options[1].value, "");
        assert_eq!(b.options[2].kind, ReqKind::Pkg);
        assert_eq!(b.requirements[0].name, "python");
        assert_eq!(b.requirements[0].value, "~3.9");
        assert_eq!(b.requirements[1].kind, ReqKind::Var);
        assert_eq!(b.components, ["run", "build"]);
    }

    #[test]
    fn defaults_and_src() {
        let b = parse_spec("pkg: ab/1.0/src\n", "ab", "1.0", "src").unwrap();
        assert!(!b.deprecated);
        assert!(b.compat.is_none() && b.options.is_empty() && b.components.is_empty());
    }

    fn problem(text: &str) -> String {
        parse_spec(text, "my-pkg", "1.2.3", "3I42H3S6").unwrap_err()
    }

    #[test]
    fn problems_are_named() {
        assert!(problem("").contains("empty"));
        assert!(problem("pkg: [unclosed").contains("not a valid build spec"));
        assert!(problem("- a list\n").contains("not a valid build spec"));
        assert!(problem("deprecated: false\n")
            .contains("`pkg` is missing; expected `pkg: my-pkg/1.2.3/3I42H3S6`"));
        let e = problem("pkg: my-pkg/1.2.3/ABCDEF\n");
        assert!(e.contains("8-character base32"), "{e}");
        let e = problem("pkg: other/1.2.3/3I42H3S6\n");
        assert!(e.contains("path says \"my-pkg/1.2.3/3I42H3S6\""), "{e}");
        let e = problem("pkg: my-pkg/1.2.4/3I42H3S6\n");
        assert!(e.contains("1.2.4"), "{e}");
        let e = problem("pkg: my-pkg/1.2.3/3I42H3S6\ndeprecated: maybe\n");
        assert!(e.contains("deprecated"), "{e}");
        let e = problem("pkg: my-pkg/1.2.3/3I42H3S6\nbuild: {options: [{default: x}]}\n");
        assert!(e.contains("build.options[0] has neither"), "{e}");
        let e = problem(
            "pkg: my-pkg/1.2.3/3I42H3S6\ninstall: {requirements: [{pkg: a/1, var: b/2}]}\n",
        );
        assert!(e.contains("install.requirements[0] has both"), "{e}");
        let e = problem("pkg: my-pkg/1.2.3/3I42H3S6\ninstall: {components: [{files: []}]}\n");
        assert!(e.contains("install.components[0] has no `name`"), "{e}");
        let e = problem("pkg: my-pkg/1.2.3/3I42H3S6\ninstall: {requirements: {pkg: a}}\n");
        assert!(e.contains("requirements"), "{e}");
    }
}
