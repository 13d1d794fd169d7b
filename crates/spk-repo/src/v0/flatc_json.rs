//! A [`BuildIndex`] in the JSON shape `flatc --json --strict-json` prints
//! for SPK's index (schema field names, enums by name, default-valued fields
//! and empty lists left out, as SPK's builder never writes them).
//!
//! The model's own serde JSON is shaped for people; this one exists so that
//! SPK's decoded index and our parse of the same spec can be compared field
//! by field (the unit tests against SPK snapshots and the interoperability
//! tests use it).

use crate::indexed::*;
use serde_json::{json, Map, Value};

fn put(m: &mut Map<String, Value>, k: &str, v: Value) {
    let empty = match &v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Bool(b) => !b,
        _ => false,
    };
    if !empty {
        m.insert(k.to_string(), v);
    }
}

/// A version (always with epsilon `None`, as SPK writes it).
pub fn version(v: &Version) -> Value {
    let tags = |t: &[TagItem]| {
        Value::Array(
            t.iter()
                .map(|t| {
                    let mut m = Map::new();
                    m.insert("name".into(), json!(t.name));
                    if t.number != 0 {
                        m.insert("number".into(), json!(t.number));
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    };
    let mut m = Map::new();
    put(&mut m, "parts", json!(v.parts));
    m.insert("epsilon".into(), json!("None"));
    put(&mut m, "pre", tags(&v.pre));
    put(&mut m, "post", tags(&v.post));
    Value::Object(m)
}

/// A component.
pub fn component(c: &Component) -> Value {
    match c {
        Component::All => json!({}),
        Component::Build => json!({"kind": "Build"}),
        Component::Run => json!({"kind": "Run"}),
        Component::Source => json!({"kind": "Source"}),
        Component::Named(n) => json!({"kind": "Named", "name": n}),
    }
}

fn components(c: &[Component]) -> Value {
    Value::Array(c.iter().map(component).collect())
}

fn build(m: &mut Map<String, Value>, b: &BuildId) {
    let (t, v) = match b {
        BuildId::Source => ("Source", json!({})),
        BuildId::Digest(d) => ("BuildId", json!({"id": d})),
        BuildId::Embedded(None) => ("EmbeddedSource", json!({})),
        BuildId::Embedded(Some(p)) => {
            let mut ident = Map::new();
            put(&mut ident, "repository_name", json!(p.repository_name));
            ident.insert("pkg_name".into(), json!(p.pkg_name));
            put(&mut ident, "version_str", json!(p.version_str));
            put(&mut ident, "build_str", json!(p.build_str));
            let mut src = Map::new();
            src.insert("ident".into(), Value::Object(ident));
            put(&mut src, "components", components(&p.components));
            ("EmbeddedSource", json!({"source": src}))
        }
    };
    m.insert("build_type".into(), json!(t));
    m.insert("build".into(), v);
}

fn enum_name<T: PartialEq + Default + std::fmt::Debug>(v: T) -> Value {
    if v == T::default() {
        Value::Null
    } else {
        json!(format!("{v:?}"))
    }
}

fn rule(r: &FilterRule) -> Value {
    let mut m = Map::new();
    if r.op != RangeOp::Compat {
        m.insert("filter_op".into(), json!(format!("{:?}", r.op)));
    }
    if let Some(v) = &r.version {
        m.insert("version".into(), version(v));
    }
    put(&mut m, "required", enum_name(r.required));
    if let Some(p) = &r.parts {
        m.insert("parts".into(), json!(p));
    }
    Value::Object(m)
}

fn requirement(r: &Requirement) -> Value {
    match r {
        Requirement::Var(v) => json!({
            "request_type": "VarRequestPinnedValue",
            "request": {"name": v.name, "value": v.value},
        }),
        Requirement::Pkg(p) => {
            let mut m = Map::new();
            m.insert("name".into(), json!(p.name));
            put(&mut m, "repo_name", json!(p.repo_name));
            put(&mut m, "components", components(&p.components));
            if let Some(f) = &p.version_filter {
                put(
                    &mut m,
                    "version_filter",
                    Value::Array(f.iter().map(rule).collect()),
                );
            }
            if let Some(b) = &p.build {
                build(&mut m, b);
            }
            put(&mut m, "prerelease_policy", enum_name(p.prerelease_policy));
            put(&mut m, "inclusion_policy", enum_name(p.inclusion_policy));
            put(&mut m, "pin", json!(p.pin));
            put(&mut m, "pin_policy", enum_name(p.pin_policy));
            put(&mut m, "required_compat", enum_name(p.required_compat));
            put(
                &mut m,
                "options",
                Value::Array(
                    p.options
                        .iter()
                        .map(|o| {
                            let mut m = Map::new();
                            m.insert("name".into(), json!(o.name));
                            m.insert("value".into(), json!(o.value));
                            put(&mut m, "is_complete", json!(o.is_complete));
                            Value::Object(m)
                        })
                        .collect(),
                ),
            );
            json!({"request_type": "PkgRequestWithOptions", "request": m})
        }
    }
}

fn requirements(r: &[Requirement]) -> Value {
    Value::Array(r.iter().map(requirement).collect())
}

fn opt(o: &Opt) -> Value {
    match o {
        Opt::Var(v) => {
            let mut m = Map::new();
            m.insert("name".into(), json!(v.name));
            put(&mut m, "inheritance", enum_name(v.inheritance));
            put(&mut m, "compat", json!(v.compat));
            put(&mut m, "required", json!(v.required));
            m.insert("value".into(), json!(v.value));
            json!({"opt_type": "VarOpt", "opt": m})
        }
        Opt::Pkg(p) => {
            let mut m = Map::new();
            m.insert("name".into(), json!(p.name));
            put(&mut m, "components", components(&p.components));
            put(&mut m, "prerelease_policy", enum_name(p.prerelease_policy));
            put(&mut m, "required_compat", enum_name(p.required_compat));
            m.insert("value".into(), json!(p.value));
            json!({"opt_type": "PkgOpt", "opt": m})
        }
    }
}

fn opts(o: &[Opt]) -> Value {
    Value::Array(o.iter().map(opt).collect())
}

fn component_spec(c: &ComponentSpec) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), component(&c.name));
    put(&mut m, "uses", components(&c.uses));
    put(
        &mut m,
        "requirements_with_options",
        requirements(&c.requirements),
    );
    put(
        &mut m,
        "embedded_components",
        Value::Array(
            c.embedded
                .iter()
                .map(|e| {
                    let mut m = Map::new();
                    m.insert("name".into(), json!(e.name));
                    if let Some(v) = &e.version {
                        m.insert("version".into(), version(v));
                    }
                    put(&mut m, "components", components(&e.components));
                    Value::Object(m)
                })
                .collect(),
        ),
    );
    Value::Object(m)
}

fn component_specs(c: &[ComponentSpec]) -> Value {
    Value::Array(c.iter().map(component_spec).collect())
}

/// One build as flatc prints it.
pub fn build_index(b: &BuildIndex) -> Value {
    let mut m = Map::new();
    m.insert("published_version".into(), version(&b.published_version));
    build(&mut m, &b.build);
    put(&mut m, "is_deprecated", json!(b.deprecated));
    put(&mut m, "compat", json!(b.compat));
    put(&mut m, "build_options", opts(&b.build_options));
    put(
        &mut m,
        "embedded",
        Value::Array(
            b.embedded
                .iter()
                .map(|e| {
                    let mut m = Map::new();
                    m.insert("ident".into(), json!(e.ident));
                    put(&mut m, "compat", json!(e.compat));
                    put(&mut m, "deprecated", json!(e.deprecated));
                    put(&mut m, "build_options", opts(&e.build_options));
                    put(
                        &mut m,
                        "component_specs",
                        component_specs(&e.component_specs),
                    );
                    put(&mut m, "requirements", requirements(&e.requirements));
                    Value::Object(m)
                })
                .collect(),
        ),
    );
    put(
        &mut m,
        "component_specs",
        component_specs(&b.component_specs),
    );
    put(
        &mut m,
        "runtime_requirements",
        requirements(&b.runtime_requirements),
    );
    put(
        &mut m,
        "published_components",
        components(&b.published_components),
    );
    Value::Object(m)
}
