//! `cargo xtask bench index [--runs N] [--packages N --versions V --builds B] [--with-spk]`:
//! the index benchmarks, as medians of whole-process runs of the release
//! `spk` binary on a generated spfs repository (default 5,000 x 4 x 5 =
//! 100,000 builds, cached under target/bench/ and reused).
//!
//! - floor: one `cat` of every spec tag and spec payload plus a listing of
//!   the component tags (`find | xargs cat`, the reading any indexer must
//!   do, done serially by the kernel's fastest path);
//! - full generation, with its peak RSS (GNU time's %M);
//! - `--update` of one package (at least 15 runs);
//! - `spk repo ls --repo DIR <package>` from the index, whole process;
//! - the index file's size;
//! - with `--with-spk`: SPK 0.44.0's own `spk repo index` on the same
//!   repository, once (it takes minutes at 100,000 builds).
//!
//! Nothing here is a test: figures are printed with their goals beside them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::bench_util::median;
use crate::genrepo;
use crate::util;

const USAGE: &str =
    "usage: cargo xtask bench index [--runs N] [--packages N --versions V --builds B] [--with-spk]";

struct Opts {
    runs: usize,
    packages: usize,
    versions: usize,
    builds: usize,
    with_spk: bool,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        runs: 5,
        packages: 5000,
        versions: 4,
        builds: 5,
        with_spk: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--with-spk" {
            o.with_spk = true;
            continue;
        }
        if a == "--help" || a == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
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
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    Ok(o)
}

/// One whole-process run: wall seconds and, with GNU time, peak RSS in KiB.
fn timed(spk: &Path, config: &Path, args: &[&str]) -> Result<(f64, Option<u64>)> {
    let mut cmd = Command::new(spk);
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("SPK_CONFIG");
    timed_cmd(cmd, &format!("spk {args:?}"))
}

