//! Index generation: full, or `--update` of some packages and versions.
//!
//! The order of a run, and why:
//! 1. "index started" is sent and a timer thread starts sending "index
//!    in-progress" every `update_event_send_freq_ms`, independent of the
//!    work, so a slow read or a long lock wait cannot silence it;
//! 2. the write lock is taken; only then is the old index read, so two
//!    concurrent updates never lose each other's changes;
//! 3. the repository is read (in parallel), sections are encoded; for an
//!    update, unchanged sections are copied byte for byte;
//! 4. a temp file beside the index is written and synced, read back and
//!    verified section by section, then renamed over the index and the
//!    directory synced: at every moment there is a complete index;
//! 5. "index completed" is sent. A reporter that fails is recorded and
//!    reported in the summary; it never stops or corrupts the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use spk_messaging_core::config::IndexConfig;
use spk_messaging_core::{
    IndexEvent, IndexStatusMessage, IndexStatusReporter, PkgIdent, RepoAddress, ReportError,
    Version,
};

use crate::index::file::write_index;
use crate::index::{Index, IndexFileError, IndexMeta, Section, FORMAT_VERSION};
use crate::lock::{self, LockError, LockHolder};
use crate::model::{Counts, PackageEntry};
use crate::repository::{ReadHook, RepoError, Repository};
use crate::spec::SpecProblem;

/// Progress of the reading phase: packages read of packages to read.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

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
    #[serde(flatten)]
    pub counts: Counts,
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
    Repo(#[from] RepoError),
    #[error("the index write lock {path} is held by {holder}; gave up after {tries} attempts {sleep_seconds}s apart (repositories.<name>.index.lock_max_tries / lock_sleep_seconds)")]
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
    #[error("the new index failed verification and was not installed: {0}")]
    Verify(IndexFileError),
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
        let msg = IndexStatusMessage {
            event,
            repo: self.repo.clone(),
            name: self.name.clone(),
            start: self.start,
        };
        if let Err(e) = self.reporter.report(&msg) {
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
    let status = Status {
        reporter,
        repo: req.address.to_url(),
        name: req.repo_name.clone(),
        start: chrono::Utc::now().timestamp(),
        failures: Mutex::new(Vec::new()),
    };
    let period = Duration::from_millis(req.index_config.update_event_send_freq_ms.max(1));
    status.send(IndexEvent::Started);
    let result = std::thread::scope(|s| {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let status = &status;
        s.spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(period) {
                status.send(IndexEvent::InProgress);
            }
        });
        let r = generate(req);
        drop(stop_tx);
        r
    });
    let mut summary = result?;
    status.send(IndexEvent::Completed);
    summary.start = status.start;
    summary.elapsed_seconds = t0.elapsed().as_secs_f64();
    summary.reporter = reporter.describe();
    summary.report_failures = status
        .failures
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok(summary)
}

fn temp_prefix() -> String {
    format!(".{}.tmp.", crate::repository::INDEX_FILE_NAME)
}

