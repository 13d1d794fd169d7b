//! The Tansu broker for end-to-end tests: installed once from crates.io into
//! a cache outside the repository, started on a free loopback port, stopped
//! (killed and reaped) when the guard drops, whatever happened.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub const VERSION: &str = "0.6.0";

/// Where tools are cached: `$SPK_TOOLS_CACHE`, else `~/.cache/spk-dev`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SPK_TOOLS_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache/spk-dev")
}

/// The tansu binary, installing it first if it is not cached.
pub fn ensure_installed() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SPK_TANSU") {
        return Ok(PathBuf::from(p));
    }
    let root = cache_dir().join(format!("tansu-{VERSION}"));
    let bin = root.join("bin/tansu");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing tansu {VERSION} into {} (about 20 minutes on 2 cores, once)",
        root.display()
    );
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "install",
            "tansu",
            "--version",
            VERSION,
            "--locked",
            "--features",
            "dynostore,libsql",
            "--root",
        ])
        .arg(&root)
        .status()
        .context("cannot run cargo install tansu")?;
    if !status.success() || !bin.is_file() {
        bail!("cargo install tansu {VERSION} failed ({status})");
    }
    Ok(bin)
}

pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(l.local_addr()?.port())
}

/// A running Tansu; killed on drop.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Broker {
    /// Starts Tansu with `storage` (e.g. `memory://tansu/`) in `workdir`.
    pub fn start(bin: &Path, workdir: &Path, storage: &str, port: u16) -> Result<Broker> {
        std::fs::create_dir_all(workdir)?;
        let log = workdir.join(format!("tansu-{port}.log"));
        let out = std::fs::File::create(&log)?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                storage,
            ])
            .current_dir(workdir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut b = Broker { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = b.child.try_wait()? {
                bail!(
                    "tansu exited at start-up ({status}); log:\n{}",
                    b.log_tail()
                );
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(b);
            }
            if Instant::now() > deadline {
                bail!(
                    "tansu did not listen on port {port} within 30 s; log:\n{}",
                    b.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
