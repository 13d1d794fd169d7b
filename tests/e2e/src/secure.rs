//! Secured brokers for end-to-end tests: certificates made at test time
//! with the `openssl` command, a Tansu of the test's own (with SCRAM users
//! when asked), and `stunnel` in front of it to terminate TLS (Tansu 0.6's
//! own `--cert` does not serve TLS here). Tansu advertises the proxy's port,
//! so every connection a client makes after bootstrap goes through TLS too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, what: &str, log: &Path) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what} did not listen on port {port} within 30 s; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `stunnel` (Debian's `stunnel4`): `$SPK_E2E_STUNNEL`, else on PATH.
pub fn stunnel_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SPK_E2E_STUNNEL") {
        return PathBuf::from(p);
    }
    for name in ["stunnel4", "stunnel"] {
        if Command::new(name)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
        {
            return PathBuf::from(name);
        }
    }
    panic!("stunnel is not installed: the TLS tests need it (`cargo xtask test` installs Debian's stunnel4, or set SPK_E2E_STUNNEL)")
}

/// Certificates for one test: a CA, a broker certificate for 127.0.0.1 and
/// localhost, one for another name, one already expired, and a CA that
/// signed none of them.
#[derive(Debug)]
pub struct Certs {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub key: PathBuf,
    pub good: PathBuf,
    pub wrong_host: PathBuf,
    pub expired: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the `openssl` command is needed to make test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    pub fn make(dir: &Path) -> Certs {
        std::fs::create_dir_all(dir).unwrap();
        let subj_ca = "/CN=spk e2e CA";
        for (key, cert) in [("ca.key", "ca.pem"), ("other.key", "other.pem")] {
            openssl(
                dir,
                &[
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", subj_ca,
                ],
            );
        }
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "broker.key",
                "-out",
                "broker.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            dir.join("good.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("wrong.ext"),
            "subjectAltName=DNS:broker.elsewhere.example\n",
        )
        .unwrap();
        // -days 0: valid from now until now, expired a second later.
        for (out, ext, days) in [
            ("good.pem", "good.ext", "2"),
            ("wrong-host.pem", "wrong.ext", "2"),
            ("expired.pem", "good.ext", "0"),
        ] {
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "broker.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    out,
                    "-days",
                    days,
                    "-extfile",
                    ext,
                ],
            );
        }
        std::thread::sleep(Duration::from_millis(1100));
        Certs {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other.pem"),
            key: dir.join("broker.key"),
            good: dir.join("good.pem"),
            wrong_host: dir.join("wrong-host.pem"),
            expired: dir.join("expired.pem"),
        }
    }
}

/// A TLS-terminating proxy on a port of its own, forwarding to a plaintext
/// port. Killed on drop.
#[derive(Debug)]
pub struct Stunnel {
    child: Child,
    pub port: u16,
}

impl Stunnel {
    /// On a free port.
    pub fn start(dir: &Path, cert: &Path, key: &Path, to_port: u16) -> Stunnel {
        Self::start_on(dir, cert, key, free_port(), to_port)
    }

    /// On `port` (the one a broker advertises).
    pub fn start_on(dir: &Path, cert: &Path, key: &Path, port: u16, to_port: u16) -> Stunnel {
        let conf = dir.join(format!("stunnel-{port}.conf"));
        let log = dir.join(format!("stunnel-{port}.log"));
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\ndebug = 4\noutput = {}\n[kafka]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{to_port}\ncert = {}\nkey = {}\n",
                log.display(),
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        let child = Command::new(stunnel_bin())
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start stunnel");
        wait_listening(port, "stunnel", &log);
        Stunnel { child, port }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Tansu broker of the test's own, on `port`, advertising `advertised`
/// (a proxy's port, or its own). Killed on drop.
#[derive(Debug)]
pub struct OwnTansu {
    child: Child,
    bin: PathBuf,
    pub port: u16,
    pub work: PathBuf,
}

impl OwnTansu {
    /// `storage` such as `memory://tansu/` or `sqlite://tansu.db` (relative
    /// to `work`); `authentication` makes clients authenticate (SASL).
    pub fn start(
        work: &Path,
        storage: &str,
        port: u16,
        advertised: u16,
        authentication: bool,
    ) -> OwnTansu {
        Self::start_with(
            &crate::tansu_bin(),
            work,
            storage,
            port,
            advertised,
            authentication,
        )
    }

    /// [`OwnTansu::start`] with the binary given (the benchmarks have no
    /// `SPK_E2E_TANSU`).
    pub fn start_with(
        bin: &Path,
        work: &Path,
        storage: &str,
        port: u16,
        advertised: u16,
        authentication: bool,
    ) -> OwnTansu {
        std::fs::create_dir_all(work).unwrap();
        let log = work.join(format!("tansu-{port}-{}.log", crate::unique("run")));
        let out = std::fs::File::create(&log).unwrap();
        let mut c = Command::new(bin);
        c.args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised}"),
            "--storage-engine",
            storage,
        ]);
        if authentication {
            c.arg("--authentication");
        }
        let child = c
            .current_dir(work)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start tansu");
        wait_listening(port, "tansu", &log);
        OwnTansu {
            child,
            bin: bin.to_path_buf(),
            port,
            work: work.to_path_buf(),
        }
    }

    /// `tansu ARGS` against this broker's port (`--broker` is added).
    pub fn admin(&self, args: &[&str]) {
        let out = Command::new(&self.bin)
            .args(args)
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .current_dir(&self.work)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnTansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
