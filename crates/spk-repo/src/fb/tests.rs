use std::collections::{BTreeMap, BTreeSet};

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use super::generated as fbs;
use super::*;
use crate::indexed::*;

fn v(parts: &[u32]) -> Version {
    Version {
        parts: parts.to_vec(),
        pre: Vec::new(),
        post: Vec::new(),
    }
}

fn tag(name: &str, number: u32) -> TagItem {
    TagItem {
        name: name.into(),
        number,
    }
}

fn rule(op: RangeOp, version: &[u32]) -> FilterRule {
    FilterRule {
        op,
        version: Some(v(version)),
        required: CompatRule::None,
        parts: None,
    }
}

fn var(name: &str, value: &str) -> Requirement {
    Requirement::Var(VarRequest {
        name: name.into(),
        value: value.into(),
    })
}

/// A package request using every field.
fn full_request() -> PkgRequest {
    PkgRequest {
        name: "python".into(),
        repo_name: Some("origin".into()),
        components: vec![
            Component::All,
            Component::Build,
            Component::Run,
            Component::Source,
            Component::Named("lib".into()),
        ],
        version_filter: Some(vec![
            FilterRule {
                op: RangeOp::Compat,
                version: Some(v(&[3, 7, 3])),
                required: CompatRule::Binary,
                parts: None,
            },
            FilterRule {
                op: RangeOp::Compat,
                version: Some(v(&[3, 7])),
                required: CompatRule::API,
                parts: None,
            },
            rule(RangeOp::Compat, &[3]),
            rule(RangeOp::DoubleEquals, &[1, 2, 3]),
            rule(RangeOp::DoubleNotEquals, &[1, 2]),
            rule(RangeOp::Equals, &[1, 2, 3]),
            rule(RangeOp::GreaterThan, &[1, 2]),
            FilterRule {
                op: RangeOp::GreaterThanOrEqualTo,
                version: Some(Version {
                    parts: vec![1, 0],
                    pre: vec![tag("alpha", 1), tag("rc", 0)],
                    post: vec![],
                }),
                required: CompatRule::None,
                parts: None,
            },
            rule(RangeOp::LessThan, &[2]),
            rule(RangeOp::LessThanOrEqualTo, &[2, 1]),
            rule(RangeOp::LowestSpecified, &[1, 2, 0]),
            rule(RangeOp::NotEquals, &[1, 2]),
            rule(RangeOp::Semver, &[0]),
            FilterRule {
                op: RangeOp::Wildcard,
                version: None,
                required: CompatRule::None,
                parts: Some(vec![1, u32::MAX, 3]),
            },
            FilterRule {
                op: RangeOp::Wildcard,
                version: None,
                required: CompatRule::None,
                parts: Some(vec![u32::MAX]),
            },
            FilterRule {
                op: RangeOp::Wildcard,
                version: None,
                required: CompatRule::None,
                parts: None,
            },
        ]),
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
                name: "python.debug".into(),
                value: "".into(),
                is_complete: false,
            },
        ],
    }
}

/// Requests that differ from `full_request` in the choices it cannot show
/// at once.
fn other_requests() -> Vec<Requirement> {
    let mut src = PkgRequest::named("gcc");
    src.build = Some(BuildId::Source);
    src.prerelease_policy = PreReleasePolicy::ExcludeAll;
    src.required_compat = CompatRule::API;
    src.version_filter = Some(vec![rule(RangeOp::Equals, &[9, 3])]);
    let mut emb = PkgRequest::named("emb");
    emb.build = Some(BuildId::Embedded(None));
    let mut emb2 = PkgRequest::named("emb2");
    emb2.build = Some(BuildId::Embedded(Some(parent(true))));
    vec![
        Requirement::Pkg(PkgRequest::named("bare")),
        Requirement::Pkg(src),
        Requirement::Pkg(emb),
        Requirement::Pkg(emb2),
        var("python.abi", "cp37m"),
        var("empty", ""),
    ]
}

fn parent(with_repo: bool) -> EmbeddedParent {
    EmbeddedParent {
        repository_name: with_repo.then(|| "origin".to_string()),
        pkg_name: "my-tool".into(),
        version_str: Some("1.2.0".into()),
        build_str: Some("GMTG3CXY".into()),
        components: vec![Component::Run, Component::Named("extra".into())],
    }
}

fn options() -> Vec<Opt> {
    vec![
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
            compat: Some("x.ab-b+x".into()),
            required: true,
            value: "11.8".into(),
        }),
        Opt::Pkg(PkgOpt {
            name: "python".into(),
            components: vec![Component::Run, Component::Named("lib".into())],
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
    ]
}

fn components() -> Vec<ComponentSpec> {
    vec![
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
            uses: vec![Component::Named("lib".into()), Component::All],
            requirements: vec![var("lib.x", "1")],
            embedded: vec![ComponentEmbedded {
                name: "my-embedded".into(),
                version: Some(Version {
                    parts: vec![2, 0],
                    pre: vec![],
                    post: vec![tag("r", 3)],
                }),
                components: vec![Component::Run, Component::Source],
            }],
        },
        ComponentSpec {
            name: Component::Named("lib".into()),
            uses: vec![],
            requirements: vec![Requirement::Pkg(full_request())],
            embedded: vec![],
        },
        ComponentSpec::plain(Component::Source),
        ComponentSpec::plain(Component::All),
    ]
}

