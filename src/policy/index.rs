//! The compiled policy's lookup tables, shared between snapshots: a patch (one change
//! from the Postgres store's log) copies the few shards it touches and shares the rest,
//! so that a change to a policy of 100,000 grants costs what the change touches.

use std::hash::Hash;
use std::sync::Arc;

use ahash::{HashMap, HashMapExt as _, RandomState};

use super::Grant;

/// How many shards a map is cut into. A patch copies a shard it changes, so at 100,000
/// keys it copies a few hundred entries (pointers), not 100,000.
const SHARDS: usize = 256;

/// A hash map cut into shards behind `Arc`s: cloning it clones 256 pointers, and a write
/// copies only the shard it lands in (copy-on-write).
#[derive(Clone)]
pub(super) struct CowMap<V> {
    hasher: RandomState,
    shards: Arc<[Arc<Shard<V>>]>,
}

type Shard<V> = HashMap<Arc<str>, V>;

impl<V: Clone> CowMap<V> {
    pub(super) fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Arc::new(HashMap::new())).collect(),
        }
    }

    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // The top bits: the shard's own table uses the low ones of its own hash.
        (self.hasher.hash_one(key) >> 56) as usize % SHARDS
    }

    pub(super) fn get(&self, key: &str) -> Option<&V> {
        self.shards[self.shard_of(key)].get(key)
    }

    /// The shard `key` lands in, made this map's own (copied if shared).
    fn shard_mut(&mut self, key: &str) -> &mut Shard<V> {
        let index = self.shard_of(key);
        if Arc::get_mut(&mut self.shards).is_none() {
            self.shards = self.shards.iter().cloned().collect();
        }
        let shards = Arc::get_mut(&mut self.shards).expect("this map's own");
        Arc::make_mut(&mut shards[index])
    }

    pub(super) fn insert(&mut self, key: Arc<str>, value: V) {
        self.shard_mut(&key).insert(key, value);
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        self.shard_mut(key).remove(key)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|shard| shard.values())
    }
}

/// A grant in the tables, with its place in policy order: the order breaks ties between
/// grants of equal specificity.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) order: u64,
    pub(super) grant: Arc<Grant>,
}

/// The grants, indexed by what a workload is looked up by.
#[derive(Clone)]
pub(super) struct GrantIndex {
    /// Grants whose three fields are exact, by `project\0type\0id`.
    exact: CowMap<Arc<[Entry]>>,
    /// Grants with an exact project but a pattern for type or id.
    by_project: CowMap<Arc<[Entry]>>,
    /// Grants whose project is a pattern: tried against every workload.
    general: Arc<[Entry]>,
    /// Named grants by name, for a patch to find what it replaces.
    named: CowMap<(u64, Slot)>,
    count: usize,
    next_order: u64,
}

/// Where a grant is filed.
#[derive(Clone)]
enum Slot {
    Exact(Arc<str>),
    Project(Arc<str>),
    General,
}

fn slot(grant: &Grant) -> Slot {
    if let Some(key) = grant.selector.exact_key() {
        Slot::Exact(key.into())
    } else if let Some(project) = grant.selector.project.exact() {
        Slot::Project(project.into())
    } else {
        Slot::General
    }
}

