//! From TOML text to a checked [`Policy`], with every problem named: the entry points
//! and the error. Reading the files is `source`, compiling them `compile` (with the
//! FILE attributes in `attributes`), and finding equal-specificity overlaps `conflicts`.

mod attributes;
mod compile;
mod conflicts;
mod grant;
mod incremental;
mod source;

use std::fmt;
use std::path::{Path, PathBuf};

use super::files::{self, Comparison, Digest, Fingerprint};
use super::model::{PolicyDoc, SourceSpec};
use super::Policy;
use crate::seal::Keyring;
use crate::secret::SecretBytes;
pub(crate) use attributes::parse_mode;
use compile::{compile_docs, os_bytes};
pub(in crate::policy) use incremental::Reusable;
use source::{read_sources, seen_of, shape_problems, Source};

/// Every problem found while loading a policy. Messages name files, lines, grants,
/// secrets, variables and paths, never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyError {
    pub problems: Vec<String>,
    /// The files the failed load read or tried to read: a reload watches them, so that
    /// creating a missing file is noticed.
    pub inputs: Vec<PathBuf>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "the policy does not load: {one}"),
            many => {
                write!(f, "the policy does not load ({} problems):", many.len())?;
                for problem in many {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PolicyError {}

impl PolicyError {
    fn one(problem: String) -> Self {
        Self {
            problems: vec![problem],
            inputs: Vec::new(),
        }
    }

    /// An error made of `problems`.
    pub fn new(problems: Vec<String>) -> Self {
        Self {
            problems,
            inputs: Vec::new(),
        }
    }
}

/// Loads a policy without master keys: a sealed value in it fails the load.
pub fn load_path(path: &Path) -> Result<Policy, PolicyError> {
    Loader::default().load_path(path)
}

/// Loads a policy from TOML text without master keys.
pub fn load_str(name: &str, text: &str, base: Option<&Path>) -> Result<Policy, PolicyError> {
    Loader::default().load_str(name, text, base)
}

/// How deep templates may splice templates.
pub const MAX_TEMPLATE_DEPTH: usize = 32;
/// The largest value envoi serves (1 MiB): a bound on what a `file` read or a template
/// expansion may cost.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// How many of `value`, `env`, `file`, `sealed` and `template` a source gives.
pub(crate) fn sources_given(spec: &SourceSpec) -> usize {
    [
        spec.value.is_some(),
        spec.env.is_some(),
        spec.file.is_some(),
        spec.sealed.is_some(),
        spec.template.is_some(),
    ]
    .iter()
    .filter(|given| **given)
    .count()
}

/// Refuses a source that gives none or several of the five: the TOML and the Postgres
/// stores both hold a value to exactly one, through here.
pub fn one_source(spec: &SourceSpec) -> Result<(), String> {
    match sources_given(spec) {
        1 => Ok(()),
        given => Err(format!(
            "give exactly one of `value`, `env`, `file`, `sealed`, `template` ({given} given)"
        )),
    }
}

/// Reads a `value`, `env` or `file` source; `None` for `sealed` and `template`, which
/// need a keyring or other secrets. Relative files are resolved against `base`. Every
/// source is held to the same bound, [`MAX_VALUE_BYTES`].
pub fn read_plain(spec: &SourceSpec, base: Option<&Path>) -> Result<Option<SecretBytes>, String> {
    read_plain_seen(spec, base).map(|read| read.map(|(bytes, _)| bytes))
}

/// A value as [`read_plain_seen`] reads it: its bytes and, for a `file` source, how the
/// file looked and what it held.
type PlainRead = Option<(SecretBytes, Option<(Fingerprint, Digest)>)>;

/// [`read_plain`], with the fingerprint and digest of the file a `file` source read.
fn read_plain_seen(spec: &SourceSpec, base: Option<&Path>) -> Result<PlainRead, String> {
    let bounded = |bytes: Vec<u8>, what: String| {
        if bytes.len() > MAX_VALUE_BYTES {
            Err(format!("{what} is larger than {MAX_VALUE_BYTES} bytes"))
        } else {
            Ok(Some((SecretBytes::new(bytes), None)))
        }
    };
    if let Some(value) = &spec.value {
        return bounded(value.clone().into_bytes(), "the `value` literal".into());
    }
    if let Some(var) = &spec.env {
        return match std::env::var_os(var) {
            Some(value) => bounded(os_bytes(value), format!("environment variable `{var}`")),
            None => Err(format!("environment variable `{var}` is not set")),
        };
    }
    if let Some(file) = &spec.file {
        let path = match base {
            Some(base) if Path::new(file).is_relative() => base.join(file),
            _ => PathBuf::from(file),
        };
        return match files::read_regular(&path, MAX_VALUE_BYTES) {
            Ok(read) => Ok(Some((
                SecretBytes::new(read.bytes),
                Some((read.fingerprint, read.digest)),
            ))),
            Err(e @ files::ReadError::TooLarge(_)) => Err(format!("file {} {e}", path.display())),
            Err(e @ files::ReadError::NotRegular(_)) => Err(format!("file {} {e}", path.display())),
            Err(e) => Err(format!("cannot read file {}: {e}", path.display())),
        };
    }
    Ok(None)
}

/// A policy file, parsed but not yet checked.
pub struct ParsedFile {
    pub name: String,
    /// The folder relative `file` values are resolved against.
    pub base: Option<PathBuf>,
    pub doc: PolicyDoc,
}

/// Reads and parses the policy's files without checking them.
pub fn parse_path(path: &Path) -> Result<Vec<ParsedFile>, PolicyError> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for source in read_sources(path)? {
        match toml::from_str::<PolicyDoc>(&source.text.borrow()) {
            Ok(doc) => files.push(ParsedFile {
                name: source.name,
                base: source.base,
                doc,
            }),
            Err(e) => problems.extend(shape_problems(&source, &e)),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(PolicyError::new(problems))
    }
}

/// What a reload found.
// One per reload, moved once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Reloaded {
    /// Every file reads as it did: the serving policy is current. `seen`: how the files
    /// looked as they were read, for the next reload ([`Loader::reload_path`]), if they
    /// were read.
    Unchanged { seen: Option<files::Seen> },
    /// A new policy of `files` policy files, made by compiling them all or, where only
    /// some changed, `only` those (by name).
    Changed {
        policy: Policy,
        only: Option<Vec<String>>,
        files: usize,
    },
}

/// Loads policies with the master keys that open their sealed values.
#[derive(Clone, Copy)]
pub struct Loader<'k> {
    keyring: &'k Keyring,
}

