//! Index generation: full, or `--update` of some packages and versions, of
//! an spfs repository's SPK index `index/spk/index_v1.fb`.
//!
//! The order of a run, and why:
//! 1. the write lock `index_v1.write_lock` is taken, SPK's own lock, so
//!    SPK's `spk repo index` and ours exclude each other (see [`crate::lock`]);
//! 2. "index started" is sent, and a timer thread sends "index in-progress"
//!    every `update_event_send_freq_ms` from then on, independent of the
//!    work, so a slow read cannot silence it;
//! 3. only now is the old index read (SPK reads it before locking, so two
//!    concurrent SPK updates can lose each other's changes);
//! 4. the repository is read in parallel ([`crate::walk`]); for an update,
//!    only the named packages or versions are read, and every other package
//!    of an index we wrote is copied byte for byte ([`crate::fb`]);
//! 5. a temp file beside the index is written and synced, read back and
//!    checked (root, packages vector, global vars, and every package blob
//!    against the crc32 it had when it was encoded and verified with SPK's
//!    own verifier limits; see [`crate::fb`]), then renamed over the index
//!    and the directory synced: at every moment there is a complete index
//!    (SPK deletes the old index before renaming, leaving a moment with none);
//!    the old index keeps a hidden second name, and the next run writes
//!    its index into that file when nothing can be reading it, or removes
//!    it beside its work ([`crate::retire`]);
//! 6. "index completed" is sent. A reporter that fails is recorded and
//!    reported in the summary; it never stops or corrupts the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use spk_messaging_core::config::IndexConfig;
use spk_messaging_core::{
    IndexEvent, IndexStatusMessage, IndexStatusReporter, PkgIdent, RepoAddress, ReportError,
};

use crate::fb::{self, IndexFile, PackagePart};
use crate::indexed::PackageIndex;
use crate::lock::{self, LockError, LockHolder};
use crate::problem::SpecProblem;
use crate::retire;
use crate::spfs::SpfsRepo;
use crate::v0;
use crate::walk::{self, ProgressFn, ReadHook, Want};

/// The index file's name inside `<root>/index/spk/`.
pub const INDEX_FILE_NAME: &str = "index_v1.fb";
/// The prefix of the temp file a run writes before renaming it in (SPK's).
pub const TEMP_PREFIX: &str = "index_v1.fb_being_generated_";
pub use crate::retire::RETIRED_PREFIX;

/// Where a repository's index lives.
pub fn index_dir(root: &Path) -> PathBuf {
    root.join("index").join("spk")
}
pub fn index_path(root: &Path) -> PathBuf {
    index_dir(root).join(INDEX_FILE_NAME)
}

/// One index run.
#[derive(Clone)]
pub struct IndexRequest {
    pub repo_name: String,
    pub address: RepoAddress,
    pub index_config: IndexConfig,
    /// Empty: full generation. Otherwise packages (all their versions) or
    /// package versions to re-read; a build given is taken as its version.
    pub updates: Vec<PkgIdent>,
    /// Spec problems are fatal; nothing is written.
    pub strict: bool,
    pub progress: Option<ProgressFn>,
    /// Test hook: called before each spec is read.
    pub read_hook: Option<ReadHook>,
    /// Test hook: sleep after the new index is verified and before it is
    /// renamed in, so a test can kill the process mid-write.
    pub pause_before_rename: Option<Duration>,
}

impl std::fmt::Debug for IndexRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexRequest")
            .field("repo_name", &self.repo_name)
            .field("address", &self.address)
            .field("index_config", &self.index_config)
            .field("updates", &self.updates)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

impl IndexRequest {
    pub fn new(
        repo_name: impl Into<String>,
        address: RepoAddress,
        index_config: IndexConfig,
    ) -> Self {
        IndexRequest {
            repo_name: repo_name.into(),
            address,
            index_config,
            updates: Vec::new(),
            strict: false,
            progress: None,
            read_hook: None,
            pause_before_rename: None,
        }
    }
}

