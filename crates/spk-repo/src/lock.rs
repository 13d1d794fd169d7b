//! The index write lock: a file beside the index holding who holds it.
//!
//! Created with `create_new`, so exactly one process holds it. A lock whose
//! holder is a dead process on this same host is taken over (SPK never
//! notices such stale locks). The lock file is removed when the guard drops.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Who holds a lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub since: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} on host {} since {}",
            self.pid, self.host, self.since
        )
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the index write lock {path} is held by {holder}; gave up after {tries} attempts {sleep_seconds}s apart (repositories.<name>.index.lock_max_tries / lock_sleep_seconds)")]
    Busy {
        path: PathBuf,
        holder: LockHolder,
        tries: u64,
        sleep_seconds: u64,
    },
    #[error("cannot create the index write lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A held lock; dropping it removes the lock file.
#[derive(Debug)]
pub struct IndexLock {
    path: PathBuf,
    /// Set when a dead process's lock was taken over.
    pub took_over: Option<LockHolder>,
}

impl Drop for IndexLock {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(
                "cannot remove the index write lock {}: {e}",
                self.path.display()
            );
        }
    }
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// Whether a process with this pid exists on this host.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks whether the
    // process exists and may be signalled. It has no memory effects.
    #[allow(unsafe_code)]
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn read_holder(path: &Path) -> Option<LockHolder> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Takes the lock at `path`: `max_tries` attempts `sleep` apart (at least
/// one attempt).
pub fn acquire(path: &Path, max_tries: u64, sleep: Duration) -> Result<IndexLock, LockError> {
    let me = LockHolder {
        host: host_name(),
        pid: std::process::id(),
        since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let body = serde_json::to_string(&me).unwrap_or_default();
    let tries = max_tries.max(1);
    let mut took_over = None;
    let mut takeovers = 0;
    let mut attempt = 0;
    // The lock appears with its content in one step: the holder is written
    // to a private file which is then hard-linked to the lock's name (which
    // fails if the lock exists). A process killed at any moment leaves
    // either no lock or a complete one, which a later run can take over.
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let private = dir.join(format!(".{file_name}.{}.{seq}", me.pid));
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::File::create(&private)
        .and_then(|mut f| {
            f.write_all(body.as_bytes())?;
            f.sync_all()
        })
        .map_err(io)?;
    let result = loop {
        attempt += 1;
        match std::fs::hard_link(&private, path) {
            Ok(()) => {
                break Ok(IndexLock {
                    path: path.to_path_buf(),
                    took_over: took_over.clone(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => break Err(io(source)),
        }
        // An unreadable lock (written by another tool) is taken as held by
        // an unknown, live holder.
        let holder = read_holder(path);
        if let Some(h) = &holder {
            if h.host == me.host && !pid_alive(h.pid) && takeovers < 3 {
                takeovers += 1;
                // Re-read just before removing, so a lock another process
                // has just taken over is not removed.
                if read_holder(path).as_ref() == Some(h) {
                    tracing::warn!(
                        "taking over the index write lock {}: its holder, {h}, is no longer running",
                        path.display()
                    );
                    let _ = std::fs::remove_file(path);
                    took_over = Some(h.clone());
                }
                attempt -= 1;
                continue;
            }
        }
        if attempt >= tries {
            break Err(LockError::Busy {
                path: path.to_path_buf(),
                holder: holder.unwrap_or(LockHolder {
                    host: "unknown".into(),
                    pid: 0,
                    since: "an unknown time (the lock file cannot be read; remove it if no index run is active)".into(),
                }),
                tries,
                sleep_seconds: sleep.as_secs(),
            });
        }
        tracing::info!(
            "index write lock {} is held by {}; retrying in {}s ({attempt}/{tries})",
            path.display(),
            holder
                .as_ref()
                .map(|h| h.to_string())
                .unwrap_or_else(|| "an unknown holder".into()),
            sleep.as_secs()
        );
        std::thread::sleep(sleep);
    };
    let _ = std::fs::remove_file(&private);
    result
}

/// Removes private lock files (`.<lock name>.<pid>.<n>`) left by processes of
/// this host that were killed while taking the lock.
pub fn remove_stale_private_files(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let pid = n
            .strip_prefix(&prefix)
            .and_then(|p| p.split('.').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !pid_alive(pid) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_then_busy_then_free() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let l = acquire(&p, 1, Duration::ZERO).unwrap();
        let h = read_holder(&p).unwrap();
        assert_eq!(h.pid, std::process::id());
        let e = acquire(&p, 2, Duration::from_millis(1)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, LockError::Busy { tries: 2, .. }), "{msg}");
        assert!(
            msg.contains(&format!("process {}", std::process::id())) && msg.contains("since"),
            "{msg}"
        );
        drop(l);
        assert!(!p.exists());
        // No private file is left behind.
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(acquire(&p, 1, Duration::ZERO).unwrap().took_over.is_none());
    }

    #[test]
    fn dead_holder_on_this_host_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        // A child that has exited and been reaped: its pid is dead.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = LockHolder {
            host: host_name(),
            pid,
            since: "2020-01-01T00:00:00Z".into(),
        };
        std::fs::write(&p, serde_json::to_string(&dead).unwrap()).unwrap();
        // A private file left by the dead process while it took the lock.
        let stale = d.path().join(format!(".x.lock.{pid}.0"));
        std::fs::write(&stale, "").unwrap();
        let l = acquire(&p, 1, Duration::ZERO).unwrap();
        assert_eq!(l.took_over.as_ref(), Some(&dead));
        remove_stale_private_files(&p);
        assert!(!stale.exists());
        assert_eq!(read_holder(&p).unwrap().pid, std::process::id());
    }

    #[test]
    fn live_or_foreign_holders_are_respected() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let other_host = LockHolder {
            host: "some-other-host".into(),
            pid: 1,
            since: "2020-01-01T00:00:00Z".into(),
        };
        std::fs::write(&p, serde_json::to_string(&other_host).unwrap()).unwrap();
        let e = acquire(&p, 1, Duration::ZERO).unwrap_err().to_string();
        assert!(
            e.contains("some-other-host") && e.contains("2020-01-01"),
            "{e}"
        );
        // pid 1 on this host is alive.
        let live = LockHolder {
            host: host_name(),
            ..other_host
        };
        std::fs::write(&p, serde_json::to_string(&live).unwrap()).unwrap();
        assert!(acquire(&p, 1, Duration::ZERO).is_err());
        assert!(pid_alive(std::process::id()));
    }
}