fn full_build() -> BuildIndex {
    BuildIndex {
        published_version: Version {
            parts: vec![1, 2],
            pre: vec![tag("alpha", 1), tag("beta", 2)],
            post: vec![tag("post", 4)],
        },
        build: BuildId::Digest("GMTG3CXY".into()),
        deprecated: true,
        compat: Some("x.ab".into()),
        build_options: options(),
        embedded: vec![
            EmbeddedSpec {
                ident: "my-embedded/2.0/embedded".into(),
                compat: Some("x.x.b".into()),
                deprecated: true,
                build_options: options(),
                component_specs: components(),
                requirements: other_requests(),
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
        component_specs: components(),
        runtime_requirements: [vec![Requirement::Pkg(full_request())], other_requests()].concat(),
        published_components: vec![
            Component::Build,
            Component::Run,
            Component::Named("lib".into()),
        ],
    }
}

/// Every variant of every enum and union, every optional field present and
/// absent somewhere.
fn every_variant() -> RepositoryIndex {
    let mut stub = BuildIndex::bare(v(&[2, 0]), BuildId::Embedded(Some(parent(false))));
    stub.published_components = vec![Component::Build, Component::Run];
    stub.runtime_requirements = vec![var("my-tool.cuda", "11.8")];
    let legacy = BuildIndex::bare(v(&[2, 0, 0]), BuildId::Embedded(None));
    let mut src = BuildIndex::bare(v(&[1, 2]), BuildId::Source);
    src.compat = Some("x.ab".into());
    src.component_specs = vec![ComponentSpec::plain(Component::Source)];
    src.published_components = vec![Component::Source];
    let mut global_vars: GlobalVars = BTreeMap::new();
    global_vars.insert(
        "arch".into(),
        BTreeSet::from(["x86_64".to_string(), "aarch64".to_string()]),
    );
    global_vars.insert("debug".into(), BTreeSet::from(["".to_string()]));
    RepositoryIndex {
        packages: vec![
            PackageIndex {
                name: "my-embedded".into(),
                versions: vec![VersionIndex {
                    version: v(&[2, 0, 0]),
                    builds: vec![stub, legacy],
                }],
            },
            PackageIndex {
                name: "my-tool".into(),
                versions: vec![
                    VersionIndex {
                        version: Version {
                            parts: vec![1, 2, 0],
                            pre: vec![tag("alpha", 1), tag("beta", 2)],
                            post: vec![tag("post", 4)],
                        },
                        builds: vec![src, full_build()],
                    },
                    VersionIndex {
                        version: v(&[0, 0, 0]),
                        builds: vec![],
                    },
                ],
            },
            PackageIndex {
                name: "no-versions".into(),
                versions: vec![],
            },
        ],
        global_vars,
    }
}

#[test]
fn round_trip_every_variant() {
    let model = every_variant();
    let bytes = encode(&model);
    verify(&bytes).unwrap();
    let file = IndexFile::from_bytes(bytes).unwrap();
    assert!(file.has_directory());
    assert_eq!(file.len(), 3);
    assert_eq!(
        file.package_names(),
        vec!["my-embedded", "my-tool", "no-versions"]
    );
    assert_eq!(file.decode().unwrap(), model);
    file.check().unwrap();
    check(file.bytes()).unwrap();
    assert_eq!(file.global_vars(), model.global_vars);
    for p in &model.packages {
        assert_eq!(&file.package(&p.name).unwrap().unwrap(), p);
    }
    assert_eq!(file.package_at(1).unwrap().unwrap(), model.packages[1]);
    assert!(file.package("absent").is_none());
    assert!(file.package("a").is_none());
    assert!(file.package("zzz").is_none());
    assert!(file.package_at(3).is_none());
}

#[test]
fn packages_are_sorted_bytewise_on_encode() {
    let mut model = every_variant();
    model.packages.reverse();
    // Byte order: '-' (0x2d) < digits < lowercase letters.
    for name in ["b", "a-b", "a2", "ab"] {
        model.packages.push(PackageIndex {
            name: name.into(),
            versions: vec![],
        });
    }
    let file = IndexFile::from_bytes(encode(&model)).unwrap();
    let names = file.package_names();
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(names, sorted);
    assert_eq!(names[0], "a-b");
    for n in [
        "b",
        "a-b",
        "a2",
        "ab",
        "my-tool",
        "my-embedded",
        "no-versions",
    ] {
        assert_eq!(file.package(n).unwrap().unwrap().name, n);
    }
}

#[test]
fn empty_index_and_globals_only() {
    let empty = RepositoryIndex::default();
    let bytes = encode(&empty);
    verify(&bytes).unwrap();
    let file = IndexFile::from_bytes(bytes).unwrap();
    assert!(file.is_empty());
    assert!(file.package_names().is_empty());
    assert!(file.package("x").is_none());
    assert_eq!(file.decode().unwrap(), empty);

    let mut globals = RepositoryIndex::default();
    globals
        .global_vars
        .insert("os".into(), BTreeSet::from(["linux".to_string()]));
    let file = IndexFile::from_bytes(encode(&globals)).unwrap();
    assert_eq!(file.decode().unwrap(), globals);
}

/// Field presence in the vtable: absent means "not in the file".
fn present(t: &flatbuffers::Table<'_>, slot: flatbuffers::VOffsetT) -> bool {
    t.vtable().get(slot) != 0
}

#[test]
fn writes_no_defaults_no_empty_vectors_and_always_epsilon() {
    let mut model = every_variant();
    // A build with everything empty or default.
    model.packages[2].versions = vec![VersionIndex {
        version: v(&[1]),
        builds: vec![BuildIndex::bare(v(&[]), BuildId::Digest("AAAAAAAA".into()))],
    }];
    let bytes = encode(&model);
    let root = fbs::root_as_repository_index(&bytes).unwrap();
    assert!(!present(
        &root._tab,
        fbs::RepositoryIndex::VT_INDEX_SCHEMA_VERSION
    ));
    let pkg = root.packages().unwrap().get(2);
    let ver = pkg.versions().unwrap().get(0);
    let version = ver.version();
    assert!(present(&version._tab, fbs::Version::VT_EPSILON));
    assert_eq!(version.epsilon(), fbs::Epsilon::None);
    assert!(!present(&version._tab, fbs::Version::VT_PRE));
    let b = ver.builds().unwrap().get(0);
    let pv = b.published_version().unwrap();
    assert!(!present(&pv._tab, fbs::Version::VT_PARTS));
    assert!(present(&pv._tab, fbs::Version::VT_EPSILON));
    for slot in [
        fbs::BuildIndex::VT_IS_DEPRECATED,
        fbs::BuildIndex::VT_COMPAT,
        fbs::BuildIndex::VT_BUILD_OPTIONS,
        fbs::BuildIndex::VT_EMBEDDED,
        fbs::BuildIndex::VT_COMPONENT_SPECS,
        fbs::BuildIndex::VT_RUNTIME_REQUIREMENTS,
        fbs::BuildIndex::VT_PUBLISHED_COMPONENTS,
    ] {
        assert!(!present(&b._tab, slot), "slot {slot} written");
    }
    assert!(present(&b._tab, fbs::BuildIndex::VT_BUILD_TYPE));
    assert!(present(&b._tab, fbs::BuildIndex::VT_BUILD));

    // The plain request `bare`: only its name; `arch`: no inheritance.
    let full = root.packages().unwrap().get(1);
    let b = full.versions().unwrap().get(0).builds().unwrap().get(1);
    let reqs = b.runtime_requirements().unwrap();
    let bare = reqs.get(1).request_as_pkg_request_with_options().unwrap();
    assert_eq!(bare.name(), "bare");
    for slot in [
        fbs::PkgRequestWithOptions::VT_BUILD_TYPE,
        fbs::PkgRequestWithOptions::VT_BUILD,
        fbs::PkgRequestWithOptions::VT_VERSION_FILTER,
        fbs::PkgRequestWithOptions::VT_COMPONENTS,
        fbs::PkgRequestWithOptions::VT_PRERELEASE_POLICY,
        fbs::PkgRequestWithOptions::VT_INCLUSION_POLICY,
        fbs::PkgRequestWithOptions::VT_PIN_POLICY,
        fbs::PkgRequestWithOptions::VT_REQUIRED_COMPAT,
        fbs::PkgRequestWithOptions::VT_OPTIONS,
    ] {
        assert!(!present(&bare._tab, slot), "request slot {slot} written");
    }
    let arch = b.build_options().unwrap().get(0).opt_as_var_opt().unwrap();
    assert!(!present(&arch._tab, fbs::VarOpt::VT_INHERITANCE));
    assert!(present(&arch._tab, fbs::VarOpt::VT_VALUE));
    // Built-in components carry no name; the wildcard rules no version.
    let c = b.published_components().unwrap().get(0);
    assert!(!present(&c._tab, fbs::Component::VT_NAME));
    let full_req = reqs.get(0).request_as_pkg_request_with_options().unwrap();
    let rules = full_req.version_filter().unwrap();
    let wild = rules.get(13);
    assert_eq!(wild.filter_op(), fbs::VersionRangeOperator::Wildcard);
    assert!(wild.version().is_none());
    assert_eq!(
        wild.parts().unwrap().iter().collect::<Vec<_>>(),
        [1, u32::MAX, 3]
    );
    // Embedded(None) is an EmbeddedSource table without `source`.
    let legacy = root.packages().unwrap().get(0).versions().unwrap().get(0);
    let legacy = legacy
        .builds()
        .unwrap()
        .get(1)
        .build_as_embedded_source()
        .unwrap();
    assert!(legacy.source().is_none());
}

#[test]
fn version_filter_some_empty_is_written_absent() {
    let mut req = PkgRequest::named("x");
    req.version_filter = Some(vec![]);
    let mut b = BuildIndex::bare(v(&[1]), BuildId::Source);
    b.runtime_requirements = vec![Requirement::Pkg(req)];
    let model = RepositoryIndex {
        packages: vec![PackageIndex {
            name: "p".into(),
            versions: vec![VersionIndex {
                version: v(&[1]),
                builds: vec![b],
            }],
        }],
        global_vars: GlobalVars::new(),
    };
    let decoded = IndexFile::from_bytes(encode(&model))
        .unwrap()
        .decode()
        .unwrap();
    let Requirement::Pkg(r) = &decoded.packages[0].versions[0].builds[0].runtime_requirements[0]
    else {
        panic!("not a pkg request")
    };
    assert_eq!(r.version_filter, None);
}

#[test]
fn blobs_are_aligned_and_listed_in_the_directory() {
    let model = every_variant();
    let bytes = encode(&model);
    let file = IndexFile::from_bytes(bytes.clone()).unwrap();
    let mut last_end = 0;
    for i in 0..file.len() {
        let raw = file.raw_package(i).unwrap();
        let start = raw.bytes().as_ptr() as usize - file.bytes().as_ptr() as usize;
        assert_eq!(start % 8, 0, "blob {i} at {start}");
        assert!(start >= last_end);
        last_end = start + raw.bytes().len();
        assert_eq!(raw.name(), model.packages[i].name);
    }
    // Without the magic, the same file has no directory but reads the same.
    let mut no_dir = bytes;
    let at = no_dir
        .windows(8)
        .position(|w| w == DIRECTORY_MAGIC)
        .unwrap();
    no_dir[at] = b'X';
    let file = IndexFile::from_bytes(no_dir).unwrap();
    assert!(!file.has_directory());
    assert!(file.raw_package(0).is_none());
    assert_eq!(file.decode().unwrap(), model);
}

#[test]
fn assemble_mixes_raw_copies_and_fresh_packages() {
    let old = every_variant();
    let old_file = IndexFile::from_bytes(encode(&old)).unwrap();
    // The new model: my-tool changed, my-embedded unchanged, no-versions
    // unchanged, a new package added.
    let mut new = old.clone();
    new.packages[1].versions.pop();
    new.packages.push(PackageIndex {
        name: "added".into(),
        versions: vec![VersionIndex {
            version: v(&[3, 0, 0]),
            builds: vec![BuildIndex::bare(
                v(&[3]),
                BuildId::Digest("ABCDEFGH".into()),
            )],
        }],
    });
    new.global_vars
        .insert("os".into(), BTreeSet::from(["linux".to_string()]));
    let parts = vec![
        PackagePart::Fresh(new.packages[3].clone()),
        PackagePart::Raw(old_file.raw_package(2).unwrap()),
        PackagePart::Fresh(new.packages[1].clone()),
        PackagePart::Raw(old_file.raw_package(0).unwrap()),
    ];
    let assembled = assemble(parts, &new.global_vars).unwrap().to_bytes();
    verify(&assembled).unwrap();
    let file = IndexFile::from_bytes(assembled).unwrap();
    let mut expected = new.clone();
    expected
        .packages
        .sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    assert_eq!(file.decode().unwrap(), expected);
    let encoded = IndexFile::from_bytes(encode(&new)).unwrap();
    assert_eq!(file.decode().unwrap(), encoded.decode().unwrap());
    // The copied packages are the old bytes, verbatim.
    let copied = file
        .raw_package(file.position("my-embedded").unwrap())
        .unwrap();
    assert_eq!(copied.bytes(), old_file.raw_package(0).unwrap().bytes());
    // And encode is assemble of all-fresh parts.
    let fresh: Vec<_> = new
        .packages
        .iter()
        .cloned()
        .map(PackagePart::Fresh)
        .collect();
    assert_eq!(
        assemble(fresh, &new.global_vars).unwrap().to_bytes(),
        encode(&new)
    );
}

#[test]
fn duplicate_parts_keep_the_last() {
    let mut a = PackageIndex {
        name: "dup".into(),
        versions: vec![],
    };
    let first = PackagePart::Fresh(a.clone());
    a.versions.push(VersionIndex {
        version: v(&[1, 0, 0]),
        builds: vec![],
    });
    let bytes = assemble(
        vec![first, PackagePart::Fresh(a.clone())],
        &GlobalVars::new(),
    )
    .unwrap()
    .to_bytes();
    let file = IndexFile::from_bytes(bytes).unwrap();
    assert_eq!(file.len(), 1);
    assert_eq!(file.package("dup").unwrap().unwrap(), a);
}

// ---- bad input --------------------------------------------------------------

/// Opens, then decodes; returns the first error. Never panics (the test
/// fails if it does).
fn read_all(bytes: Vec<u8>) -> Result<RepositoryIndex, FbError> {
    let file = IndexFile::from_bytes(bytes)?;
    for i in 0..file.len() {
        let _ = file.raw_package(i);
    }
    let _ = file.package_names();
    file.decode()
}

#[test]
fn truncated_files_are_errors() {
    let bytes = encode(&every_variant());
    // The last bytes may be padding; cutting them off is harmless.
    for len in 0..bytes.len() {
        let _ = read_all(bytes[..len].to_vec());
    }
    let ends_with_data = bytes.len() - 8;
    for len in (0..ends_with_data)
        .step_by(7)
        .chain([1, 3, 4, 8, ends_with_data - 1])
    {
        let err = read_all(bytes[..len].to_vec()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("not a valid SPK index") || text.contains("is empty"),
            "len {len}: {text}"
        );
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let bytes = encode(&every_variant());
    let mut errors = 0;
    for i in 0..bytes.len() {
        for mask in [0xff, 0x01, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            if read_all(b).is_err() {
                errors += 1;
            }
        }
    }
    // Many flips land in strings or numbers and still make a valid file;
    // many do not.
    assert!(errors > bytes.len() / 4, "only {errors} errors");
}

#[test]
fn empty_and_missing_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("index_v1.fb");
    std::fs::write(&empty, b"").unwrap();
    let err = IndexFile::open(&empty).unwrap_err();
    assert!(matches!(err, FbError::Empty { .. }), "{err}");
    assert!(err.to_string().contains(&empty.display().to_string()));
    let missing = dir.path().join("nope.fb");
    let err = IndexFile::open(&missing).unwrap_err();
    assert!(matches!(err, FbError::Io { .. }));
    assert!(err.to_string().contains("nope.fb"), "{err}");
    let garbage = dir.path().join("garbage.fb");
    std::fs::write(&garbage, [0xffu8; 64]).unwrap();
    let err = IndexFile::open(&garbage).unwrap_err();
    assert!(matches!(err, FbError::Verify { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("garbage.fb") && text.contains("spk repo index"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");

    let good = dir.path().join("good.fb");
    std::fs::write(&good, encode(&every_variant())).unwrap();
    let file = IndexFile::open(&good).unwrap();
    assert_eq!(file.path(), Some(good.as_path()));
    assert_eq!(file.decode().unwrap(), every_variant());
}

/// An index built directly with the generated builder (one builder for the
/// whole file, as SPK does), with one package `pkg`, version 1.0.0 and the
/// build `make` returns; `schema` sets `index_schema_version`.
fn craft(
    schema: Option<u32>,
    make: impl for<'a> FnOnce(&mut FlatBufferBuilder<'a>) -> WIPOffset<fbs::BuildIndex<'a>>,
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let build = make(&mut fbb);
    let builds = fbb.create_vector(&[build]);
    let version = good_version(&mut fbb, &[1, 0, 0]);
    let vi = fbs::VersionIndex::create(
        &mut fbb,
        &fbs::VersionIndexArgs {
            version: Some(version),
            builds: Some(builds),
        },
    );
    let versions = fbb.create_vector(&[vi]);
    let name = fbb.create_string("pkg");
    let p = fbs::PackageIndex::create(
        &mut fbb,
        &fbs::PackageIndexArgs {
            name: Some(name),
            versions: Some(versions),
        },
    );
    let packages = fbb.create_vector(&[p]);
    let root = fbs::RepositoryIndex::create(
        &mut fbb,
        &fbs::RepositoryIndexArgs {
            index_schema_version: schema.unwrap_or(1),
            packages: Some(packages),
            global_vars: None,
        },
    );
    fbb.finish_minimal(root);
    fbb.finished_data().to_vec()
}

fn good_version<'a>(fbb: &mut FlatBufferBuilder<'a>, parts: &[u32]) -> WIPOffset<fbs::Version<'a>> {
    let parts = fbb.create_vector(parts);
    fbs::Version::create(
        fbb,
        &fbs::VersionArgs {
            parts: Some(parts),
            epsilon: fbs::Epsilon::None,
            pre: None,
            post: None,
        },
    )
}

/// A build with the given id and, optionally, one runtime requirement.
fn build_with<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    id: &str,
    compat: Option<&str>,
    reqs: Option<WIPOffset<fbs::RequirementWithOptions<'a>>>,
    opts: Option<WIPOffset<fbs::Opt<'a>>>,
) -> WIPOffset<fbs::BuildIndex<'a>> {
    let pv = good_version(fbb, &[1, 0]);
    let id = fbb.create_string(id);
    let id = fbs::BuildId::create(fbb, &fbs::BuildIdArgs { id: Some(id) });
    let compat = compat.map(|c| fbb.create_string(c));
    let reqs = reqs.map(|r| fbb.create_vector(&[r]));
    let opts = opts.map(|o| fbb.create_vector(&[o]));
    fbs::BuildIndex::create(
        fbb,
        &fbs::BuildIndexArgs {
            published_version: Some(pv),
            build_type: fbs::Build::BuildId,
            build: Some(id.as_union_value()),
            compat,
            runtime_requirements: reqs,
            build_options: opts,
            ..Default::default()
        },
    )
}

fn request_with_rule<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    op: u8,
    with_version: bool,
) -> WIPOffset<fbs::RequirementWithOptions<'a>> {
    let version = with_version.then(|| good_version(fbb, &[1]));
    let rule = fbs::VersionFilterRule::create(
        fbb,
        &fbs::VersionFilterRuleArgs {
            filter_op: fbs::VersionRangeOperator(op),
            version,
            ..Default::default()
        },
    );
    let rules = fbb.create_vector(&[rule]);
    let name = fbb.create_string("dep");
    let req = fbs::PkgRequestWithOptions::create(
        fbb,
        &fbs::PkgRequestWithOptionsArgs {
            name: Some(name),
            version_filter: Some(rules),
            ..Default::default()
        },
    );
    fbs::RequirementWithOptions::create(
        fbb,
        &fbs::RequirementWithOptionsArgs {
            request_type: fbs::RequestWithOptions::PkgRequestWithOptions,
            request: Some(req.as_union_value()),
        },
    )
}