/// How the index was produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "mode", content = "reason")]
pub enum IndexMode {
    Full,
    Update,
    /// `--update` was asked but there was no index yet.
    FullNoIndex,
    /// `--update` was asked but the old index could not be read.
    FullUnreadableIndex(String),
}

impl std::fmt::Display for IndexMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexMode::Full => f.write_str("full generation"),
            IndexMode::Update => f.write_str("update"),
            IndexMode::FullNoIndex => f.write_str("full generation (there was no index to update)"),
            IndexMode::FullUnreadableIndex(r) => {
                write!(f, "full generation (the old index could not be read: {r})")
            }
        }
    }
}

/// Packages, versions, builds and deprecated builds in an index.
pub use crate::fb::IndexCounts as Counts;

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IndexSummary {
    pub repo_name: String,
    pub repo_address: String,
    pub index_path: PathBuf,
    #[serde(flatten)]
    pub mode: IndexMode,
    /// The packages and versions re-read by an update.
    pub updated: Vec<String>,
    /// Packages of the old index copied unchanged (an update).
    pub kept: u64,
    #[serde(flatten)]
    pub counts: Counts,
    pub global_vars: u64,
    pub skipped: Vec<SpecProblem>,
    pub elapsed_seconds: f64,
    /// Seconds since the epoch, carried by every status message of the run.
    pub start: i64,
    pub index_bytes: u64,
    /// Where status messages went.
    pub reporter: String,
    #[serde(serialize_with = "ser_failures")]
    pub report_failures: Vec<ReportError>,
    /// A dead process's lock that was taken over.
    pub lock_taken_over: Option<LockHolder>,
}

fn ser_failures<S: serde::Serializer>(v: &[ReportError], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|e| e.to_string()))
}

/// Why a run wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Repo(#[from] crate::spfs::SpfsError),
    #[error("the index write lock {path} is held by {holder}; gave up after {tries} attempts {sleep_seconds}s apart (repositories.<name>.index.lock_max_tries / lock_sleep_seconds). If no index run is active, remove the lock file")]
    LockBusy {
        path: PathBuf,
        holder: LockHolder,
        tries: u64,
        sleep_seconds: u64,
    },
    #[error("cannot take the index write lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} spec problem(s) with --strict; nothing was written:\n{}", .problems.len(), .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Strict { problems: Vec<SpecProblem> },
    #[error("cannot write the index {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the new index {path} failed verification and was not installed: {source}")]
    Verify { path: PathBuf, source: fb::FbError },
}

impl From<LockError> for IndexError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Busy {
                path,
                holder,
                tries,
                sleep_seconds,
            } => IndexError::LockBusy {
                path,
                holder,
                tries,
                sleep_seconds,
            },
            LockError::Io { path, source } => IndexError::Lock { path, source },
        }
    }
}

/// Sends status messages, collecting failures.
struct Status<'a> {
    reporter: &'a dyn IndexStatusReporter,
    repo: String,
    name: String,
    start: i64,
    failures: Mutex<Vec<ReportError>>,
}

impl Status<'_> {
    fn send(&self, event: IndexEvent) {
        self.send_as(event, None)
    }

    /// `full` says, for "completed", whether the run was a full generation.
    fn send_as(&self, event: IndexEvent, full: Option<bool>) {
        let msg = IndexStatusMessage {
            event,
            repo: self.repo.clone(),
            name: self.name.clone(),
            start: self.start,
        };
        let sent = match full {
            Some(full) => self.reporter.report_completed(&msg, full),
            None => self.reporter.report(&msg),
        };
        if let Err(e) = sent {
            tracing::warn!("status: {e}");
            if let Ok(mut f) = self.failures.lock() {
                f.push(e);
            }
        }
    }
}