/// Runs `cmd` under GNU time (when there is one): wall seconds, peak RSS.
fn timed_cmd(inner: Command, what: &str) -> Result<(f64, Option<u64>)> {
    let gnu_time = Path::new("/usr/bin/time");
    let rss_file = std::env::temp_dir().join(format!("spk-bench-rss-{}", std::process::id()));
    let mut cmd = if gnu_time.exists() {
        let mut c = Command::new(gnu_time);
        c.arg("-f").arg("%M").arg("-o").arg(&rss_file);
        c.arg(inner.get_program()).args(inner.get_args());
        if let Some(d) = inner.get_current_dir() {
            c.current_dir(d);
        }
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    } else {
        inner
    };
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
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
        .join(format!("spfs-repo-{packages}x{versions}x{builds}"));
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

/// The floor: every spec tag and spec payload read once by `cat`, and the
/// component tags listed, as a shell pipeline (serial).
fn floor_cmd(repo: &Path) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(
            "find tags/spk/spec -name '*.tag' -print0 | xargs -0 cat > /dev/null && \
             find payloads -type f -print0 | xargs -0 cat > /dev/null && \
             find tags/spk/pkg > /dev/null",
        )
        .current_dir(repo);
    c
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
    timed_cmd(floor_cmd(&repo), "the floor")?;
    timed(&spk, &config, &["repo", "index", "--repo", &r])?;

    let mut floor = Vec::new();
    for _ in 0..o.runs {
        floor.push(timed_cmd(floor_cmd(&repo), "the floor")?.0);
    }
    let (full, rss) = runs(o.runs, &spk, &config, &["repo", "index", "--repo", &r])?;
    let one = genrepo::package_name(o.packages / 2);
    // An update takes a fraction of a second: more runs for its median.
    let (update, _) = runs(
        o.runs.max(15),
        &spk,
        &config,
        &["repo", "index", "--repo", &r, "--update", &one],
    )?;
    // `ls` is timed as the spk process alone: under GNU time (for peak
    // memory, which `ls` does not need) a second process's start-up, a
    // millisecond or more, would be in the figure.
    let ls = (0..o.runs.max(10))
        .map(|_| {
            let mut c = Command::new(&spk);
            c.arg("--config")
                .arg(&config)
                .args(["repo", "ls", "--repo", &r, &one])
                .env_remove("SPK_CONFIG");
            let t = Instant::now();
            let out = c.output().context("cannot run spk repo ls")?;
            let secs = t.elapsed().as_secs_f64();
            if !out.status.success() {
                bail!("spk repo ls failed ({})", out.status);
            }
            Ok(secs)
        })
        .collect::<Result<Vec<f64>>>()?;
    let index_file: PathBuf = repo.join("index/spk/index_v1.fb");
    let size = std::fs::metadata(&index_file)
        .with_context(|| format!("no index at {}", index_file.display()))?
        .len();
    let spk_real = if o.with_spk {
        Some(spk_real_run(&repo, &bench)?)
    } else {
        None
    };

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
    println!("{:<48} {:>12}   goal", "measure", "figure");
    let row = |what: &str, fig: String, goal: String| println!("{what:<48} {fig:>12}   {goal}");
    let met = |ok: bool| if ok { "MET" } else { "NOT MET" };
    row(
        "floor: cat every spec tag + payload, list pkg tags",
        ms(floor),
        String::new(),
    );
    row(
        "full generation",
        ms(full),
        format!("<= floor: {:.2}x {}", full / floor, met(full <= floor)),
    );
    row(
        &format!("--update {one}"),
        ms(update),
        format!(
            "< 2% of full: {:.2}% {}",
            100.0 * update / full,
            met(update < 0.02 * full)
        ),
    );
    row(
        &format!("spk repo ls --repo R {one}"),
        ms(ls),
        format!("< 5 ms {}", met(ls < 0.005)),
    );
    row(
        "index file size",
        format!("{:.1} MB", size as f64 / 1e6),
        format!("{size} bytes"),
    );
    let spk_peak = spk_real.as_ref().and_then(|s| s.1);
    row(
        "peak RSS of full generation",
        peak.map(|k| format!("{:.0} MB", k as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into()),
        match (peak, spk_peak) {
            (Some(p), Some(s)) => format!(
                "< 10% of SPK's: {:.1}% {}",
                100.0 * p as f64 / s as f64,
                met((p as f64) < 0.1 * s as f64)
            ),
            (Some(_), None) => "max over runs, GNU time %M (SPK's: --with-spk)".into(),
            _ => "no /usr/bin/time".into(),
        },
    );
    if let Some((secs, rss, size)) = spk_real {
        row(
            "SPK 0.44.0 spk repo index (one run)",
            ms(secs),
            format!(
                "ours 25x faster: {:.1}x {}",
                secs / full,
                met(secs / full >= 25.0)
            ),
        );
        row(
            "SPK 0.44.0 peak RSS, index size",
            rss.map(|k| format!("{:.0} MB", k as f64 / 1024.0))
                .unwrap_or_else(|| "n/a".into()),
            format!("{:.1} MB index", size as f64 / 1e6),
        );
    }
    Ok(())
}

/// SPK's own `spk repo index` on the bench repository, once: seconds, peak
/// RSS, index size. Our index is regenerated afterwards.
fn spk_real_run(repo: &Path, bench: &Path) -> Result<(f64, Option<u64>, u64)> {
    let spk_real = crate::test::spk_real()?;
    let home = bench.join("spk-real-home");
    let cfg = home.join("config");
    std::fs::create_dir_all(cfg.join("spfs"))?;
    std::fs::create_dir_all(cfg.join("spk"))?;
    std::fs::write(
        cfg.join("spfs/spfs.toml"),
        format!(
            "[storage]\nroot = \"{}\"\n[remote.origin]\naddress = \"file://{}\"\n",
            home.join("local").display(),
            repo.display()
        ),
    )?;
    std::fs::write(
        cfg.join("spk/spk.yaml"),
        "repositories:\n  origin:\n    use_index: true\n",
    )?;
    let mut c = Command::new(&spk_real);
    c.args(["repo", "index", "-r", "origin"])
        .env("XDG_CONFIG_HOME", &cfg)
        .env("HOME", &home);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPK_") || k.starts_with("SPFS_") {
            c.env_remove(k);
        }
    }
    eprintln!("bench: running SPK 0.44.0's spk repo index once (minutes at 100,000 builds)");
    let (secs, rss) = timed_cmd(c, "SPK's spk repo index")?;
    let size = std::fs::metadata(repo.join("index/spk/index_v1.fb"))?.len();
    Ok((secs, rss, size))
}
