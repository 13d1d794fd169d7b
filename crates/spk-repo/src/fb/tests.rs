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
    let assembled = assemble(parts, &new.global_vars).unwrap().bytes;
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
        assemble(fresh, &new.global_vars).unwrap().bytes,
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
    .bytes;
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
    time("open (mmap+verify)", &mut || {
        file = Some(IndexFile::open(&path).unwrap())
    });
    let file = file.unwrap();
    let mut one = None;
    time("one package", &mut || one = file.package("pkg-01234"));
    let mut decoded = RepositoryIndex::default();
    time("decode all", &mut || decoded = file.decode().unwrap());
    time("check (semantics, no decode)", &mut || {
        file.check().unwrap()
    });
    let mut raws = Vec::new();
    time("raw packages (blobs verified and checked)", &mut || {
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
        updated = assemble(parts, &decoded.global_vars).unwrap().bytes;
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
