//! Who receives a secret: every item of every grant that gives secret NAME, directly or
//! through templates that splice it (at any depth), and which more specific grants
//! override it for some of the workloads it selects.
//!
//! The compiled policy splices templates at load and keeps no reference from a template
//! to the secrets it names, so those come from the policy documents, parsed again.

use std::collections::{HashMap, VecDeque};

use super::super::load::ParsedFile;
use super::super::model::{EnvSpec, PolicyDoc};
use super::super::template::{self, RawPart};
use super::super::{Grant, Item, Policy, Target};

/// Per target of one grant, the secrets its inline template splices.
type InlineTemplates = Vec<(Target, Vec<String>)>;

/// Which secrets each template names, and which each grant's inline templates name.
#[derive(Default)]
pub struct References {
    /// Secret → the secrets its template splices.
    templates: HashMap<String, Vec<String>>,
    /// Every secret defined.
    defined: std::collections::HashSet<String>,
    /// (file, n-th grant of the file) → per target, the secrets its inline template splices.
    inline: HashMap<(String, usize), InlineTemplates>,
}

fn spliced(text: &str) -> Vec<String> {
    template::parse(text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|part| match part {
            RawPart::Secret(name) => Some(name),
            _ => None,
        })
        .collect()
}

impl References {
    pub fn from_files(files: &[ParsedFile]) -> Self {
        let mut refs = Self::default();
        for file in files {
            refs.add_doc(&file.name, &file.doc);
        }
        refs
    }

    /// One policy document; `file` is how the compiled grants' locations name it.
    pub fn add_doc(&mut self, file: &str, doc: &PolicyDoc) {
        for (name, spec) in &doc.secrets {
            self.defined.insert(name.clone());
            if let Some(text) = &spec.get_ref().template {
                self.templates.insert(name.clone(), spliced(text));
            }
        }
        for (n, grant) in doc.grants.iter().enumerate() {
            let grant = grant.get_ref();
            let mut found = Vec::new();
            for (key, spec) in &grant.env {
                if let EnvSpec::Inline(spec) = spec {
                    if let Some(text) = &spec.template {
                        found.push((Target::Env(key.as_str().into()), spliced(text)));
                    }
                }
            }
            for spec in &grant.files {
                if let Some(text) = &spec.template {
                    found.push((Target::File(spec.path.as_str().into()), spliced(text)));
                }
            }
            if !found.is_empty() {
                self.inline.insert((file.to_owned(), n), found);
            }
        }
    }

    /// Whether the policy defines a secret of this name (else the name may be a typo).
    pub fn defines(&self, name: &str) -> bool {
        self.defined.contains(name)
    }

    /// For every secret that gives `name`, the chain from it down to `name`
    /// (`[database_url, db_password]` when `database_url` splices `db_password`).
    fn givers_of(&self, name: &str) -> HashMap<String, Vec<String>> {
        let mut spliced_by: HashMap<&str, Vec<&str>> = HashMap::new();
        for (template, names) in &self.templates {
            for named in names {
                spliced_by.entry(named.as_str()).or_default().push(template.as_str());
            }
        }
        let mut chains = HashMap::from([(name.to_owned(), vec![name.to_owned()])]);
        let mut queue = VecDeque::from([name.to_owned()]);
        while let Some(current) = queue.pop_front() {
            let mut users = spliced_by.get(current.as_str()).cloned().unwrap_or_default();
            users.sort_unstable();
            for user in users {
                if !chains.contains_key(user) {
                    let mut chain = vec![user.to_owned()];
                    chain.extend(chains[&current].iter().cloned());
                    chains.insert(user.to_owned(), chain);
                    queue.push_back(user.to_owned());
                }
            }
        }
        chains
    }
}

/// One item that gives the secret.
pub struct Giving<'p> {
    pub grant: &'p Grant,
    pub item: &'p Item,
    /// How the item reaches the secret: the secret it names (or `inline template`), the
    /// templates between, and the secret itself last: `[database_url, db_password]`.
    pub via: Vec<String>,
    /// More specific grants that give the same target to some of the workloads this
    /// grant selects, with whether they give another value.
    pub overridden_by: Vec<(&'p Grant, bool)>,
}

/// The secret an item names, from its origin ("secret `NAME`").
fn named_secret(item: &Item) -> Option<&str> {
    item.origin().strip_prefix("secret `")?.strip_suffix('`')
}

impl Policy {
    /// Every item that gives secret `name`, in policy order.
    pub fn givers(&self, name: &str, refs: &References) -> Vec<Giving<'_>> {
        let chains = refs.givers_of(name);
        // The n-th grant of each file, as the documents list them.
        let mut by_file: HashMap<&str, Vec<&Grant>> = HashMap::new();
        for grant in self.grants() {
            by_file.entry(&grant.location.file).or_default().push(grant);
        }
        let mut ordinal: HashMap<*const Grant, usize> = HashMap::new();
        for grants in by_file.values_mut() {
            grants.sort_by_key(|g| g.location.line);
            for (n, grant) in grants.iter().enumerate() {
                ordinal.insert(*grant as *const Grant, n);
            }
        }
        let mut found = Vec::new();
        for grant in self.grants() {
            let n = ordinal[&(grant as *const Grant)];
            let inline = refs.inline.get(&(grant.location.file.to_string(), n));
            for item in grant.items.iter() {
                let via = match named_secret(item) {
                    Some(secret) => chains.get(secret).cloned(),
                    None => inline
                        .and_then(|targets| targets.iter().find(|(t, _)| t == item.target()))
                        .and_then(|(_, names)| names.iter().find_map(|n| chains.get(n)))
                        .map(|chain| {
                            let mut via = vec!["inline template".to_owned()];
                            via.extend(chain.iter().cloned());
                            via
                        }),
                };
                if let Some(via) = via {
                    found.push(Giving {
                        grant,
                        item,
                        via,
                        overridden_by: Vec::new(),
                    });
                }
            }
        }
        // The grants that give each target some giving item has: one pass over the
        // policy, not one per item.
        let wanted: std::collections::HashSet<&Target> = found.iter().map(|g| g.item.target()).collect();
        let mut by_target: HashMap<&Target, Vec<(&Grant, &Item)>> = HashMap::new();
        for grant in self.grants() {
            for item in grant.items.iter().filter(|i| wanted.contains(i.target())) {
                by_target.entry(item.target()).or_default().push((grant, item));
            }
        }
        for giving in &mut found {
            giving.overridden_by = overriders(&by_target[giving.item.target()], giving.grant, giving.item);
        }
        found
    }
}

/// Of `others` (the grants that give `item`'s target), those more specific than `grant`
/// that can select a workload it selects, each with whether its value differs.
fn overriders<'p>(others: &[(&'p Grant, &'p Item)], grant: &Grant, item: &Item) -> Vec<(&'p Grant, bool)> {
    others
        .iter()
        .filter(|(other, _)| other.specificity > grant.specificity && other.selector.overlaps(&grant.selector))
        .map(|(other, theirs)| (*other, !theirs.gives_the_same(item)))
        .collect()
}
