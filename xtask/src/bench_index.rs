//! `cargo xtask bench [--runs N] [--packages N --versions V --builds B]`:
//! the index benchmarks, as medians of whole-process runs of the release
//! `spk` binary on a generated repository (default 5,000 x 4 x 5 = 100,000
//! builds, cached under target/bench/ and reused).
//!
//! - floor: `spk repo index --scan-only`, the same walk, read and parse of
//!   every spec that generation does, and nothing else;
//! - full generation, with its peak RSS (GNU time's %M when
//!   /usr/bin/time exists);
//! - `--update` of one package;
//! - `spk repo ls --repo DIR <package>` from the index, whole process;
//! - the index file's size.
//!
//! Nothing here is a test: figures are printed with their goals beside them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::genrepo;
use crate::util;

struct Opts {
    runs: usize,
    packages: usize,
    versions: usize,
    builds: usize,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        runs: 5,
        packages: 5000,
        versions: 4,
        builds: 5,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v: usize = it
            .next()
            .with_context(|| format!("{a} needs a number"))?
            .parse()
            .with_context(|| format!("{a} needs a non-negative integer"))?;
        match a.as_str() {
            "--runs" => o.runs = v.max(1),
            "--packages" => o.packages = v,
            "--versions" => o.versions = v,
            "--builds" => o.builds = v,
            other => bail!("unknown argument {other:?}; usage: cargo xtask bench [--runs N] [--packages N --versions V --builds B]"),
        }
    }
    Ok(o)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One whole-process run: wall seconds and, with GNU time, peak RSS in KiB.
fn timed(spk: &Path, config: &Path, args: &[&str]) -> Result<(f64, Option<u64>)> {
    let gnu_time = Path::new("/usr/bin/time");
    let rss_file = std::env::temp_dir().join(format!("spk-bench-rss-{}", std::process::id()));
    let mut cmd = if gnu_time.exists() {
        let mut c = Command::new(gnu_time);
        c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(spk);
        c
    } else {
        Command::new(spk)
    };
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("SPK_CONFIG");
    let t = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", spk.display()))?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "spk {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rss = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()));
    let _ = std::fs::remove_file(&rss_file);
    Ok((secs, rss))
}

fn runs(n: usize, spk: &Path, config: &Path, args: &[&str]) -> Result<(Vec<f64>, Vec<u64>)> {
    let mut t = Vec::new();
    let mut m = Vec::new();
    for _ in 0..n {
        let (s, r) = timed(spk, config, args)?;
        t.push(s);
        m.extend(r);
    }
    Ok((t, m))
}

fn ms(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

/// The synthetic benchmark repository, generated once under target/bench/
/// and reused (shared with the Kafka and Indexer benchmarks).
pub fn ensure_repo(packages: usize, versions: usize, builds: usize) -> Result<PathBuf> {
    let repo = util::root()
        .join("target/bench")
        .join(format!("repo-{packages}x{versions}x{builds}"));
    let done = repo.join(".generated");
    if !done.exists() {
        if repo.exists() {
            std::fs::remove_dir_all(&repo)
                .with_context(|| format!("cannot remove the partial {}", repo.display()))?;
        }
        eprintln!(
            "bench: generating {} (once; reused afterwards)",
            repo.display()
        );
        genrepo::generate(&repo, packages, versions, builds, 1)?;
        std::fs::write(&done, "")?;
    }
    Ok(repo)
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root = util::root();
    util::run(Command::new(env!("CARGO")).args(["build", "--release", "-p", "spk-repo-cli"]))?;
    let spk = root.join("target/release/spk");
    let bench = root.join("target/bench");
    let repo = ensure_repo(o.packages, o.versions, o.builds)?;
    let config = bench.join("empty-config.toml");
    std::fs::write(&config, "# the bench repository is given by path\n")?;
    let r = repo.to_string_lossy().to_string();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let builds = o.packages * o.versions * o.builds;
    eprintln!(
        "bench: {builds} builds, {} runs each, {cores} cores; warming the page cache",
        o.runs
    );
    timed(
        &spk,
        &config,
        &["repo", "index", "--repo", &r, "--scan-only"],
    )?;
    timed(&spk, &config, &["repo", "index", "--repo", &r])?;

    let (floor, _) = runs(
        o.runs,
        &spk,
        &config,
        &["repo", "index", "--repo", &r, "--scan-only"],
    )?;
    let (full, rss) = runs(o.runs, &spk, &config, &["repo", "index", "--repo", &r])?;
    let one = genrepo::package_name(o.packages / 2);
    let (update, _) = runs(
        o.runs,
        &spk,
        &config,
        &["repo", "index", "--repo", &r, "--update", &one],
    )?;
    let (ls, _) = runs(
        o.runs.max(10),
        &spk,
        &config,
        &["repo", "ls", "--repo", &r, &one],
    )?;
    let index_file: PathBuf = repo.join("index/spk/index.v1.spki");
    let size = std::fs::metadata(&index_file)
        .with_context(|| format!("no index at {}", index_file.display()))?
        .len();

    let (floor, full, update, ls) = (median(floor), median(full), median(update), median(ls));
    let peak = rss.iter().max().copied();
    println!();
    println!(
        "index benchmarks: {} packages x {} versions x {} builds = {builds} builds; {cores} cores; median of {} runs (ls: {}), whole process, warm page cache",
        o.packages,
        o.versions,
        o.builds,
        o.runs,
        o.runs.max(10)
    );
    println!("{:<44} {:>12}   goal", "measure", "figure");
    let row = |what: &str, fig: String, goal: String| println!("{what:<44} {fig:>12}   {goal}");
    row(
        "floor: read + parse every spec (--scan-only)",
        ms(floor),
        String::new(),
    );
    row(
        "full generation",
        ms(full),
        format!(
            "<= 1.2x floor: {:.2}x {}",
            full / floor,
            if full <= 1.2 * floor {
                "MET"
            } else {
                "NOT MET"
            }
        ),
    );
    row(
        &format!("--update {one}"),
        ms(update),
        format!(
            "< 2% of full: {:.2}% {}",
            100.0 * update / full,
            if update < 0.02 * full {
                "MET"
            } else {
                "NOT MET"
            }
        ),
    );
    row(
        &format!("spk repo ls --repo R {one}"),
        ms(ls),
        format!("< 20 ms {}", if ls < 0.020 { "MET" } else { "NOT MET" }),
    );
    row(
        "index file size",
        format!("{:.1} MB", size as f64 / 1e6),
        format!("{size} bytes"),
    );
    row(
        "peak RSS of full generation",
        peak.map(|k| format!("{:.0} MB", k as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into()),
        if peak.is_some() {
            "max over runs, GNU time %M".into()
        } else {
            "no /usr/bin/time".into()
        },
    );
    Ok(())
}