fn semantics(bytes: Vec<u8>) -> (String, String) {
    // The check without decoding refuses it in the same words.
    let checked = IndexFile::from_bytes(bytes.clone()).unwrap().check();
    let decoded = read_all(bytes.clone()).map(drop);
    assert_eq!(
        checked.as_ref().map_err(ToString::to_string),
        decoded.as_ref().map_err(ToString::to_string)
    );
    match read_all(bytes) {
        Err(FbError::Semantics { at, problem, .. }) => (at, problem),
        other => panic!("expected a semantic error, got {other:?}"),
    }
}

#[test]
fn raw_package_refuses_a_damaged_blob() {
    let mut model = every_variant();
    model.packages[2].versions = vec![VersionIndex {
        version: v(&[1, 0, 0]),
        builds: vec![BuildIndex::bare(
            v(&[1]),
            BuildId::Digest("QQQQQQQQ".into()),
        )],
    }];
    let mut bytes = encode(&model);
    IndexFile::from_bytes(bytes.clone())
        .unwrap()
        .check()
        .unwrap();
    // The id's length becomes 7: still valid FlatBuffers.
    let at = bytes.windows(8).position(|w| w == b"QQQQQQQQ").unwrap();
    bytes[at - 4..at].copy_from_slice(&7u32.to_le_bytes());
    bytes[at + 7] = 0;
    let file = IndexFile::from_bytes(bytes).unwrap();
    assert!(file.has_directory());
    assert!(file.raw_package(0).is_some());
    assert!(file.raw_package(2).is_none());
    let err = file.package_at(2).unwrap().unwrap_err().to_string();
    assert!(
        err.contains("package no-versions, version 1.0.0, build #0"),
        "{err}"
    );
    assert_eq!(file.check().unwrap_err().to_string(), err);
    let err = check(file.bytes()).unwrap_err().to_string();
    assert!(
        err.contains("the index bytes (not from a file)") && err.contains("7 characters"),
        "{err}"
    );
    let raws = file.raw_packages();
    assert_eq!(raws.iter().filter(|r| r.is_some()).count(), 2);
}