/// Runs one index generation or update.
pub fn run_index(
    req: &IndexRequest,
    reporter: &dyn IndexStatusReporter,
) -> Result<IndexSummary, IndexError> {
    let t0 = Instant::now();
    let repo = SpfsRepo::open(req.address.path())?;
    let dir = index_dir(req.address.path());
    std::fs::create_dir_all(&dir).map_err(|source| IndexError::Write {
        path: dir.clone(),
        source,
    })?;
    let lock_path = dir.join(lock::LOCK_FILE_NAME);
    let cfg = &req.index_config;
    let held = lock::acquire(
        &lock_path,
        cfg.lock_max_tries,
        Duration::from_secs(cfg.lock_sleep_seconds),
        &|h| tracing::warn!("waiting for the index write lock, held by {h}"),
    )?;
    let status = Status {
        reporter,
        repo: req.address.to_url(),
        name: req.repo_name.clone(),
        start: chrono::DateTime::<chrono::Utc>::from(held.taken_at).timestamp(),
        failures: Mutex::new(Vec::new()),
    };
    let period = Duration::from_millis(cfg.update_event_send_freq_ms.max(1));
    remove_stale_temps(&dir);
    lock::remove_stale_private_files(&lock_path);
    // Indexes replaced by earlier runs: one is written into if nothing can
    // be reading it, the others are removed beside the work. Listed now, so
    // that the index this run replaces is left for the next.
    // Its own name: one not reused is removed by the thread below while
    // the index is written under another.
    let reuse_temp = retire::unique_path(&dir, &format!("{TEMP_PREFIX}reused_"));
    let mut retired = retire::list(&dir, RETIRED_PREFIX);
    let reuse = retire::take_reusable(&mut retired, &reuse_temp).map(|f| (reuse_temp, f));
    let result = std::thread::scope(|s| {
        s.spawn(move || retire::remove(retired));
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let status = &status;
        // "index started" goes out beside the work: neither generation nor
        // the "in-progress" timer waits for its delivery (a report blocks
        // until the broker acknowledges). It is handed to the reporter
        // before the timer's first tick, and "completed" waits for it.
        let (handed_tx, handed_rx) = mpsc::channel::<()>();
        let started = s.spawn(move || {
            let _ = handed_tx.send(());
            status.send(IndexEvent::Started)
        });
        s.spawn(move || {
            let _ = handed_rx.recv();
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(period) {
                status.send(IndexEvent::InProgress);
            }
        });
        let r = generate(req, &repo, &dir, reuse);
        drop(stop_tx);
        if started.join().is_err() {
            tracing::warn!("status: sending \"index started\" failed unexpectedly");
        }
        r
    });
    let mut summary = result?;
    let full = !matches!(summary.mode, IndexMode::Update);
    status.send_as(IndexEvent::Completed, Some(full));
    summary.lock_taken_over = held.took_over.clone();
    drop(held);
    summary.start = status.start;
    summary.elapsed_seconds = t0.elapsed().as_secs_f64();
    summary.reporter = reporter.describe();
    summary.report_failures = status
        .failures
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok(summary)
}

/// Removes temp files left by killed or failed runs (ours and SPK's, which
/// leaves its temp file behind when verification fails). Called under the
/// lock, so no live run's temp file is removed.
fn remove_stale_temps(dir: &Path) {
    for path in retire::list(dir, TEMP_PREFIX) {
        tracing::info!("removing {} left by an interrupted run", path.display());
        let _ = std::fs::remove_file(path);
    }
}

/// What to re-read of each named package.
fn targets(updates: &[PkgIdent]) -> BTreeMap<String, Want> {
    let mut t: BTreeMap<String, Want> = BTreeMap::new();
    for u in updates {
        let name = u.name.to_string();
        let version = u
            .version
            .as_ref()
            .and_then(|v| v0::parse_version(v.as_str()).ok());
        match (version, t.get_mut(&name)) {
            (None, _) => {
                t.insert(name, Want::All);
            }
            (Some(_), Some(Want::All)) => {}
            (Some(v), Some(Want::Versions(vs))) => vs.push(v),
            (Some(v), None) => {
                t.insert(name, Want::Versions(vec![v]));
            }
        }
    }
    t
}

