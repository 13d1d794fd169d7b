//! The index a run replaces is kept aside under a hidden name, and the next
//! run either writes its new index into that file or removes it.
//!
//! Why: at 100,000 builds the index is 89 MB. Letting the replaced file go
//! at the end of a run cost 21 ms here after the new index was in place
//! (its page cache freed, and its blocks discarded synchronously by a
//! filesystem mounted with `discard`); a fresh 89 MB file costs page cache
//! and blocks to allocate. Writing the new index into the file replaced the
//! time before costs neither: an update of one package went from 71.7 to
//! 48.9 ms (medians of 21 alternated runs).
//!
//! When is overwriting a replaced index safe? Readers map the index (we
//! do, and SPK keeps its map for as long as its loaded index lives), and a
//! reader that opened it before it was replaced keeps reading that file. So a retired file is written into only when
//! the kernel says nothing else has it open: a write lease
//! (`F_SETLEASE`, `F_WRLCK`) is granted only when no other open file,
//! including one kept alive by a memory map, refers to it; it is taken and
//! at once released, as a check. After that nothing can open it through
//! the index's name (it is no longer the index), and it has no other name
//! (one link). Leases only know the openers of this host, so this is done
//! only on local filesystems (ext4, xfs, btrfs, tmpfs), and not when this
//! host's NFS server exports the directory (`/proc/fs/nfs/exports`: an
//! NFSv3 client reads without an open file on the server, so its map of
//! the old index would not be seen). Elsewhere (NFS, any other
//! filesystem), and whenever a check fails, the retired file is removed
//! beside the run's work and a fresh file is written.

use std::fs::File;
use std::path::{Path, PathBuf};

/// The prefix of the hidden name a replaced index keeps until the next run.
pub const RETIRED_PREFIX: &str = ".index_v1.fb_retired_";

/// The files in `dir` whose names start with `prefix` (the replaced
/// indexes earlier runs left, [`RETIRED_PREFIX`]; temp files).
pub fn list(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

/// `<dir>/<prefix><pid>_<ns>`: a name no other run uses.
pub fn unique_path(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!(
        "{prefix}{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ))
}

/// Gives the index at `index_path` a second, hidden name in `dir`, so that
/// renaming a new index over it does not free it. `None` when there is no
/// index, or the filesystem has no hard links (the rename then frees it).
pub fn keep_aside(dir: &Path, index_path: &Path) -> Option<PathBuf> {
    let aside = unique_path(dir, RETIRED_PREFIX);
    match std::fs::hard_link(index_path, &aside) {
        Ok(()) => Some(aside),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!("the old index is freed now: no second name for it ({e})");
            }
            None
        }
    }
}

/// Of the `retired` files, one renamed to `temp` and opened for writing if
/// nothing else can be reading it (see the module docs); the rest, and that
/// one if it cannot be reused (under `temp`), are left in `retired` to be
/// removed. Called under the index lock.
pub fn take_reusable(retired: &mut Vec<PathBuf>, temp: &Path) -> Option<File> {
    let candidate = retired.pop()?;
    if let Err(e) = std::fs::rename(&candidate, temp) {
        tracing::debug!("cannot take {}: {e}", candidate.display());
        retired.push(candidate);
        return None;
    }
    use std::os::unix::fs::OpenOptionsExt;
    // Not through a symbolic link: whoever can write the index directory
    // must not be able to point a run at another file to overwrite.
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(temp)
    {
        Ok(file) if unread(&file, temp) => Some(file),
        Ok(_) => {
            tracing::debug!("the replaced index may still be read: not reused");
            retired.push(temp.to_path_buf());
            None
        }
        Err(e) => {
            tracing::debug!("cannot open the replaced index to reuse it: {e}");
            retired.push(temp.to_path_buf());
            None
        }
    }
}

/// Removes `paths`, saying why one could not be removed.
pub fn remove(paths: Vec<PathBuf>) {
    for path in paths {
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("could not remove {}: {e}", path.display());
            }
        }
    }
}

/// Whether `file` (at `path`) is a plain file with one name, on a local
/// filesystem this host does not export over NFS, that no other open file
/// refers to.
fn unread(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match file.metadata() {
        Ok(m) if m.is_file() && m.nlink() == 1 => {
            local(file) && !nfs_exported(path) && no_other_opener(file)
        }
        _ => false,
    }
}

