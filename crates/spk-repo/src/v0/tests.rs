//! Whole-spec tests: the reference's worked example (§5.10) field by field,
//! and one test per rule of §5. Where a comment says "SPK wrote", the
//! expectation was checked against SPK 0.44.0's own index of that spec
//! (`spk repo index`, decoded with flatc).

use super::*;
use crate::indexed::*;

fn parse(yaml: &str) -> ParsedBuild {
    match parse_build_spec(yaml.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("{e}\n{yaml}"),
    }
}

fn v(t: &str) -> Version {
    parse_version(t).unwrap()
}

fn rules(t: &str) -> Option<Vec<FilterRule>> {
    Some(parse_range(t).unwrap())
}

fn named(n: &str) -> Component {
    Component::Named(n.into())
}

fn var_opt(name: &str, value: &str) -> VarOpt {
    VarOpt {
        name: name.into(),
        inheritance: Inheritance::Weak,
        compat: None,
        required: false,
        value: value.into(),
    }
}

fn var_req(name: &str, value: &str) -> Requirement {
    Requirement::Var(VarRequest {
        name: name.into(),
        value: value.into(),
    })
}

fn pkg_req(name: &str, range: Option<&str>) -> PkgRequest {
    PkgRequest {
        version_filter: range.and_then(rules),
        ..PkgRequest::named(name)
    }
}

fn emb(name: &str, c: Component) -> ComponentEmbedded {
    ComponentEmbedded {
        name: name.into(),
        version: None,
        components: vec![c],
    }
}

const WORKED: &str = include_str!("testdata/my-tool.yaml");
const STUB: &str = include_str!("testdata/my-embedded-stub.yaml");

#[test]
fn worked_example_identity() {
    let p = parse(WORKED);
    assert_eq!(p.name, "my-tool");
    assert_eq!(p.version_text, "1.2");
    assert_eq!(p.build.published_version, v("1.2"));
    assert_eq!(p.build.published_version.parts, vec![1, 2]);
    assert_eq!(p.listed_version().parts, vec![1, 2, 0]);
    assert_eq!(p.build.build, BuildId::Digest("GMTG3CXY".into()));
    assert_eq!(p.build.compat.as_deref(), Some("x.ab"));
    assert!(!p.build.deprecated);
    assert!(p.build.published_components.is_empty());
}

#[test]
fn worked_example_build_options() {
    let p = parse(WORKED);
    let o = &p.build.build_options;
    assert_eq!(o.len(), 6);
    assert_eq!(o[0], Opt::Var(var_opt("arch", "x86_64")));
    assert_eq!(o[1], Opt::Var(var_opt("os", "linux")));
    assert_eq!(
        o[2],
        Opt::Var(VarOpt {
            inheritance: Inheritance::StrongForBuildOnly,
            ..var_opt("debug", "on")
        })
    );
    assert_eq!(
        o[3],
        Opt::Var(VarOpt {
            inheritance: Inheritance::Strong,
            compat: Some("x.ab".into()),
            required: true,
            ..var_opt("cuda", "11.8")
        })
    );
    assert_eq!(o[4], Opt::Var(var_opt("python.abi", "cp37m")));
    assert_eq!(
        o[5],
        Opt::Pkg(PkgOpt {
            name: "python".into(),
            components: vec![],
            prerelease_policy: PreReleasePolicy::None,
            required_compat: CompatRule::None,
            value: "~3.7.3".into(),
        })
    );
}

#[test]
fn worked_example_requirements() {
    let p = parse(WORKED);
    let r = &p.build.runtime_requirements;
    assert_eq!(r.len(), 6);
    assert_eq!(
        r[0],
        Requirement::Pkg(PkgRequest {
            components: vec![Component::Run],
            options: vec![OptionValue {
                name: "python.abi".into(),
                value: "cp37m".into(),
                is_complete: true,
            }],
            ..pkg_req("python", Some("~3.7.3"))
        })
    );
    assert_eq!(
        r[1],
        Requirement::Pkg(PkgRequest {
            inclusion_policy: InclusionPolicy::IfAlreadyPresent,
            ..pkg_req("zlib", Some(">=1.2,<2"))
        })
    );
    let Requirement::Pkg(zlib) = &r[1] else {
        panic!()
    };
    let f = zlib.version_filter.as_ref().unwrap();
    assert_eq!(
        (f[0].op, f[1].op),
        (RangeOp::GreaterThanOrEqualTo, RangeOp::LessThan)
    );
    assert_eq!(
        r[2],
        Requirement::Pkg(PkgRequest {
            components: vec![Component::Build, Component::Run],
            prerelease_policy: PreReleasePolicy::IncludeAll,
            ..pkg_req("gcc", Some("Binary:9.3"))
        })
    );
    let Requirement::Pkg(qt) = &r[3] else {
        panic!()
    };
    assert_eq!(
        qt.version_filter.as_ref().unwrap()[0].parts,
        Some(vec![5, u32::MAX])
    );
    assert_eq!(r[4], Requirement::Pkg(pkg_req("openexr", Some("!=3.1,^3"))));
    assert_eq!(r[5], var_req("python.abi", "cp37m"));
}

