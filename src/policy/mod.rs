//! The compiled policy: grants indexed for lookup by workload, items pre-rendered, and
//! every conflict found before it may serve.

mod diagnose;
mod files;
mod item;
mod load;
pub mod model;
pub mod reseal;
pub mod review;
mod selector;
mod template;
mod value;

use ahash::{HashMap, HashMapExt as _};
use std::fmt;

pub use crate::secret::SecretBytes;
pub use files::{is_policy_file_name, list_policy_folder};
pub use item::{Encoding, FileAttributes, Item, Ownership, PermissionPolicy, Permissions, Target};
pub(crate) use load::parse_mode;
pub use load::{load_path, load_str, one_source, parse_path, read_plain, Loader, ParsedFile, PolicyError};
pub use selector::{Pattern, Selector, Specificity};
pub use value::Value;

use crate::auth::Workload;

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

type GrantId = u32;

/// An immutable, checked policy. Built off the request path; a request only reads it.
pub struct Policy {
    grants: Vec<Grant>,
    /// Grants whose three fields are exact, by `project\0type\0id`.
    exact: HashMap<Box<str>, Box<[GrantId]>>,
    /// Grants with an exact project but a pattern for type or id.
    by_project: HashMap<Box<str>, Box<[GrantId]>>,
    /// Grants whose project is a pattern: tried against every workload.
    general: Vec<GrantId>,
    secrets: usize,
    inputs: Vec<std::path::PathBuf>,
    /// How each file read looked when it was read.
    seen: Vec<(std::path::PathBuf, files::Fingerprint)>,
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
    items: Vec<(&'p Item, GrantId)>,
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
        grants: Vec<Grant>,
        secrets: usize,
        inputs: Vec<std::path::PathBuf>,
        seen: Vec<(std::path::PathBuf, files::Fingerprint)>,
    ) -> Self {
        let mut exact: HashMap<Box<str>, Vec<GrantId>> = HashMap::new();
        let mut by_project: HashMap<Box<str>, Vec<GrantId>> = HashMap::new();
        let mut general = Vec::new();
        for (id, grant) in grants.iter().enumerate() {
            let id = GrantId::try_from(id).expect("fewer than 2^32 grants");
            if let Some(key) = grant.selector.exact_key() {
                exact.entry(key.into()).or_default().push(id);
            } else if let Some(project) = grant.selector.project.exact() {
                by_project.entry(project.into()).or_default().push(id);
            } else {
                general.push(id);
            }
        }
        let shrink = |map: HashMap<Box<str>, Vec<GrantId>>| -> HashMap<Box<str>, Box<[GrantId]>> {
            map.into_iter()
                .map(|(key, ids)| (key, ids.into_boxed_slice()))
                .collect()
        };
        let (exact, by_project) = (shrink(exact), shrink(by_project));
        Self {
            grants,
            exact,
            by_project,
            general,
            secrets,
            inputs,
            seen,
            warnings: Vec::new(),
        }
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
            .iter()
            .any(|(path, seen)| files::Fingerprint::now(path).as_ref() != Some(seen))
    }

    /// The files the policy was built from (policy files and `file` values): a change
    /// to any of them calls for a reload.
    pub fn inputs(&self) -> &[std::path::PathBuf] {
        &self.inputs
    }

    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    pub fn secret_count(&self) -> usize {
        self.secrets
    }

    /// The grants that apply to `workload`, most specific first (ties in policy order).
    fn matching(&self, workload: &Workload) -> Vec<GrantId> {
        let mut ids: Vec<GrantId> = Vec::new();
        if let Some(found) = self.exact.get(workload.index_key()) {
            ids.extend_from_slice(found);
        }
        let project_grants = self
            .by_project
            .get(workload.project())
            .map(|ids| &ids[..])
            .unwrap_or_default();
        for &id in project_grants.iter().chain(&self.general) {
            if self.grants[id as usize].selector.matches(workload) {
                ids.push(id);
            }
        }
        ids.sort_by(|a, b| {
            let (ga, gb) = (&self.grants[*a as usize], &self.grants[*b as usize]);
            ga.specificity.cmp_desc(&gb.specificity).then(a.cmp(b))
        });
        ids
    }

    /// What `workload` receives, ENV items by key then FILE items by path.
    pub fn answer(&self, workload: &Workload) -> Answer<'_> {
        let grants = self.matching(workload);
        let mut items: Vec<(&Item, GrantId, usize)> = Vec::new();
        for (rank, &id) in grants.iter().enumerate() {
            items.extend(self.grants[id as usize].items.iter().map(|item| (item, id, rank)));
        }
        // Most specific first within a target, then keep the first of each target.
        items.sort_by(|a, b| a.0.target.cmp(&b.0.target).then(a.2.cmp(&b.2)));
        items.dedup_by(|later, first| later.0.target == first.0.target);
        Answer {
            items: items.into_iter().map(|(item, id, _)| (item, id)).collect(),
        }
    }

    /// The answer with, for each item, the grant that gave it and those it overrode.
    pub fn explain(&self, workload: &Workload) -> Vec<Explained<'_>> {
        let grants = self.matching(workload);
        let answer = self.answer(workload);
        answer
            .items
            .iter()
            .map(|(item, id)| Explained {
                item,
                grant: &self.grants[*id as usize],
                overridden: grants
                    .iter()
                    .filter(|other| *other != id)
                    .map(|other| &self.grants[*other as usize])
                    .filter(|other| other.items.iter().any(|i| i.target == item.target))
                    .collect(),
            })
            .collect()
    }
}
