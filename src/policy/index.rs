//! The compiled policy's lookup tables, shared between snapshots: a patch (one change
//! from the Postgres store's log) copies the few shards it touches and shares the rest,
//! so that a change to a policy of 100,000 grants costs what the change touches.
//!
//! A table holds its grants and nothing else: the key a grant is filed under is read
//! from the grant itself, not copied beside it. At 100,000 workloads a copied
//! `project\0type\0id` key and a one-entry array per workload were 8 MiB of the 100 MiB
//! a policy held (bench/README.md, memory).

use std::sync::Arc;

use ahash::RandomState;
use hashbrown::hash_table::{Entry as Place, HashTable};

use super::item::same_name;
use super::Grant;
use crate::auth::Workload;

/// How many shards a map is cut into. A patch copies a shard it changes, so at 100,000
/// keys it copies a few hundred entries (pointers), not 100,000.
const SHARDS: usize = 256;

/// What a table is looked up by: a workload's three names, or one name (the others
/// empty, which no name is).
#[derive(Clone, Copy, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Key<'a>(&'a str, &'a str, &'a str);

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        same_name(self.0, other.0) && same_name(self.1, other.1) && same_name(self.2, other.2)
    }
}

impl<'a> Key<'a> {
    fn name(name: &'a str) -> Self {
        Self(name, "", "")
    }
}

/// A value that knows the key it is filed under.
pub(super) trait Keyed {
    fn key(&self) -> Key<'_>;
}

/// A hash table cut into shards behind `Arc`s: cloning it clones 256 pointers, and a
/// write copies only the shard it lands in (copy-on-write).
#[derive(Clone)]
pub(super) struct CowMap<V> {
    hasher: RandomState,
    shards: Arc<[Arc<HashTable<V>>]>,
}

impl<V: Clone + Keyed> CowMap<V> {
    pub(super) fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Arc::new(HashTable::new())).collect(),
        }
    }

    fn hash(&self, key: Key<'_>) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard_of(hash: u64) -> usize {
        // Bits the shard's own table uses for neither its slot (the low bits) nor its tag
        // (the top seven, which hashbrown compares before the key): sharding by the top
        // bits gave every key of a shard the same tag, so a lookup compared the keys of a
        // whole group, a cache miss each (bench/README.md).
        (hash >> 40) as usize % SHARDS
    }

    pub(super) fn get(&self, key: Key<'_>) -> Option<&V> {
        let hash = self.hash(key);
        self.shards[Self::shard_of(hash)].find(hash, |v| v.key() == key)
    }

    /// The shard `hash` lands in, made this map's own (copied if shared).
    fn shard_mut(&mut self, hash: u64) -> &mut HashTable<V> {
        if Arc::get_mut(&mut self.shards).is_none() {
            self.shards = self.shards.iter().cloned().collect();
        }
        let shards = Arc::get_mut(&mut self.shards).expect("this map's own");
        Arc::make_mut(&mut shards[Self::shard_of(hash)])
    }

    /// Files `value` under its key, in place of what was there.
    pub(super) fn insert(&mut self, value: V) {
        let hasher = self.hasher.clone();
        let hash = self.hash(value.key());
        let shard = self.shard_mut(hash);
        match shard.entry(hash, |v| v.key() == value.key(), |v| hasher.hash_one(v.key())) {
            Place::Occupied(mut held) => *held.get_mut() = value,
            Place::Vacant(empty) => {
                empty.insert(value);
            }
        }
    }

    pub(super) fn remove(&mut self, key: Key<'_>) -> Option<V> {
        let hash = self.hash(key);
        // Not made this map's own unless there is something to take out.
        self.get(key)?;
        let found = self.shard_mut(hash).find_entry(hash, |v| v.key() == key).ok()?;
        Some(found.remove().0)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }
}

/// How many bits of an order number a grant's place in its file takes; the bits above
/// are the file's place in the policy. A file's grants are then replaced without
/// renumbering any other file's (`GrantIndex::replace_file`).
const FILE_SHIFT: u32 = 40;

/// The order of the grant at `position` in the file at `file`, both counted from 0.
pub(super) fn order_of(file: usize, position: usize) -> u64 {
    ((file as u64) << FILE_SHIFT) | position as u64
}

/// A grant in the tables, with its place in policy order: the order breaks ties between
/// grants of equal specificity.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) order: u64,
    pub(super) grant: Arc<Grant>,
}

/// A named grant, filed by its name.
impl Keyed for Entry {
    fn key(&self) -> Key<'_> {
        Key::name(self.grant.name.as_deref().expect("only named grants are filed by name"))
    }
}

