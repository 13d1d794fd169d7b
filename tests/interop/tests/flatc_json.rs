//! Our encoder, read by an independent FlatBuffers reader: `flatc` decodes an
//! index we wrote (with our schema) to JSON, and that JSON must be, field by
//! field, what the model says — including SPK's wire rules: every scalar
//! (flatc `--defaults-json` prints defaults too), epsilon None on every
//! version, absent union types as NONE, and absent lists left out.

use std::process::Command;

use serde_json::{json, Map, Value};
use spk_repo::fb;
use spk_repo::indexed::*;

fn v(parts: &[u32]) -> Version {
    Version {
        parts: parts.to_vec(),
        pre: vec![],
        post: vec![],
    }
}

fn tag(name: &str, number: u32) -> TagItem {
    TagItem {
        name: name.into(),
        number,
    }
}

fn rule(op: RangeOp, version: Option<Version>, parts: Option<Vec<u32>>) -> FilterRule {
    FilterRule {
        op,
        version,
        required: CompatRule::None,
        parts,
    }
}

/// Every variant of every enum and union of the model, and every optional
/// field both present and absent.
fn model() -> RepositoryIndex {
    let all_ops = [
        RangeOp::Compat,
        RangeOp::DoubleEquals,
        RangeOp::DoubleNotEquals,
        RangeOp::Equals,
        RangeOp::GreaterThan,
        RangeOp::GreaterThanOrEqualTo,
        RangeOp::LessThan,
        RangeOp::LessThanOrEqualTo,
        RangeOp::LowestSpecified,
        RangeOp::NotEquals,
        RangeOp::Semver,
    ];
    let mut rules: Vec<FilterRule> = all_ops
        .iter()
        .map(|&op| rule(op, Some(v(&[1, 2])), None))
        .collect();
    rules[0].required = CompatRule::Binary;
    rules.push(FilterRule {
        required: CompatRule::API,
        ..rule(RangeOp::Compat, Some(v(&[3])), None)
    });
    rules.push(rule(RangeOp::Wildcard, None, Some(vec![1, u32::MAX, 3])));
    rules.push(rule(RangeOp::Wildcard, None, None));
    rules.push(rule(
        RangeOp::GreaterThanOrEqualTo,
        Some(Version {
            parts: vec![1, 0],
            pre: vec![tag("alpha", 1), tag("rc", 0)],
            post: vec![tag("post", 2)],
        }),
        None,
    ));
    let full = PkgRequest {
        name: "python".into(),
        repo_name: Some("origin".into()),
        components: vec![
            Component::All,
            Component::Build,
            Component::Run,
            Component::Source,
            Component::Named("lib".into()),
        ],
        version_filter: Some(rules),
        build: Some(BuildId::Digest("GMTG3CXY".into())),
        prerelease_policy: PreReleasePolicy::IncludeAll,
        inclusion_policy: InclusionPolicy::IfAlreadyPresent,
        pin: Some("Binary".into()),
        pin_policy: PinPolicy::IfPresentInBuildEnv,
        required_compat: CompatRule::Binary,
        options: vec![
            OptionValue {
                name: "python.abi".into(),
                value: "cp37m".into(),
                is_complete: true,
            },
            OptionValue {
                name: "python.x".into(),
                value: "".into(),
                is_complete: false,
            },
        ],
    };
    let parent = |repo: bool| EmbeddedParent {
        repository_name: repo.then(|| "origin".to_string()),
        pkg_name: "my-tool".into(),
        version_str: Some("1.2.0".into()),
        build_str: Some("GMTG3CXY".into()),
        components: vec![Component::Run],
    };
    let mut src_req = PkgRequest::named("gcc");
    src_req.build = Some(BuildId::Source);
    src_req.prerelease_policy = PreReleasePolicy::ExcludeAll;
    src_req.required_compat = CompatRule::API;
    let mut emb_req = PkgRequest::named("emb");
    emb_req.build = Some(BuildId::Embedded(None));
    let mut emb2_req = PkgRequest::named("emb2");
    emb2_req.build = Some(BuildId::Embedded(Some(parent(true))));
    let requirements = vec![
        Requirement::Pkg(full),
        Requirement::Pkg(PkgRequest::named("bare")),
        Requirement::Pkg(src_req),
        Requirement::Pkg(emb_req),
        Requirement::Pkg(emb2_req),
        Requirement::Var(VarRequest {
            name: "python.abi".into(),
            value: "cp37m".into(),
        }),
    ];
    let options = vec![
        Opt::Var(VarOpt {
            name: "arch".into(),
            inheritance: Inheritance::Weak,
            compat: None,
            required: false,
            value: "x86_64".into(),
        }),
        Opt::Var(VarOpt {
            name: "debug".into(),
            inheritance: Inheritance::StrongForBuildOnly,
            compat: Some("x.a.b".into()),
            required: false,
            value: "".into(),
        }),
        Opt::Var(VarOpt {
            name: "cuda".into(),
            inheritance: Inheritance::Strong,
            compat: Some("x.ab".into()),
            required: true,
            value: "11.8".into(),
        }),
        Opt::Pkg(PkgOpt {
            name: "python".into(),
            components: vec![Component::Run],
            prerelease_policy: PreReleasePolicy::IncludeAll,
            required_compat: CompatRule::Binary,
            value: "~3.7.3".into(),
        }),
        Opt::Pkg(PkgOpt {
            name: "zlib".into(),
            components: vec![],
            prerelease_policy: PreReleasePolicy::ExcludeAll,
            required_compat: CompatRule::API,
            value: "".into(),
        }),
    ];
    let components = vec![
        ComponentSpec {
            name: Component::Build,
            uses: vec![],
            requirements: vec![],
            embedded: vec![ComponentEmbedded {
                name: "my-embedded".into(),
                version: None,
                components: vec![Component::Build],
            }],
        },
        ComponentSpec {
            name: Component::Run,
            uses: vec![Component::Named("lib".into())],
            requirements: requirements[..2].to_vec(),
            embedded: vec![ComponentEmbedded {
                name: "my-embedded".into(),
                version: Some(v(&[2, 0])),
                components: vec![Component::Run, Component::All],
            }],
        },
        ComponentSpec::plain(Component::Named("lib".into())),
    ];
    let full_build = BuildIndex {
        published_version: Version {
            parts: vec![1, 2],
            pre: vec![tag("rc", 1)],
            post: vec![tag("r", 3)],
        },
        build: BuildId::Digest("GMTG3CXY".into()),
        deprecated: true,
        compat: Some("x.ab".into()),
        build_options: options.clone(),
        embedded: vec![
            EmbeddedSpec {
                ident: "my-embedded/2.0/embedded".into(),
                compat: Some("x.x.b".into()),
                deprecated: true,
                build_options: options,
                component_specs: components.clone(),
                requirements: requirements.clone(),
            },
            EmbeddedSpec {
                ident: "other/1/embedded".into(),
                compat: None,
                deprecated: false,
                build_options: vec![],
                component_specs: vec![],
                requirements: vec![],
            },
        ],
        component_specs: components,
        runtime_requirements: requirements,
        published_components: vec![Component::Build, Component::Named("lib".into())],
    };
    let mut src = BuildIndex::bare(v(&[1, 2]), BuildId::Source);
    src.component_specs = vec![ComponentSpec::plain(Component::Source)];
    src.published_components = vec![Component::Source];
    let stub = BuildIndex::bare(v(&[2, 0]), BuildId::Embedded(Some(parent(false))));
    let legacy = BuildIndex::bare(v(&[]), BuildId::Embedded(None));
    let mut global_vars = GlobalVars::new();
    global_vars.insert(
        "arch".into(),
        ["x86_64".to_string(), "aarch64".to_string()].into(),
    );
    global_vars.insert("debug".into(), ["".to_string()].into());
    RepositoryIndex {
        packages: vec![
            PackageIndex {
                name: "my-tool".into(),
                versions: vec![
                    VersionIndex {
                        version: v(&[1, 2, 0]),
                        builds: vec![src, full_build],
                    },
                    VersionIndex {
                        version: v(&[0, 0, 0]),
                        builds: vec![],
                    },
                ],
            },
            PackageIndex {
                name: "my-embedded".into(),
                versions: vec![VersionIndex {
                    version: v(&[2, 0, 0]),
                    builds: vec![stub, legacy],
                }],
            },
            PackageIndex {
                name: "empty".into(),
                versions: vec![],
            },
        ],
        global_vars,
    }
}