#[test]
fn crafted_good_file_reads() {
    let bytes = craft(None, |fbb| {
        build_with(fbb, "ABCDEFGH", Some("x.a.b"), None, None)
    });
    let model = read_all(bytes).unwrap();
    assert_eq!(
        model.packages[0].versions[0].builds[0].build,
        BuildId::Digest("ABCDEFGH".into())
    );
    // No directory: SPK-style file.
    let bytes = craft(Some(1), |fbb| build_with(fbb, "ABCDEFGH", None, None, None));
    assert!(!IndexFile::from_bytes(bytes).unwrap().has_directory());
}

#[test]
fn schema_version_2_is_refused() {
    let bytes = craft(Some(2), |fbb| build_with(fbb, "ABCDEFGH", None, None, None));
    let err = read_all(bytes.clone()).unwrap_err();
    assert!(
        matches!(err, FbError::SchemaVersion { found: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("version 2"), "{err}");
    assert!(verify(&bytes).is_err());
}

#[test]
fn build_id_of_7_chars_is_refused() {
    let (at, problem) = semantics(craft(None, |fbb| {
        build_with(fbb, "ABCDEFG", None, None, None)
    }));
    assert!(
        at.contains("package pkg") && at.contains("version 1.0.0"),
        "{at}"
    );
    assert!(at.contains("ABCDEFG"), "{at}");
    assert!(problem.contains("7 characters"), "{problem}");
    // The message names all of it.
    let err = read_all(craft(None, |fbb| {
        build_with(fbb, "ABCDEFGHI", None, None, None)
    }))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("package pkg, version 1.0.0, build #0"),
        "{err}"
    );
}

#[test]
fn bad_compat_is_refused() {
    for c in ["", "1.2", "X.a.b"] {
        let (at, problem) = semantics(craft(None, |fbb| {
            build_with(fbb, "ABCDEFGH", Some(c), None, None)
        }));
        assert!(at.ends_with("compat"), "{at}");
        assert!(problem.contains("compat"), "{problem}");
    }
}

#[test]
fn bad_rules_are_refused() {
    for (op, with_version, expect) in [
        (4u8, true, "Filter"),
        (13, true, "not a VersionRangeOperator"),
        (255, true, "not a VersionRangeOperator"),
        (0, false, "has no version"),
        (6, false, "has no version"),
    ] {
        let (at, problem) = semantics(craft(None, |fbb| {
            let r = request_with_rule(fbb, op, with_version);
            build_with(fbb, "ABCDEFGH", None, Some(r), None)
        }));
        assert!(
            at.contains("runtime_requirements[0] (pkg dep), version_filter[0]"),
            "{at}"
        );
        assert!(problem.contains(expect), "op {op}: {problem}");
    }
    // A wildcard needs no version.
    let bytes = craft(None, |fbb| {
        let r = request_with_rule(fbb, 12, false);
        build_with(fbb, "ABCDEFGH", None, Some(r), None)
    });
    read_all(bytes).unwrap();
}

#[test]
fn named_component_without_name_is_refused() {
    let (at, problem) = semantics(craft(None, |fbb| {
        let c = fbs::Component::create(
            fbb,
            &fbs::ComponentArgs {
                kind: fbs::ComponentEnum::Named,
                name: None,
            },
        );
        let cs = fbb.create_vector(&[c]);
        let pv = good_version(fbb, &[1]);
        let src = fbs::Source::create(fbb, &fbs::SourceArgs {});
        fbs::BuildIndex::create(
            fbb,
            &fbs::BuildIndexArgs {
                published_version: Some(pv),
                build_type: fbs::Build::Source,
                build: Some(src.as_union_value()),
                published_components: Some(cs),
                ..Default::default()
            },
        )
    }));
    assert!(
        at.ends_with("build #0 (src), published_components[0]"),
        "{at}"
    );
    assert!(problem.contains("Named"), "{problem}");
}

#[test]
fn opt_without_value_is_refused() {
    let (at, problem) = semantics(craft(None, |fbb| {
        // An unknown union type passes verification with any value.
        let name = fbb.create_string("x");
        let t = fbs::BuildId::create(fbb, &fbs::BuildIdArgs { id: Some(name) });
        let o = fbs::Opt::create(
            fbb,
            &fbs::OptArgs {
                opt_type: fbs::OptEnum(7),
                opt: Some(t.as_union_value()),
            },
        );
        build_with(fbb, "ABCDEFGH", None, None, Some(o))
    }));
    assert!(at.ends_with("build_options[0]"), "{at}");
    assert!(problem.contains("option of type 7"), "{problem}");
}

#[test]
fn version_without_epsilon_is_refused() {
    let (at, problem) = semantics(craft(None, |fbb| {
        let parts = fbb.create_vector(&[1u32, 2]);
        let pv = fbs::Version::create(
            fbb,
            &fbs::VersionArgs {
                parts: Some(parts),
                epsilon: fbs::Epsilon::Minus,
                ..Default::default()
            },
        );
        let src = fbs::Source::create(fbb, &fbs::SourceArgs {});
        fbs::BuildIndex::create(
            fbb,
            &fbs::BuildIndexArgs {
                published_version: Some(pv),
                build_type: fbs::Build::Source,
                build: Some(src.as_union_value()),
                ..Default::default()
            },
        )
    }));
    assert!(at.ends_with("published_version"), "{at}");
    assert!(
        problem.contains("epsilon Minus") && problem.contains("1.2"),
        "{problem}"
    );
}

#[test]
fn spk_reader_defaults_apply() {
    // Unknown component kind reads as Run, a var request without value and
    // a requirement of unknown type are skipped, a missing build reads as
    // src.
    let model = read_all(craft(None, |fbb| {
        let c = fbs::Component::create(
            fbb,
            &fbs::ComponentArgs {
                kind: fbs::ComponentEnum(9),
                name: None,
            },
        );
        let cs = fbb.create_vector(&[c]);
        let name = fbb.create_string("v");
        let var = fbs::VarRequestPinnedValue::create(
            fbb,
            &fbs::VarRequestPinnedValueArgs {
                name: Some(name),
                value: None,
            },
        );
        let r1 = fbs::RequirementWithOptions::create(
            fbb,
            &fbs::RequirementWithOptionsArgs {
                request_type: fbs::RequestWithOptions::VarRequestPinnedValue,
                request: Some(var.as_union_value()),
            },
        );
        let r2 =
            fbs::RequirementWithOptions::create(fbb, &fbs::RequirementWithOptionsArgs::default());
        let reqs = fbb.create_vector(&[r1, r2]);
        let pv = good_version(fbb, &[1]);
        fbs::BuildIndex::create(
            fbb,
            &fbs::BuildIndexArgs {
                published_version: Some(pv),
                published_components: Some(cs),
                runtime_requirements: Some(reqs),
                ..Default::default()
            },
        )
    }))
    .unwrap();
    let b = &model.packages[0].versions[0].builds[0];
    assert_eq!(b.build, BuildId::Source);
    assert_eq!(b.published_components, vec![Component::Run]);
    assert!(b.runtime_requirements.is_empty());
}

/// A build as most are: a few options, requirements with one or two rules,
/// build and run components.
fn typical_build(digest: String) -> BuildIndex {
    let var_opt = |name: &str, value: &str| {
        Opt::Var(VarOpt {
            name: name.into(),
            inheritance: Inheritance::Weak,
            compat: None,
            required: false,
            value: value.into(),
        })
    };
    let mut python = PkgRequest::named("python");
    python.components = vec![Component::Run];
    python.version_filter = Some(vec![rule(RangeOp::LowestSpecified, &[3, 7, 3])]);
    python.options = vec![OptionValue {
        name: "python.abi".into(),
        value: "cp37m".into(),
        is_complete: true,
    }];
    let mut zlib = PkgRequest::named("zlib");
    zlib.version_filter = Some(vec![
        rule(RangeOp::GreaterThanOrEqualTo, &[1, 2]),
        rule(RangeOp::LessThan, &[2]),
    ]);
    let mut gcc = PkgRequest::named("gcc");
    gcc.version_filter = Some(vec![FilterRule {
        required: CompatRule::Binary,
        ..rule(RangeOp::Compat, &[9, 3])
    }]);
    BuildIndex {
        published_version: v(&[1, 2, 3]),
        build: BuildId::Digest(digest),
        deprecated: false,
        compat: None,
        build_options: vec![
            var_opt("arch", "x86_64"),
            var_opt("os", "linux"),
            var_opt("centos", "7"),
            var_opt("python.abi", "cp37m"),
            Opt::Pkg(PkgOpt {
                name: "python".into(),
                components: vec![],
                prerelease_policy: PreReleasePolicy::None,
                required_compat: CompatRule::None,
                value: "~3.7.3".into(),
            }),
        ],
        embedded: vec![],
        component_specs: vec![
            ComponentSpec::plain(Component::Build),
            ComponentSpec::plain(Component::Run),
        ],
        runtime_requirements: vec![
            Requirement::Pkg(python),
            Requirement::Pkg(zlib),
            Requirement::Pkg(gcc),
            var("python.abi", "cp37m"),
        ],
        published_components: vec![Component::Build, Component::Run],
    }
}

/// A large synthetic index: timings for encode, verify, open and decode.
/// `cargo test -p spk-repo --release fb::tests::large -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark; run it with --release --ignored --nocapture"]
fn large_index_timings() {
    use std::time::Instant;
    let builds_per_version = 5;
    let versions_per_package = 4;
    let packages = 100_000 / (builds_per_version * versions_per_package);
    let mut model = RepositoryIndex::default();
    for p in 0..packages {
        let mut versions = Vec::new();
        for ver in 0..versions_per_package {
            let mut builds = Vec::new();
            for b in 0..builds_per_version {
                builds.push(typical_build(format!("{:08}", p * 100 + ver * 10 + b)));
            }
            versions.push(VersionIndex {
                version: v(&[1, ver as u32, 0]),
                builds,
            });
        }
        model.packages.push(PackageIndex {
            name: format!("pkg-{p:05}"),
            versions,
        });
    }
    // The machine is shared: wall time says little, so CPU time (all
    // threads of this process, from /proc) is shown beside it.
    let cpu = || -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = after
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        // utime, stime: fields 14 and 15 (1-based), in clock ticks (100 Hz).
        (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
    };
    let mut report = Vec::new();
    let mut time = |what: &str, f: &mut dyn FnMut()| {
        let (t, c) = (Instant::now(), cpu());
        f();
        report.push(format!(
            "{what} {:.3}s wall / {:.2}s cpu",
            t.elapsed().as_secs_f64(),
            cpu() - c
        ));
    };
    let mut bytes = Vec::new();
    time("encode", &mut || bytes = encode(&model));
    time("verify", &mut || verify(&bytes).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index_v1.fb");
    std::fs::write(&path, &bytes).unwrap();
    let mut file = None;
    time("open_verified (mmap, whole file verified)", &mut || {
        file = Some(IndexFile::open_verified(&path).unwrap())
    });
    time("open (mmap, root and directory)", &mut || {
        file = Some(IndexFile::open(&path).unwrap())
    });
    let file = file.unwrap();
    let mut one = None;
    time("one package", &mut || one = file.package("pkg-01234"));
    let mut decoded = RepositoryIndex::default();
    time("decode all", &mut || decoded = file.decode().unwrap());
    time("check (per package: verify, semantics, crc32)", &mut || {
        file.check().unwrap()
    });
    let mut raws = Vec::new();
    time("raw packages (crc32 of every blob)", &mut || {
        raws = file.raw_packages()
    });
    let mut updated = Vec::new();
    time("assemble 1% fresh 99% raw", &mut || {
        let parts: Vec<_> = raws
            .iter()
            .enumerate()
            .map(|(i, r)| match r {
                Some(r) if i % 100 != 0 => PackagePart::Raw(*r),
                _ => PackagePart::Fresh(decoded.packages[i].clone()),
            })
            .collect();
        updated = assemble(parts, &decoded.global_vars).unwrap().to_bytes();
    });
    assert_eq!(updated.len(), bytes.len());
    if let Some(out) = std::env::var_os("SPK_FB_BENCH_OUT") {
        std::fs::write(out, &updated).unwrap();
    }
    assert_eq!(one.unwrap().unwrap(), model.packages[1234]);
    assert_eq!(decoded, model);
    println!(
        "{} builds, {} packages, {:.1} MB, {} threads: {}",
        packages * versions_per_package * builds_per_version,
        packages,
        bytes.len() as f64 / 1e6,
        rayon::current_num_threads(),
        report.join(", ")
    );
}

/// For checks by hand against SPK: decodes the index file `$SPK_FB_IN`
/// (e.g. one SPK wrote) and writes `encode` of it to `$SPK_FB_OUT`.
/// `SPK_FB_IN=... SPK_FB_OUT=... cargo test -p spk-repo fb::tests::reencode -- --ignored`
#[test]
#[ignore = "a tool for checks by hand; needs SPK_FB_IN and SPK_FB_OUT"]
fn reencode_file() {
    let input = std::env::var_os("SPK_FB_IN").expect("SPK_FB_IN");
    let output = std::env::var_os("SPK_FB_OUT").expect("SPK_FB_OUT");
    let file = IndexFile::open(&input).unwrap();
    println!(
        "{}: {} packages, our directory: {}",
        file.path().unwrap().display(),
        file.len(),
        file.has_directory()
    );
    let model = file.decode().unwrap();
    let bytes = encode(&model);
    verify(&bytes).unwrap();
    assert_eq!(
        IndexFile::from_bytes(bytes.clone())
            .unwrap()
            .decode()
            .unwrap(),
        model
    );
    std::fs::write(&output, bytes).unwrap();
}

// ---- blob checksums, lazy verification, install checks ----------------------

/// The directory of a file we wrote: `(start, end, crc)` of each blob,
/// read straight from the bytes.
fn directory_entries(bytes: &[u8]) -> Vec<(usize, usize, u32)> {
    directory_counts(bytes)
        .into_iter()
        .map(|(start, end, crc, _)| (start, end, crc))
        .collect()
}

/// The directory of a file we wrote, read straight from the bytes (header
/// 16 bytes, entries 24): `(start, end, crc, [versions, builds,
/// deprecated])` of each blob, after checking the entries' crc32 in the
/// header.
fn directory_counts(bytes: &[u8]) -> Vec<(usize, usize, u32, [u32; 3])> {
    let at = bytes
        .windows(8)
        .position(|w| w == DIRECTORY_MAGIC)
        .expect("a directory");
    let u32_at = |p: usize| u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap());
    let n = u32_at(at + 8) as usize;
    let entries = at + 16..at + 16 + 24 * n;
    assert_eq!(u32_at(at + 12), crc32fast::hash(&bytes[entries]));
    (0..n)
        .map(|i| {
            let e = at + 16 + 24 * i;
            (
                u32_at(e) as usize,
                u32_at(e + 4) as usize,
                u32_at(e + 8),
                [u32_at(e + 12), u32_at(e + 16), u32_at(e + 20)],
            )
        })
        .collect()
}

#[test]
fn the_directory_records_each_packages_counts_under_its_crc32() {
    let model = every_variant();
    let bytes = encode(&model);
    let entries = directory_counts(&bytes);
    assert_eq!(entries.len(), model.packages.len());
    for (p, &(_, _, _, counts)) in model.packages.iter().zip(&entries) {
        let c = IndexCounts::of(p);
        assert_eq!(
            counts,
            [c.versions, c.builds, c.deprecated].map(|n| n as u32),
            "{}",
            p.name
        );
    }
    assert!(entries.iter().any(|e| e.3[2] > 0), "a deprecated build");
    // A count changed after writing: the directory no longer matches its
    // crc32 and is not used (the file reads the same, decoded).
    let at = bytes.windows(8).position(|w| w == DIRECTORY_MAGIC).unwrap();
    let mut damaged = bytes.clone();
    damaged[at + 16 + 16] ^= 1;
    let file = IndexFile::from_bytes(damaged).unwrap();
    assert!(!file.has_directory());
    assert!(file.raw_package(0).is_none());
    assert_eq!(file.decode().unwrap(), model);
}

/// Position of the `i`-th package's table in an index file (through the
/// root table and the packages vector, read by hand).
fn package_table(bytes: &[u8], i: usize) -> usize {
    let u32_at = |p: usize| u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
    let u16_at = |p: usize| u16::from_le_bytes(bytes[p..p + 2].try_into().unwrap()) as usize;
    let root = u32_at(0);
    let vtable = root - u32_at(root);
    let slot = root + u16_at(vtable + 6);
    let vector = slot + u32_at(slot);
    let element = vector + 4 + 4 * i;
    element + u32_at(element)
}

/// Position of a table's vtable and of its field `voffset` (which must be
/// present).
fn field_of(bytes: &[u8], table: usize, voffset: usize) -> (usize, usize) {
    let soffset = i32::from_le_bytes(bytes[table..table + 4].try_into().unwrap());
    let vtable = (table as i64 - soffset as i64) as usize;
    let at = u16::from_le_bytes(
        bytes[vtable + voffset..vtable + voffset + 2]
            .try_into()
            .unwrap(),
    );
    assert!(at > 0, "field {voffset} absent");
    (vtable, table + at as usize)
}

#[test]
fn the_directory_records_a_crc32_per_blob() {
    let bytes = encode(&every_variant());
    let entries = directory_entries(&bytes);
    let file = IndexFile::from_bytes(bytes.clone()).unwrap();
    assert_eq!(entries.len(), file.len());
    for (i, &(start, end, crc)) in entries.iter().enumerate() {
        assert_eq!(crc, crc32fast::hash(&bytes[start..end]), "blob {i}");
        let raw = file.raw_package(i).unwrap();
        assert_eq!(raw.crc(), crc);
        assert_eq!(raw.bytes(), &bytes[start..end]);
    }
    file.check_written().unwrap();
}

#[test]
fn earlier_format_directories_are_no_directory() {
    let model = every_variant();
    for magic in [b"SPKTBLB1", b"SPKTBLB2"] {
        let mut bytes = encode(&model);
        let at = bytes.windows(8).position(|w| w == DIRECTORY_MAGIC).unwrap();
        bytes[at..at + 8].copy_from_slice(magic);
        let file = IndexFile::from_bytes(bytes).unwrap();
        assert!(!file.has_directory());
        assert!(file.raw_package(0).is_none());
        assert_eq!(file.decode().unwrap(), model);
        // Not what this tool installs.
        let err = file.check_written().unwrap_err();
        assert!(matches!(err, FbError::Layout { .. }), "{err}");
    }
}

#[test]
fn a_directory_entry_that_is_not_a_place_spoils_only_its_package() {
    // Entries whose crc32 matches but which point where no blob can be
    // (as a writer bug would make them): that package is damaged, read
    // from its FlatBuffers instead of copied; the others are untouched.
    let model = every_variant();
    let bytes = encode(&model);
    let dir = bytes.windows(8).position(|w| w == DIRECTORY_MAGIC).unwrap();
    let n = directory_entries(&bytes).len();
    assert!(n >= 3);
    let reseal = |b: &mut Vec<u8>| {
        let crc = crc32fast::hash(&b[dir + 16..dir + 16 + 24 * n]);
        b[dir + 12..dir + 16].copy_from_slice(&crc.to_le_bytes());
    };
    let put = |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let entries = directory_entries(&bytes);
    let len = bytes.len() as u32;
    type Spoil<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let cases: [(&str, usize, Spoil); 4] = [
        (
            "unaligned",
            1,
            Box::new(|b| put(b, dir + 16 + 24, entries[1].0 as u32 + 4)),
        ),
        (
            "past the end",
            2,
            Box::new(move |b| put(b, dir + 16 + 48 + 4, len + 8)),
        ),
        // Starts inside the previous blob.
        (
            "overlapping",
            1,
            Box::new(|b| put(b, dir + 16 + 24, entries[0].0 as u32)),
        ),
        // Starts inside the directory itself.
        (
            "in the directory",
            0,
            Box::new(|b| put(b, dir + 16, dir as u32)),
        ),
    ];
    for (what, i, spoil) in cases {
        let mut b = bytes.clone();
        spoil(&mut b);
        reseal(&mut b);
        let file = IndexFile::from_bytes(b).unwrap();
        assert!(file.has_directory(), "{what}");
        assert!(file.raw_package(i).is_none(), "{what}");
        for j in (0..n).filter(|&j| j != i) {
            assert!(file.raw_package(j).is_some(), "{what}: package {j}");
        }
        let err = file.check_written().unwrap_err();
        assert!(
            matches!(err, FbError::Damaged { index, .. } if index == i),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("directory entry"), "{what}: {err}");
    }
}

#[test]
fn a_damaged_blob_is_not_copied_and_reading_it_says_so() {
    let model = every_variant();
    let mut bytes = encode(&model);
    let file = IndexFile::from_bytes(bytes.clone()).unwrap();
    let i = file.position("my-tool").unwrap();
    // A string byte inside my-tool's blob: still valid FlatBuffers, still
    // data SPK can use, but not what was written.
    let (start, end, _) = directory_entries(&bytes)[i];
    let at = start
        + bytes[start..end]
            .windows(6)
            .position(|w| w == b"x86_64")
            .unwrap();
    bytes[at + 5] = b'5';
    let file = IndexFile::from_bytes(bytes).unwrap();
    assert!(file.raw_package(i).is_none());
    for j in (0..file.len()).filter(|&j| j != i) {
        assert!(file.raw_package(j).is_some(), "package {j}");
        assert_eq!(file.package_at(j).unwrap().unwrap(), model.packages[j]);
    }
    let err = file.package("my-tool").unwrap().unwrap_err();
    assert!(matches!(err, FbError::Damaged { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("(my-tool)") && text.contains("crc32") && text.contains("spk repo index"),
        "{text}"
    );
    assert_eq!(file.check().unwrap_err().to_string(), text);
    assert_eq!(file.check_written().unwrap_err().to_string(), text);
    // Still FlatBuffers SPK would read: only our checksum knows.
    verify(file.bytes()).unwrap();
}

#[test]
fn the_packages_vector_must_point_at_each_blob() {
    let mut bytes = encode(&every_variant());
    // Point package 0's element at package 1's table: every blob's bytes
    // are intact, but blob 0 is no longer what the vector refers to.
    let t1 = package_table(&bytes, 1);
    let u32_at = |b: &[u8], p: usize| u32::from_le_bytes(b[p..p + 4].try_into().unwrap()) as usize;
    let root = u32_at(&bytes, 0);
    let vtable = root - u32_at(&bytes, root);
    let slot =
        root + u16::from_le_bytes(bytes[vtable + 6..vtable + 8].try_into().unwrap()) as usize;
    let element0 = slot + u32_at(&bytes, slot) + 4;
    bytes[element0..element0 + 4].copy_from_slice(&((t1 - element0) as u32).to_le_bytes());
    let file = IndexFile::from_bytes(bytes).unwrap();
    assert!(file.raw_package(0).is_none());
    assert!(file.raw_package(1).is_some());
    let err = file.check_written().unwrap_err();
    assert!(
        matches!(&err, FbError::Damaged { index: 0, .. }) && err.to_string().contains("directory"),
        "{err}"
    );
}

#[test]
fn open_checks_the_root_and_reads_packages_lazily() {
    let model = every_variant();
    let mut bytes = encode(&model);
    // my-tool's versions uoffset points far outside the file: its name
    // still reads, the package does not verify.
    let t = package_table(&bytes, 1);
    let (_, versions) = field_of(&bytes, t, 6);
    bytes[versions..versions + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index_v1.fb");
    std::fs::write(&path, &bytes).unwrap();

    let file = IndexFile::open(&path).unwrap();
    assert_eq!(file.len(), 3);
    assert_eq!(
        file.package_names(),
        ["my-embedded", "my-tool", "no-versions"]
    );
    assert_eq!(file.global_vars(), model.global_vars);
    let err = file.package("my-tool").unwrap().unwrap_err();
    assert!(matches!(err, FbError::Package { index: 1, .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string())
            && text.contains("package #1 (my-tool)")
            && text.contains("not a valid SPK index"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    assert_eq!(
        file.package("my-embedded").unwrap().unwrap(),
        model.packages[0]
    );
    assert_eq!(
        file.package("no-versions").unwrap().unwrap(),
        model.packages[2]
    );
    assert!(file.decode().is_err());
    assert!(file.raw_package(1).is_none());
    // Verified up front, the same file does not open.
    let err = IndexFile::open_verified(&path).unwrap_err();
    assert!(matches!(err, FbError::Verify { .. }), "{err}");
    // SPK refuses it whole.
    assert!(verify(&bytes).is_err());
}

#[test]
fn ls_of_a_package_with_a_damaged_table_names_the_file_and_others_still_list() {
    use crate::listing::{list, From, Query};
    let model = every_variant();
    let mut bytes = encode(&model);
    // my-tool's vtable claims an odd length: its table cannot be visited,
    // so not even its name reads (it is the binary search's first probe).
    let t = package_table(&bytes, 1);
    let (vtable, _) = field_of(&bytes, t, 4);
    bytes[vtable..vtable + 2].copy_from_slice(&0x7fffu16.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index_v1.fb");
    std::fs::write(&path, &bytes).unwrap();
    let file = IndexFile::open(&path).unwrap();
    let query = |name: &str| Query {
        name: Some(name.into()),
        version: None,
    };
    let err = list(&From::Index(&file), &query("my-tool"), "file:///origin").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string())
            && text.contains("package #1")
            && text.contains("not a valid SPK index"),
        "{text}"
    );
    for (i, name) in [(0, "my-embedded"), (2, "no-versions")] {
        let (listing, _) = list(&From::Index(&file), &query(name), "file:///origin").unwrap();
        assert_eq!(listing.packages[0].name, name);
        assert_eq!(
            listing.packages[0].versions.as_ref().unwrap().len(),
            model.packages[i].versions.len()
        );
    }
    // A package that is not there: the search cannot rule out the damaged
    // one, and says so.
    let err = file.package("absent").unwrap().unwrap_err();
    assert!(matches!(err, FbError::Package { index: 1, .. }), "{err}");
    assert_eq!(
        file.package_names(),
        ["my-embedded", decode::UNREADABLE_NAME, "no-versions"]
    );
    assert!(file.try_package_names().is_err());
}

/// An index written SPK's way: one builder for the whole file (shared
/// vtables, packages anywhere below the vector), no directory.
fn spk_style(names: &[&str]) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let mut packages = Vec::new();
    for name in names {
        let build = build_with(&mut fbb, "ABCDEFGH", Some("x.a.b"), None, None);
        let builds = fbb.create_vector(&[build]);
        let version = good_version(&mut fbb, &[1, 0, 0]);
        let vi = fbs::VersionIndex::create(
            &mut fbb,
            &fbs::VersionIndexArgs {
                version: Some(version),
                builds: Some(builds),
            },
        );
        let versions = fbb.create_vector(&[vi]);
        let name = fbb.create_string(name);
        packages.push(fbs::PackageIndex::create(
            &mut fbb,
            &fbs::PackageIndexArgs {
                name: Some(name),
                versions: Some(versions),
            },
        ));
    }
    let packages = fbb.create_vector(&packages);
    let root = fbs::RepositoryIndex::create(
        &mut fbb,
        &fbs::RepositoryIndexArgs {
            index_schema_version: 1,
            packages: Some(packages),
            global_vars: None,
        },
    );
    fbb.finish_minimal(root);
    fbb.finished_data().to_vec()
}

#[test]
fn spk_style_files_open_list_and_reencode() {
    let names = ["alpha", "beta", "gamma", "zeta"];
    let bytes = spk_style(&names);
    verify(&bytes).unwrap();
    let file = IndexFile::from_bytes(bytes).unwrap();
    assert!(!file.has_directory());
    assert_eq!(file.package_names(), names);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(file.position(name), Some(i));
        assert_eq!(file.package(name).unwrap().unwrap().name, *name);
        assert!(file.raw_package(i).is_none());
    }
    assert!(file.package("delta").is_none());
    let model = file.decode().unwrap();
    assert_eq!(model.packages.len(), 4);
    // An update of such a file decodes and re-encodes its packages.
    let parts = (0..file.len())
        .map(|i| PackagePart::Fresh(file.package_at(i).unwrap().unwrap()))
        .collect();
    let assembled = assemble(parts, &GlobalVars::new()).unwrap();
    let ours = IndexFile::from_bytes(assembled.to_bytes()).unwrap();
    assert!(ours.has_directory());
    ours.check_written().unwrap();
    assert_eq!(ours.decode().unwrap(), model);
    assert_eq!(
        assembled.counts,
        IndexCounts {
            packages: 4,
            versions: 4,
            builds: 4,
            deprecated: 0
        }
    );
}

#[test]
fn unsorted_files_are_searched_linearly() {
    let bytes = spk_style(&["zeta", "alpha", "gamma"]);
    let file = IndexFile::from_bytes(bytes).unwrap();
    for (i, name) in ["zeta", "alpha", "gamma"].iter().enumerate() {
        assert_eq!(file.position(name), Some(i), "{name}");
    }
    assert!(file.package("beta").is_none());
}

#[test]
fn the_encoder_refuses_a_package_that_does_not_verify() {
    let mut model = every_variant();
    model.packages[1].versions[0].builds[0].build = BuildId::Digest("ABCDEFG".into());
    let e = encode_package(&model.packages[1]);
    let err = e.verified().unwrap_err();
    assert!(matches!(&err, FbError::Encode { package, .. } if package == "my-tool"));
    let text = err.to_string();
    assert!(
        text.contains("7 characters") && text.contains("bug"),
        "{text}"
    );
    let fresh = model.packages.iter().cloned().map(PackagePart::Fresh);
    let err = assemble(fresh.collect(), &model.global_vars).unwrap_err();
    assert_eq!(err.to_string(), text);
    let err = assemble(vec![PackagePart::Encoded(e)], &GlobalVars::new()).unwrap_err();
    assert_eq!(err.to_string(), text);
    // Good packages are fine, encoded ahead or not.
    let good = encode_package(&model.packages[0]);
    good.verified().unwrap();
    assemble(vec![PackagePart::Encoded(good)], &GlobalVars::new()).unwrap();
}

#[test]
#[should_panic(expected = "7 characters")]
fn encode_panics_on_a_package_that_does_not_verify() {
    let mut model = every_variant();
    model.packages[1].versions[0].builds[0].build = BuildId::Digest("ABCDEFG".into());
    encode(&model);
}

#[test]
fn counts_come_from_the_parts() {
    let expected = |m: &RepositoryIndex| {
        let mut c = IndexCounts::default();
        for p in &m.packages {
            c.add(IndexCounts::of(p));
        }
        c
    };
    let mut model = every_variant();
    let before = expected(&model);
    assert!(!model.packages[1].versions[0].builds[0].deprecated);
    model.packages[1].versions[0].builds[0].deprecated = true;
    let fresh = model.packages.iter().cloned().map(PackagePart::Fresh);
    let assembled = assemble(fresh.collect(), &model.global_vars).unwrap();
    assert_eq!(assembled.counts, expected(&model));
    assert_eq!(assembled.counts.deprecated, before.deprecated + 1);
    assert_eq!(assembled.counts.packages, 3);
    // Copied parts are counted by the old file's directory.
    let old = IndexFile::from_bytes(assembled.to_bytes()).unwrap();
    for i in 0..old.len() {
        assert_eq!(
            old.raw_package(i).unwrap().counts(),
            IndexCounts::of(&model.packages[i])
        );
    }
    let raw = (0..old.len()).map(|i| PackagePart::Raw(old.raw_package(i).unwrap()));
    let again = assemble(raw.collect(), &model.global_vars).unwrap();
    assert_eq!(again.counts, expected(&model));
    assert_eq!(again.to_bytes(), old.bytes());
    assert_eq!(again.len(), old.bytes().len());
}

// ---- an update over a damaged file and over SPK's -----------------------------

/// A repository of three packages (two versions, two builds each: one
/// with an option `arch=x86_64`), indexed in full.
fn indexed_repo() -> (tempfile::TempDir, crate::IndexRequest) {
    use spk_messaging_core::config::IndexConfig;
    use spk_messaging_core::RepoAddress;
    let d = tempfile::tempdir().unwrap();
    let w = crate::spfs::SpfsWriter::create(d.path()).unwrap();
    for name in ["alpha", "beta", "gamma"] {
        for v in ["1.0", "2.0"] {
            for b in ["AAAAAAAA", "BBBBBBBB"] {
                let yaml = format!(
                    "pkg: {name}/{v}/{b}\napi: v0/package\nbuild:\n  options:\n    - var: arch/x86_64\n"
                );
                crate::publish::publish(&w, &yaml, &["build", "run"]).unwrap();
            }
        }
    }
    let address = RepoAddress::parse(&d.path().display().to_string(), d.path()).unwrap();
    let config = IndexConfig {
        lock_max_tries: 1,
        lock_sleep_seconds: 0,
        ..IndexConfig::default()
    };
    let req = crate::IndexRequest::new("origin", address, config);
    crate::run_index(&req, &spk_messaging_core::NullReporter).unwrap();
    (d, req)
}

fn update(req: &crate::IndexRequest, package: &str) -> crate::IndexSummary {
    let mut req = req.clone();
    req.updates = vec![package.parse().unwrap()];
    crate::run_index(&req, &spk_messaging_core::NullReporter).unwrap()
}

#[test]
fn an_update_rereads_a_kept_package_whose_blob_is_damaged() {
    let (d, req) = indexed_repo();
    let path = crate::index_path(d.path());
    let full = IndexFile::open(&path).unwrap().decode().unwrap();
    // Damage beta (kept by an update of alpha): a value byte, so that it
    // still verifies and decodes, only wrongly.
    let mut bytes = std::fs::read(&path).unwrap();
    let i = IndexFile::from_bytes(bytes.clone())
        .unwrap()
        .position("beta")
        .unwrap();
    let (start, end, _) = directory_entries(&bytes)[i];
    let at = start
        + bytes[start..end]
            .windows(6)
            .position(|w| w == b"x86_64")
            .unwrap();
    bytes[at + 5] = b'5';
    std::fs::write(&path, &bytes).unwrap();
    assert!(IndexFile::open(&path).unwrap().raw_package(i).is_none());

    let summary = update(&req, "alpha");
    assert_eq!(summary.mode, crate::IndexMode::Update);
    // gamma copied; beta re-read from the repository; alpha updated.
    assert_eq!(summary.kept, 1);
    assert_eq!(
        (
            summary.counts.packages,
            summary.counts.versions,
            summary.counts.builds
        ),
        (3, 6, 12)
    );
    let file = IndexFile::open(&path).unwrap();
    file.check_written().unwrap();
    assert_eq!(file.decode().unwrap(), full);
}

#[test]
fn an_update_of_an_index_without_directory_reencodes_it() {
    let (d, req) = indexed_repo();
    let path = crate::index_path(d.path());
    let full = IndexFile::open(&path).unwrap().decode().unwrap();
    let full_bytes = std::fs::read(&path).unwrap();
    // As SPK (or our first format) would have left it: no directory.
    let mut bytes = full_bytes.clone();
    let at = bytes.windows(8).position(|w| w == DIRECTORY_MAGIC).unwrap();
    bytes[at] = b'X';
    std::fs::write(&path, &bytes).unwrap();
    let file = IndexFile::open(&path).unwrap();
    assert!(!file.has_directory());
    assert_eq!(file.package("beta").unwrap().unwrap(), full.packages[1]);
    drop(file);

    let summary = update(&req, "beta");
    assert_eq!(summary.kept, 2);
    assert_eq!((summary.counts.packages, summary.counts.builds), (3, 12));
    let file = IndexFile::open(&path).unwrap();
    assert!(file.has_directory());
    file.check_written().unwrap();
    assert_eq!(file.decode().unwrap(), full);
    assert_eq!(std::fs::read(&path).unwrap(), full_bytes);
    // And an update of our own file copies the others byte for byte.
    let summary = update(&req, "gamma");
    assert_eq!(summary.kept, 2);
    assert_eq!(std::fs::read(&path).unwrap(), full_bytes);
}

/// The old indexes left aside in `root`'s index directory, sorted.
fn retired(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(crate::generate::index_dir(root))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(crate::generate::RETIRED_PREFIX)
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Publishes one more build of `name` 2.0 (its highest version) in the
/// repository at `root`.
fn publish_more(root: &std::path::Path, name: &str, build: &str) {
    let w = crate::spfs::SpfsWriter::create(root).unwrap();
    let yaml = format!("pkg: {name}/2.0/{build}\napi: v0/package\n");
    crate::publish::publish(&w, &yaml, &["build", "run"]).unwrap();
}

#[test]
fn a_replaced_index_nothing_reads_is_written_into_by_the_next_run() {
    use std::os::unix::fs::MetadataExt;
    let (d, req) = indexed_repo();
    let path = crate::index_path(d.path());
    let first_ino = std::fs::metadata(&path).unwrap().ino();
    update(&req, "beta");
    let second_ino = std::fs::metadata(&path).unwrap().ino();
    assert_ne!(second_ino, first_ino);
    // The first index, aside, is read by nobody: the next run writes its
    // index into that very file, and leaves the second aside.
    publish_more(d.path(), "gamma", "CCCCCCCC");
    let summary = update(&req, "gamma");
    assert_eq!(summary.counts.builds, 13);
    let file = IndexFile::open(&path).unwrap();
    file.check_written().unwrap();
    let gamma = file.package("gamma").unwrap().unwrap();
    assert_eq!(gamma.versions[0].builds.len(), 3);
    let now = retired(d.path());
    assert_eq!(now.len(), 1);
    assert_eq!(std::fs::metadata(&now[0]).unwrap().ino(), second_ino);
    let reused = std::fs::metadata(&path).unwrap().ino() == first_ino;
    // Only where the kernel's leases see every opener (see crate::retire).
    assert_eq!(
        reused,
        crate::retire::reusable_here(d.path()),
        "reused: {reused}"
    );
    // Nothing left over: the index, its lock, one file aside.
    let mut names: Vec<String> = std::fs::read_dir(crate::generate::index_dir(d.path()))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(crate::generate::RETIRED_PREFIX))
        .collect();
    names.sort();
    assert_eq!(names, ["index_v1.fb"]);
}

#[test]
fn a_link_named_as_a_replaced_index_never_gets_a_file_overwritten() {
    // A symbolic link, or a second hard link, under the name of a replaced
    // index, to a file elsewhere (alone: a run takes one candidate): the
    // run does not write into the file, and removes only the name.
    let (d, req) = indexed_repo();
    let dir = crate::generate::index_dir(d.path());
    let outside = tempfile::tempdir().unwrap();
    let name = dir.join(format!("{}1_1", crate::generate::RETIRED_PREFIX));
    for symbolic in [true, false] {
        // Leave no replaced index of our own behind: it would be taken
        // first or instead.
        for r in retired(d.path()) {
            std::fs::remove_file(r).unwrap();
        }
        let victim = outside.path().join(format!("victim-{symbolic}"));
        std::fs::write(&victim, b"precious").unwrap();
        if symbolic {
            std::os::unix::fs::symlink(&victim, &name).unwrap();
        } else {
            std::fs::hard_link(&victim, &name).unwrap();
        }
        assert_eq!(retired(d.path()), std::slice::from_ref(&name));
        update(&req, "beta");
        assert!(std::fs::symlink_metadata(&name).is_err(), "{symbolic}");
        assert!(
            std::fs::read(&victim).unwrap() == b"precious",
            "symbolic: {symbolic}: the file behind the name was overwritten"
        );
        IndexFile::open(crate::index_path(d.path()))
            .unwrap()
            .check_written()
            .unwrap();
    }
}

#[test]
fn a_replaced_index_still_read_is_removed_not_written_into() {
    use std::os::unix::fs::MetadataExt;
    let (d, req) = indexed_repo();
    let path = crate::index_path(d.path());
    // The first run replaced nothing.
    assert!(retired(d.path()).is_empty());
    let first = std::fs::read(&path).unwrap();
    let first_ino = std::fs::metadata(&path).unwrap().ino();
    // A reader that opened the index before the update.
    let reader = IndexFile::open(&path).unwrap();
    update(&req, "beta");
    let aside = retired(d.path());
    assert_eq!(aside.len(), 1);
    // The very file that was replaced, not a copy; the index has one name.
    assert_eq!(std::fs::metadata(&aside[0]).unwrap().ino(), first_ino);
    assert_eq!(std::fs::read(&aside[0]).unwrap(), first);
    assert_eq!(std::fs::metadata(&path).unwrap().nlink(), 1);
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), first_ino);
    // The reader holds it (its map): the next run does not write into it
    // but removes its name, and leaves the index it replaces aside.
    let second_ino = std::fs::metadata(&path).unwrap().ino();
    publish_more(d.path(), "gamma", "CCCCCCCC");
    update(&req, "gamma");
    let now = retired(d.path());
    assert_eq!(now.len(), 1);
    assert_ne!(now, aside);
    assert!(!aside[0].exists());
    assert_eq!(std::fs::metadata(&now[0]).unwrap().ino(), second_ino);
    // The early reader still reads what it opened.
    assert_eq!(reader.bytes(), &first[..]);
    assert_eq!(
        reader.decode().unwrap(),
        IndexFile::from_bytes(first).unwrap().decode().unwrap()
    );
}

#[test]
fn a_second_name_of_the_live_index_left_by_a_killed_run_is_only_a_name() {
    // Killed between naming the old index aside and renaming the new one
    // in: the name aside is the live index's. The next run must neither
    // write into it (it is the index readers open) nor lose it: it removes
    // the name, and the index stays as it was until the new one replaces it.
    use std::os::unix::fs::MetadataExt;
    let (d, req) = indexed_repo();
    let path = crate::index_path(d.path());
    let dir = crate::generate::index_dir(d.path());
    let aside = dir.join(format!("{}1_2", crate::generate::RETIRED_PREFIX));
    std::fs::hard_link(&path, &aside).unwrap();
    let before = std::fs::read(&path).unwrap();
    let before_ino = std::fs::metadata(&path).unwrap().ino();
    publish_more(d.path(), "beta", "CCCCCCCC");
    update(&req, "beta");
    assert!(!aside.exists());
    let file = IndexFile::open(&path).unwrap();
    file.check_written().unwrap();
    assert_eq!(
        file.package("beta").unwrap().unwrap().versions[0]
            .builds
            .len(),
        3
    );
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), before_ino);
    // The replaced index, aside now, is the old one, untouched.
    let now = retired(d.path());
    assert_eq!(now.len(), 1);
    assert_eq!(std::fs::metadata(&now[0]).unwrap().ino(), before_ino);
    assert_eq!(std::fs::read(&now[0]).unwrap(), before);
}