/// `reuse`: a temp file to write the index into (a replaced index nothing
/// reads, [`crate::retire`]); `None`: a new one.
fn generate(
    req: &IndexRequest,
    repo: &SpfsRepo,
    dir: &Path,
    reuse: Option<(PathBuf, std::fs::File)>,
) -> Result<IndexSummary, IndexError> {
    let index_path = dir.join(INDEX_FILE_NAME);
    let hook = req.read_hook.as_ref();
    let progress = req.progress.as_ref();

    // The old index is read only now, under the lock.
    let (mode, old) = if req.updates.is_empty() {
        (IndexMode::Full, None)
    } else {
        match IndexFile::open(&index_path) {
            Ok(i) => (IndexMode::Update, Some(i)),
            Err(fb::FbError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                tracing::warn!("{} has no index yet: generating a full one", req.address);
                (IndexMode::FullNoIndex, None)
            }
            Err(e) => {
                tracing::warn!("{e}; generating a full index instead of an update");
                (IndexMode::FullUnreadableIndex(e.to_string()), None)
            }
        }
    };
    // An index whose package names cannot all be read cannot say which
    // packages to keep: it is regenerated.
    let (mode, old_names) = match old.as_ref().map(IndexFile::try_package_names) {
        None => (mode, None),
        Some(Ok(names)) => (mode, Some(names)),
        Some(Err(e)) => {
            tracing::warn!("{e}; generating a full index instead of an update");
            (IndexMode::FullUnreadableIndex(e.to_string()), None)
        }
    };

    let t_read = Instant::now();
    let (parts, global_vars, problems, updated, kept) = match (&old, old_names) {
        (Some(old), Some(names)) => update(req, repo, old, names)?,
        _ => {
            let (parts, gv, problems) = full(repo, hook, progress)?;
            (parts, gv, problems, Vec::new(), 0)
        }
    };
    tracing::debug!("read the repository in {:?}", t_read.elapsed());
    for p in &problems {
        tracing::warn!("skipped {p}");
    }
    if req.strict && !problems.is_empty() {
        return Err(IndexError::Strict { problems });
    }
    let global_var_count = global_vars.len() as u64;
    let t = Instant::now();
    // Fresh packages are verified as they are encoded; one that does not
    // verify stops the run here, before anything is written.
    let assembled = fb::assemble(parts, &global_vars).map_err(|source| IndexError::Verify {
        path: index_path.clone(),
        source,
    })?;
    tracing::debug!("encoded {} bytes in {:?}", assembled.len(), t.elapsed());
    // Counted from the parts: fresh ones from the model, copied ones by
    // the old file's directory.
    let counts = assembled.counts;
    // Copied packages are written straight from the old file's map.
    let index_bytes = install(dir, &index_path, &assembled, req.pause_before_rename, reuse)?;
    drop(assembled);
    drop(old);
    Ok(IndexSummary {
        repo_name: req.repo_name.clone(),
        repo_address: req.address.to_url(),
        index_path,
        mode,
        updated,
        kept,
        counts,
        global_vars: global_var_count,
        skipped: problems,
        elapsed_seconds: 0.0,
        start: 0,
        index_bytes,
        reporter: String::new(),
        report_failures: Vec::new(),
        lock_taken_over: None,
    })
}

/// How many packages one task of a full generation or an update reads
/// and encodes. Tasks run side by side (rayon), each reading its builds in
/// parallel and encoding its packages as soon as they are read, so no core
/// waits for a whole chunk to be read before encoding starts (the 64-package
/// chunks read, then encoded, that this replaced took 6.6 s instead of
/// about 4 s at 100,000 builds), and models live only as long as their
/// task, so memory holds the encoded packages, not 100,000 builds' models.
const TASK_PACKAGES: usize = 4;

/// Runs `work` on `items` [`TASK_PACKAGES`] at a time, the tasks side by
/// side, and returns their results in the order of `items`; `progress` is
/// told how many items are done (of all) as each task ends.
fn in_tasks<T: Sync, R: Send>(
    items: &[T],
    progress: Option<&ProgressFn>,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    let total = items.len() as u64;
    if let Some(p) = progress {
        p(0, total);
    }
    let done = AtomicU64::new(0);
    items
        .par_chunks(TASK_PACKAGES)
        .map(|chunk| {
            let r = work(chunk);
            let n = chunk.len() as u64;
            let d = done.fetch_add(n, Ordering::Relaxed) + n;
            if let Some(p) = progress {
                p(d, total);
            }
            r
        })
        .collect()
}

