//! The compiled policy: grants indexed for lookup by workload, items pre-rendered, and
//! every conflict found before it may serve.

mod diagnose;
mod files;
mod index;
mod item;
mod load;
pub mod model;
pub mod reseal;
pub mod review;
mod selector;
mod template;
mod value;

use std::fmt;

pub use crate::secret::SecretBytes;
pub use files::{is_policy_file_name, list_policy_folder, Seen as FilesSeen};
use item::OrderKey;
pub use item::{Encoding, FileAttributes, Item, Ownership, PermissionPolicy, Permissions, Target};
pub(crate) use load::parse_mode;
pub use load::{load_path, load_str, one_source, parse_path, read_plain, Loader, ParsedFile, PolicyError, Reloaded};
pub use selector::{Pattern, Selector, Specificity};
pub use value::Value;

use crate::auth::Workload;

/// The secrets a template splices, by name; none for a template that does not parse
/// (its load names the problem).
pub fn spliced_secrets(text: &str) -> impl Iterator<Item = String> {
    template::parse(text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|part| match part {
            template::RawPart::Secret(name) => Some(name),
            _ => None,
        })
}

/// A grant: who (selector) receives what (items, sorted by target).
pub struct Grant {
    pub name: Option<Box<str>>,
    pub location: Location,
    pub selector: Selector,
    pub specificity: Specificity,
    pub items: Box<[Item]>,
}

/// Where a grant or secret is written: `policy.toml:12`, or `postgres`.
#[derive(Clone, PartialEq, Eq)]
pub struct Location {
    /// Shared by every grant of the file.
    pub file: std::sync::Arc<str>,
    /// 0 when the source has no lines.
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => f.write_str(&self.file),
            line => write!(f, "{}:{line}", self.file),
        }
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Grant({}, {} items)", self.describe(), self.items.len())
    }
}

impl Grant {
    /// How errors and `explain` name the grant.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("grant `{name}` ({})", self.location),
            None => format!("grant at {}", self.location),
        }
    }
}

/// An immutable, checked policy. Built off the request path; a request only reads it.
/// A patch (the Postgres store's next change) makes a new one that shares all it does
/// not change with this one.
#[derive(Clone)]
pub struct Policy {
    grants: index::GrantIndex,
    secrets: usize,
    inputs: Vec<std::path::PathBuf>,
    /// How each file read looked when it was read.
    seen: files::Seen,
    /// What each file read held.
    contents: files::Contents,
    /// What a reload needs to compile only the files that changed; `None` where a
    /// reload compiles the whole policy (loaded from text or a database).
    reusable: Option<std::sync::Arc<load::Reusable>>,
    /// What loaded but is likely a mistake (`check` shows them, a load logs them).
    warnings: Vec<String>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("grants", &self.grants.len())
            .field("secrets", &self.secrets)
            .finish()
    }
}

/// What one workload receives: for each target, the item of the most specific grant.
pub struct Answer<'p> {
    items: Vec<(&'p Item, &'p Grant)>,
}

impl<'p> Answer<'p> {
    pub fn items(&self) -> impl ExactSizeIterator<Item = &'p Item> + '_ {
        self.items.iter().map(|(item, _)| *item)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Appends `{"secrets":[...]}` for `workload` to `out`.
    pub fn write_json(&self, workload: &Workload, out: &mut Vec<u8>) {
        out.reserve(16 + self.items.iter().map(|(i, _)| i.size_hint() + 1).sum::<usize>());
        out.extend_from_slice(b"{\"secrets\":[");
        for (n, (item, _)) in self.items.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            item.write_json(workload, out);
        }
        out.extend_from_slice(b"]}");
    }
}

/// One item of an answer with the grant that gave it and those it overrode.
pub struct Explained<'p> {
    pub item: &'p Item,
    pub grant: &'p Grant,
    pub overridden: Vec<&'p Grant>,
}

impl Policy {
    fn new(
        grants: Vec<(u64, std::sync::Arc<Grant>)>,
        secrets: usize,
        inputs: Vec<std::path::PathBuf>,
        seen: Vec<(std::path::PathBuf, files::Fingerprint)>,
    ) -> Self {
        Self {
            grants: index::GrantIndex::new(grants),
            secrets,
            inputs,
            seen: files::Seen(seen),
            contents: files::Contents::default(),
            reusable: None,
            warnings: Vec::new(),
        }
    }

    fn with_reusable(mut self, reusable: Option<std::sync::Arc<load::Reusable>>) -> Self {
        self.reusable = reusable;
        self
    }

    fn with_contents(mut self, contents: files::Contents) -> Self {
        self.contents = contents;
        self
    }

    /// The files the policy was compiled from and what each held.
    fn contents(&self) -> &files::Contents {
        &self.contents
    }

    fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }

    /// What loaded but is likely a mistake, such as a newline spliced into a template.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether a file the policy was read from has changed since: a change made before
    /// anything watched for it.
    pub fn changed_since_read(&self) -> bool {
        self.seen
            .0
            .iter()
            .any(|(path, seen)| files::Fingerprint::now(path).as_ref() != Some(seen))
    }

    /// How each file the policy was read from looked (the folder's listing included).
    fn seen(&self) -> &files::Seen {
        &self.seen
    }

    /// The files the policy was built from (policy files and `file` values): a change
    /// to any of them calls for a reload.
    pub fn inputs(&self) -> &[std::path::PathBuf] {
        &self.inputs
    }

    /// Every grant, in policy order (for a patched policy, patched grants last).
    pub fn grants(&self) -> Vec<&Grant> {
        let mut all: Vec<&index::Entry> = self.grants.all().collect();
        all.sort_by_key(|entry| entry.order);
        all.into_iter().map(|entry| &*entry.grant).collect()
    }

    /// The grants of `files` (by the names their locations give), in policy order.
    pub fn grants_of_files(&self, files: &[&str]) -> Vec<&Grant> {
        let mut of: Vec<&index::Entry> = self
            .grants
            .all()
            .filter(|entry| files.contains(&&*entry.grant.location.file))
            .collect();
        of.sort_by_key(|entry| entry.order);
        of.into_iter().map(|entry| &*entry.grant).collect()
    }

    pub fn grant_count(&self) -> usize {
        self.grants.len()
    }

    pub fn secret_count(&self) -> usize {
        self.secrets
    }

    /// The grants that apply to `workload`, most specific first (ties in policy order).
    fn matching(&self, workload: &Workload) -> Vec<&index::Entry> {
        let exact = self.grants.exact(workload);
        // Room for the project's and the fleet's grants too, most answers' whole count.
        let mut found: Vec<&index::Entry> = Vec::with_capacity(exact.len() + 8);
        found.extend(exact);
        for entry in self
            .grants
            .project(workload.project())
            .iter()
            .chain(self.grants.general())
        {
            if entry.grant.selector.matches(workload) {
                found.push(entry);
            }
        }
        found.sort_by(|a, b| {
            a.grant
                .specificity
                .cmp_desc(&b.grant.specificity)
                .then(a.order.cmp(&b.order))
        });
        found
    }

    /// What `workload` receives, ENV items by key then FILE items by path.
    pub fn answer(&self, workload: &Workload) -> Answer<'_> {
        let grants = self.matching(workload);
        let count = grants.iter().map(|entry| entry.grant.items.len()).sum();
        // Each item's place in the order is read once, through its two pointers (the item,
        // then its name), and the sort compares those keys by value, going back to the
        // names only on a tie: `policy/answer/100000/exact+project+globs` 249–251 ns ->
        // 187–192 (bench/README.md, "Issue 15, session 9").
        let mut items: Vec<(OrderKey, &Item, &Grant, usize)> = Vec::with_capacity(count);
        for (rank, entry) in grants.iter().enumerate() {
            items.extend(
                entry
                    .grant
                    .items
                    .iter()
                    .map(|item| (item.target().order_key(), item, &*entry.grant, rank)),
            );
        }
        // Most specific first within a target, then keep the first of each target.
        items.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.target().cmp(b.1.target()))
                .then(a.3.cmp(&b.3))
        });
        items.dedup_by(|later, first| later.0 == first.0 && later.1.target() == first.1.target());
        Answer {
            items: items.into_iter().map(|(_, item, grant, _)| (item, grant)).collect(),
        }
    }

    /// The answer with, for each item, the grant that gave it and those it overrode.
    pub fn explain(&self, workload: &Workload) -> Vec<Explained<'_>> {
        let grants = self.matching(workload);
        let answer = self.answer(workload);
        answer
            .items
            .iter()
            .map(|(item, grant)| Explained {
                item,
                grant,
                overridden: grants
                    .iter()
                    .map(|other| &*other.grant)
                    .filter(|other| !std::ptr::eq(*other, *grant))
                    .filter(|other| other.items.iter().any(|i| i.target() == item.target()))
                    .collect(),
            })
            .collect()
    }

    /// This policy with the grants named in `replaced` taken out and `added` put in (a
    /// change read from the Postgres store's log, compiled on its own and checked with
    /// the grants it could conflict with); `secrets` is how many secrets the result
    /// defines. Shares everything it does not change with `self`.
    pub fn patched<'n>(&self, replaced: impl IntoIterator<Item = &'n str>, added: Policy, secrets: usize) -> Policy {
        let mut grants = self.grants.clone();
        for name in replaced {
            grants.remove(name);
        }
        let mut added: Vec<&index::Entry> = added.grants.all().collect();
        added.sort_by_key(|entry| entry.order);
        for entry in added {
            if let Some(name) = &entry.grant.name {
                grants.remove(name);
            }
            grants.add(entry.grant.clone());
        }
        Policy {
            grants,
            secrets,
            inputs: Vec::new(),
            seen: files::Seen::default(),
            contents: files::Contents::default(),
            reusable: None,
            warnings: Vec::new(),
        }
    }
}