// ---- the JSON flatc prints for the model (with --defaults-json) ------------

/// An object from (key, value) pairs, leaving out `None`s.
fn obj(fields: Vec<(&str, Option<Value>)>) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    }
    Value::Object(m)
}

/// A list field: absent when empty (we never write empty vectors).
fn list<T>(items: &[T], f: impl Fn(&T) -> Value) -> Option<Value> {
    (!items.is_empty()).then(|| Value::Array(items.iter().map(f).collect()))
}

fn s(text: &str) -> Option<Value> {
    Some(json!(text))
}

fn version(x: &Version) -> Value {
    let tags = |t: &[TagItem]| list(t, |t| json!({"name": t.name, "number": t.number}));
    obj(vec![
        ("parts", list(&x.parts, |p| json!(p))),
        ("epsilon", s("None")),
        ("pre", tags(&x.pre)),
        ("post", tags(&x.post)),
    ])
}

fn component(c: &Component) -> Value {
    match c {
        Component::All => json!({"kind": "All"}),
        Component::Build => json!({"kind": "Build"}),
        Component::Run => json!({"kind": "Run"}),
        Component::Source => json!({"kind": "Source"}),
        Component::Named(n) => json!({"kind": "Named", "name": n}),
    }
}

fn compat_rule(c: CompatRule) -> Option<Value> {
    s(match c {
        CompatRule::None => "None",
        CompatRule::API => "API",
        CompatRule::Binary => "Binary",
    })
}

