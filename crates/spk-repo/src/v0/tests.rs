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

// ---- against SPK's own index ------------------------------------------------
//
// `testdata/spk-index-1.json` is SPK 0.44.0's index of a repository holding
// every `testdata/[a-k]-*.yaml` spec plus `my-tool.yaml` and
// `my-embedded-stub.yaml` (`spk repo index`, decoded with `flatc --json
// --strict-json` and our schema; see testdata/README.md).
// `testdata/spk-index-2.json` is SPK's index after SPK itself re-published
// `my-tool` (`spk deprecate`), which made SPK write its own embed stub:
// `spk-republished-my-tool.yaml` and `spk-written-stub.yaml` are those
// stored specs, byte for byte.

const SPK_INDEX_1: &str = include_str!("testdata/spk-index-1.json");
const SPK_INDEX_2: &str = include_str!("testdata/spk-index-2.json");

fn spk_build(
    index: &serde_json::Value,
    name: &str,
    ours: &serde_json::Value,
) -> Option<serde_json::Value> {
    let pkg = index["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?;
    pkg["versions"]
        .as_array()?
        .iter()
        .filter_map(|v| v["builds"].as_array())
        .flatten()
        .find(|b| {
            b["build"] == ours["build"] && b["published_version"] == ours["published_version"]
        })
        .map(|b| {
            let mut b = b.clone();
            // what the repository holds, not the spec: the caller's part
            b.as_object_mut().map(|m| m.remove("published_components"));
            b
        })
}

fn first_difference(
    path: &str,
    spk: &serde_json::Value,
    ours: &serde_json::Value,
) -> Option<String> {
    use serde_json::Value;
    match (spk, ours) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    &format!("{path}.{k}"),
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                )
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y)),
        _ if spk == ours => None,
        _ => Some(format!("{path}: SPK wrote {spk}, we give {ours}")),
    }
}

