//! Reviewing a policy rather than serving it: near misses of a workload, who receives a
//! secret, what changed between two policies, and lint. Built on `Policy`'s public API
//! only, so that its internals can change underneath.

pub mod diff;
pub mod lint;
pub mod near_miss;
pub mod report;
pub mod reverse;
