//! Writing an spfs filesystem repository the way spfs does, for the
//! synthetic repository generator (`cargo xtask gen-repo`) and for tests.
//!
//! What SPK needs to list, show and index a build is only: the spec YAML as
//! a payload, a spec tag pointing at it, and component tags. spfs also
//! stores a Blob object under `objects/` for each payload; SPK's `ls`,
//! `info` and `repo index` never read it (checked with SPK 0.44.0), so it
//! is not written. Component tags may point at any digest: nothing here
//! renders layers.
//!
//! Tags are written as spfs pushes them: a record appended to the stream
//! with the previous record's digest as its parent (nothing is written when
//! the target is unchanged), the time in RFC 3339 with microseconds, under
//! `<tag>.tag.lock`, through `<tag>.tag.work` renamed into place.
//! [`SpfsWriter::create_tag`] skips the lock and the rename when the tag is
//! new, which is what makes a 100,000-build repository quick to generate;
//! use it only for a repository nobody reads while it is written.
//!
//! Files are made 0666 and directories 0777, as spfs makes them (a shared
//! store for all users).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};

use super::digest::Digest;
use super::tag::{parse_tag_stream, TagRecord};
use super::SpfsError;

/// The spfs version written to `VERSION` (SPK 0.44.0 ships spfs 0.44.0).
pub const SPFS_VERSION: &str = "0.44.0";

const FILE_MODE: u32 = 0o666;
const DIR_MODE: u32 = 0o777;
/// How long to wait for another writer's tag lock (spfs waits 5 s).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Writes payloads and tags into an spfs filesystem repository.
#[derive(Debug, Clone)]
pub struct SpfsWriter {
    root: PathBuf,
    tags: PathBuf,
    payloads: PathBuf,
    user: String,
    fixed_time: Option<String>,
}

/// The process umask, read once (without `unsafe`) from `/proc/self/status`;
/// `None` when unknown. With a umask of 0, modes need no `chmod`.
fn umask() -> Option<u32> {
    static UMASK: OnceLock<Option<u32>> = OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
    })
}

fn needs_chmod() -> bool {
    umask() != Some(0)
}

/// Creates `dir` and any missing parents with mode 0777.
fn make_dirs(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {
            if needs_chmod() {
                fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = dir.parent().ok_or(e)?;
            make_dirs(parent)?;
            make_dirs(dir)
        }
        Err(e) => Err(e),
    }
}

/// Opens `path` for writing, creating missing parent directories.
/// `Ok(None)` when `exclusive` and the file already exists.
fn open_for_write(path: &Path, exclusive: bool) -> io::Result<Option<File>> {
    let mut opts = OpenOptions::new();
    opts.write(true).mode(FILE_MODE);
    if exclusive {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if exclusive && e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                make_dirs(parent)?;
            }
            match opts.open(path) {
                Ok(f) => f,
                Err(e) if exclusive && e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if needs_chmod() {
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(Some(file))
}

/// `name@host` for tag records.
fn default_user() -> String {
    let name = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{name}@{host}")
}

/// spfs's time text: RFC 3339, UTC as `+00:00`, at most microseconds.
pub fn spfs_time(t: DateTime<Utc>) -> String {
    t.trunc_subsecs(6).to_rfc3339()
}

/// Checks a tag path (`spk/spec/zlib/1.2.13/src`) and splits it into org
/// and name.
fn split_tag_path(path: &str) -> Result<(&str, &str), SpfsError> {
    let bad = |reason| SpfsError::BadTagPath {
        path: path.to_string(),
        reason,
    };
    if path.is_empty() {
        return Err(bad("it is empty"));
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(bad("it has an empty, `.` or `..` part"));
        }
        if part.starts_with('.') {
            return Err(bad("a part starts with `.` (hidden files are ignored)"));
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            return Err(bad(
                "spfs tag parts hold only letters, digits, `-`, `_`, `.` and `:`",
            ));
        }
    }
    Ok(match path.rsplit_once('/') {
        Some((org, name)) => (org, name),
        None => ("", path),
    })
}

/// A held `<tag>.tag.lock`, removed when dropped.
struct TagLock(PathBuf);

impl TagLock {
    fn take(tag_file: &Path) -> Result<TagLock, SpfsError> {
        let mut lock = tag_file.as_os_str().to_owned();
        lock.push(".lock");
        let lock = PathBuf::from(lock);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match open_for_write(&lock, true) {
                Ok(Some(_)) => return Ok(TagLock(lock)),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    return Err(SpfsError::write(
                        &lock,
                        io::Error::new(
                            io::ErrorKind::WouldBlock,
                            "the tag is locked by another writer (spfs would wait 5 s too)",
                        ),
                    ))
                }
                Err(e) => return Err(SpfsError::write(&lock, e)),
            }
        }
    }
}

impl Drop for TagLock {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.0) {
            tracing::warn!(lock = %self.0.display(), "cannot remove a tag lock: {e}");
        }
    }
}

