//! Live reload of the TOML store: file changes (notify) and SIGHUP trigger a reload on a
//! thread of its own; a policy that loads is swapped in whole, one that does not leaves
//! the last good one serving.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher as _};

use super::source::SourceError;
use super::toml::TomlStore;
use super::PolicyHolder;
use crate::memory::Heap;
use crate::policy::Reloaded;

/// After a change, wait until the files have been quiet this long (editors and
/// `git checkout` write in bursts, and a file rewritten in place is empty for a moment)...
const QUIET: Duration = Duration::from_millis(150);
/// ...unless they never are: a writer that never pauses is reloaded this often anyway.
/// A file caught mid-write is read again (policy::files), and an empty one refused.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    FileChanged,
    Signal,
}

/// Asks the reload thread for a reload; dropping every handle stops the thread.
#[derive(Clone)]
pub struct ReloadHandle {
    sender: mpsc::Sender<Trigger>,
}

impl ReloadHandle {
    pub fn trigger(&self, why: Trigger) {
        let _ = self.sender.send(why);
    }
}

/// Loads the first policy and starts watching the store's files; returns a handle to
/// trigger reloads by hand once that policy is serving, or why it did not load.
///
/// Every policy, the first included, is built on the reload thread, each in a heap of its
/// own (crate::memory), and freed there: one thread's allocations, one place to give
/// their memory back (bench/README.md, "Memory over reloads").
///
/// The watches exist before the first load, so a change made while it reads is seen;
/// one made before the watches is caught by comparing the files with how they were read.
pub fn spawn(store: TomlStore, holder: Arc<PolicyHolder>) -> Result<ReloadHandle, SourceError> {
    let (sender, receiver) = mpsc::channel();
    let handle = ReloadHandle { sender: sender.clone() };
    let mut watched = Watched::new(store.path(), sender.clone());
    let (ready, first_load) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("envoi-reload".into())
        .spawn(move || {
            let heap = Heap::new();
            let loaded = heap.run(|| store.load());
            match loaded {
                Ok(policy) => {
                    tracing::info!(grants = policy.grant_count(), secrets = policy.secret_count(), path = %store.path().display(), "policy loaded");
                    log_warnings(&policy);
                    watched.sync(policy.inputs());
                    if policy.changed_since_read() {
                        let _ = sender.send(Trigger::FileChanged);
                    }
                    holder.install_built(policy, Some(heap));
                    let _ = ready.send(Ok(()));
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            }
            drop(sender);
            follow(&store, &holder, &mut watched, &receiver);
        })
        .map_err(SourceError::Thread)?;
    match first_load.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(SourceError::Thread(std::io::Error::other("the reload thread stopped"))),
    }
}

