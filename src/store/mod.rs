//! Where the policy comes from, and the holder that serves the last good snapshot.

pub mod postgres;
pub mod reload;
pub mod source;
pub mod toml;

pub use source::{Keeper, PolicySource};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwapOption, Guard};

use crate::policy::Policy;

/// A loaded policy, as requests see it.
#[derive(Debug)]
pub struct Snapshot {
    pub policy: Policy,
    /// Where the policy was built, if in a heap of its own: held only to be dropped after
    /// the policy (fields drop in order), when its pages are empty.
    _heap: Option<crate::memory::Heap>,
}

/// Holds the current snapshot. Readers take it without locking; a reload swaps a whole
/// new snapshot in, so a request sees the old policy or the new one, never a mix.
#[derive(Debug, Default)]
pub struct PolicyHolder {
    current: ArcSwapOption<Snapshot>,
    /// When the snapshot was last known to match its source (seconds since the epoch).
    fresh_at: AtomicU64,
    loads: AtomicU64,
    /// Of those loads, reloads that found every file as it was and swapped nothing.
    unchanged: AtomicU64,
    failures: AtomicU64,
    /// The source could not be reached when last tried (a database away); the last good
    /// snapshot keeps serving meanwhile.
    source_unreachable: AtomicBool,
}

/// Frees a replaced snapshot here, on the loading thread, rather than in whichever
/// request happens to drop the last reference: freeing 100,000 grants takes tens of
/// milliseconds, which a request must not wait for. Requests hold a snapshot only while
/// they answer, so the wait is short; past a second the last holder frees it after all.
fn retire(old: Arc<Snapshot>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while Arc::strong_count(&old) > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(old);
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl PolicyHolder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_policy(policy: Policy) -> Self {
        let holder = Self::new();
        holder.install(policy);
        holder
    }

    /// The snapshot to answer from, if one has loaded.
    pub fn current(&self) -> Guard<Option<Arc<Snapshot>>> {
        self.current.load()
    }

    /// The snapshot answering now, held apart from any request's.
    pub fn current_full(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Swaps a newly built policy in.
    pub fn install(&self, policy: Policy) {
        self.install_built(policy, None);
    }

    /// Swaps in a policy built in a heap of its own ([`crate::memory::Heap`]).
    pub fn install_built(&self, policy: Policy, heap: Option<crate::memory::Heap>) {
        Self::retire(self.swap_built(policy, heap));
    }

    /// Swaps in a policy built in a heap of its own, and hands back the one it replaced:
    /// requests are answered from the new one at once, whatever the caller still does
    /// with the old one before [`PolicyHolder::retire`]s it.
    pub fn swap_built(&self, policy: Policy, heap: Option<crate::memory::Heap>) -> Option<Arc<Snapshot>> {
        let old = self.current.swap(Some(Arc::new(Snapshot { policy, _heap: heap })));
        self.confirm();
        self.loads.fetch_add(1, Ordering::Relaxed);
        old
    }

    /// Frees a replaced snapshot, once requests are done with it, and the garbage of
    /// loading.
    pub fn retire(old: Option<Arc<Snapshot>>) {
        if let Some(old) = old {
            retire(old);
        }
        crate::memory::release_freed();
    }

    /// Records a reload that found the source as the snapshot was built from it: a load
    /// completed, with nothing to swap.
    pub fn confirm_unchanged(&self) {
        self.confirm();
        self.loads.fetch_add(1, Ordering::Relaxed);
        self.unchanged.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that the snapshot still matches its source.
    pub fn confirm(&self) {
        self.fresh_at.store(epoch_seconds(), Ordering::Relaxed);
    }

    /// How long since the snapshot was last known to be current; `None` before the first.
    pub fn staleness(&self) -> Option<Duration> {
        self.current.load().as_ref()?;
        Some(Duration::from_secs(
            epoch_seconds().saturating_sub(self.fresh_at.load(Ordering::Relaxed)),
        ))
    }

    /// When the snapshot was last known to be current (seconds since the Unix epoch);
    /// `None` before the first.
    pub fn fresh_at(&self) -> Option<u64> {
        self.current.load().as_ref()?;
        Some(self.fresh_at.load(Ordering::Relaxed))
    }

    /// Records whether the source answers (the Postgres replica's sync says).
    pub fn set_source_reachable(&self, reachable: bool) {
        self.source_unreachable.store(!reachable, Ordering::Relaxed);
    }

    /// Whether the source answered when last asked.
    pub fn source_reachable(&self) -> bool {
        !self.source_unreachable.load(Ordering::Relaxed)
    }

    /// Records a load that failed; the last good snapshot keeps serving.
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Successful loads so far.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Successful loads so far that found the source unchanged.
    pub fn unchanged_loads(&self) -> u64 {
        self.unchanged.load(Ordering::Relaxed)
    }

    /// Failed loads so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}