/// The grants filed under one key, in policy order; most keys have one.
#[derive(Clone)]
pub(super) enum Entries {
    One(Entry),
    Many(Arc<[Entry]>),
}

impl std::ops::Deref for Entries {
    type Target = [Entry];
    fn deref(&self) -> &[Entry] {
        match self {
            Self::One(entry) => std::slice::from_ref(entry),
            Self::Many(entries) => entries,
        }
    }
}

impl Entries {
    /// `None` for no entries: a key with none is not filed.
    fn of(mut entries: Vec<Entry>) -> Option<Self> {
        match entries.len() {
            0 => None,
            1 => entries.pop().map(Self::One),
            _ => Some(Self::Many(entries.into())),
        }
    }
}

/// Filed under the key of their grants, which all have the same one.
impl Keyed for Entries {
    fn key(&self) -> Key<'_> {
        filed_key(&self[0].grant)
    }
}

/// The key `grant` is filed under in its table: its three names, or its project.
fn filed_key(grant: &Grant) -> Key<'_> {
    fn field(pattern: &super::Pattern) -> &str {
        pattern.exact().unwrap_or_default()
    }
    let selector = &grant.selector;
    match slot(grant) {
        Slot::Exact => Key(field(&selector.project), field(&selector.kind), field(&selector.id)),
        Slot::Project | Slot::General => Key::name(field(&selector.project)),
    }
}

/// The grants, indexed by what a workload is looked up by.
#[derive(Clone)]
pub(super) struct GrantIndex {
    /// Grants whose three fields are exact, by those three.
    exact: CowMap<Entries>,
    /// Grants with an exact project but a pattern for type or id.
    by_project: CowMap<Entries>,
    /// Grants whose project is a pattern: tried against every workload.
    general: Arc<[Entry]>,
    /// Named grants by name, for a patch to find what it replaces.
    named: CowMap<Entry>,
    count: usize,
    next_order: u64,
}

/// Which table a grant is filed in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Exact,
    Project,
    General,
}

fn slot(grant: &Grant) -> Slot {
    let selector = &grant.selector;
    match (selector.project.exact(), selector.kind.exact(), selector.id.exact()) {
        (Some(_), Some(_), Some(_)) => Slot::Exact,
        (Some(_), _, _) => Slot::Project,
        _ => Slot::General,
    }
}