/// The reload thread's loop: each trigger, once the files are quiet, loads the policy
/// again and swaps it in if it loads.
///
/// The thread runs at the workers' priority. It ran at nice 10, so that answering came
/// first; but under a fleet's start, both cores busy answering, a 100,000-workload
/// reload then took tens of seconds and a revoked secret stayed served all that time
/// (bench/README.md, "Fleet start"). At the same priority it takes its share of one
/// core for about a second.
fn follow(store: &TomlStore, holder: &PolicyHolder, watched: &mut Watched, receiver: &mpsc::Receiver<Trigger>) {
    // How the files looked when a reload last found them unchanged; `None`: as the
    // serving policy read them.
    let mut seen: Option<crate::policy::FilesSeen> = None;
    while let Ok(first) = receiver.recv() {
        let started = Instant::now();
        let mut why = first;
        loop {
            let left = MAX_DELAY.saturating_sub(started.elapsed());
            match receiver.recv_timeout(QUIET.min(left)) {
                Ok(more) if left > Duration::ZERO => why = if more == Trigger::Signal { more } else { why },
                Ok(_) | Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let loading = Instant::now();
        let heap = Heap::new();
        let serving = holder.current_full();
        let loaded = heap.run(|| store.reload(serving.as_deref().map(|snapshot| &snapshot.policy), seen.as_ref()));
        // Held only to compare with: a swap below waits for every holder to let go.
        drop(serving);
        match loaded {
            Ok(Reloaded::Unchanged { seen: now }) => {
                // Its few blocks outlive the heap they were read in (crate::memory::Heap).
                if now.is_some() {
                    seen = now;
                }
                holder.confirm_unchanged();
                let current = holder.current();
                let current = &current.as_ref().expect("a policy serves").policy;
                // A failed load before this one left only what it read watched, which may
                // stop short of the serving policy's `file` values.
                watched.sync(current.inputs());
                tracing::info!(
                    trigger = ?why,
                    grants = current.grant_count(),
                    secrets = current.secret_count(),
                    changes = "none: every file holds what the serving policy was compiled from",
                    took_ms = loading.elapsed().as_millis() as u64,
                    "policy reloaded"
                );
                drop(heap);
                PolicyHolder::retire(None);
            }
            Ok(Reloaded::Changed { policy, only, files }) => {
                seen = None;
                watched.sync(policy.inputs());
                // Served first, described after: what changed is for the log line, and a
                // revoked secret must not wait on it (a third of a 100k reload).
                let old = holder.swap_built(policy, Some(heap));
                let took = loading.elapsed();
                let new = holder.current();
                let new = &new.as_ref().expect("just installed").policy;
                let changes = old.as_ref().map(|old| {
                    use crate::policy::review::diff::{diff, diff_in_files, summary};
                    // Only the files compiled can have changed.
                    summary(&match &only {
                        Some(compiled) => {
                            let compiled: Vec<&str> = compiled.iter().map(String::as_str).collect();
                            diff_in_files(&old.policy, new, &compiled)
                        }
                        None => diff(&old.policy, new),
                    })
                });
                let compiled = only.as_ref().map_or(files, Vec::len);
                tracing::info!(
                    trigger = ?why,
                    grants = new.grant_count(),
                    secrets = new.secret_count(),
                    changes = changes.as_deref().unwrap_or("first policy"),
                    compiled = %format_args!("{compiled} of {files} file(s)"),
                    took_ms = took.as_millis() as u64,
                    "policy reloaded"
                );
                log_warnings(new);
                PolicyHolder::retire(old);
            }
            Err(error) => {
                // Watch what the failed load tried to read, so a missing file's arrival is seen.
                watched.sync(&error.inputs);
                holder.record_failure();
                tracing::error!(trigger = ?why, failures = holder.failures(), "{error}; the last good policy keeps serving");
            }
        }
    }
}

/// Logs what loaded but is likely a mistake.
pub fn log_warnings(policy: &crate::policy::Policy) {
    for warning in policy.warnings() {
        tracing::warn!("{warning}");
    }
}

/// The folders under watch: the policy's own (or the policy folder) and those of every
/// file it read. Folders rather than files, so that an editor's rename-over-write, a file
/// deleted and created again, or a Kubernetes secret mount's symlink swap are all seen;
/// events for other files in those folders (logs, say) are ignored.
struct Watched {
    watcher: Option<notify::RecommendedWatcher>,
    relevant: Arc<RwLock<HashMap<PathBuf, Relevant>>>,
    policy_path: PathBuf,
}

/// Which names in a watched folder matter.
#[derive(Default)]
struct Relevant {
    names: HashSet<OsString>,
    /// The folder is the policy folder: every `*.toml` counts.
    toml_files: bool,
    /// The folder's device and inode when it was watched: a folder renamed away and
    /// another put at its path, or a symlinked release folder flipped, is a new one to
    /// watch, though its path is the same.
    identity: Option<(u64, u64)>,
}

impl Relevant {
    fn matches(&self, name: &OsStr) -> bool {
        self.names.contains(name)
            || (self.toml_files && crate::policy::is_policy_file_name(name))
            // A Kubernetes secret volume swaps its files in through `..data` links.
            || (!self.names.is_empty() && name.as_encoded_bytes().starts_with(b".."))
    }
}

impl Watched {
    fn new(policy_path: &Path, sender: mpsc::Sender<Trigger>) -> Self {
        let relevant: Arc<RwLock<HashMap<PathBuf, Relevant>>> = Arc::default();
        let filter = relevant.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            let relevant = filter.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            let matters = event.paths.iter().any(|path| {
                let (Some(folder), Some(name)) = (path.parent(), path.file_name()) else {
                    return false;
                };
                relevant.get(folder).is_some_and(|r| r.matches(name))
            });
            if matters {
                let _ = sender.send(Trigger::FileChanged);
            }
        })
        .map_err(|e| tracing::error!("cannot watch the policy for changes ({e}); SIGHUP still reloads"))
        .ok();
        let mut watched = Self {
            watcher,
            relevant,
            policy_path: policy_path.to_path_buf(),
        };
        watched.sync(&[]);
        watched
    }

    /// Watches the folders of `inputs` and of the policy path, and no others.
    fn sync(&mut self, inputs: &[PathBuf]) {
        let Some(watcher) = self.watcher.as_mut() else { return };
        let mut wanted: HashMap<PathBuf, Relevant> = HashMap::new();
        let mut want = |path: &Path, whole_folder: bool| {
            let (folder, name) = if whole_folder {
                (path.to_path_buf(), None)
            } else {
                let folder = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                (folder.to_path_buf(), path.file_name().map(OsStr::to_os_string))
            };
            // Events name canonical paths; a folder that does not exist yet is left out
            // and tried again at the next reload.
            let Ok(folder) = std::fs::canonicalize(&folder) else {
                return;
            };
            // Once per folder: a policy's files mostly share one or two.
            let entry = wanted.entry(folder).or_insert_with_key(|folder| Relevant {
                identity: std::fs::metadata(folder).ok().map(|m| (m.dev(), m.ino())),
                ..Relevant::default()
            });
            entry.toml_files |= whole_folder;
            entry.names.extend(name);
        };
        want(&self.policy_path, self.policy_path.is_dir());
        if self.policy_path.is_dir() {
            // The folder's own entry in its parent: renamed over, or a symlink flipped.
            want(&self.policy_path, false);
        }
        for input in inputs {
            want(input, false);
        }
        // A file reached through a symlink (a git checkout elsewhere, a mounted secret)
        // changes where the link points: watch the target's folder too.
        for path in std::iter::once(&self.policy_path).chain(inputs) {
            if let Ok(target) = std::fs::canonicalize(path) {
                if target != *path {
                    want(&target, target.is_dir());
                }
            }
        }
        let mut relevant = self.relevant.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for gone in relevant.keys().filter(|f| !wanted.contains_key(*f)) {
            let _ = watcher.unwatch(gone);
        }
        relevant.retain(|folder, _| wanted.contains_key(folder));
        for (folder, rule) in wanted {
            let watching = relevant.get(&folder).map(|held| held.identity);
            if watching != Some(rule.identity) {
                if watching.is_some() {
                    // The inode watched is gone from this path (or elsewhere now).
                    let _ = watcher.unwatch(&folder);
                }
                if let Err(e) = watcher.watch(&folder, RecursiveMode::NonRecursive) {
                    tracing::warn!(folder = %folder.display(), "cannot watch for changes: {e}");
                    continue;
                }
            }
            relevant.insert(folder, rule);
        }
    }
}