fn prerelease(p: PreReleasePolicy) -> Option<Value> {
    s(match p {
        PreReleasePolicy::None => "None",
        PreReleasePolicy::ExcludeAll => "ExcludeAll",
        PreReleasePolicy::IncludeAll => "IncludeAll",
    })
}

/// `(type name, value)` of the Build union.
fn build(b: &BuildId) -> (&'static str, Value) {
    match b {
        BuildId::Source => ("Source", json!({})),
        BuildId::Digest(d) => ("BuildId", json!({ "id": d })),
        BuildId::Embedded(None) => ("EmbeddedSource", json!({})),
        BuildId::Embedded(Some(p)) => (
            "EmbeddedSource",
            json!({"source": obj(vec![
                ("ident", Some(obj(vec![
                    ("repository_name", p.repository_name.as_deref().and_then(s)),
                    ("pkg_name", s(&p.pkg_name)),
                    ("version_str", p.version_str.as_deref().and_then(s)),
                    ("build_str", p.build_str.as_deref().and_then(s)),
                ]))),
                ("components", list(&p.components, component)),
            ])}),
        ),
    }
}

fn opt(o: &Opt) -> Value {
    match o {
        Opt::Pkg(p) => json!({"opt_type": "PkgOpt", "opt": obj(vec![
            ("name", s(&p.name)),
            ("components", list(&p.components, component)),
            ("prerelease_policy", prerelease(p.prerelease_policy)),
            ("required_compat", compat_rule(p.required_compat)),
            ("value", s(&p.value)),
        ])}),
        Opt::Var(x) => json!({"opt_type": "VarOpt", "opt": obj(vec![
            ("name", s(&x.name)),
            ("inheritance", s(match x.inheritance {
                Inheritance::Weak => "Weak",
                Inheritance::StrongForBuildOnly => "StrongForBuildOnly",
                Inheritance::Strong => "Strong",
            })),
            ("compat", x.compat.as_deref().and_then(s)),
            ("required", Some(json!(x.required))),
            ("value", s(&x.value)),
        ])}),
    }
}

fn filter_rule(r: &FilterRule) -> Value {
    let op = match r.op {
        RangeOp::Compat => "Compat",
        RangeOp::DoubleEquals => "DoubleEquals",
        RangeOp::DoubleNotEquals => "DoubleNotEquals",
        RangeOp::Equals => "Equals",
        RangeOp::GreaterThan => "GreaterThan",
        RangeOp::GreaterThanOrEqualTo => "GreaterThanOrEqualTo",
        RangeOp::LessThan => "LessThan",
        RangeOp::LessThanOrEqualTo => "LessThanOrEqualTo",
        RangeOp::LowestSpecified => "LowestSpecified",
        RangeOp::NotEquals => "NotEquals",
        RangeOp::Semver => "Semver",
        RangeOp::Wildcard => "Wildcard",
    };
    obj(vec![
        ("filter_op", s(op)),
        ("version", r.version.as_ref().map(version)),
        ("required", compat_rule(r.required)),
        (
            "parts",
            r.parts.as_deref().and_then(|p| list(p, |n| json!(n))),
        ),
    ])
}

fn requirement(r: &Requirement) -> Value {
    match r {
        Requirement::Var(x) => json!({
            "request_type": "VarRequestPinnedValue",
            "request": {"name": x.name, "value": x.value},
        }),
        Requirement::Pkg(p) => {
            let (build_type, build_value) = match &p.build {
                Some(b) => {
                    let (t, v) = build(b);
                    (t, Some(v))
                }
                None => ("NONE", None),
            };
            json!({"request_type": "PkgRequestWithOptions", "request": obj(vec![
                ("name", s(&p.name)),
                ("repo_name", p.repo_name.as_deref().and_then(s)),
                ("components", list(&p.components, component)),
                ("version_filter", p.version_filter.as_deref().and_then(|r| list(r, filter_rule))),
                ("build_type", s(build_type)),
                ("build", build_value),
                ("prerelease_policy", prerelease(p.prerelease_policy)),
                ("inclusion_policy", s(match p.inclusion_policy {
                    InclusionPolicy::Always => "Always",
                    InclusionPolicy::IfAlreadyPresent => "IfAlreadyPresent",
                })),
                ("pin", p.pin.as_deref().and_then(s)),
                ("pin_policy", s(match p.pin_policy {
                    PinPolicy::Required => "Required",
                    PinPolicy::IfPresentInBuildEnv => "IfPresentInBuildEnv",
                })),
                ("required_compat", compat_rule(p.required_compat)),
                ("options", list(&p.options, |o| json!({
                    "name": o.name, "value": o.value, "is_complete": o.is_complete,
                }))),
            ])})
        }
    }
}