/// A full generation: every package read and encoded, a few at a time.
fn full(
    repo: &SpfsRepo,
    hook: Option<&ReadHook>,
    progress: Option<&ProgressFn>,
) -> Result<
    (
        Vec<PackagePart<'static>>,
        crate::indexed::GlobalVars,
        Vec<SpecProblem>,
    ),
    IndexError,
> {
    let names: Vec<(String, Want)> = repo
        .package_names()?
        .into_iter()
        .map(|n| (n, Want::All))
        .collect();
    let pkg_names: BTreeSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    let tasks = in_tasks(&names, progress, |chunk| {
        let walked = walk::walk(repo, chunk, hook, None);
        let encoded: Vec<PackagePart<'static>> = walked
            .packages
            .iter()
            .map(|p| PackagePart::Encoded(fb::encode_package(p)))
            .collect();
        (encoded, walked.vars, walked.problems)
    });
    let mut parts = Vec::with_capacity(names.len());
    let mut gv = crate::indexed::GlobalVars::new();
    let mut problems = Vec::new();
    for (encoded, vars, mut probs) in tasks {
        parts.extend(encoded);
        walk::add_global_vars(&mut gv, vars, &pkg_names);
        problems.append(&mut probs);
    }
    Ok((parts, gv, problems))
}

type Updated<'a> = (
    Vec<PackagePart<'a>>,
    crate::indexed::GlobalVars,
    Vec<SpecProblem>,
    Vec<String>,
    u64,
);

/// Re-reads the targets; keeps every other package of the old index. A
/// kept package that SPK could not use (damaged, or wrong in a way SPK
/// would panic on) is re-read from the repository instead, with a warning,
/// rather than carried forward or failing the update.
///
/// The packages kept are checked (the crc32 of each blob to be copied)
/// while the targets are read, side by side. Targets are read and encoded
/// [`TASK_PACKAGES`] at a time in tasks that run side by side, as in a full
/// generation, so an update of thousands of packages (an Indexer working
/// off a backlog) keeps both cores busy and holds only the models of the
/// tasks running, not all of them.
fn update<'a>(
    req: &IndexRequest,
    repo: &SpfsRepo,
    old: &'a IndexFile,
    names: Vec<&'a str>,
) -> Result<Updated<'a>, IndexError> {
    use rayon::prelude::*;
    let targets = targets(&req.updates);
    let updated: Vec<String> = req
        .updates
        .iter()
        .map(|u| match &u.version {
            Some(v) => format!("{}/{v}", u.name),
            None => u.name.to_string(),
        })
        .collect();
    // Packages with version targets are decoded later, task by task, to
    // keep their other versions.
    let with_versions: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(targets.get(**n), Some(Want::Versions(_))))
        .map(|(i, n)| (*n, i))
        .collect();
    // Old packages: copied byte for byte (a file we wrote), or decoded to
    // be encoded again (a file SPK wrote); `Err` for one SPK could not use.
    let keep_old = || -> Vec<(&'a str, Result<PackagePart<'a>, fb::FbError>)> {
        names
            .par_iter()
            .enumerate()
            .with_min_len(64)
            .filter(|(_, name)| !targets.contains_key(**name))
            .filter_map(|(i, &name)| {
                let part = match old.raw_package(i) {
                    Some(raw) => Some(Ok(PackagePart::Raw(raw))),
                    None => old.package_at(i).map(|r| r.map(PackagePart::Fresh)),
                };
                part.map(|p| (name, p))
            })
            .collect()
    };
    let wanted: Vec<(String, Want)> = targets
        .iter()
        .map(|(n, w)| (n.clone(), w.clone()))
        .collect();
    let (old_parts, tasks) = rayon::join(keep_old, || {
        read_targets(req, repo, old, &with_versions, &wanted)
    });
    let mut tasks = tasks?;
    let mut parts: Vec<(String, PackagePart)> = Vec::with_capacity(old_parts.len() + wanted.len());
    let mut reread = Vec::new();
    for (name, part) in old_parts {
        match part {
            Ok(part) => parts.push((name.to_string(), part)),
            Err(e) => {
                tracing::warn!("{e}; re-reading package {name} from the repository instead");
                reread.push((name.to_string(), Want::All));
            }
        }
    }
    let kept = parts.len() as u64;
    if !reread.is_empty() {
        tasks.extend(read_targets(req, repo, old, &with_versions, &reread)?);
    }
    let mut vars = Vec::new();
    let mut problems = Vec::new();
    for (encoded, v, probs) in tasks {
        parts.extend(encoded);
        vars.extend(v);
        problems.extend(probs);
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    // Global vars only grow under an update, as with SPK: values seen only
    // in builds not re-read cannot be known to be gone without reading
    // them. A full generation recomputes them.
    let names: BTreeSet<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
    let mut gv = old.global_vars();
    walk::add_global_vars(&mut gv, vars, &names);
    let parts = parts.into_iter().map(|(_, p)| p).collect();
    Ok((parts, gv, problems, updated, kept))
}

