//! What changes between two compiled policies: grants added, removed and changed, and
//! per ENV key or FILE path whether the value changed. Values are compared in memory
//! through [`Item::identity`] and never leave this module, not even as a hash.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use ahash::{HashMap, HashMapExt as _};

use super::super::{Grant, Policy, Selector, Target};

/// How an item of a grant kept in both policies changed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ItemChange {
    Added,
    Removed,
    /// Another value, or for a FILE other attributes (mode, owner, encoding).
    Value,
    /// The same value from another source (a secret renamed, inlined...).
    Source,
}

impl ItemChange {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Value => "value",
            Self::Source => "source",
        }
    }
}

pub struct ChangedItem<'p> {
    pub target: &'p Target,
    pub change: ItemChange,
    pub old_origin: Option<&'p str>,
    pub new_origin: Option<&'p str>,
}

pub struct ChangedGrant<'p> {
    pub old: &'p Grant,
    pub new: &'p Grant,
    pub selector_changed: bool,
    pub items: Vec<ChangedItem<'p>>,
}

pub struct PolicyDiff<'p> {
    pub added: Vec<&'p Grant>,
    pub removed: Vec<&'p Grant>,
    pub changed: Vec<ChangedGrant<'p>>,
    /// Warnings of the new policy that the old one did not have.
    pub new_warnings: Vec<String>,
}

impl PolicyDiff<'_> {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// How a grant is recognised across the two policies: its name, or for a grant without
/// one its selector (and its rank among unnamed grants of that selector). Its place in
/// the file is not part of it: moving a grant changes nothing.
#[derive(PartialEq, Eq, Hash)]
enum GrantKey<'p> {
    Name(&'p str),
    Selector(&'p Selector, usize),
}

/// Borrowed keys in a hash map: a reload diffs 100,000 grants against 100,000, and keys
/// formatted into strings in ordered maps were a third of the reload (bench/README.md).
fn keyed(grants: Vec<&Grant>) -> HashMap<GrantKey<'_>, &Grant> {
    let mut keyed = HashMap::with_capacity(grants.len());
    let mut seen: HashMap<&Selector, usize> = HashMap::new();
    for grant in grants {
        let key = match &grant.name {
            Some(name) => GrantKey::Name(name),
            None => {
                let n = seen.entry(&grant.selector).or_default();
                *n += 1;
                GrantKey::Selector(&grant.selector, *n)
            }
        };
        keyed.insert(key, grant);
    }
    keyed
}

/// The items of a grant kept in both policies that changed. A grant's items are sorted
/// by target: one walk over both.
fn item_changes<'p>(old: &'p Grant, new: &'p Grant) -> Vec<ChangedItem<'p>> {
    let (mut olds, mut news) = (old.items.iter().peekable(), new.items.iter().peekable());
    let mut changes = Vec::new();
    loop {
        let (was, now) = match (olds.peek(), news.peek()) {
            (None, None) => break,
            (Some(was), Some(now)) => match was.target().cmp(now.target()) {
                Ordering::Less => (olds.next(), None),
                Ordering::Greater => (None, news.next()),
                Ordering::Equal => (olds.next(), news.next()),
            },
            (Some(_), None) => (olds.next(), None),
            (None, Some(_)) => (None, news.next()),
        };
        let change = match (was, now) {
            (None, Some(_)) => ItemChange::Added,
            (Some(_), None) => ItemChange::Removed,
            (Some(was), Some(now)) if !was.gives_the_same(now) => ItemChange::Value,
            (Some(was), Some(now)) if was.origin() != now.origin() => ItemChange::Source,
            _ => continue,
        };
        let target = was.or(now).expect("one of the two").target();
        changes.push(ChangedItem {
            target,
            change,
            old_origin: was.map(|i| i.origin()),
            new_origin: now.map(|i| i.origin()),
        });
    }
    changes
}