static NO_KEYS: Keyring = Keyring::empty();

impl Default for Loader<'_> {
    fn default() -> Self {
        Self { keyring: &NO_KEYS }
    }
}

impl<'k> Loader<'k> {
    pub fn new(keyring: &'k Keyring) -> Self {
        Self { keyring }
    }

    /// Loads a policy from a TOML file or a folder of `*.toml` files (read in name order).
    pub fn load_path(&self, path: &Path) -> Result<Policy, PolicyError> {
        compile(&read_sources(path)?, self.keyring)
    }

    /// Loads the policy at `path` again, unless every file `serving` was compiled from
    /// holds the same bytes as then ([`files::Contents`]): those would compile to the
    /// policy already serving. A reload asked for often (a config reloader's SIGHUP, a
    /// checkout that rewrites files as they were) then costs a read of the files instead
    /// of a compile: a second of a core for 100,000 workloads, taken from answering.
    /// Where only some policy files changed, only those are compiled when that gives the
    /// policy a whole compile would (`incremental`).
    ///
    /// `seen` is how the files looked when last found unchanged (the serving policy's own
    /// reading if `None`): where none of them, nor the folder, has been touched since, not
    /// a byte is read.
    pub fn reload_path(
        &self,
        path: &Path,
        serving: Option<&Policy>,
        seen: Option<&files::Seen>,
    ) -> Result<Reloaded, PolicyError> {
        if let Some(serving) = serving.filter(|serving| !serving.contents().policy_files.is_empty()) {
            let untouched = match seen {
                Some(seen) => seen.untouched(),
                None => serving.seen().untouched(),
            };
            if untouched {
                return Ok(Reloaded::Unchanged { seen: None });
            }
        }
        let sources = read_sources(path)?;
        let files = sources.len();
        let read: Option<Vec<(&Path, Digest)>> = sources.iter().map(|s| s.path.as_deref().zip(s.digest)).collect();
        if let (Some(serving), Some(read)) = (serving, read) {
            match serving.contents().compare(&read) {
                Comparison::Same(values) => {
                    let mut seen = seen_of(&sources);
                    seen.extend(values);
                    return Ok(Reloaded::Unchanged {
                        seen: Some(files::Seen(seen)),
                    });
                }
                Comparison::PolicyFilesChanged(changed) => {
                    if let Some(policy) = incremental::recompile(&sources, &changed, serving, self.keyring) {
                        let compiled = sources.iter().zip(&changed).filter(|(_, c)| **c);
                        return Ok(Reloaded::Changed {
                            policy,
                            only: Some(compiled.map(|(s, _)| s.name.clone()).collect()),
                            files,
                        });
                    }
                }
                Comparison::Other => {}
            }
        }
        compile(&sources, self.keyring).map(|policy| Reloaded::Changed {
            policy,
            only: None,
            files,
        })
    }

    /// Checks and compiles a policy that is already parsed (from the Postgres store, say);
    /// `origin` stands for the file and line in messages.
    pub fn load_doc(&self, origin: &str, doc: PolicyDoc) -> Result<Policy, PolicyError> {
        let source = Source::new(origin.to_owned(), None, None, String::new());
        compile_docs(
            std::slice::from_ref(&source),
            std::iter::once(Ok((0, doc))),
            self.keyring,
            false,
        )
    }

    /// Loads a policy from TOML text; `name` is used in messages and relative `file`
    /// paths are resolved against `base`.
    pub fn load_str(&self, name: &str, text: &str, base: Option<&Path>) -> Result<Policy, PolicyError> {
        let source = Source::new(name.to_owned(), None, base.map(Path::to_path_buf), text.to_owned());
        compile(std::slice::from_ref(&source), self.keyring)
    }
}

/// Compiles policy files. Files that grant nothing at all are refused (SPEC §2): that is
/// what an empty or truncated file, or a folder emptied by mistake, looks like, and
/// serving it would answer every workload with nothing.
fn compile(sources: &[Source], keyring: &Keyring) -> Result<Policy, PolicyError> {
    // The parsed documents are garbage once compiled: kept apart from the policy, so that
    // they leave no holes among its blocks (crate::memory).
    let scratch = crate::memory::Heap::new();
    let docs = sources.iter().enumerate().map(|(index, source)| {
        scratch
            .run(|| toml::from_str::<PolicyDoc>(&source.text.borrow()))
            .map(|doc| (index, doc))
            .map_err(|e| shape_problems(source, &e))
    });
    compile_docs(sources, docs, keyring, true)
}

fn no_grants(sources: &[Source]) -> String {
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    format!(
        "{} grants nothing (no [[grants]]): an empty or truncated policy is refused; write policy files by rename",
        names.join(", ")
    )
}