impl SpfsWriter {
    /// Creates (or reuses) an spfs filesystem repository at `root`: `tags/`,
    /// `objects/`, `payloads/` and a `VERSION` file.
    pub fn create(root: impl AsRef<Path>) -> Result<SpfsWriter, SpfsError> {
        let root = root.as_ref().to_path_buf();
        for dir in ["tags", "objects", "payloads"] {
            let d = root.join(dir);
            make_dirs(&d).map_err(|e| SpfsError::write(&d, e))?;
        }
        let version = root.join("VERSION");
        if let Some(mut f) =
            open_for_write(&version, true).map_err(|e| SpfsError::write(&version, e))?
        {
            f.write_all(SPFS_VERSION.as_bytes())
                .map_err(|e| SpfsError::write(&version, e))?;
        }
        Ok(SpfsWriter {
            tags: root.join("tags"),
            payloads: root.join("payloads"),
            root,
            user: default_user(),
            fixed_time: None,
        })
    }

    /// Records tags as pushed by `user` (`name@host`).
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// Records every tag at this time instead of now, so that a generated
    /// repository is the same byte for byte on every run.
    pub fn with_fixed_time(mut self, time: DateTime<Utc>) -> Self {
        self.fixed_time = Some(spfs_time(time));
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn now(&self) -> String {
        self.fixed_time
            .clone()
            .unwrap_or_else(|| spfs_time(Utc::now()))
    }

    fn tag_file(&self, path: &str) -> PathBuf {
        let mut p = self.tags.join(path);
        p.as_mut_os_string().push(".tag");
        p
    }

    /// Stores `bytes` as a payload and returns its digest. An existing
    /// payload of that digest is left alone (same digest, same bytes).
    pub fn write_payload(&self, bytes: &[u8]) -> Result<Digest, SpfsError> {
        let digest = Digest::of(bytes);
        let path = digest.path_in(&self.payloads);
        if let Some(mut f) = open_for_write(&path, true).map_err(|e| SpfsError::write(&path, e))? {
            f.write_all(bytes).map_err(|e| SpfsError::write(&path, e))?;
        }
        Ok(digest)
    }

    fn record(&self, org: &str, name: &str, target: Digest, parent: Digest) -> TagRecord {
        TagRecord {
            org: org.to_string(),
            name: name.to_string(),
            target,
            user: self.user.clone(),
            time: self.now(),
            parent,
        }
    }

    /// Pushes `target` onto the tag `tag_path` (`spk/spec/zlib/1.2.13/src`)
    /// as spfs does: a new record whose parent is the current record's
    /// digest, or nothing when the tag already points at `target`. Returns
    /// the tag's current record.
    pub fn write_tag(&self, tag_path: &str, target: Digest) -> Result<TagRecord, SpfsError> {
        let (org, name) = split_tag_path(tag_path)?;
        let file = self.tag_file(tag_path);
        if let Some(parent) = file.parent() {
            make_dirs(parent).map_err(|e| SpfsError::write(parent, e))?;
        }
        let _lock = TagLock::take(&file)?;
        let mut records = match fs::read(&file) {
            Ok(bytes) => parse_tag_stream(&file, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(SpfsError::io(&file, e)),
        };
        let parent = match records.last() {
            Some(last) if last.target == target => return Ok(last.clone()),
            Some(last) => last.digest(),
            None => Digest::NULL,
        };
        let new = self.record(org, name, target, parent);
        records.push(new.clone());
        let mut work = file.as_os_str().to_owned();
        work.push(".work");
        let work = PathBuf::from(work);
        let result = (|| -> io::Result<()> {
            let mut f = open_for_write(&work, false)?
                .ok_or_else(|| io::Error::other("a non-exclusive open always returns a file"))?;
            let mut bytes = Vec::new();
            for r in &records {
                bytes.extend(r.encode_framed());
            }
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&work, &file)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&work);
            return Err(SpfsError::write(&file, e));
        }
        Ok(new)
    }

    /// Like [`write_tag`](Self::write_tag), but a tag that does not exist
    /// yet is written in place with no lock and no rename: fast, for
    /// generating a repository that nobody reads meanwhile.
    pub fn create_tag(&self, tag_path: &str, target: Digest) -> Result<TagRecord, SpfsError> {
        let (org, name) = split_tag_path(tag_path)?;
        let file = self.tag_file(tag_path);
        match open_for_write(&file, true).map_err(|e| SpfsError::write(&file, e))? {
            Some(mut f) => {
                let record = self.record(org, name, target, Digest::NULL);
                f.write_all(&record.encode_framed())
                    .map_err(|e| SpfsError::write(&file, e))?;
                Ok(record)
            }
            None => self.write_tag(tag_path, target),
        }
    }

    /// Removes the tag `tag_path` and its whole history, then any tag
    /// directories left empty. Returns false if there was no such tag.
    pub fn remove_tag(&self, tag_path: &str) -> Result<bool, SpfsError> {
        split_tag_path(tag_path)?;
        let file = self.tag_file(tag_path);
        match fs::symlink_metadata(&file) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(SpfsError::io(&file, e)),
        }
        {
            let _lock = TagLock::take(&file)?;
            match fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(SpfsError::write(&file, e)),
            }
        }
        let mut dir = file.parent();
        while let Some(d) = dir {
            if d == self.tags || !d.starts_with(&self.tags) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(true)
    }
}