fn component_spec(c: &ComponentSpec) -> Value {
    obj(vec![
        ("name", Some(component(&c.name))),
        ("uses", list(&c.uses, component)),
        (
            "requirements_with_options",
            list(&c.requirements, requirement),
        ),
        (
            "embedded_components",
            list(&c.embedded, |e| {
                obj(vec![
                    ("name", s(&e.name)),
                    ("version", e.version.as_ref().map(version)),
                    ("components", list(&e.components, component)),
                ])
            }),
        ),
    ])
}

fn build_index(b: &BuildIndex) -> Value {
    let (build_type, build_value) = build(&b.build);
    obj(vec![
        ("published_version", Some(version(&b.published_version))),
        ("build_type", s(build_type)),
        ("build", Some(build_value)),
        ("is_deprecated", Some(json!(b.deprecated))),
        ("compat", b.compat.as_deref().and_then(s)),
        ("build_options", list(&b.build_options, opt)),
        (
            "embedded",
            list(&b.embedded, |e| {
                obj(vec![
                    ("ident", s(&e.ident)),
                    ("compat", e.compat.as_deref().and_then(s)),
                    ("deprecated", Some(json!(e.deprecated))),
                    ("build_options", list(&e.build_options, opt)),
                    ("component_specs", list(&e.component_specs, component_spec)),
                    ("requirements", list(&e.requirements, requirement)),
                ])
            }),
        ),
        ("component_specs", list(&b.component_specs, component_spec)),
        (
            "runtime_requirements",
            list(&b.runtime_requirements, requirement),
        ),
        (
            "published_components",
            list(&b.published_components, component),
        ),
    ])
}

fn expected(m: &RepositoryIndex) -> Value {
    let mut packages: Vec<&PackageIndex> = m.packages.iter().collect();
    packages.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let vars: Vec<(&String, _)> = m.global_vars.iter().collect();
    obj(vec![
        ("index_schema_version", Some(json!(1))),
        (
            "packages",
            list(&packages, |p| {
                obj(vec![
                    ("name", s(&p.name)),
                    (
                        "versions",
                        list(&p.versions, |x| {
                            obj(vec![
                                ("version", Some(version(&x.version))),
                                ("builds", list(&x.builds, build_index)),
                            ])
                        }),
                    ),
                ])
            }),
        ),
        (
            "global_vars",
            list(
                &vars,
                |(name, values)| json!({"name": name, "values": values}),
            ),
        ),
    ])
}

/// Every difference, with its JSON path.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, av) in a {
                match b.get(k) {
                    Some(bv) => diff(&format!("{path}.{k}"), av, bv, out),
                    None => out.push(format!("{path}.{k}: missing, expected {av}")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: unexpected {}", b[k]));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), av, bv, out);
            }
        }
        _ if want != got => out.push(format!("{path}: expected {want}, got {got}")),
        _ => {}
    }
}

#[test]
fn flatc_reads_what_the_model_says() {
    let flatc = spk_interop::flatc();
    let m = model();
    let bytes = fb::encode(&m);
    fb::verify(&bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("index_v1.fb");
    std::fs::write(&bin, &bytes).unwrap();
    let out = Command::new(&flatc)
        .args([
            "--json",
            "--strict-json",
            "--defaults-json",
            "--raw-binary",
            "-o",
        ])
        .arg(dir.path())
        .arg(spk_interop::schema())
        .arg("--")
        .arg(&bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flatc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("index_v1.json")).unwrap();
    let got: Value = serde_json::from_str(&text).unwrap();
    let want = expected(&m);
    let mut differences = Vec::new();
    diff("$", &want, &got, &mut differences);
    assert!(
        differences.is_empty(),
        "flatc's reading of our index differs from the model:\n{}",
        differences.join("\n")
    );
    // The test can fail: the same comparison sees a change in the model.
    let mut changed = m.clone();
    changed.packages[1].versions[0].builds[0].deprecated = true;
    let mut differences = Vec::new();
    diff("$", &expected(&changed), &got, &mut differences);
    assert_eq!(differences.len(), 1, "{differences:?}");
}
