//! Where the policy comes from, and the holder that serves the last good snapshot.

pub mod reload;
pub mod toml;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::{ArcSwapOption, Guard};

use crate::policy::Policy;

/// A loaded policy and when it was built.
#[derive(Debug)]
pub struct Snapshot {
    pub policy: Policy,
    pub loaded_at: SystemTime,
}

/// Holds the current snapshot. Readers take it without locking; a reload swaps a whole
/// new snapshot in, so a request sees the old policy or the new one, never a mix.
#[derive(Debug, Default)]
pub struct PolicyHolder {
    current: ArcSwapOption<Snapshot>,
    loads: AtomicU64,
    failures: AtomicU64,
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

    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
    }

    /// Swaps a newly built policy in.
    pub fn install(&self, policy: Policy) {
        self.current.store(Some(Arc::new(Snapshot {
            policy,
            loaded_at: SystemTime::now(),
        })));
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a load that failed; the last good snapshot keeps serving.
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Successful loads so far.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Failed loads so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}