/// What one task of [`read_targets`] made: packages encoded (by name), the
/// vars their builds hold, and the specs skipped.
type TaskResult = (
    Vec<(String, PackagePart<'static>)>,
    Vec<(String, String)>,
    Vec<SpecProblem>,
);

/// Reads the `wanted` packages or versions of an update from the
/// repository, [`TASK_PACKAGES`] at a time, and encodes each package: of a
/// package with version targets (`with_versions`: its position in the
/// old index), the other versions are kept from the old index. A package
/// no longer in the repository, and one left without versions, is gone.
fn read_targets(
    req: &IndexRequest,
    repo: &SpfsRepo,
    old: &IndexFile,
    with_versions: &BTreeMap<&str, usize>,
    wanted: &[(String, Want)],
) -> Result<Vec<TaskResult>, IndexError> {
    // The old package of a version target: its other versions are kept.
    let old_versions =
        |name: &str, vs: &[crate::indexed::Version]| -> Option<Result<Vec<_>, String>> {
            let i = *with_versions.get(name)?;
            Some(match old.package_at(i)? {
                Ok(mut p) => {
                    p.versions
                        .retain(|v| !vs.iter().any(|w| v0::version_eq(w, &v.version)));
                    Ok(p.versions)
                }
                Err(e) => Err(e.to_string()),
            })
        };
    let mut in_repo: BTreeSet<&str> = BTreeSet::new();
    for (name, _) in wanted {
        if repo.has_package(name)? {
            in_repo.insert(name);
        }
    }
    Ok(in_tasks(wanted, req.progress.as_ref(), |chunk| {
        // Versions kept from the old index, decoded now; a damaged old
        // package is read whole instead.
        let mut keep: BTreeMap<String, Vec<_>> = BTreeMap::new();
        let mut read: Vec<(String, Want)> = Vec::new();
        for (name, want) in chunk {
            let mut want = want.clone();
            if let Want::Versions(vs) = &want {
                match old_versions(name, vs) {
                    Some(Ok(others)) => {
                        keep.insert(name.clone(), others);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(
                            "{e}; re-reading package {name} from the repository instead"
                        );
                        want = Want::All;
                    }
                    None => {}
                }
            }
            if in_repo.contains(name.as_str()) {
                read.push((name.clone(), want));
            }
        }
        let walked = walk::walk(repo, &read, req.read_hook.as_ref(), None);
        let mut fresh: BTreeMap<String, PackageIndex> = walked
            .packages
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect();
        for (name, mut others) in keep {
            let entry = fresh.entry(name.clone()).or_insert_with(|| PackageIndex {
                name: name.clone(),
                versions: Vec::new(),
            });
            entry.versions.append(&mut others);
            walk::sort_versions(&mut entry.versions);
        }
        let encoded: Vec<(String, PackagePart<'static>)> = fresh
            .into_iter()
            .filter(|(_, p)| !p.versions.is_empty())
            .map(|(name, p)| (name, PackagePart::Encoded(fb::encode_package(&p))))
            .collect();
        (encoded, walked.vars, walked.problems)
    }))
}

/// How many bytes are written between two flushes to the disk while the
/// index is written.
const SYNC_EVERY: usize = 8 << 20;

/// Writes `index` to `file` and syncs it (`fsync`). While it is written, a
/// second thread flushes what has been written so far (`fdatasync` every
/// [`SYNC_EVERY`] bytes), so the disk writes most of the file while the
/// rest is still being copied, and the final `fsync` waits only for the
/// last part (an update of one package at 100,000 builds: 114.8 ms ->
/// 96.4 ms here, medians of 15 alternated runs). The durability is the
/// same: nothing is renamed in before the final `fsync` returns, and an
/// error of any flush fails the write.
fn write_synced(index: &fb::Assembled<'_>, file: &std::fs::File) -> std::io::Result<()> {
    /// Writes through to the file in pieces of at most [`SYNC_EVERY`]
    /// bytes, and asks for a flush after each.
    struct Flushing<'f> {
        file: &'f std::fs::File,
        unsynced: usize,
        flush: mpsc::Sender<()>,
    }
    impl std::io::Write for Flushing<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let piece = &buf[..buf.len().min(SYNC_EVERY)];
            let n = (&mut &*self.file).write(piece)?;
            self.unsynced += n;
            if self.unsynced >= SYNC_EVERY {
                self.unsynced = 0;
                // The flusher may have stopped on an error: it is
                // returned when the flusher is joined.
                let _ = self.flush.send(());
            }
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<()>();
        // Its error is returned: the kernel reports a write-back error to
        // a file descriptor once, so the final fsync on the same file
        // would not see an error the flusher was told of.
        let flusher = s.spawn(move || -> std::io::Result<()> {
            while rx.recv().is_ok() {
                // Many requests while one flush ran: one more flush.
                while rx.try_recv().is_ok() {}
                file.sync_data()?;
            }
            Ok(())
        });
        let mut w = Flushing {
            file,
            unsynced: 0,
            flush: tx,
        };
        let written = index.write_to(&mut w);
        drop(w);
        let flushed = flusher
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the index flusher thread panicked")));
        written.and(flushed)
    })?;
    // A reused file may have been longer.
    file.set_len(index.len() as u64)?;
    file.sync_all()
}

