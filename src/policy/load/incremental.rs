//! A reload that compiles only the policy files that changed and keeps the grants of the
//! others, as they are, shared with the policy serving.
//!
//! An operator edits one file of a folder; compiling the 100,000-workload policy whole
//! again took a second of a core (more under a fleet's burst, while a revoked secret stays
//! served). The result must be the policy a whole compile would give, so this is tried
//! only where the files left alone cannot compile differently:
//!
//! - the same policy files, in the same order, and every `file` value reading as it did
//!   (the master keys and the environment do not change while envoi runs);
//! - no changed file defines secrets, before or after: the others' grants were compiled
//!   against the secrets as they are, and the changed files compile against them too;
//! - the serving policy had no warnings (they are not kept file by file).
//!
//! Anything else, and any problem the changed files have (a syntax error, a conflict,
//! a missing secret), goes to the whole compile, which names every problem as always.

use std::collections::HashMap as StdHashMap;
use std::sync::Arc;

use ahash::HashMap;

use super::super::files::{Contents, Seen};
use super::super::model::PolicyDoc;
use super::super::value::Value;
use super::super::{Grant, Policy};
use super::compile::Compiler;
use super::conflicts::any_conflict;
use super::source::Source;
use crate::seal::Keyring;

/// What a compile of files leaves for the next reload.
pub(in crate::policy) struct Reusable {
    /// Where each secret is defined.
    pub(super) defined: HashMap<String, String>,
    /// Each secret's value, resolved.
    pub(super) resolved: HashMap<String, Option<Value>>,
    /// For each policy file, in policy order: whether it defines secrets.
    pub(super) defines_secrets: Vec<bool>,
}

