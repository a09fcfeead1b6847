//! Equal-specificity overlaps: two grants that can match one workload, give one target
//! different values, and that neither outranks.

use ahash::{HashMap, HashMapExt as _};

use std::sync::Arc;

use super::super::index::GrantIndex;
use super::super::Grant;

/// Two grants of equal specificity that can match one workload and give one target
/// different items. Equal specificity means the same kind of pattern in each field, so
/// grants are first bucketed by specificity and their exact fields: only grants within a
/// bucket can overlap, and a policy of many exact grants stays linear (and small: one
/// entry per grant, not per item).
pub(super) fn find_conflicts(grants: &[&Grant]) -> Vec<String> {
    type Bucket<'g> = (super::super::Specificity, [Option<&'g str>; 3]);
    let mut buckets: HashMap<Bucket<'_>, Vec<usize>> = HashMap::with_capacity(grants.len());
    for (index, grant) in grants.iter().enumerate() {
        let exact = [
            grant.selector.project.exact(),
            grant.selector.kind.exact(),
            grant.selector.id.exact(),
        ];
        buckets.entry((grant.specificity, exact)).or_default().push(index);
    }
    let mut problems = Vec::new();
    for members in buckets.values().filter(|m| m.len() > 1) {
        for (n, a) in members.iter().enumerate() {
            for b in &members[n + 1..] {
                pair_conflicts(grants[*a], grants[*b], &mut problems);
            }
        }
    }
    problems.sort();
    problems
}

/// Whether one of `added`, now in `index`, conflicts with a grant of `index`: what
/// [`find_conflicts`] would find among them all, for a policy whose other grants were
/// already free of conflicts, through the index instead of every grant.
pub(super) fn any_conflict(added: &[Arc<Grant>], index: &GrantIndex) -> bool {
    let mut problems = Vec::new();
    added.iter().any(|grant| {
        index.peers(grant).any(|peer| {
            pair_conflicts(grant, peer, &mut problems);
            !problems.is_empty()
        })
    })
}

/// The conflicts of two grants of equal specificity, if they can match one workload.
fn pair_conflicts(ga: &Grant, gb: &Grant, problems: &mut Vec<String>) {
    if !ga.selector.overlaps(&gb.selector) {
        return;
    }
    // Both item lists are sorted by target: walk them together.
    let (mut i, mut j) = (0, 0);
    while i < ga.items.len() && j < gb.items.len() {
        let (ia, ib) = (&ga.items[i], &gb.items[j]);
        match ia.target().cmp(ib.target()) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                if !ia.gives_the_same(ib) {
                    problems.push(format!(
                        "{} and {} both give {} with equal specificity ({} / {}) and can match the same workload; make one more specific or give the same value",
                        ga.describe(),
                        gb.describe(),
                        ia.target(),
                        ga.selector,
                        gb.selector
                    ));
                }
                i += 1;
                j += 1;
            }
        }
    }
}