/// Writes a temp file, reads it back and checks it, renames it over the
/// index. The check (see "Verification" in [`crate::fb`]): the root table,
/// packages vector and global vars as any reader checks them, the blob
/// directory present and every blob's crc32 as recorded when it was
/// verified (a torn or damaged write), and files of 256 MiB or more
/// verified whole, as SPK would. The temp file is `reuse` (a replaced index
/// nothing reads, written over) or a new one.
fn install(
    dir: &Path,
    index_path: &Path,
    index: &fb::Assembled<'_>,
    pause: Option<Duration>,
    reuse: Option<(PathBuf, std::fs::File)>,
) -> Result<u64, IndexError> {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, reused) = match reuse {
        Some((path, file)) => (path, Some(file)),
        None => (retire::unique_path(dir, TEMP_PREFIX), None),
    };
    let tmp = tmp.as_path();
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IndexError::Write { path, source }
    };
    let cleanup = |e: IndexError| {
        let _ = std::fs::remove_file(tmp);
        e
    };
    let t = Instant::now();
    let file = match reused {
        Some(f) => f,
        None => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(werr(tmp))?,
    };
    write_synced(index, &file).map_err(|e| cleanup(werr(tmp)(e)))?;
    // World-readable, as SPK makes it.
    let _ = std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o666));
    drop(file);
    tracing::debug!(
        "wrote and synced {} bytes in {:?}",
        index.len(),
        t.elapsed()
    );
    let t = Instant::now();
    // Read back what is on disk and check it before using it.
    IndexFile::open(tmp)
        .and_then(|written| written.check_written())
        .map_err(|source| {
            cleanup(IndexError::Verify {
                path: tmp.to_path_buf(),
                source,
            })
        })?;
    tracing::debug!("checked the new index in {:?}", t.elapsed());
    if let Some(p) = pause {
        tracing::warn!("test hook: pausing {p:?} before renaming the new index in");
        std::thread::sleep(p);
    }
    // The old index keeps a second name, so that renaming over it does not
    // free it: the next run reuses or removes it.
    let retired = retire::keep_aside(dir, index_path);
    if let Err(e) = std::fs::rename(tmp, index_path) {
        if let Some(r) = &retired {
            // A second name of the index still in place: removing it frees
            // nothing.
            let _ = std::fs::remove_file(r);
        }
        return Err(cleanup(werr(index_path)(e)));
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(werr(dir))?;
    Ok(index.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spk_messaging_core::{IndexStatusReporter, ReportError};
    use std::sync::Mutex;

    /// Records when each report began and ended; "started" is slow to be
    /// acknowledged, as on a broker far away.
    #[derive(Default)]
    struct SlowStart {
        calls: Mutex<Vec<(IndexEvent, Instant, Instant)>>,
    }

    impl IndexStatusReporter for SlowStart {
        fn report(&self, msg: &IndexStatusMessage) -> Result<(), ReportError> {
            let began = Instant::now();
            if msg.event == IndexEvent::Started {
                std::thread::sleep(Duration::from_millis(300));
            }
            let ended = Instant::now();
            self.calls.lock().unwrap().push((msg.event, began, ended));
            Ok(())
        }
        fn describe(&self) -> String {
            "slow start".into()
        }
    }

    #[test]
    fn index_started_is_sent_only_once_the_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        crate::spfs::SpfsWriter::create(dir.path()).unwrap();
        let cfg = IndexConfig {
            lock_max_tries: 1,
            lock_sleep_seconds: 0,
            ..Default::default()
        };
        let address = RepoAddress::parse(dir.path().to_str().unwrap(), Path::new("/")).unwrap();
        let req = IndexRequest::new("origin", address, cfg);
        let idx = index_dir(dir.path());
        std::fs::create_dir_all(&idx).unwrap();
        let held =
            lock::acquire(&idx.join(lock::LOCK_FILE_NAME), 1, Duration::ZERO, &|_| {}).unwrap();
        let rep = SlowStart::default();
        let e = run_index(&req, &rep).unwrap_err();
        assert!(matches!(e, IndexError::LockBusy { .. }), "{e}");
        assert!(
            rep.calls.lock().unwrap().is_empty(),
            "nothing may be sent before the lock is held"
        );
        drop(held);
        run_index(&req, &rep).unwrap();
        let events: Vec<IndexEvent> = rep.calls.lock().unwrap().iter().map(|c| c.0).collect();
        assert_eq!(events.first(), Some(&IndexEvent::Started), "{events:?}");
        assert_eq!(events.last(), Some(&IndexEvent::Completed), "{events:?}");
    }

    #[test]
    fn in_progress_does_not_wait_for_started_to_be_delivered() {
        let dir = tempfile::tempdir().unwrap();
        crate::spfs::SpfsWriter::create(dir.path()).unwrap();
        let cfg = IndexConfig {
            update_event_send_freq_ms: 20,
            ..Default::default()
        };
        let address = RepoAddress::parse(dir.path().to_str().unwrap(), Path::new("/")).unwrap();
        let mut req = IndexRequest::new("origin", address, cfg);
        // Generation takes a while, so that the timer ticks during it.
        req.pause_before_rename = Some(Duration::from_millis(400));
        let rep = SlowStart::default();
        run_index(&req, &rep).unwrap();
        let calls = rep.calls.into_inner().unwrap();
        let started = calls.iter().find(|c| c.0 == IndexEvent::Started).unwrap();
        let first_progress = calls
            .iter()
            .filter(|c| c.0 == IndexEvent::InProgress)
            .map(|c| c.1)
            .min()
            .expect("in-progress sent");
        assert!(
            first_progress < started.2,
            "the first in-progress began only after started was acknowledged"
        );
        assert!(started.1 <= first_progress, "started is handed over first");
        let completed = calls.iter().find(|c| c.0 == IndexEvent::Completed).unwrap();
        assert!(completed.1 >= started.2, "completed waits for started");
    }
}