/// Occurrences of `needle` in `hay`.
fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

#[test]
fn short_strings_are_written_once_per_package_long_ones_each_time() {
    let long = "a-value-longer-than-the-sharing-cap";
    assert!(long.len() > encode::SHARED_STRING_MAX);
    let builds: Vec<BuildIndex> = ["AAAAAAAA", "BBBBBBBB", "CCCCCCCC"]
        .iter()
        .map(|d| {
            let mut b = typical_build(d.to_string());
            b.runtime_requirements.push(var("note", long));
            b
        })
        .collect();
    let package = PackageIndex {
        name: "shared".into(),
        versions: vec![VersionIndex {
            version: v(&[1, 2, 3]),
            builds,
        }],
    };
    let blob = encode_package(&package);
    assert!(blob.verified().is_ok());
    // Used by every build (an option value and a request's option): one copy.
    assert_eq!(occurrences(blob.bytes(), b"x86_64\0"), 1);
    assert_eq!(occurrences(blob.bytes(), b"cp37m\0"), 1);
    // Longer than the cap: one copy per build, so the apparent size stays
    // a small multiple of the bytes (see the module docs).
    assert_eq!(occurrences(blob.bytes(), format!("{long}\0").as_bytes()), 3);
    // And it reads back as it was.
    let bytes = encode(&RepositoryIndex {
        packages: vec![package.clone()],
        global_vars: BTreeMap::new(),
    });
    assert_eq!(read_all(bytes).unwrap().packages, vec![package]);
}