impl GrantIndex {
    pub(super) fn new(grants: Vec<Grant>) -> Self {
        let mut exact: HashMap<Arc<str>, Vec<Entry>> = HashMap::new();
        let mut by_project: HashMap<Arc<str>, Vec<Entry>> = HashMap::new();
        let mut general = Vec::new();
        let mut named = CowMap::new();
        let count = grants.len();
        for (order, grant) in grants.into_iter().enumerate() {
            let order = order as u64;
            let place = slot(&grant);
            if let Some(name) = &grant.name {
                named.insert(Arc::from(&**name), (order, place.clone()));
            }
            let entry = Entry {
                order,
                grant: Arc::new(grant),
            };
            match place {
                Slot::Exact(key) => exact.entry(key).or_default().push(entry),
                Slot::Project(key) => by_project.entry(key).or_default().push(entry),
                Slot::General => general.push(entry),
            }
        }
        let shard = |map: HashMap<Arc<str>, Vec<Entry>>| {
            let mut shared = CowMap::new();
            for (key, entries) in map {
                shared.insert(key, entries.into());
            }
            shared
        };
        Self {
            exact: shard(exact),
            by_project: shard(by_project),
            general: general.into(),
            named,
            count,
            next_order: count as u64,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Grants with this exact `project\0type\0id`.
    pub(super) fn exact(&self, key: &str) -> &[Entry] {
        self.exact.get(key).map(|e| &e[..]).unwrap_or_default()
    }

    /// Grants with this exact project and a pattern for type or id.
    pub(super) fn project(&self, project: &str) -> &[Entry] {
        self.by_project.get(project).map(|e| &e[..]).unwrap_or_default()
    }

    pub(super) fn general(&self) -> &[Entry] {
        &self.general
    }

    /// Every grant, in no particular order.
    pub(super) fn all(&self) -> impl Iterator<Item = &Entry> {
        self.exact
            .values()
            .chain(self.by_project.values())
            .flat_map(|entries| entries.iter())
            .chain(self.general.iter())
    }

    /// Removes the grant named `name`; whether there was one.
    pub(super) fn remove(&mut self, name: &str) -> bool {
        let Some((order, place)) = self.named.remove(name) else {
            return false;
        };
        let without =
            |entries: &[Entry]| -> Arc<[Entry]> { entries.iter().filter(|e| e.order != order).cloned().collect() };
        match place {
            Slot::Exact(key) => {
                let kept = without(self.exact(&key));
                if kept.is_empty() {
                    self.exact.remove(&key);
                } else {
                    self.exact.insert(key, kept);
                }
            }
            Slot::Project(key) => {
                let kept = without(self.project(&key));
                if kept.is_empty() {
                    self.by_project.remove(&key);
                } else {
                    self.by_project.insert(key, kept);
                }
            }
            Slot::General => self.general = without(&self.general),
        }
        self.count -= 1;
        true
    }

    /// Adds `grant` after every grant already held.
    pub(super) fn add(&mut self, grant: Arc<Grant>) {
        let order = self.next_order;
        self.next_order += 1;
        let place = slot(&grant);
        if let Some(name) = &grant.name {
            self.named.insert(Arc::from(&**name), (order, place.clone()));
        }
        let entry = Entry { order, grant };
        let with = |entries: &[Entry], entry: Entry| -> Arc<[Entry]> {
            entries.iter().cloned().chain(std::iter::once(entry)).collect()
        };
        match place {
            Slot::Exact(key) => {
                let entries = with(self.exact(&key), entry);
                self.exact.insert(key, entries);
            }
            Slot::Project(key) => {
                let entries = with(self.project(&key), entry);
                self.by_project.insert(key, entries);
            }
            Slot::General => self.general = with(&self.general, entry),
        }
        self.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::CowMap;
    use std::sync::Arc;

    #[test]
    fn a_clone_written_to_leaves_the_original_as_it_was_and_shares_the_other_shards() {
        let mut original: CowMap<u32> = CowMap::new();
        for n in 0..10_000u32 {
            original.insert(Arc::from(n.to_string()), n);
        }
        let mut patched = original.clone();
        patched.insert(Arc::from("new"), 1);
        patched.remove("42");
        *patched.shard_mut("7") = Default::default();
        assert_eq!(original.get("42"), Some(&42));
        assert_eq!(original.get("new"), None);
        assert_eq!(original.values().count(), 10_000);
        assert_eq!(patched.get("42"), None);
        assert_eq!(patched.get("new"), Some(&1));
        let shared = original
            .shards
            .iter()
            .zip(patched.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert!(shared >= super::SHARDS - 3, "only {shared} shards shared");
    }
}
