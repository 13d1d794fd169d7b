//! The index write lock, shared with SPK: `index/spk/index_v1.write_lock`.
//!
//! SPK's own `spk repo index` creates this file exclusively and writes
//! `host: <hostname>` and `pid: <pid>` (no trailing newline) into it; it
//! retries `lock_max_tries` times `lock_sleep_seconds` apart and gives up
//! with exit code 3. We use the same file, the same exclusive creation and
//! the same content, so SPK's writers and ours exclude each other.
//!
//! Where SPK is weak we do better, without breaking that protocol:
//! - the lock appears with its content in one step (a private file is
//!   written, then hard-linked to the lock's name, which fails if the lock
//!   exists, exactly like SPK's exclusive create), so a process killed while
//!   locking never leaves an empty lock nobody can attribute;
//! - a lock whose holder is a dead process on this host is taken over
//!   (SPK never notices stale locks). Takeover is race-free: a process
//!   removes a stale lock only while it holds the takeover guard
//!   (`index_v1.write_lock.takeover`, created exclusively), and only if the
//!   lock is still the very file it judged stale (same inode, same content),
//!   so two processes that find the same dead holder never both take the
//!   lock, and a live lock taken in between is never removed;
//! - the sleep between attempts is capped, so a huge `lock_sleep_seconds`
//!   cannot overflow a timer.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// The lock file's name beside the index.
pub const LOCK_FILE_NAME: &str = "index_v1.write_lock";

/// The longest single sleep between attempts (a day).
const MAX_SLEEP: Duration = Duration::from_secs(86_400);

/// How old a takeover guard must be before it is taken as left by a killed
/// process (taking a stale lock over takes microseconds).
const STALE_GUARD_AGE: Duration = Duration::from_secs(30);

/// Who holds a lock, as its file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    /// `None` when the file does not say (it is empty or not SPK's format).
    pub host: Option<String>,
    pub pid: Option<u32>,
    /// The lock file's modification time (SPK uses it as the run's start).
    pub since: Option<String>,
    /// Seconds since `since`, when it could be read.
    pub age_seconds: Option<u64>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.pid, &self.host) {
            (Some(pid), Some(host)) => write!(f, "process {pid} on host {host}")?,
            (Some(pid), None) => write!(f, "process {pid} on an unknown host")?,
            (None, Some(host)) => write!(f, "a process on host {host}")?,
            (None, None) => f.write_str("an unknown holder (the lock file does not say)")?,
        }
        if let (Some(since), Some(age)) = (&self.since, self.age_seconds) {
            write!(f, " since {since} ({age}s ago)")?;
        }
        Ok(())
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the index write lock {path} is held by {holder}; gave up after {tries} attempts {sleep_seconds}s apart (repositories.<name>.index.lock_max_tries / lock_sleep_seconds). If no index run is active, remove the lock file")]
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
    /// When the lock was taken.
    pub taken_at: SystemTime,
}

impl IndexLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
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

/// This machine's host name, as SPK writes it (`unknown host` when it
/// cannot be had).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown host".to_string())
}

/// SPK's lock content for this process.
pub fn lock_content(host: &str, pid: u32) -> String {
    format!("host: {host}\npid: {pid}")
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

/// Parses SPK's lock content (`host: H` and `pid: P` lines, any order).
pub fn parse_content(text: &str) -> (Option<String>, Option<u32>) {
    let mut host = None;
    let mut pid = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("host:") {
            host = Some(h.trim().to_string()).filter(|h| !h.is_empty());
        } else if let Some(p) = line.strip_prefix("pid:") {
            pid = p.trim().parse().ok();
        }
    }
    (host, pid)
}

/// What is known of the current lock file: its holder, content and inode.
struct Seen {
    holder: LockHolder,
    content: String,
    ino: u64,
}

fn look(path: &Path) -> Option<Seen> {
    let meta = std::fs::metadata(path).ok()?;
    let content = std::fs::read_to_string(path).unwrap_or_default();
    let (host, pid) = parse_content(&content);
    let mtime = meta.modified().ok();
    let holder = LockHolder {
        host,
        pid,
        since: mtime.map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }),
        age_seconds: mtime.and_then(|t| t.elapsed().ok()).map(|d| d.as_secs()),
    };
    Some(Seen {
        holder,
        content,
        ino: meta.ino(),
    })
}

/// Who holds the lock at `path` now, if anyone.
pub fn holder(path: &Path) -> Option<LockHolder> {
    look(path).map(|s| s.holder)
}

/// Takes over a lock whose holder is a dead process of this host, under the
/// takeover guard. Returns whether the stale lock was removed by us.
fn take_over_stale(path: &Path, seen: &Seen) -> bool {
    let guard = guard_path(path);
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&guard);
    match created {
        Ok(mut f) => {
            let _ = f.write_all(lock_content(&host_name(), std::process::id()).as_bytes());
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another process is taking over right now, or one was killed
            // doing so long ago: only then is the guard removed.
            let old = std::fs::metadata(&guard)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_GUARD_AGE);
            if old {
                let _ = std::fs::remove_file(&guard);
            }
            return false;
        }
        Err(_) => return false,
    }
    // Still the very file judged stale?
    let removed = match look(path) {
        Some(now) if now.ino == seen.ino && now.content == seen.content => {
            std::fs::remove_file(path).is_ok()
        }
        _ => false,
    };
    let _ = std::fs::remove_file(&guard);
    removed
}

fn guard_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".takeover");
    PathBuf::from(s)
}