/// The policy `serving` becomes with the files marked in `changed` compiled again and
/// the grants of the others kept; `None` where only a whole compile can tell (above).
pub(super) fn recompile(sources: &[Source], changed: &[bool], serving: &Policy, keyring: &Keyring) -> Option<Policy> {
    let reusable = serving.reusable.as_ref()?;
    if !serving.warnings.is_empty()
        || reusable.defines_secrets.len() != sources.len()
        || changed.len() != sources.len()
        || changed.iter().zip(&reusable.defines_secrets).any(|(c, d)| *c && *d)
    {
        return None;
    }
    // The parsed documents, and the compiler's copy of the secrets, are garbage once
    // compiled: kept apart from the policy (crate::memory).
    let scratch = crate::memory::Heap::new();
    let mut compiler = Compiler::new(sources, keyring);
    (compiler.defined, compiler.resolved) = scratch.run(|| (reusable.defined.clone(), reusable.resolved.clone()));
    let mut compiled: StdHashMap<usize, Vec<Arc<Grant>>> = StdHashMap::new();
    for (index, source) in sources.iter().enumerate().filter(|(index, _)| changed[*index]) {
        let doc = scratch
            .run(|| toml::from_str::<PolicyDoc>(&source.text.borrow()))
            .ok()?;
        if !doc.secrets.is_empty() {
            return None;
        }
        let mut grants = Vec::with_capacity(doc.grants.len());
        for spanned in doc.grants {
            let location = source.place(spanned.span().start);
            grants.extend(compiler.grant(index, location, spanned.into_inner()).map(Arc::new));
        }
        // The text stays: should this give up, the whole compile reads the same sources.
        compiled.insert(index, grants);
    }
    if !compiler.problems.is_empty() || !compiler.warnings.is_empty() {
        return None;
    }

    // The serving index, its changed files' grants replaced: every other entry, and
    // every shard of its tables that holds none of them, is shared.
    let mut grants = serving.grants.clone();
    let mut added: Vec<Arc<Grant>> = Vec::new();
    for (index, new) in compiled {
        added.extend(new.iter().cloned());
        grants.replace_file(index, new);
    }
    // No grant at all, or a conflict: the whole compile says what is wrong.
    if grants.len() == 0 || any_conflict(&added, &grants) {
        return None;
    }

    // Watch and compare what the kept files read, and what the changed ones read now.
    let value_files: Vec<_> = serving.contents.value_files.iter().map(|(path, _)| path).collect();
    let mut inputs = compiler.inputs;
    inputs.extend(value_files.iter().map(|path| (*path).clone()));
    let mut seen = compiler.seen;
    seen.extend(
        serving
            .seen
            .0
            .iter()
            .filter(|(path, _)| value_files.contains(&path))
            .cloned(),
    );
    let contents = Contents {
        policy_files: compiler.contents.policy_files,
        value_files: serving
            .contents
            .value_files
            .iter()
            .cloned()
            .chain(compiler.contents.value_files)
            .collect(),
    };
    Some(Policy {
        grants,
        secrets: serving.secrets,
        inputs,
        seen: Seen(seen),
        contents,
        reusable: Some(reusable.clone()),
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Loader, Reloaded};
    use crate::auth::Workload;

    /// Every grant in order, and the answer of each workload named, as bytes.
    fn served(policy: &super::Policy, workloads: &[(&str, &str, &str)]) -> (Vec<String>, Vec<Vec<u8>>) {
        let grants = policy.grants().iter().map(|g| g.describe()).collect();
        let answers = workloads
            .iter()
            .map(|(project, kind, id)| {
                let workload = Workload::new(project, kind, id).unwrap();
                let mut body = Vec::new();
                policy.answer(&workload).write_json(&workload, &mut body);
                body
            })
            .collect();
        (grants, answers)
    }

    #[test]
    fn compiling_the_changed_files_gives_what_the_whole_compile_gives() {
        let folder = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(folder.path().join(name), text).unwrap();
        write(
            "00-secrets.toml",
            "[secrets.db]\nvalue = \"db-1\"\n[secrets.url]\ntemplate = \"u/${secret.db}/${projectId}\"\n",
        );
        let team = |n: u32, value: &str| {
            format!(
                "[[grants]]\nproject = \"p{n}\"\ntype = \"service\"\nid = \"api\"\nenv = {{ DB = \"db\", OWN = {{ value = \"{value}\" }} }}\n\n\
                 [[grants]]\nname = \"team-{n}\"\nproject = \"p{n}\"\nenv = {{ URL = \"url\" }}\n\n\
                 [[grants.files]]\npath = \"/etc/p{n}\"\nvalue = \"{value}\"\n"
            )
        };
        for n in 1..=3 {
            write(&format!("1{n}-team.toml"), &team(n, "v1"));
        }
        let loader = Loader::default();
        let serving = loader.load_path(folder.path()).unwrap();
        // The middle file: grants more (one of them general: a pattern for its project),
        // one value changed, one grant's place moved.
        write(
            "12-team.toml",
            &format!(
                "[[grants]]\nproject = \"p9\"\nenv = {{ LATE = \"url\" }}\n\n\
                 [[grants]]\nproject = \"p*\"\ntype = \"cron\"\nenv = {{ CRON = {{ value = \"c\" }} }}\n\n{}",
                team(2, "v2")
            ),
        );
        let Reloaded::Changed { policy, only, files } =
            loader.reload_path(folder.path(), Some(&serving), None).unwrap()
        else {
            panic!("the edit is a change");
        };
        let middle = folder.path().join("12-team.toml").display().to_string();
        assert_eq!((only, files), (Some(vec![middle.clone()]), 4));
        let diff = crate::policy::review::diff::diff_in_files(&serving, &policy, &[middle.as_str()]);
        assert_eq!(
            crate::policy::review::diff::summary(&diff),
            crate::policy::review::diff::summary(&crate::policy::review::diff::diff(&serving, &policy)),
            "the diff of the compiled file is the whole diff"
        );
        let whole = loader.load_path(folder.path()).unwrap();
        let workloads = [
            ("p1", "service", "api"),
            ("p2", "service", "api"),
            ("p2", "job", "x"),
            ("p3", "service", "api"),
            ("p9", "any", "thing"),
            ("p1", "cron", "nightly"),
        ];
        assert_eq!(served(&policy, &workloads), served(&whole, &workloads));
        assert_eq!(policy.grant_count(), 8);
        assert_eq!(policy.secret_count(), whole.secret_count());

        // A grant that conflicts with a kept file's, under the same exact key, and one
        // under a pattern: refused, as a whole compile refuses them.
        for conflicting in [
            "[[grants]]\nproject = \"p1\"\ntype = \"service\"\nid = \"api\"\nenv = { OWN = { value = \"x\" } }\n",
            "[[grants]]\nproject = \"p1\"\nenv = { URL = { value = \"x\" } }\n",
        ] {
            write("12-team.toml", conflicting);
            let refused = loader.reload_path(folder.path(), Some(&policy), None).unwrap_err();
            assert!(refused.to_string().contains("equal specificity"), "{refused}");
        }

        // A file that starts defining a secret is compiled whole (then put back as it was).
        write(
            "12-team.toml",
            "[secrets.own]\nvalue = \"own-1\"\n\n[[grants]]\nproject = \"p2\"\nenv = { MINE = \"own\" }\n",
        );
        let Reloaded::Changed {
            policy: with_secret,
            only,
            ..
        } = loader.reload_path(folder.path(), Some(&policy), None).unwrap()
        else {
            panic!("the edit is a change");
        };
        assert_eq!(only, None, "compiled whole");
        let whole = loader.load_path(folder.path()).unwrap();
        assert_eq!(served(&with_secret, &workloads), served(&whole, &workloads));
        write(
            "12-team.toml",
            &format!(
                "[[grants]]\nproject = \"p9\"\nenv = {{ LATE = \"url\" }}\n\n{}",
                team(2, "v2")
            ),
        );

        // Compiled from the incremental policy again: a change to the secrets' file is
        // compiled whole.
        write(
            "00-secrets.toml",
            "[secrets.db]\nvalue = \"db-2\"\n[secrets.url]\ntemplate = \"u/${secret.db}\"\n",
        );
        let Reloaded::Changed {
            policy: again, only, ..
        } = loader.reload_path(folder.path(), Some(&policy), None).unwrap()
        else {
            panic!("the edit is a change");
        };
        assert_eq!(only, None, "compiled whole");
        let whole = loader.load_path(folder.path()).unwrap();
        assert_eq!(served(&again, &workloads), served(&whole, &workloads));
    }
}