#[test]
fn runs_of_copied_blobs_are_written_whole_and_gaps_break_them() {
    // Names of different lengths: blobs of different sizes and padding.
    let package = |i: usize, minor: u32| PackageIndex {
        name: format!("pkg{}", "x".repeat(i)),
        versions: vec![VersionIndex {
            version: v(&[1, minor]),
            builds: vec![typical_build(format!("{:08}", i))],
        }],
    };
    let old = RepositoryIndex {
        packages: (0..6).map(|i| package(i, 0)).collect(),
        global_vars: BTreeMap::new(),
    };
    let old_file = IndexFile::from_bytes(encode(&old)).unwrap();
    let raw = |i: usize| PackagePart::Raw(old_file.raw_package(i).unwrap());
    // Package 1 removed (a gap between copied 0 and 2), 3 changed, 4 and 5
    // copied as one run.
    let parts = vec![
        raw(5),
        raw(0),
        PackagePart::Fresh(package(3, 1)),
        raw(2),
        raw(4),
    ];
    let assembled = assemble(parts, &BTreeMap::new()).unwrap();
    let bytes = assembled.to_bytes();
    assert_eq!(bytes.len(), assembled.len());
    verify(&bytes).unwrap();
    let file = IndexFile::from_bytes(bytes).unwrap();
    let mut expected: Vec<PackageIndex> = [0, 2, 4, 5]
        .into_iter()
        .map(|i| package(i, 0))
        .chain([package(3, 1)])
        .collect();
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(file.decode().unwrap().packages, expected);
    // Every copied package is its old bytes, with the crc32 it had.
    for i in [0, 2, 4, 5] {
        let name = &old.packages[i].name;
        let copied = file.raw_package(file.position(name).unwrap()).unwrap();
        assert_eq!(copied.bytes(), old_file.raw_package(i).unwrap().bytes());
    }
}