fn check_against_spk(index_json: &str, specs: &[(&str, &str)]) {
    let index: serde_json::Value = serde_json::from_str(index_json).unwrap();
    let packages: std::collections::BTreeSet<&str> = index["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let mut vars: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for (file, yaml) in specs {
        let parsed = parse(yaml);
        let ours = flatc_json::build_index(&parsed.build);
        let spk = spk_build(&index, &parsed.name, &ours)
            .unwrap_or_else(|| panic!("{file}: SPK's index has no such build"));
        if let Some(d) = first_difference("", &spk, &ours) {
            panic!("{file}: {d}");
        }
        for (n, v) in parsed.global_vars {
            if !packages.contains(n.as_str()) {
                vars.entry(n).or_default().insert(v);
            }
        }
    }
    let spk_vars: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = index
        ["global_vars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(vars, spk_vars, "global vars");
}

macro_rules! specs {
    ($($f:literal),* $(,)?) => { &[$(($f, include_str!(concat!("testdata/", $f)))),*] };
}

/// Every build of the SPK-indexed repository: ranges (every operator,
/// tags, the comma lookahead, duplicates, order), options (pkg/var,
/// static/default, case-insensitive keys, compat, inheritance, required),
/// requests (repo prefix, builds, pins, pin policy, inclusion, var values,
/// option values attached), components (uses, sorting, `Remaining`,
/// requirements with options, `:all`, fabricated lists, duplicate embeds),
/// embedded packages, a src build, an embed stub, global vars.
#[test]
fn same_as_spk_index_1() {
    check_against_spk(
        SPK_INDEX_1,
        specs![
            "a-ranges.yaml",
            "b-options.yaml",
            "c-requests.yaml",
            "d-components.yaml",
            "e-remaining.yaml",
            "f-src.yaml",
            "g-globals.yaml",
            "h-pre.yaml",
            "i-stub.yaml",
            "j-cm-top.yaml",
            "k-more.yaml",
            "my-tool.yaml",
            "my-embedded-stub.yaml",
        ],
    );
}

/// SPK's own re-published spec (deprecated, ranges re-printed as
/// `<2.0.0,>=1.2.0`) and the embed stub SPK wrote for it.
#[test]
fn same_as_spk_index_2() {
    check_against_spk(
        SPK_INDEX_2,
        specs!["spk-republished-my-tool.yaml", "spk-written-stub.yaml"],
    );
}

/// The embed stub exactly as SPK 0.44.0 stored it: its `pkg:` names the
/// parent (version in storage form), it carries the parent's deprecation and
/// the parent's strong var options as its own requirements, so it is indexed
/// from its own YAML alone.
#[test]
fn spk_written_stub() {
    let p = parse(include_str!("testdata/spk-written-stub.yaml"));
    assert_eq!(p.name, "my-embedded");
    assert_eq!(p.version_text, "2.0");
    assert!(p.build.deprecated);
    let BuildId::Embedded(Some(parent)) = &p.build.build else {
        panic!("{:?}", p.build.build)
    };
    assert_eq!(parent.pkg_name, "my-tool");
    assert_eq!(parent.version_str.as_deref(), Some("1.2.0"));
    assert_eq!(parent.build_str.as_deref(), Some("GMTG3CXY"));
    assert_eq!(parent.components, vec![Component::Run]);
    // SPK stored it under this tag name (base32 of the build text)
    assert_eq!(
        format!("{}", p.build.build),
        "embedded[my-tool:run/1.2.0/GMTG3CXY]"
    );
    assert_eq!(
        p.build.runtime_requirements,
        vec![var_req("my-tool.cuda", "11.8")]
    );
}

/// Specs SPK 0.44.0 refused to index (each comment quotes its warning);
/// we refuse them too.
#[test]
fn rejected_like_spk() {
    let head = "pkg: rej/1.0/AAAAAAAA\n";
    for body in [
        // found multiple install requirements for 'abc'
        "install:\n  requirements:\n  - pkg: abc\n  - pkg: abc/1\n",
        "install:\n  requirements:\n  - var: abc/1\n  - var: abc/2\n",
        // failed to deserialize request (fromBuildEnv with a range)
        "install:\n  requirements:\n  - pkg: abc/1\n    fromBuildEnv: true\n",
        "install:\n  requirements:\n  - pkg: abc/1.0/src\n    fromBuildEnv: x.x\n",
        // ... pkg and var, neither, bad enum spellings, bad ranges, bad names
        "install:\n  requirements:\n  - pkg: abc\n    var: abc/1\n",
        "install:\n  requirements:\n  - description: x\n",
        "install:\n  requirements:\n  - pkg: abc\n    include: always\n",
        "install:\n  requirements:\n  - pkg: abc\n    prereleasePolicy: includeall\n",
        "install:\n  requirements:\n  - pkg: abc/~1\n",
        "install:\n  requirements:\n  - pkg: abc/1.0-rc\n",
        "install:\n  requirements:\n  - pkg: abc/1,\n",
        "install:\n  requirements:\n  - pkg: Abc\n",
        "install:\n  requirements:\n  - pkg: abc\n    ifPresentInBuildEnv: yes\n",
        "install:\n  requirements:\n  - pkg: abc\n    fromBuildEnv: 1\n",
        "install:\n  requirements:\n  - pkg: abc:{run,bad!}\n",
        // invalid type: floating point, expected a string
        "install:\n  requirements:\n  - var: abc\n    value: 1.10\n",
        // The 'all' component is reserved / multiple components / uses
        "install:\n  components:\n  - name: all\n",
        "install:\n  components:\n  - name: lib\n  - name: lib\n",
        "install:\n  components:\n  - name: lib\n    uses: [nope]\n",
        "install:\n  components:\n  - name: r\n",
        "install:\n  embedded:\n  - pkg: emb-x/1.0/embedded\n    install:\n      components:\n      - name: all\n",
        // the components embedded in this component must not be empty
        "install:\n  components:\n  - name: lib\n    embedded:\n    - emb-x\n",
        "install:\n  components:\n  - name: lib\n    embedded:\n    - emb-x:run/1.x\n",
        // repository name / build specifier not supported here
        "build:\n  options:\n  - pkg: origin/abc/1\n",
        "build:\n  options:\n  - pkg: abc/1/src\n",
        // could not determine option type
        "build:\n  options:\n  - pkg: abc\n    var: abc\n",
        "build:\n  options:\n  - static: x\n",
        // option cannot specify both the 'default' field and a default value
        "build:\n  options:\n  - var: abc/1\n    default: 2\n",
        "build:\n  options:\n  - pkg: abc/1\n    default: 2\n",
        // unknown variant `strong`
        "build:\n  options:\n  - var: abc\n    inheritance: strong\n",
        // build option was specified more than once
        "build:\n  options:\n  - var: abc/1\n  - var: abc/2\n",
        // Invalid option name, must be at least 2 characters
        "build:\n  options:\n  - var: rq-two.x/1\n",
        // invalid type: string "yes", expected a boolean
        "build:\n  options:\n  - var: abc\n    required: yes\n",
        // Failed to parse compat value ''
        "compat: \"\"\n",
        // install.embedded[0].pkg: expected '/'
        "install:\n  embedded:\n  - pkg: emb-x/1.0\n",
        // install.embedded[0].build: missing field `options`
        "install:\n  embedded:\n  - pkg: emb-x/1/embedded\n    build:\n      script: [x]\n",
        // unknown variant `v1/package`
        "api: v1/package\n",
        // duplicate field `requirements` / `uses` / `compat` (derived sections)
        "install:\n  requirements: []\n  requirements: []\n",
        "install:\n  components:\n  - name: lib\n    uses: []\n    uses: []\n",
        "install:\n  embedded:\n  - pkg: emb-q/1/embedded\n    compat: x.a\n    compat: x.b\n",
        // duplicate entry with key "pkg" (requirements are read as generic YAML first)
        "install:\n  requirements:\n  - pkg: zz-f/1\n    pkg: zz-g/2\n",
        // tests[0].requirements[0]: expected a value for a pinned var request
        "tests:\n- stage: install\n  script: [x]\n  requirements:\n  - var: tv\n",
        "tests:\n- stage: install\n  script: [x]\n  requirements:\n  - var: tv/\n",
    ] {
        let yaml = format!("{head}{body}");
        assert!(parse_build_spec(yaml.as_bytes()).is_err(), "accepted:\n{yaml}");
    }
}

/// Specs SPK 0.44.0 indexed although they look odd; we index them the same
/// (what SPK wrote is in the comment).
#[test]
fn accepted_like_spk() {
    let head = "pkg: odd/1.0/AAAAAAAA\n";
    type Check<'a> = &'a dyn Fn(&ParsedBuild);
    let cases: &[(&str, Check)] = &[
        // compat: x.y -> SPK wrote "x" (text after the rules is ignored)
        ("compat: x.y\n", &|p| {
            assert_eq!(p.build.compat.as_deref(), Some("x"))
        }),
        // deprecated: True -> is_deprecated true
        ("deprecated: True\n", &|p| assert!(p.build.deprecated)),
        // static scalars as SPK's YAML reader spells them
        (
            "build:\n  options:\n  - var: abc\n    static: 0x10\n",
            &|p| assert_eq!(opt_value(p), "16"),
        ),
        (
            "build:\n  options:\n  - var: abc\n    static: 1e3\n",
            &|p| assert_eq!(opt_value(p), "1000"),
        ),
        (
            "build:\n  options:\n  - var: abc\n    static: 3.10\n",
            &|p| assert_eq!(opt_value(p), "3.1"),
        ),
        (
            "build:\n  options:\n  - var: abc\n    static: .inf\n",
            &|p| assert_eq!(opt_value(p), "inf"),
        ),
        (
            "build:\n  options:\n  - var: abc\n    static: 010\n",
            &|p| assert_eq!(opt_value(p), "010"),
        ),
        (
            "build:\n  options:\n  - var: abc\n    static: 1_000\n",
            &|p| assert_eq!(opt_value(p), "1_000"),
        ),
        (
            "build:\n  options:\n  - var: abc\n    static: +12\n",
            &|p| assert_eq!(opt_value(p), "12"),
        ),
        (
            "build:\n  options:\n  - var: abc\n    static: yes\n",
            &|p| assert_eq!(opt_value(p), "yes"),
        ),
        (
            "build:\n  options:\n  - var: abc\n    static: Null\n",
            &|p| assert_eq!(opt_value(p), ""),
        ),
        // an embedded package with a src build string is still an embedded spec
        ("install:\n  embedded:\n  - pkg: emb-x/1.0/src\n", &|p| {
            assert_eq!(p.build.embedded[0].ident, "emb-x/1.0/src")
        }),
        // repeated keys where SPK reads by hand: the last one counts
        ("compat: x.ab\ncompat: x.x.b\n", &|p| {
            assert_eq!(p.build.compat.as_deref(), Some("x.x.b"))
        }),
        ("build:\n  options:\n  - var: abc/1\n    static: a\n    static: b\n", &|p| {
            assert_eq!(opt_value(p), "b")
        }),
        ("build:\n  options:\n  - var: abc/1\n  options:\n  - var: abc/2\n", &|p| {
            assert_eq!(opt_value(p), "2")
        }),
        // anchors and aliases resolve; a merge key `<<` is just an unknown key
        (
            "install:\n  requirements:\n  - &b\n    pkg: zz-c/1\n    include: IfAlreadyPresent\n  - <<: *b\n    pkg: zz-d/2\n",
            &|p| {
                let Requirement::Pkg(d) = &p.build.runtime_requirements[1] else { panic!() };
                assert_eq!(d.inclusion_policy, InclusionPolicy::Always);
            },
        ),
        // a tagged string is a string
        ("compat: !!str x.ab\n", &|p| assert_eq!(p.build.compat.as_deref(), Some("x.ab"))),
        // empty sections
        ("install:\nbuild:\n", &|p| {
            assert_eq!(p.build.component_specs.len(), 2)
        }),
    ];
    for (body, check) in cases {
        check(&parse(&format!("{head}{body}")));
    }
}

fn opt_value(p: &ParsedBuild) -> &str {
    match &p.build.build_options[0] {
        Opt::Var(v) => &v.value,
        Opt::Pkg(p) => &p.value,
    }
}