/// Takes the lock at `path`: `max_tries` attempts `sleep` apart (at least
/// one attempt). `on_wait` is called with the holder before each sleep, so
/// a caller can report who holds the lock.
pub fn acquire(
    path: &Path,
    max_tries: u64,
    sleep: Duration,
    on_wait: &dyn Fn(&LockHolder),
) -> Result<IndexLock, LockError> {
    let me_host = host_name();
    let me_pid = std::process::id();
    let body = lock_content(&me_host, me_pid);
    let tries = max_tries.max(1);
    let sleep = sleep.min(MAX_SLEEP);
    let mut took_over = None;
    let mut takeovers = 0;
    let mut attempt = 0;
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let private = dir.join(format!(".{file_name}.{me_pid}.{seq}"));
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
                    taken_at: SystemTime::now(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => break Err(io(source)),
        }
        let seen = look(path);
        if let Some(s) = &seen {
            let dead_here = s.holder.host.as_deref() == Some(me_host.as_str())
                && s.holder.pid.is_some_and(|p| p != me_pid && !pid_alive(p));
            if dead_here && takeovers < 3 {
                takeovers += 1;
                if take_over_stale(path, s) {
                    tracing::warn!(
                        "took over the index write lock {}: its holder, {}, is no longer running",
                        path.display(),
                        s.holder
                    );
                    took_over = Some(s.holder.clone());
                }
                attempt -= 1;
                continue;
            }
        }
        let Some(seen) = seen else {
            // Released between our attempt and our look: try again now.
            attempt -= 1;
            continue;
        };
        if attempt >= tries {
            break Err(LockError::Busy {
                path: path.to_path_buf(),
                holder: seen.holder,
                tries,
                sleep_seconds: sleep.as_secs(),
            });
        }
        tracing::info!(
            "index write lock {} is held by {}; retrying in {}s ({attempt}/{tries})",
            path.display(),
            seen.holder,
            sleep.as_secs()
        );
        on_wait(&seen.holder);
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

    fn nowait(_: &LockHolder) {}

    #[test]
    fn spk_content_one_holder_then_busy_then_free() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(LOCK_FILE_NAME);
        let l = acquire(&p, 1, Duration::ZERO, &nowait).unwrap();
        // Exactly SPK's content: no trailing newline.
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            format!("host: {}\npid: {}", host_name(), std::process::id())
        );
        let waited = std::sync::atomic::AtomicU32::new(0);
        let e = acquire(&p, 2, Duration::from_millis(1), &|h| {
            assert_eq!(h.pid, Some(std::process::id()));
            waited.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
        .unwrap_err();
        assert_eq!(waited.load(std::sync::atomic::Ordering::SeqCst), 1);
        let msg = e.to_string();
        assert!(matches!(e, LockError::Busy { tries: 2, .. }), "{msg}");
        assert!(
            msg.contains(&format!("process {}", std::process::id())) && msg.contains("ago"),
            "{msg}"
        );
        drop(l);
        assert!(!p.exists());
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(acquire(&p, 1, Duration::ZERO, &nowait)
            .unwrap()
            .took_over
            .is_none());
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn dead_holder_on_this_host_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(LOCK_FILE_NAME);
        let pid = dead_pid();
        std::fs::write(&p, lock_content(&host_name(), pid)).unwrap();
        let stale = d.path().join(format!(".{LOCK_FILE_NAME}.{pid}.0"));
        std::fs::write(&stale, "").unwrap();
        let l = acquire(&p, 1, Duration::ZERO, &nowait).unwrap();
        assert_eq!(l.took_over.as_ref().and_then(|h| h.pid), Some(pid));
        remove_stale_private_files(&p);
        assert!(!stale.exists());
        assert_eq!(holder(&p).unwrap().pid, Some(std::process::id()));
        assert!(!guard_path(&p).exists());
    }

    #[test]
    fn takeover_is_race_free() {
        // Many threads find the same dead holder at once: exactly one of
        // them holds the lock at any moment, and no live lock is removed.
        for _ in 0..20 {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join(LOCK_FILE_NAME);
            std::fs::write(&p, lock_content(&host_name(), dead_pid())).unwrap();
            let holding = std::sync::atomic::AtomicU32::new(0);
            let max = std::sync::atomic::AtomicU32::new(0);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        // Same pid for every thread: the lock content is
                        // ours, so threads wait for each other as processes
                        // would.
                        if let Ok(l) = acquire(&p, 200, Duration::from_millis(1), &nowait) {
                            let n = holding.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                            max.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(2));
                            holding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                            drop(l);
                        }
                    });
                }
            });
            assert_eq!(max.load(std::sync::atomic::Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn live_foreign_or_unreadable_holders_are_respected() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(LOCK_FILE_NAME);
        std::fs::write(&p, "host: some-other-host\npid: 1").unwrap();
        let e = acquire(&p, 1, Duration::ZERO, &nowait)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("some-other-host") && e.contains("process 1"),
            "{e}"
        );
        // pid 1 on this host is alive.
        std::fs::write(&p, lock_content(&host_name(), 1)).unwrap();
        assert!(acquire(&p, 1, Duration::ZERO, &nowait).is_err());
        // Content that is not SPK's: held by an unknown holder.
        std::fs::write(&p, "").unwrap();
        let e = acquire(&p, 1, Duration::ZERO, &nowait)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown holder"), "{e}");
    }

    #[test]
    fn huge_sleep_is_capped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(LOCK_FILE_NAME);
        std::fs::write(&p, "host: elsewhere\npid: 7").unwrap();
        let e = acquire(&p, 1, Duration::from_secs(u64::MAX), &nowait).unwrap_err();
        assert!(matches!(
            e,
            LockError::Busy {
                sleep_seconds: 86_400,
                ..
            }
        ));
    }
}