/// Whether this host's NFS server exports a directory that holds `path`.
fn nfs_exported(path: &Path) -> bool {
    match std::fs::read_to_string("/proc/fs/nfs/exports") {
        Ok(text) => {
            let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            exported_in(&text, &path)
        }
        // No NFS server running here.
        Err(_) => false,
    }
}

/// Whether the exports table `text` (as in `/proc/fs/nfs/exports`: a path,
/// with space, tab, newline and backslash written as octal escapes, then
/// its clients; `#` comments) has a path that holds `path`.
fn exported_in(text: &str, path: &Path) -> bool {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split([' ', '\t']).next())
        .filter(|p| !p.is_empty())
        .any(|p| path.starts_with(unescape_octal(p)))
}

/// `\ooo` octal escapes to their bytes.
fn unescape_octal(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Whether replaced indexes can be written into on the filesystem of `dir`
/// (for tests: what to expect there).
pub fn reusable_here(dir: &Path) -> bool {
    File::open(dir).is_ok_and(|d| local(&d))
}

/// Whether the filesystem of `file` is one whose leases see every opener.
#[cfg(target_os = "linux")]
fn local(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    const EXT: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683E;
    const TMPFS: i64 = 0x0102_1994;
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: fstatfs writes a statfs into the buffer, which is large
    // enough, and reads nothing else; the fd is open for the call.
    #[allow(unsafe_code)]
    let (r, buf) = unsafe {
        let r = libc::fstatfs(file.as_raw_fd(), buf.as_mut_ptr());
        (r, buf.assume_init())
    };
    #[allow(clippy::unnecessary_cast)]
    let kind = buf.f_type as i64;
    r == 0 && [EXT, XFS, BTRFS, TMPFS].contains(&kind)
}

#[cfg(not(target_os = "linux"))]
fn local(_: &File) -> bool {
    false
}

/// Takes a write lease on `file` and releases it at once: granted only if
/// no other open file refers to it. A lease break meanwhile (someone opening
/// it in that instant) is signalled with SIGURG, which is ignored unless
/// handled, rather than SIGIO, which would end the process.
#[cfg(target_os = "linux")]
fn no_other_opener(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    /// Linux's `F_SETSIG` (`<fcntl.h>`, the same on every architecture),
    /// which the libc crate does not export.
    const F_SETSIG: libc::c_int = 10;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on an fd this File owns, with integer arguments only.
    #[allow(unsafe_code)]
    unsafe {
        if libc::fcntl(fd, F_SETSIG, libc::SIGURG) == -1 {
            return false;
        }
        if libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) == -1 {
            return false;
        }
        libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) != -1
    }
}

#[cfg(not(target_os = "linux"))]
fn no_other_opener(_: &File) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORTS: &str = "# Version 1.1\n# Path Client(Flags) # IPs\n/srv/spk\t*(rw,root_squash,sync,wdelay,no_subtree_check,sec=1)\n/data/my\\040repos\t10.0.0.0/8(ro,sec=1)\n";

    #[test]
    fn a_directory_under_an_export_is_exported() {
        for (path, exported) in [
            ("/srv/spk/origin/index/spk/x", true),
            ("/srv/spk", true),
            ("/srv/spkother/index", false),
            ("/srv", false),
            ("/data/my repos/origin/index/spk/x", true),
            ("/data/my\\040repos/origin", false),
            ("/home/origin", false),
        ] {
            assert_eq!(exported_in(EXPORTS, Path::new(path)), exported, "{path}");
        }
        assert!(!exported_in("# Version 1.1\n", Path::new("/srv/spk")));
        assert!(!exported_in("", Path::new("/")));
    }

    #[test]
    fn octal_escapes_are_read_and_others_kept() {
        assert_eq!(unescape_octal("/a\\040b\\011c"), PathBuf::from("/a b\tc"));
        assert_eq!(unescape_octal("/a\\134b"), PathBuf::from("/a\\b"));
        assert_eq!(unescape_octal("/a\\9b\\"), PathBuf::from("/a\\9b\\"));
    }
}