#[test]
fn worked_example_components_and_embedded() {
    let p = parse(WORKED);
    let c = &p.build.component_specs;
    assert_eq!(
        c.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        vec![Component::Build, Component::Run, named("lib")]
    );
    // fabricated lists for build and run; none for lib (my-embedded has no lib)
    assert_eq!(c[0].embedded, vec![emb("my-embedded", Component::Build)]);
    assert_eq!(c[1].uses, vec![named("lib")]);
    assert_eq!(c[1].embedded, vec![emb("my-embedded", Component::Run)]);
    assert!(c[2].embedded.is_empty());
    assert_eq!(
        c[2].requirements,
        vec![Requirement::Pkg(pkg_req("openssl", Some("=1.1.1")))]
    );
    assert_eq!(
        p.build.embedded,
        vec![EmbeddedSpec {
            ident: "my-embedded/2.0/embedded".into(),
            compat: None,
            deprecated: false,
            build_options: vec![],
            component_specs: vec![
                ComponentSpec::plain(Component::Build),
                ComponentSpec::plain(Component::Run)
            ],
            requirements: vec![],
        }]
    );
}

#[test]
fn worked_example_global_vars() {
    let p = parse(WORKED);
    // before the caller drops package names (python is one in §5.10)
    assert_eq!(
        p.global_vars,
        vec![
            ("arch".to_string(), "x86_64".to_string()),
            ("os".into(), "linux".into()),
            ("debug".into(), "on".into()),
            ("cuda".into(), "11.8".into()),
            ("python".into(), "~3.7.3".into()),
            ("abi".into(), "cp37m".into()),
        ]
    );
}

#[test]
fn worked_example_stub() {
    let p = parse(STUB);
    assert_eq!(p.name, "my-embedded");
    assert_eq!(p.build.published_version.parts, vec![2, 0]);
    assert_eq!(p.listed_version().parts, vec![2, 0, 0]);
    assert_eq!(
        p.build.build,
        BuildId::Embedded(Some(EmbeddedParent {
            repository_name: None,
            pkg_name: "my-tool".into(),
            version_str: Some("1.2.0".into()),
            build_str: Some("GMTG3CXY".into()),
            components: vec![Component::Run],
        }))
    );
    assert_eq!(
        p.build.runtime_requirements,
        vec![var_req("my-tool.cuda", "11.8")]
    );
    assert_eq!(
        p.build
            .component_specs
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>(),
        vec![Component::Build, Component::Run]
    );
    assert_eq!(
        p.global_vars,
        vec![("cuda".to_string(), "11.8".to_string())]
    );
}

#[test]
fn source_build_is_stripped() {
    let p = parse(
        "pkg: my-tool/1.2/src\ncompat: x.ab\nbuild:\n  options:\n  - var: os/linux\ninstall:\n  requirements:\n  - pkg: gcc\n  - var: abi/x\n  components:\n  - name: lib\ntests:\n- stage: build\n  script: x\n  requirements:\n  - var: t1/v\n",
    );
    assert_eq!(p.build.build, BuildId::Source);
    assert_eq!(p.build.published_version.parts, vec![1, 2]);
    assert_eq!(p.build.compat.as_deref(), Some("x.ab"));
    assert!(p.build.build_options.is_empty());
    assert!(p.build.runtime_requirements.is_empty());
    assert_eq!(
        p.build.component_specs,
        vec![ComponentSpec::plain(Component::Source)]
    );
    assert!(p.global_vars.is_empty());
}

#[test]
fn errors_name_the_place() {
    let cases: &[(&str, &str)] = &[
        ("", "not a YAML mapping"),
        ("- a\n- b\n", "not a YAML mapping"),
        ("pkg: [\n", "not valid YAML"),
        ("api: v0/package\n", "`pkg` is missing"),
        ("pkg: my-tool/1.2\n", "`pkg`"),
        ("pkg: my-tool/1.x/src\n", "`pkg`"),
        ("pkg: a/1/src\n", "`pkg`"),
        (
            "pkg: my-tool/1/src\ninstall:\n  requirements:\n  - pkg: zlib/>=1.x\n",
            "`install.requirements[0].pkg`",
        ),
        (
            "pkg: my-tool/1/src\nbuild:\n  options:\n  - var: os/linux\n  - var: xy\n    default: a\n    static: b\n  - {}\n",
            "`build.options[2]` is missing",
        ),
        (
            "pkg: my-tool/1/src\ncompat: q\n",
            "`compat`",
        ),
        (
            "pkg: my-tool/1/src\ndeprecated: yes\n",
            "`deprecated`",
        ),
        (
            "pkg: my-tool/1/GMTG3CXY\ninstall:\n  components:\n  - name: run\n    uses: [lib]\n",
            "`install.components`",
        ),
        (
            "pkg: my-tool/1/GMTG3CXY\ninstall:\n  embedded:\n  - pkg: emb/1.0/embedded\n    build:\n      options:\n      - var: xy/1\n        default: 2\n",
            "`install.embedded[0].build.options[0].default`",
        ),
        ("pkg: my-tool/1/GMTG3CXY\napi: v1/package\n", "`api`"),
    ];
    for (yaml, want) in cases {
        let err = parse_build_spec(yaml.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(want), "{yaml:?}: {err}");
    }
}

/// Truncations and byte garbling of real specs never panic; they either
/// parse or return an error.
#[test]
fn no_panic_on_garbage() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for spec in [WORKED, STUB] {
        let bytes = spec.as_bytes();
        for cut in 0..bytes.len() {
            let _ = parse_build_spec(&bytes[..cut]);
        }
        for _ in 0..3000 {
            let mut b = bytes.to_vec();
            for _ in 0..(1 + next() % 4) {
                let i = (next() as usize) % b.len();
                const NOISE: &[u8] = b"/:{},.-+*~^=<>![]\n 0aZ\xff";
                b[i] = NOISE[(next() as usize) % NOISE.len()];
            }
            let _ = parse_build_spec(&b);
        }
    }
}
