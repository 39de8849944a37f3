//! Serve mode's reloads: what a (re)load reads (paths, vars, shard, labels), the scenario
//! files' fingerprints that tell a change (a Kubernetes ConfigMap's symlink swap included),
//! the reload that swaps a validated set in or keeps the running one, and the watcher task
//! that triggers it on SIGHUP or a changed file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::signal::unix::Signal;

use super::http::{App, ReloadState};
use super::metrics;
use super::schedule::{Scheduler, Shard};
use crate::scenario::load::expand_paths as expand;
use crate::scenario::{load_paths, LoadOptions, LoadedScenario};

/// What a (re)load needs.
#[derive(Debug, Clone)]
pub(super) struct Source {
    pub paths: Vec<PathBuf>,
    pub vars: BTreeMap<String, String>,
    pub shard: Option<Shard>,
    pub labels: Vec<(String, String)>,
}

impl Source {
    /// Loads, validates and shards the scenarios; every problem as one message.
    pub fn load(&self, check_secrets: bool) -> Result<Vec<LoadedScenario>, Vec<String>> {
        let opts = LoadOptions {
            vars: self.vars.clone(),
            check_secrets,
        };
        let all = load_paths(&self.paths, &opts)
            .map_err(|diags| diags.iter().map(|d| d.to_string()).collect::<Vec<_>>())?;
        let set: Vec<LoadedScenario> = match self.shard {
            Some(shard) => all
                .into_iter()
                .filter(|s| shard.contains(s.name()))
                .collect(),
            None => all,
        };
        metrics::check_label_collisions(&set, &self.labels)
            .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        Ok(set)
    }

    /// (path, mtime, size, content hash) of every scenario file; a change means reload.
    pub fn fingerprint(&self, cache: &mut FileCache) -> Vec<FileStamp> {
        let files = match expand(&self.paths) {
            Ok(f) => f,
            Err(d) => {
                return vec![FileStamp {
                    path: PathBuf::new(),
                    modified: None,
                    size: 0,
                    hash: d.to_string(),
                }]
            }
        };
        files.into_iter().map(|p| cache.stamp(p)).collect()
    }
}

/// The scenario files' paths and content hashes as one text: what a reload compares, and
/// what [`config_hash`] digests.
pub(super) fn files_key(stamps: &[FileStamp]) -> String {
    stamps
        .iter()
        .map(|f| format!("{}\0{}\n", f.path.display(), f.hash))
        .collect()
}

/// The `hash` of `flowprobe_config_info`: 12 hex digits of the SHA-256 of [`files_key`], the
/// same for every replica that loaded the same files from the same paths.
pub(super) fn config_hash(files_key: &str) -> String {
    let digest = hex::encode(Sha256::digest(files_key.as_bytes()));
    digest[..12].to_string()
}

/// One scenario file's state, as polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileStamp {
    path: PathBuf,
    modified: Option<SystemTime>,
    size: u64,
    hash: String,
}

/// Content hashes by (path, resolved path, mtime, size), so unchanged files are not re-read.
/// The resolved path changes when a ConfigMap swaps its `..data` symlink.
#[derive(Debug, Default)]
pub(super) struct FileCache {
    entries: BTreeMap<PathBuf, (PathBuf, Option<SystemTime>, u64, String)>,
}

impl FileCache {
    fn stamp(&mut self, path: PathBuf) -> FileStamp {
        let meta = std::fs::metadata(&path).ok();
        let modified = meta.as_ref().and_then(|m| m.modified().ok());
        let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
        let resolved = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let hash = match self.entries.get(&path) {
            Some((r, m, s, h)) if *r == resolved && *m == modified && *s == size => h.clone(),
            _ => {
                let h = std::fs::read(&path)
                    .map(|bytes| hex::encode(Sha256::digest(&bytes)))
                    .unwrap_or_else(|e| format!("unreadable: {e}"));
                self.entries
                    .insert(path.clone(), (resolved, modified, size, h.clone()));
                h
            }
        };
        FileStamp {
            path,
            modified,
            size,
            hash,
        }
    }
}

/// Everything the reload path touches.
pub(super) struct Daemon {
    pub source: Source,
    pub app: Arc<App>,
    pub scheduler: Scheduler,
}

impl Daemon {
    /// Applies a validated set: metrics first (series at 0 before any run), then status, then
    /// the scheduler.
    pub fn apply(&self, set: Vec<LoadedScenario>) {
        self.app.metrics.sync(&set);
        self.app.sync(&set);
        self.scheduler
            .apply(set.into_iter().map(Arc::new).collect());
    }

    /// Loads the scenarios again; an invalid set leaves the running one in place. The same
    /// rejected files reloaded again (SIGHUP after a rejected edit) are not a new rejection:
    /// counted and logged as an error once.
    async fn reload(&self, why: &str) {
        let source = self.source.clone();
        // Secrets were checked at start-up; from now on a missing one fails runs (reason
        // `config`) instead of blocking every other change.
        let result = tokio::task::spawn_blocking(move || {
            // The files' paths and content hashes (not their mtimes), taken before loading as at
            // start-up: a change made while loading is seen by the next poll.
            let files = files_key(&source.fingerprint(&mut FileCache::default()));
            (source.load(false), files)
        })
        .await
        .unwrap_or_else(|e| (Err(vec![format!("reload task failed: {e}")]), String::new()));
        match result {
            (Ok(set), files) => {
                let n = set.len();
                self.apply(set);
                self.app.metrics.record_reload(true);
                self.app.metrics.set_config(&config_hash(&files));
                self.app.set_reload(ReloadState {
                    at: SystemTime::now(),
                    success: true,
                    errors: Vec::new(),
                    rejected_files: None,
                });
                tracing::info!(trigger = why, scenarios = n, "scenarios reloaded");
            }
            (Err(errors), files) => {
                let already_rejected = self
                    .app
                    .last_reload()
                    .and_then(|r| r.rejected_files)
                    .is_some_and(|previous| !files.is_empty() && previous == files);
                if already_rejected {
                    tracing::debug!(
                        trigger = why,
                        "reload skipped: these files were rejected already and have not changed"
                    );
                    return;
                }
                self.app.metrics.record_reload(false);
                for e in &errors {
                    tracing::error!(trigger = why, error = %e, "reload rejected; the previous scenarios keep running");
                }
                self.app.set_reload(ReloadState {
                    at: SystemTime::now(),
                    success: false,
                    errors,
                    rejected_files: Some(files),
                });
            }
        }
    }
}

/// Reloads on SIGHUP, or when the fingerprint of the scenario files changes (polled every
/// `watch_every`; zero polls never). `cache` and `stamps` are the state of the start-up load.
pub(super) fn spawn_watcher(
    daemon: Arc<Daemon>,
    mut hup: Signal,
    watch_every: Duration,
    mut cache: FileCache,
    mut stamps: Vec<FileStamp>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let trigger = tokio::select! {
                Some(()) = hup.recv() => "SIGHUP",
                _ = tokio::time::sleep(watch_every), if !watch_every.is_zero() => {
                    let source = daemon.source.clone();
                    let (new, c) = tokio::task::spawn_blocking(move || {
                        let s = source.fingerprint(&mut cache);
                        (s, cache)
                    })
                    .await
                    .unwrap_or_else(|_| (stamps.clone(), FileCache::default()));
                    cache = c;
                    if new == stamps {
                        continue;
                    }
                    stamps = new;
                    "file change"
                }
            };
            daemon.reload(trigger).await;
        }
    })
}
