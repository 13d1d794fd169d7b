//! `cargo xtask gen-repo --packages N --versions V --builds B --out DIR [--seed S]`
//!
//! A deterministic synthetic repository in the layout of
//! docs/repository.md: the same arguments always give the same files. Specs
//! look like real SPK v0 build specs: build options (vars and packages),
//! install requirements on other generated packages, components with file
//! globs, keys the index ignores (sources, scripts, tests), about one build
//! in twenty deprecated and one version in four with a `src` build.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

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
}

const WORDS: &[&str] = &[
    "core", "render", "image", "math", "audio", "mesh", "usd", "qt", "boost", "tbb", "ocio",
    "oiio", "alembic", "vdb", "ptex", "embree", "python", "numpy", "pyside", "zlib", "png", "jpeg",
    "tiff", "exr", "hdf5", "ffmpeg",
];

pub fn package_name(i: usize) -> String {
    format!("{}-{}{:05}", WORDS[i % WORDS.len()], "p", i)
}

fn digest(rng: &mut Rng) -> String {
    const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..8)
        .map(|_| B32[rng.below(32) as usize] as char)
        .collect()
}

/// The spec text of one build.
fn spec(rng: &mut Rng, index: usize, version: &str, build: &str, packages: usize) -> String {
    let name = &package_name(index);
    let mut s = String::with_capacity(1200);
    let _ = writeln!(s, "pkg: {name}/{version}/{build}");
    let _ = writeln!(s, "api: v0/package");
    if build != "src" && rng.below(20) == 0 {
        let _ = writeln!(s, "deprecated: true");
    }
    let _ = writeln!(s, "compat: x.a.b");
    let _ = writeln!(s, "meta:\n  license: Apache-2.0\n  description: synthetic package {name}\n  labels: {{team: pipeline}}");
    let _ = writeln!(
        s,
        "sources:\n  - git: https://git.example.com/{name}.git\n    ref: v{version}"
    );
    let _ = writeln!(s, "build:\n  options:");
    let _ = writeln!(
        s,
        "    - var: arch/x86_64\n    - var: os/linux\n    - var: distro/rocky-9"
    );
    let _ = writeln!(
        s,
        "    - var: debug/{}\n      choices: [on, off]",
        if rng.below(2) == 0 { "off" } else { "on" }
    );
    let deps = if packages > 1 { 1 + rng.below(4) } else { 0 };
    // Dependencies on other packages, never on itself.
    let dep_names: Vec<String> = (0..deps)
        .map(|_| package_name((index + 1 + rng.below(packages as u64 - 1) as usize) % packages))
        .collect();
    for d in &dep_names {
        let _ = writeln!(s, "    - pkg: {d}/{}.{}", 1 + rng.below(3), rng.below(10));
    }
    let _ = writeln!(s, "  variants:\n    - {{debug: off}}\n    - {{debug: on}}");
    let _ = writeln!(s, "  script:\n    - cmake -S . -B build -DCMAKE_INSTALL_PREFIX=/spfs\n    - cmake --build build --target install -j $SPK_CPUS");
    let _ = writeln!(s, "install:\n  requirements:");
    for d in &dep_names {
        let _ = writeln!(
            s,
            "    - pkg: {d}/~{}.{}\n      fromBuildEnv: x.x",
            1 + rng.below(3),
            rng.below(10)
        );
    }
    let _ = writeln!(s, "    - var: arch/x86_64");
    if rng.below(3) == 0 {
        let _ = writeln!(
            s,
            "    - pkg: python/~3.{}\n      include: IfAlreadyPresent",
            7 + rng.below(5)
        );
    }
    let _ = writeln!(
        s,
        "  components:\n    - name: run\n      files: [\"lib/\", \"bin/\", \"share/\"]"
    );
    let _ = writeln!(s, "    - name: build\n      uses: [run]\n      files: [\"include/\", \"lib/*.a\", \"lib/cmake/\"]");
    if rng.below(2) == 0 {
        let _ = writeln!(s, "    - name: docs\n      files: [\"share/doc/\"]");
    }
    let _ = writeln!(
        s,
        "tests:\n  - stage: install\n    script: [\"test -d /spfs/lib\"]"
    );
    s
}

/// Generates the repository; returns the number of build specs written.
pub fn generate(
    out: &Path,
    packages: usize,
    versions: usize,
    builds: usize,
    seed: u64,
) -> Result<u64> {
    let root = out.join("packages");
    if root.exists() {
        bail!(
            "{} already exists; choose an empty --out directory",
            root.display()
        );
    }
    let mut n = 0u64;
    for p in 0..packages {
        let name = package_name(p);
        let mut rng = Rng::new(seed ^ (p as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut seen = std::collections::BTreeSet::new();
        let mut made = 0;
        while made < versions {
            let mut v = format!("{}.{}.{}", rng.below(4), rng.below(30), rng.below(20));
            if rng.below(10) == 0 {
                let _ = write!(v, "-rc.{}", 1 + rng.below(3));
            }
            if !seen.insert(v.clone()) {
                continue;
            }
            made += 1;
            let dir = root.join(&name).join(&v);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let with_src = rng.below(4) == 0;
            let mut ids = std::collections::BTreeSet::new();
            while ids.len() < builds {
                let id = if with_src && ids.is_empty() {
                    "src".to_string()
                } else {
                    digest(&mut rng)
                };
                ids.insert(id);
            }
            for b in ids {
                let text = spec(&mut rng, p, &v, &b, packages);
                let f = dir.join(format!("{b}.yaml"));
                std::fs::write(&f, text)
                    .with_context(|| format!("cannot write {}", f.display()))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn usage() -> String {
    "usage: cargo xtask gen-repo --packages N --versions V --builds B --out DIR [--seed S]".into()
}

pub fn run(args: &[String]) -> Result<()> {
    let (mut packages, mut versions, mut builds, mut out, mut seed) =
        (None, None, None, None::<PathBuf>, 1u64);
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
            "--packages" => packages = Some(num(val("a number")?, a)?),
            "--versions" => versions = Some(num(val("a number")?, a)?),
            "--builds" => builds = Some(num(val("a number")?, a)?),
            "--seed" => seed = num(val("a number")?, a)?,
            "--out" => out = Some(PathBuf::from(val("a directory")?)),
            other => bail!("unknown argument {other:?}; {}", usage()),
        }
    }
    let (Some(p), Some(v), Some(b), Some(out)) = (packages, versions, builds, out) else {
        bail!("{}", usage());
    };
    if b > 32 * 32 {
        bail!("--builds {b} is too many for distinct build digests");
    }
    let t = std::time::Instant::now();
    let n = generate(&out, p as usize, v as usize, b as usize, seed)?;
    eprintln!(
        "gen-repo: wrote {n} build specs under {} in {:.1}s",
        out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