impl GrantIndex {
    /// The index of `grants`, each with its order ([`order_of`]).
    pub(super) fn new(grants: Vec<(u64, Arc<Grant>)>) -> Self {
        let count = grants.len();
        let next_order = grants.iter().map(|(order, _)| order + 1).max().unwrap_or(0);
        let entries: Vec<Entry> = grants
            .into_iter()
            .map(|(order, grant)| Entry { order, grant })
            .collect();
        let mut named = CowMap::new();
        for entry in entries.iter().filter(|e| e.grant.name.is_some()) {
            named.insert(entry.clone());
        }
        let mut exact = Vec::new();
        let mut by_project = Vec::new();
        let mut general = Vec::new();
        for entry in entries {
            match slot(&entry.grant) {
                Slot::Exact => exact.push(entry),
                Slot::Project => by_project.push(entry),
                Slot::General => general.push(entry),
            }
        }
        Self {
            exact: filed(exact),
            by_project: filed(by_project),
            general: general.into(),
            named,
            count,
            next_order,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Grants with exactly this workload's three names.
    pub(super) fn exact(&self, workload: &Workload) -> &[Entry] {
        self.exact
            .get(Key(workload.project(), workload.kind(), workload.id()))
            .map(|e| &e[..])
            .unwrap_or_default()
    }

    /// Grants with this exact project and a pattern for type or id.
    pub(super) fn project(&self, project: &str) -> &[Entry] {
        self.by_project
            .get(Key::name(project))
            .map(|e| &e[..])
            .unwrap_or_default()
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

    /// The table `grant` is filed in, or `None` for the general list.
    fn table_mut(&mut self, grant: &Grant) -> Option<&mut CowMap<Entries>> {
        match slot(grant) {
            Slot::Exact => Some(&mut self.exact),
            Slot::Project => Some(&mut self.by_project),
            Slot::General => None,
        }
    }

    /// Removes the grant named `name`; whether there was one.
    pub(super) fn remove(&mut self, name: &str) -> bool {
        let Some(named) = self.named.remove(Key::name(name)) else {
            return false;
        };
        self.unfile(&named);
        true
    }

    /// Adds `grant` after every grant already held.
    pub(super) fn add(&mut self, grant: Arc<Grant>) {
        let order = self.next_order;
        self.file(Entry { order, grant });
    }

    /// Replaces the grants of the file at `file` (in the numbering of [`order_of`]) with
    /// `grants`, in their order; every other entry, and every table shard that holds none
    /// of them, is shared with the index this one was cloned from.
    pub(super) fn replace_file(&mut self, file: usize, grants: Vec<Arc<Grant>>) {
        let of_file = |entry: &Entry| entry.order >> FILE_SHIFT == file as u64;
        let gone: Vec<Entry> = self.all().filter(|entry| of_file(entry)).cloned().collect();
        // The general list is rebuilt once, not once an entry: a file of many glob
        // grants would otherwise cost the square of their number.
        let mut general: Vec<Entry> = self.general.iter().filter(|entry| !of_file(entry)).cloned().collect();
        for entry in &gone {
            if let Some(name) = &entry.grant.name {
                if self
                    .named
                    .get(Key::name(name))
                    .is_some_and(|held| held.order == entry.order)
                {
                    self.named.remove(Key::name(name));
                }
            }
            if slot(&entry.grant) == Slot::General {
                self.count -= 1;
            } else {
                self.unfile(entry);
            }
        }
        for (position, grant) in grants.into_iter().enumerate() {
            let entry = Entry {
                order: order_of(file, position),
                grant,
            };
            if slot(&entry.grant) == Slot::General {
                self.register(&entry);
                general.push(entry);
            } else {
                self.file(entry);
            }
        }
        general.sort_by_key(|entry| entry.order);
        self.general = general.into();
    }

    /// Takes `entry` out of its table or the general list (not out of `named`).
    fn unfile(&mut self, entry: &Entry) {
        let without =
            |entries: &[Entry]| -> Vec<Entry> { entries.iter().filter(|e| e.order != entry.order).cloned().collect() };
        match self.table_mut(&entry.grant) {
            Some(table) => {
                let key = filed_key(&entry.grant);
                match table.get(key).map(|held| Entries::of(without(held))) {
                    Some(Some(kept)) => table.insert(kept),
                    Some(None) => drop(table.remove(key)),
                    None => {}
                }
            }
            None => self.general = without(&self.general).into(),
        }
        self.count -= 1;
    }

    /// Files `entry` in its table (or the general list) and, if named, by its name; the
    /// entries under one key stay in policy order.
    fn file(&mut self, entry: Entry) {
        self.register(&entry);
        let with = |entries: &[Entry], entry: Entry| -> Vec<Entry> {
            let mut entries: Vec<Entry> = entries.iter().cloned().chain(std::iter::once(entry)).collect();
            entries.sort_by_key(|e| e.order);
            entries
        };
        match self.table_mut(&entry.grant) {
            Some(table) => {
                let held = table
                    .get(filed_key(&entry.grant))
                    .map(|held| &held[..])
                    .unwrap_or_default();
                let entries = with(held, entry);
                table.insert(Entries::of(entries).expect("one at least"));
            }
            None => self.general = with(&self.general, entry).into(),
        }
    }

    /// Counts `entry` in, files it by name if it has one, and keeps the next order past it.
    fn register(&mut self, entry: &Entry) {
        self.next_order = self.next_order.max(entry.order + 1);
        if entry.grant.name.is_some() {
            self.named.insert(entry.clone());
        }
        self.count += 1;
    }

    /// The grants that may share a bucket of `load::conflicts` with `grant`: those of its
    /// table key (or the general list), of equal specificity, `grant` itself aside.
    pub(super) fn peers<'a>(&'a self, grant: &'a Grant) -> impl Iterator<Item = &'a Grant> + 'a {
        let filed: &[Entry] = match slot(grant) {
            Slot::Exact => self.exact.get(filed_key(grant)).map(|e| &e[..]).unwrap_or_default(),
            Slot::Project => self
                .by_project
                .get(filed_key(grant))
                .map(|e| &e[..])
                .unwrap_or_default(),
            Slot::General => &self.general,
        };
        filed
            .iter()
            .map(|entry| &*entry.grant)
            .filter(move |peer| peer.specificity == grant.specificity && !std::ptr::eq(*peer, grant))
    }
}

/// A table of `entries` (in policy order) by their key.
fn filed(mut entries: Vec<Entry>) -> CowMap<Entries> {
    // Grouped by key without a copy of any key: sorted by it, a stable sort keeping
    // policy order within a key.
    entries.sort_by(|a, b| filed_key(&a.grant).cmp(&filed_key(&b.grant)));
    let mut table = CowMap::new();
    let mut run: Vec<Entry> = Vec::new();
    for entry in entries {
        let same = run
            .last()
            .is_some_and(|last| filed_key(&last.grant) == filed_key(&entry.grant));
        if !same {
            if let Some(done) = Entries::of(std::mem::take(&mut run)) {
                table.insert(done);
            }
        }
        run.push(entry);
    }
    if let Some(done) = Entries::of(run) {
        table.insert(done);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::{CowMap, Key, Keyed};

    #[derive(Clone)]
    struct Named(String, u32);

    impl Keyed for Named {
        fn key(&self) -> Key<'_> {
            Key::name(&self.0)
        }
    }

    #[test]
    fn a_clone_written_to_leaves_the_original_as_it_was_and_shares_the_other_shards() {
        let mut original: CowMap<Named> = CowMap::new();
        for n in 0..10_000u32 {
            original.insert(Named(n.to_string(), n));
        }
        let mut patched = original.clone();
        patched.insert(Named("new".into(), 1));
        patched.remove(Key::name("42"));
        patched.insert(Named("7".into(), 70));
        let get = |map: &CowMap<Named>, name: &str| map.get(Key::name(name)).map(|v| v.1);
        assert_eq!(get(&original, "42"), Some(42));
        assert_eq!(get(&original, "new"), None);
        assert_eq!(get(&original, "7"), Some(7));
        assert_eq!(original.values().count(), 10_000);
        assert_eq!(get(&patched, "42"), None);
        assert_eq!(get(&patched, "new"), Some(1));
        assert_eq!(get(&patched, "7"), Some(70));
        assert_eq!(patched.values().count(), 10_000);
        let shared = original
            .shards
            .iter()
            .zip(patched.shards.iter())
            .filter(|(a, b)| std::sync::Arc::ptr_eq(a, b))
            .count();
        assert!(shared >= super::SHARDS - 3, "only {shared} shards shared");
    }
}

#[cfg(test)]
mod patches {
    use crate::auth::Workload;
    use crate::policy::{load_str, Policy};

    fn given(policy: &Policy, workload: &Workload) -> Vec<String> {
        let answer = policy.answer(workload);
        let mut body = Vec::new();
        answer.write_json(workload, &mut body);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| format!("{}={}", item["key"].as_str().unwrap(), item["value"].as_str().unwrap()))
            .collect()
    }

    const POLICY: &str = r#"
        [[grants]]
        name = "a"
        project = "p"
        type = "service"
        id = "web"
        env = { A = { value = "1" } }

        [[grants]]
        project = "p"
        type = "service"
        id = "web"
        env = { B = { value = "2" } }

        [[grants]]
        name = "proj"
        project = "p"
        env = { P = { value = "3" } }

        [[grants]]
        name = "all"
        env = { G = { value = "4" } }
    "#;

    #[test]
    fn grants_filed_under_one_key_are_all_found_and_a_patch_replaces_only_the_one_named() {
        let policy = load_str("policy.toml", POLICY, None).unwrap();
        let web = Workload::new("p", "service", "web").unwrap();
        let other = Workload::new("p", "job", "web").unwrap();
        assert_eq!(given(&policy, &web), ["A=1", "B=2", "G=4", "P=3"]);
        assert_eq!(given(&policy, &other), ["G=4", "P=3"]);

        let added = load_str(
            "patch",
            r#"
            [[grants]]
            name = "a"
            project = "p"
            type = "service"
            id = "web"
            env = { A = { value = "10" } }

            [[grants]]
            name = "more"
            project = "p"
            type = "job"
            env = { J = { value = "5" } }
            "#,
            None,
        )
        .unwrap();
        let patched = policy.patched(["proj", "all"], added, 0);
        assert_eq!(given(&patched, &web), ["A=10", "B=2"]);
        assert_eq!(given(&patched, &other), ["J=5"]);
        assert_eq!(patched.grant_count(), 3);
        // The policy patched is left as it was.
        assert_eq!(given(&policy, &web), ["A=1", "B=2", "G=4", "P=3"]);
        assert_eq!(policy.grant_count(), 4);

        let emptied = patched.patched(
            ["a"],
            load_str(
                "none",
                "[[grants]]\nname = \"x\"\nid = \"nobody\"\nenv = { X = { value = \"0\" } }\n",
                None,
            )
            .unwrap(),
            0,
        );
        assert_eq!(given(&emptied, &web), ["B=2"]);
    }
}