/// What `new` changes from `old`. Both must be compiled with the same master keys.
pub fn diff<'p>(old: &'p Policy, new: &'p Policy) -> PolicyDiff<'p> {
    let mut result = diff_grants(old.grants(), new.grants());
    // Warnings name their file; compare them without it, so that OLD and NEW may be
    // files of different names.
    let stripped = |policy: &Policy| {
        let mut files = BTreeSet::new();
        for grant in policy.grants() {
            files.insert(grant.location.file.to_string());
        }
        move |w: &str| files.iter().fold(w.to_owned(), |w, file| w.replace(file.as_str(), ""))
    };
    let (old_strip, new_strip) = (stripped(old), stripped(new));
    let known: BTreeSet<String> = old.warnings().iter().map(|w| old_strip(w)).collect();
    result.new_warnings = new
        .warnings()
        .iter()
        .filter(|w| !known.contains(&new_strip(w)))
        .cloned()
        .collect();
    result
}

/// What `new` changes from `old` in the grants of `files`: the diff of a reload that
/// compiled only those files and kept the others' grants as they were. Unnamed grants
/// are told apart by their rank among those of the same selector in these files.
pub fn diff_in_files<'p>(old: &'p Policy, new: &'p Policy, files: &[&str]) -> PolicyDiff<'p> {
    let mut result = diff_grants(old.grants_of_files(files), new.grants_of_files(files));
    result.new_warnings = new.warnings().to_vec();
    result
}

/// What the grants `new` change from the grants `old`, warnings aside.
fn diff_grants<'p>(old: Vec<&'p Grant>, new: Vec<&'p Grant>) -> PolicyDiff<'p> {
    let (olds, news) = (keyed(old), keyed(new));
    let mut result = PolicyDiff {
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        new_warnings: Vec::new(),
    };
    for (key, was) in &olds {
        match news.get(key) {
            None => result.removed.push(*was),
            // Kept as it was: the same grant, shared by both policies.
            Some(now) if std::ptr::eq(*was, *now) => {}
            Some(now) => {
                let selector_changed = was.selector != now.selector;
                let items = item_changes(was, now);
                if selector_changed || !items.is_empty() {
                    result.changed.push(ChangedGrant {
                        old: was,
                        new: now,
                        selector_changed,
                        items,
                    });
                }
            }
        }
    }
    result.added = news
        .iter()
        .filter(|(key, _)| !olds.contains_key(*key))
        .map(|(_, grant)| *grant)
        .collect();
    // Policy order reads best.
    let place = |g: &Grant| (g.location.file.clone(), g.location.line);
    result.added.sort_by_key(|g| place(g));
    result.removed.sort_by_key(|g| place(g));
    result.changed.sort_by_key(|c| place(c.new));
    result
}

/// At most this many names per list in a reload's log line.
const NAMES_LOGGED: usize = 10;

/// Names for a log line: the first [`NAMES_LOGGED`], and how many more.
pub fn name_list<S: AsRef<str>>(names: &[S]) -> String {
    let more = names.len().saturating_sub(NAMES_LOGGED);
    let mut shown = names
        .iter()
        .take(NAMES_LOGGED)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        shown.push_str(&format!(" and {more} more"));
    }
    shown
}

/// A reload's one-line account of what changed: counts, and the names (never a value)
/// of the grants added, removed and changed, and of the secrets whose value changed.
pub fn summary(diff: &PolicyDiff<'_>) -> String {
    if diff.is_empty() {
        return "no grant changed".to_owned();
    }
    let name = |grant: &Grant| match &grant.name {
        Some(name) => name.to_string(),
        None => grant.location.to_string(),
    };
    let list = |names: Vec<String>| name_list(&names);
    let mut secrets: BTreeSet<&str> = BTreeSet::new();
    for change in &diff.changed {
        for item in change.items.iter().filter(|i| i.change == ItemChange::Value) {
            let named = item
                .new_origin
                .and_then(|o| o.strip_prefix("secret `")?.strip_suffix('`'));
            secrets.extend(named);
        }
    }
    let mut parts = Vec::new();
    for (what, grants) in [("added", &diff.added), ("removed", &diff.removed)] {
        if !grants.is_empty() {
            let names = grants.iter().map(|g| name(g)).collect();
            parts.push(format!("{} grant(s) {what}: {}", grants.len(), list(names)));
        }
    }
    if !diff.changed.is_empty() {
        let names = diff.changed.iter().map(|c| name(c.new)).collect();
        parts.push(format!("{} grant(s) changed: {}", diff.changed.len(), list(names)));
    }
    if !secrets.is_empty() {
        let names = secrets.iter().map(|s| s.to_string()).collect();
        parts.push(format!("values changed of secret(s): {}", list(names)));
    }
    parts.join("; ")
}