/// Removes temp files left by killed runs (only called under the lock).
fn remove_stale_temps(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(&temp_prefix()) {
            tracing::info!("removing {} left by an interrupted run", e.path().display());
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// What to re-read of one package: everything, or some versions.
enum Target {
    Package,
    Versions(Vec<Version>),
}

fn targets(updates: &[PkgIdent]) -> BTreeMap<String, Target> {
    let mut t: BTreeMap<String, Target> = BTreeMap::new();
    for u in updates {
        let name = u.name.to_string();
        match (&u.version, t.get_mut(&name)) {
            (None, _) => {
                t.insert(name, Target::Package);
            }
            (Some(_), Some(Target::Package)) => {}
            (Some(v), Some(Target::Versions(vs))) => vs.push(v.clone()),
            (Some(v), None) => {
                t.insert(name, Target::Versions(vec![v.clone()]));
            }
        }
    }
    t
}

fn generate(req: &IndexRequest) -> Result<IndexSummary, IndexError> {
    let repo = Repository::open(&req.address)?;
    let dir = repo.index_dir();
    let index_path = repo.index_path();
    std::fs::create_dir_all(&dir).map_err(|source| IndexError::Write {
        path: dir.clone(),
        source,
    })?;
    let lock_path = dir.join(format!("{}.lock", crate::repository::INDEX_FILE_NAME));
    let cfg = &req.index_config;
    let lock = lock::acquire(
        &lock_path,
        cfg.lock_max_tries,
        Duration::from_secs(cfg.lock_sleep_seconds),
        &|_| {},
    )?;
    remove_stale_temps(&dir);
    lock::remove_stale_private_files(&lock_path);

    // The old index is read only now, under the lock.
    let (mode, old) = if req.updates.is_empty() {
        (IndexMode::Full, None)
    } else {
        match Index::open(&index_path) {
            Ok(i) => (IndexMode::Update, Some(i)),
            Err(IndexFileError::Io { source, .. })
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

    let hook = req.read_hook.as_ref();
    let done = AtomicU64::new(0);
    let t_read = Instant::now();
    let (sections, problems, updated, fresh) = match &old {
        None => {
            let (names, mut problems) = repo.package_names()?;
            let total = names.len() as u64;
            let progress = |d: u64| {
                if let Some(p) = &req.progress {
                    p(Progress { done: d, total });
                }
            };
            progress(0);
            let read: Vec<(Option<Section>, Vec<SpecProblem>)> = names
                .par_iter()
                .map(|n| {
                    let (p, probs) = repo.read_package(n, hook);
                    let s = p.as_ref().map(Section::encode);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                    (s, probs)
                })
                .collect();
            let mut sections = Vec::with_capacity(read.len());
            for (s, p) in read {
                sections.extend(s);
                problems.extend(p);
            }
            let fresh = sections.iter().map(|s| s.name.clone()).collect();
            (sections, problems, Vec::new(), fresh)
        }
        Some(old) => update(req, &repo, old)?,
    };
    for p in &problems {
        tracing::warn!("skipped {p}");
    }
    if req.strict && !problems.is_empty() {
        return Err(IndexError::Strict { problems });
    }

    let mut counts = Counts::default();
    for s in &sections {
        counts.add(s.counts);
    }
    let meta = IndexMeta {
        format_version: FORMAT_VERSION,
        repo_name: req.repo_name.clone(),
        repo_address: req.address.to_url(),
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        mode: if mode == IndexMode::Update {
            "update"
        } else {
            "full"
        }
        .into(),
        updated: updated.clone(),
        packages: counts.packages,
        versions: counts.versions,
        builds: counts.builds,
        deprecated: counts.deprecated,
        skipped: problems.len() as u64,
        tool: format!("spk-repo {}", env!("CARGO_PKG_VERSION")),
    };
    drop(old);
    tracing::debug!(
        "read the repository and built {} sections in {:?}",
        sections.len(),
        t_read.elapsed()
    );
    let index_bytes = install(
        &dir,
        &index_path,
        &meta,
        &sections,
        counts,
        &fresh,
        req.pause_before_rename,
    )?;
    Ok(IndexSummary {
        repo_name: req.repo_name.clone(),
        repo_address: req.address.to_url(),
        index_path,
        mode,
        updated,
        counts,
        skipped: problems,
        elapsed_seconds: 0.0,
        start: 0,
        index_bytes,
        reporter: String::new(),
        report_failures: Vec::new(),
        lock_taken_over: lock.took_over.clone(),
    })
}

/// Sections, problems, what was updated, and the sections written afresh
/// (the others were copied byte for byte).
type Built = (
    Vec<Section>,
    Vec<SpecProblem>,
    Vec<String>,
    BTreeSet<String>,
);

/// Re-reads the targets, copies every other section byte for byte.
fn update(req: &IndexRequest, repo: &Repository, old: &Index) -> Result<Built, IndexError> {
    let hook = req.read_hook.as_ref();
    let targets = targets(&req.updates);
    let updated: Vec<String> = req
        .updates
        .iter()
        .map(|u| match &u.version {
            Some(v) => format!("{}/{v}", u.name),
            None => u.name.to_string(),
        })
        .collect();
    let mut problems = Vec::new();
    let mut fresh = BTreeSet::new();
    // name -> new section (None: the package is gone).
    let mut out: BTreeMap<String, Option<Section>> = BTreeMap::new();
    let t = Instant::now();
    let copied = old.all_sections();
    tracing::debug!(
        "read and checked {} old sections in {:?}",
        copied.len(),
        t.elapsed()
    );
    for (i, section) in copied.into_iter().enumerate() {
        match section {
            Ok(s) => {
                out.insert(s.name.clone(), Some(s));
            }
            Err(e) => {
                // A damaged section is re-read rather than carried forward.
                let name = old.entry(i).map(|e| e.name.to_string()).map_err(|d| {
                    IndexError::Verify(IndexFileError::Damaged {
                        path: old.path().to_path_buf(),
                        detail: d,
                    })
                })?;
                tracing::warn!("{e}; re-reading {name} from the repository");
                let (p, probs) = repo.read_package(&name, hook);
                problems.extend(probs);
                fresh.insert(name.clone());
                out.insert(name, p.as_ref().map(Section::encode));
            }
        }
    }
    tracing::debug!("kept the old sections after {:?}", t.elapsed());
    let total = targets.len() as u64;
    for (done, (name, target)) in targets.into_iter().enumerate() {
        if let Some(p) = &req.progress {
            p(Progress {
                done: done as u64,
                total,
            });
        }
        let new = match target {
            Target::Package => {
                let (p, probs) = repo.read_package(&name, hook);
                problems.extend(probs);
                p
            }
            Target::Versions(versions) => {
                let mut entry = match out.get(&name).and_then(|s| s.as_ref()) {
                    Some(s) => crate::index::codec::decode(&s.bytes).map_err(|detail| {
                        IndexError::Verify(IndexFileError::DamagedSection {
                            path: old.path().to_path_buf(),
                            package: name.clone(),
                            detail,
                        })
                    })?,
                    None => PackageEntry {
                        name: name.clone(),
                        versions: Vec::new(),
                    },
                };
                let same =
                    |text: &str| text.parse::<Version>().is_ok_and(|v| versions.contains(&v));
                entry.versions.retain(|v| !same(&v.version));
                let pkg_dir = repo.packages_dir().join(&name);
                let mut dirs: Vec<String> = match std::fs::read_dir(&pkg_dir) {
                    Ok(rd) => rd
                        .flatten()
                        .filter_map(|e| e.file_name().to_str().map(str::to_string))
                        .filter(|n| !n.starts_with('.') && same(n))
                        .collect(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => {
                        problems.push(SpecProblem::new(
                            &pkg_dir,
                            format!("cannot read the package directory: {e}"),
                        ));
                        Vec::new()
                    }
                };
                dirs.sort();
                for d in dirs {
                    let (v, probs) = repo.read_version(&name, &d, hook);
                    problems.extend(probs);
                    entry.versions.extend(v);
                }
                entry.sort();
                (!entry.versions.is_empty()).then_some(entry)
            }
        };
        fresh.insert(name.clone());
        out.insert(name, new.as_ref().map(Section::encode));
    }
    if let Some(p) = &req.progress {
        p(Progress { done: total, total });
    }
    let sections = out.into_values().flatten().collect();
    Ok((sections, problems, updated, fresh))
}

/// Writes a temp file, verifies it, renames it over the index.
fn install(
    dir: &Path,
    index_path: &Path,
    meta: &IndexMeta,
    sections: &[Section],
    counts: Counts,
    fresh: &BTreeSet<String>,
    pause: Option<Duration>,
) -> Result<u64, IndexError> {
    let tmp = dir.join(format!("{}{}", temp_prefix(), std::process::id()));
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IndexError::Write { path, source }
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(werr(&tmp))?;
    let cleanup = |e: IndexError| {
        let _ = std::fs::remove_file(&tmp);
        e
    };
    let t = Instant::now();
    let len = write_index(file, &tmp, meta, sections).map_err(|e| {
        cleanup(match e {
            IndexFileError::Io { path, source } => IndexError::Write { path, source },
            other => IndexError::Verify(other),
        })
    })?;
    tracing::debug!("wrote and synced {len} bytes in {:?}", t.elapsed());
    let t = Instant::now();
    // Read back what is on disk and check every section before using it.
    let check = Index::open(&tmp).and_then(|i| {
        // Every crc; every section written afresh decoded.
        let c = i.verify_some(&|name| fresh.contains(name))?;
        if c != counts {
            return Err(IndexFileError::Damaged {
                path: tmp.clone(),
                detail: format!("it holds {c:?}, {counts:?} were written"),
            });
        }
        Ok(())
    });
    check.map_err(|e| cleanup(IndexError::Verify(e)))?;
    tracing::debug!("verified the new index in {:?}", t.elapsed());
    if let Some(p) = pause {
        tracing::warn!("test hook: pausing {p:?} before renaming the new index in");
        std::thread::sleep(p);
    }
    std::fs::rename(&tmp, index_path).map_err(|e| cleanup(werr(index_path)(e)))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(werr(dir))?;
    Ok(len)
}
