//! From TOML text to a checked [`Policy`], with every problem named.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ahash::{HashMap, HashMapExt as _};

use super::model::{EnvSpec, FileSpec, GrantSpec, OwnerSpec, PolicyDoc, SourceSpec};

use super::files::{self, io_reason, Fingerprint};
use super::item::{FileAttributes, Item, Ownership, PermissionPolicy, Permissions, Target};
use super::selector::{Pattern, Selector};
use super::template::{self, Part, RawPart, Template};
use super::value::Value;
use super::{Grant, Location, Policy};
use crate::seal::Keyring;
use crate::secret::SecretBytes;

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

/// The largest policy file envoi reads: far above a 100,000-workload policy (tens of
/// MiB), far below what would exhaust memory.
pub const MAX_POLICY_FILE_BYTES: usize = 1 << 30;

/// The policy's files: `path` itself, or the `*.toml` files of the folder, by name.
/// Every file that cannot be read is named, not only the first.
fn read_sources(path: &Path) -> Result<Vec<Source>, PolicyError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| PolicyError::one(format!("cannot read policy {}: {}", path.display(), io_reason(&e))))?;
    let (files, folder) = if meta.is_dir() {
        let files = files::list_policy_folder(path).map_err(PolicyError::new)?;
        if files.is_empty() {
            return Err(PolicyError::one(format!(
                "policy folder {} holds no *.toml file",
                path.display()
            )));
        }
        // The folder's own fingerprint changes when a file is added, removed or renamed.
        (files, Fingerprint::now(path).map(|f| (path.to_path_buf(), f)))
    } else {
        (vec![path.to_path_buf()], None)
    };
    let mut problems = Vec::new();
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let read = files::read_regular(&file, MAX_POLICY_FILE_BYTES)
            .map_err(|e| e.to_string())
            .and_then(|read| {
                let fingerprint = read.fingerprint;
                String::from_utf8(read.bytes)
                    .map(|text| (text, fingerprint))
                    .map_err(|_| "is not UTF-8 text".to_owned())
            });
        match read {
            Ok((text, fingerprint)) => {
                let mut source = Source::new(
                    file.display().to_string(),
                    Some(file.clone()),
                    file.parent().map(Path::to_path_buf),
                    text,
                );
                source.fingerprint = Some(fingerprint);
                sources.push(source);
            }
            Err(why) => problems.push(format!("cannot read policy {}: {why}", file.display())),
        }
    }
    if !problems.is_empty() {
        return Err(PolicyError::new(problems));
    }
    if let (Some(first), Some(folder)) = (sources.first_mut(), folder) {
        first.folder = Some(folder);
    }
    Ok(sources)
}

/// How deep templates may splice templates.
pub const MAX_TEMPLATE_DEPTH: usize = 32;
/// The largest value envoi serves (1 MiB): a bound on what a `file` read or a template
/// expansion may cost.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Reads a `value`, `env` or `file` source; `None` for `sealed` and `template`, which
/// need a keyring or other secrets. Relative files are resolved against `base`. Every
/// source is held to the same bound, [`MAX_VALUE_BYTES`].
pub fn read_plain(spec: &SourceSpec, base: Option<&Path>) -> Result<Option<SecretBytes>, String> {
    read_plain_seen(spec, base).map(|read| read.map(|(bytes, _)| bytes))
}

/// [`read_plain`], with the fingerprint of the file a `file` source read.
fn read_plain_seen(
    spec: &SourceSpec,
    base: Option<&Path>,
) -> Result<Option<(SecretBytes, Option<Fingerprint>)>, String> {
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
            Ok(read) => Ok(Some((SecretBytes::new(read.bytes), Some(read.fingerprint)))),
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

struct Source {
    name: String,
    /// The file it was read from, if any.
    path: Option<PathBuf>,
    base: Option<PathBuf>,
    /// Released once the file is compiled: a policy folder is never all in memory twice.
    text: RefCell<String>,
    /// Where each line starts, computed on first use: a policy of 100,000 grants asks for
    /// as many locations.
    line_starts: RefCell<Option<Vec<usize>>>,
    shared_name: std::cell::OnceCell<Arc<str>>,
    /// How the file looked when it was read.
    fingerprint: Option<Fingerprint>,
    /// For the first file of a policy folder: the folder and how it looked when listed.
    folder: Option<(PathBuf, Fingerprint)>,
}

impl Source {
    fn new(name: String, path: Option<PathBuf>, base: Option<PathBuf>, text: String) -> Self {
        Self {
            name,
            path,
            base,
            text: RefCell::new(text),
            line_starts: RefCell::new(None),
            shared_name: std::cell::OnceCell::new(),
            fingerprint: None,
            folder: None,
        }
    }

    /// Drops the text and its line index; locations are no longer asked for.
    fn release(&self) {
        *self.text.borrow_mut() = String::new();
        *self.line_starts.borrow_mut() = None;
    }

    /// Where `offset` stands, as a shared file name and a line number.
    fn place(&self, offset: usize) -> Location {
        let file = self.shared_name.get_or_init(|| Arc::from(self.name.as_str())).clone();
        let text = self.text.borrow();
        if text.is_empty() {
            return Location { file, line: 0 };
        }
        let mut starts = self.line_starts.borrow_mut();
        let starts = starts.get_or_insert_with(|| {
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(at, _)| at + 1))
                .collect()
        });
        let line = starts.partition_point(|start| *start <= offset);
        Location {
            file,
            line: u32::try_from(line).unwrap_or(u32::MAX),
        }
    }

    fn location(&self, offset: usize) -> String {
        self.place(offset).to_string()
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        match &self.base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_path_buf(),
        }
    }
}

// ---- Compilation ----

/// A named secret as written, until it is resolved.
struct Definition {
    source: usize,
    location: String,
    raw: SourceSpec,
}

struct Compiler<'a> {
    sources: &'a [Source],
    keyring: &'a Keyring,
    problems: Vec<String>,
    definitions: HashMap<String, Definition>,
    /// Where each secret was first defined, kept after its definition is resolved.
    defined: HashMap<String, String>,
    /// Secrets resolved so far; `None` for one whose problem is already recorded.
    resolved: HashMap<String, Option<Value>>,
    /// Every file read, policy files included: what a reload must watch.
    inputs: Vec<PathBuf>,
    /// How each file read looked: what a reload compares to tell a change it missed.
    seen: Vec<(PathBuf, Fingerprint)>,
    /// What loads but is likely a mistake; never a value.
    warnings: Vec<String>,
    /// "secret `NAME`", once per secret however many items name it.
    origins: HashMap<String, Arc<str>>,
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
    let docs = sources.iter().enumerate().map(|(index, source)| {
        toml::from_str::<PolicyDoc>(&source.text.borrow())
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

/// Compiles documents as they come. A grant whose secrets are all defined already is
/// compiled at once and its document dropped, so that a policy folder of many files
/// never holds every parsed file at the same time; the others wait for the last file.
fn compile_docs(
    sources: &[Source],
    docs: impl Iterator<Item = Result<(usize, PolicyDoc), Vec<String>>>,
    keyring: &Keyring,
    require_grants: bool,
) -> Result<Policy, PolicyError> {
    let mut compiler = Compiler {
        sources,
        keyring,
        problems: Vec::new(),
        definitions: HashMap::new(),
        defined: HashMap::new(),
        resolved: HashMap::new(),
        inputs: sources.iter().filter_map(|s| s.path.clone()).collect(),
        seen: sources
            .iter()
            .flat_map(|s| {
                let file = s.path.clone().zip(s.fingerprint);
                s.folder.clone().into_iter().chain(file)
            })
            .collect(),
        origins: HashMap::new(),
        warnings: Vec::new(),
    };
    let mut syntax = Vec::new();
    let mut waiting = Vec::new();
    let mut grants: Vec<(usize, Grant)> = Vec::new();
    let mut position = 0;
    for doc in docs {
        let (index, raw) = match doc {
            Ok(parsed) => parsed,
            Err(problems) => {
                syntax.extend(problems);
                continue;
            }
        };
        let source = &sources[index];
        for (name, spanned) in raw.secrets {
            let location = source.location(spanned.span().start);
            if !valid_secret_name(&name) {
                compiler.problems.push(format!(
                    "{location}: secret name `{name}` may only use letters, digits, `_`, `-` and `.`"
                ));
            }
            if let Some(first) = compiler.defined.get(&name) {
                compiler
                    .problems
                    .push(format!("{location}: secret `{name}` is already defined at {first}"));
                continue;
            }
            compiler.defined.insert(name.clone(), location.clone());
            compiler.definitions.insert(
                name,
                Definition {
                    source: index,
                    location,
                    raw: spanned.into_inner(),
                },
            );
        }
        for spanned in raw.grants {
            position += 1;
            let location = source.place(spanned.span().start);
            let grant = spanned.into_inner();
            if !syntax.is_empty() || !compiler.ready_for(&grant) {
                waiting.push((position, index, location, grant));
            } else if let Some(grant) = compiler.grant(index, location, grant) {
                grants.push((position, grant));
            }
        }
        source.release();
    }
    if !syntax.is_empty() {
        return Err(PolicyError::new(syntax));
    }
    if require_grants && position == 0 {
        compiler.problems.push(no_grants(sources));
    }
    let mut names: Vec<String> = compiler.defined.keys().cloned().collect();
    names.sort();
    for name in &names {
        compiler.resolve_secret(name, &mut Vec::new());
    }
    for (position, index, location, grant) in waiting {
        if let Some(grant) = compiler.grant(index, location, grant) {
            grants.push((position, grant));
        }
    }
    // Policy order, whatever order the grants were compiled in.
    grants.sort_by_key(|(position, _)| *position);
    let grants: Vec<Grant> = grants.into_iter().map(|(_, grant)| grant).collect();
    compiler.problems.extend(find_conflicts(&grants));
    if compiler.problems.is_empty() {
        compiler.warnings.sort();
        compiler.warnings.dedup();
        Ok(Policy::new(grants, names.len(), compiler.inputs, compiler.seen).with_warnings(compiler.warnings))
    } else {
        Err(PolicyError {
            problems: compiler.problems,
            inputs: compiler.inputs,
        })
    }
}

/// Every problem of a file that does not deserialize: its syntax error, or each of its
/// shape problems (unknown keys, wrong types), not only the first that serde met.
fn shape_problems(source: &Source, e: &toml::de::Error) -> Vec<String> {
    let text = source.text.borrow();
    match super::diagnose::shape_problems(&text, redact_message) {
        Some(found) if !found.is_empty() => {
            drop(text);
            found
                .into_iter()
                .map(|(offset, problem)| format!("{}: {problem}", source.location(offset)))
                .collect()
        }
        _ => {
            drop(text);
            vec![syntax_problem(source, e)]
        }
    }
}

/// A syntax or shape error, without the snippet of the offending line that the TOML
/// parser would show: that line may hold a value.
fn syntax_problem(source: &Source, e: &toml::de::Error) -> String {
    let at = e
        .span()
        .map(|span| source.location(span.start))
        .unwrap_or_else(|| source.name.clone());
    format!("{at}: {}", redact_message(e.message()))
}

/// serde names the offending value in "invalid type/value" and "unknown variant"
/// messages; keep the message, drop the value. Syntax messages quote only grammar.
fn redact_message(message: &str) -> String {
    let names_a_value = ["invalid type", "invalid value", "invalid length", "unknown variant"]
        .iter()
        .any(|kind| message.contains(kind));
    if names_a_value {
        crate::redact::redact_values(message)
    } else {
        message.trim().to_owned()
    }
}

fn valid_secret_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn valid_env_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn valid_file_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must be absolute");
    }
    if path.ends_with('/') {
        return Err("must name a file, not a folder");
    }
    if path.chars().any(char::is_control) {
        return Err("may not contain control characters");
    }
    if path.split('/').any(|part| part == ".." || part == ".") {
        return Err("may not contain `.` or `..` parts");
    }
    Ok(())
}

/// `"0400"`, `"400"` or `"0o400"` → `"0400"`.
fn parse_mode(mode: &str) -> Result<String, String> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("mode \"{mode}\" is not an octal file mode such as \"0400\""));
    }
    let value = u32::from_str_radix(digits, 8).expect("checked octal digits");
    Ok(format!("{value:04o}"))
}

impl Compiler<'_> {
    /// Whether every secret `grant` names (directly or through templates) is defined yet.
    /// A walk with a seen-set and a stack of its own: linear in the secrets, whatever the
    /// shape of the templates (a deep chain, a doubling one).
    fn ready_for(&self, grant: &GrantSpec) -> bool {
        let mut pending: Vec<String> = Vec::new();
        let push_template = |pending: &mut Vec<String>, template: &str| {
            if let Ok(parts) = template::parse(template) {
                pending.extend(parts.into_iter().filter_map(|part| match part {
                    RawPart::Secret(name) => Some(name),
                    _ => None,
                }));
            }
        };
        for (_, entry) in &grant.env {
            match entry {
                EnvSpec::Secret(name) => pending.push(name.clone()),
                EnvSpec::Inline(spec) => {
                    if let Some(template) = &spec.template {
                        push_template(&mut pending, template);
                    }
                }
            }
        }
        for file in &grant.files {
            match (&file.secret, &file.template) {
                (Some(name), _) => pending.push(name.clone()),
                (None, Some(template)) => push_template(&mut pending, template),
                (None, None) => {}
            }
        }
        let mut seen = ahash::HashSet::default();
        while let Some(name) = pending.pop() {
            if self.resolved.contains_key(&name) || !seen.insert(name.clone()) {
                continue;
            }
            match self.definitions.get(&name) {
                None => return false,
                Some(definition) => {
                    if let Some(template) = &definition.raw.template {
                        push_template(&mut pending, template);
                    }
                }
            }
        }
        true
    }

    fn secret_origin(&mut self, name: &str) -> Arc<str> {
        if let Some(origin) = self.origins.get(name) {
            return origin.clone();
        }
        let origin: Arc<str> = Arc::from(format!("secret `{name}`"));
        self.origins.insert(name.to_owned(), origin.clone());
        origin
    }

    /// Resolves a named secret (and, for a template, those it names), once.
    fn resolve_secret(&mut self, name: &str, stack: &mut Vec<String>) -> Option<Value> {
        if let Some(done) = self.resolved.get(name) {
            return done.clone();
        }
        let Some(definition) = self.definitions.remove(name) else {
            // Only a secret being resolved further up the stack is missing from both maps.
            let mut cycle = stack.clone();
            cycle.push(name.to_owned());
            let first = stack.iter().position(|s| s == name).unwrap_or(0);
            self.problems.push(format!(
                "secret `{name}`: template refers back to itself: {}",
                cycle[first..].join(" → ")
            ));
            return None;
        };
        let what = format!("secret `{name}` ({})", definition.location);
        if stack.len() >= MAX_TEMPLATE_DEPTH {
            // Resolution recurses once per level: a bound keeps a hostile chain from
            // overflowing the stack of the thread that loads (and serves).
            self.problems.push(format!(
                "{what}: templates nest more than {MAX_TEMPLATE_DEPTH} levels deep"
            ));
            self.resolved.insert(name.to_owned(), None);
            return None;
        }
        stack.push(name.to_owned());
        let value = self.read_source(definition.source, &what, name, &definition.raw, stack);
        stack.pop();
        self.resolved.insert(name.to_owned(), value.clone());
        value
    }

    /// A secret named by a grant or a template, which must be defined.
    fn named_secret(&mut self, what: &str, name: &str, stack: &mut Vec<String>) -> Option<Value> {
        if !self.resolved.contains_key(name) && !self.definitions.contains_key(name) && !stack.iter().any(|s| s == name)
        {
            self.problems
                .push(format!("{what}: names secret `{name}`, which is not defined"));
            return None;
        }
        self.resolve_secret(name, stack)
    }

    /// Reads the value that `raw` describes, or records why it cannot. `name` is the
    /// associated data a sealed value was sealed for: the secret's name, or for an
    /// inline value the ENV key or FILE path.
    fn read_source(
        &mut self,
        source: usize,
        what: &str,
        name: &str,
        raw: &SourceSpec,
        stack: &mut Vec<String>,
    ) -> Option<Value> {
        let given = [
            raw.value.is_some(),
            raw.env.is_some(),
            raw.file.is_some(),
            raw.sealed.is_some(),
            raw.template.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            self.problems.push(format!(
                "{what}: give exactly one of `value`, `env`, `file`, `sealed`, `template` ({given} given)"
            ));
            return None;
        }
        if let Some(file) = &raw.file {
            self.inputs.push(self.sources[source].resolve(file));
        }
        match read_plain_seen(raw, self.sources[source].base.as_deref()) {
            Ok(Some((bytes, fingerprint))) => {
                if let (Some(fingerprint), Some(file)) = (fingerprint, &raw.file) {
                    self.seen.push((self.sources[source].resolve(file), fingerprint));
                }
                return Some(Value::Static(bytes));
            }
            Ok(None) => {}
            Err(problem) => {
                self.problems.push(format!("{what}: {problem}"));
                return None;
            }
        }
        if let Some(sealed) = &raw.sealed {
            return match self.keyring.open(name, sealed) {
                Ok(bytes) if bytes.len() > MAX_VALUE_BYTES => {
                    self.problems.push(format!(
                        "{what}: the sealed value opens to more than {MAX_VALUE_BYTES} bytes"
                    ));
                    None
                }
                Ok(bytes) => Some(Value::Static(bytes)),
                Err(e) => {
                    self.problems.push(format!("{what}: sealed value: {e}"));
                    None
                }
            };
        }
        let text = raw.template.as_deref().expect("one source is given");
        let parts = match template::parse(text) {
            Ok(parts) => parts,
            Err(e) => {
                self.problems.push(format!("{what}: template: {e}"));
                return None;
            }
        };
        let mut spliced = Vec::with_capacity(parts.len());
        let mut complete = true;
        for part in parts {
            match part {
                RawPart::Text(text) => spliced.push(Part::Text(SecretBytes::new(text.into_bytes()))),
                RawPart::Claim(claim) => spliced.push(Part::Claim(claim)),
                RawPart::Secret(secret) => match self.named_secret(&format!("{what}: template"), &secret, stack) {
                    Some(Value::Static(bytes)) => {
                        if bytes.expose().last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            self.warnings.push(format!(
                                "{what}: the template splices secret `{secret}`, whose value ends with a newline, and keeps it (a file written by `echo`? write it with `printf %s`)"
                            ));
                        }
                        spliced.push(Part::Text(bytes))
                    }
                    Some(Value::Template(inner)) => spliced.extend(inner.parts().iter().cloned()),
                    None => complete = false,
                },
            }
        }
        let size: usize = spliced
            .iter()
            .map(|p| if let Part::Text(t) = p { t.len() } else { 0 })
            .sum();
        if complete && size > MAX_VALUE_BYTES {
            self.problems.push(format!(
                "{what}: the template renders to more than {MAX_VALUE_BYTES} bytes"
            ));
            return None;
        }
        complete.then(|| match Template::new(spliced) {
            Ok(template) => Value::Template(template),
            Err(text) => Value::Static(text),
        })
    }

    fn grant(&mut self, source: usize, location: Location, raw: GrantSpec) -> Option<Grant> {
        let what = match &raw.name {
            Some(name) => format!("grant `{name}` ({location})"),
            None => format!("grant at {location}"),
        };
        let before = self.problems.len();

        let mut pattern = |field: &str, text: Option<&str>| {
            Pattern::parse(text).unwrap_or_else(|e| {
                self.problems.push(format!("{what}: {field}: {e}"));
                Pattern::Any
            })
        };
        let selector = Selector {
            project: pattern("project", raw.project.as_deref()),
            kind: pattern("type", raw.kind.as_deref()),
            id: pattern("id", raw.id.as_deref()),
        };
        let selector_ok = self.problems.len() == before;

        let mut items: Vec<Item> = Vec::with_capacity(raw.env.len() + raw.files.len());
        for (key, value) in raw.env {
            if !valid_env_key(&key) {
                self.problems.push(format!(
                    "{what}: ENV key `{key}` is not a variable name (letters, digits and `_`, not starting with a digit)"
                ));
                continue;
            }
            let shared = matches!(value, EnvSpec::Secret(_));
            let (origin, value) = match value {
                EnvSpec::Secret(name) => (
                    self.secret_origin(&name),
                    self.named_secret(&format!("{what}: ENV {key}"), &name, &mut Vec::new()),
                ),
                EnvSpec::Inline(raw) => (
                    Arc::from(inline_origin(&raw)),
                    self.read_source(source, &format!("{what}: ENV {key}"), &key, &raw, &mut Vec::new()),
                ),
            };
            if let Some(value) = value {
                self.push_item(
                    &what,
                    &mut items,
                    Target::Env(key.into()),
                    origin,
                    (value, shared),
                    FileAttributes::default(),
                );
            }
        }
        for file in raw.files {
            if let Err(why) = valid_file_path(&file.path) {
                self.problems.push(format!("{what}: FILE path `{}` {why}", file.path));
                continue;
            }
            let target = Target::File(file.path.clone().into());
            let attributes = self.file_attributes(&what, &target, &file);
            let inline = SourceSpec {
                value: file.value,
                env: file.env,
                file: file.file,
                sealed: file.sealed,
                template: file.template,
            };
            let has_inline = [
                &inline.value,
                &inline.env,
                &inline.file,
                &inline.sealed,
                &inline.template,
            ]
            .iter()
            .any(|v| v.is_some());
            let shared = file.secret.is_some();
            let (origin, value) = match (file.secret, has_inline) {
                (Some(name), false) => (
                    self.secret_origin(&name),
                    self.named_secret(&format!("{what}: {target}"), &name, &mut Vec::new()),
                ),
                (None, true) => (
                    Arc::from(inline_origin(&inline)),
                    self.read_source(
                        source,
                        &format!("{what}: {target}"),
                        &file.path,
                        &inline,
                        &mut Vec::new(),
                    ),
                ),
                (Some(_), true) => {
                    self.problems.push(format!(
                        "{what}: {target}: give either `secret` or one inline source, not both"
                    ));
                    continue;
                }
                (None, false) => {
                    self.problems.push(format!(
                        "{what}: {target}: give `secret` or one of `value`, `env`, `file`, `sealed`, `template`"
                    ));
                    continue;
                }
            };
            if let (Some(value), Some(attributes)) = (value, attributes) {
                self.push_item(&what, &mut items, target, origin, (value, shared), attributes);
            }
        }
        // A grant with other problems is kept with the items that did compile: the
        // policy fails to load anyway, and its conflicts are reported in the same run.
        // With a selector that did not parse, a conflict would be a guess.
        if !selector_ok {
            return None;
        }
        items.sort_by(|a, b| a.target.cmp(&b.target));
        let specificity = selector.specificity();
        Some(Grant {
            name: raw.name.map(String::into_boxed_str),
            location,
            selector,
            specificity,
            items: items.into_boxed_slice(),
        })
    }

    fn push_item(
        &mut self,
        what: &str,
        items: &mut Vec<Item>,
        target: Target,
        origin: Arc<str>,
        (value, shared): (Value, bool),
        attributes: FileAttributes,
    ) {
        if items.iter().any(|i| i.target == target) {
            self.problems.push(format!("{what}: {target} is given twice"));
            return;
        }
        match Item::new(target, origin, value, shared, attributes) {
            Ok(item) => items.push(item),
            Err(problem) => self.problems.push(format!("{what}: {problem}")),
        }
    }

    fn file_attributes(&mut self, what: &str, target: &Target, file: &FileSpec) -> Option<FileAttributes> {
        let before = self.problems.len();
        let permissions = match (&file.mode, &file.permissions) {
            (Some(_), Some(_)) => {
                self.problems
                    .push(format!("{what}: {target}: give `mode` or `permissions`, not both"));
                None
            }
            (Some(mode), None) => parse_mode(mode)
                .map(|mode| Permissions {
                    policy: PermissionPolicy::AlwaysSet,
                    mode,
                })
                .map_err(|e| self.problems.push(format!("{what}: {target}: {e}")))
                .ok(),
            (None, Some(long)) => parse_mode(&long.mode)
                .map(|mode| Permissions {
                    policy: long.policy,
                    mode,
                })
                .map_err(|e| self.problems.push(format!("{what}: {target}: {e}")))
                .ok(),
            (None, None) => None,
        };
        let mut ownership = |field: &str, raw: &Option<OwnerSpec>| -> Option<Ownership> {
            let parsed = match raw.as_ref()? {
                OwnerSpec::Short(value) if !value.is_empty() => Ok(Ownership::AlwaysSetExplicit { value: value.clone() }),
                OwnerSpec::Short(_) => Err("may not be empty".to_owned()),
                OwnerSpec::Long { policy, value } => match (policy.as_str(), value) {
                    ("AlwaysSetExplicit", Some(v)) if !v.is_empty() => Ok(Ownership::AlwaysSetExplicit { value: v.clone() }),
                    ("KeepOrSetExplicit", Some(v)) if !v.is_empty() => Ok(Ownership::KeepOrSetExplicit { value: v.clone() }),
                    ("AlwaysSetExplicit" | "KeepOrSetExplicit", _) => Err(format!("policy {policy} needs a non-empty `value`")),
                    ("AlwaysSetInherited", None) => Ok(Ownership::AlwaysSetInherited),
                    ("KeepOrSetInherited", None) => Ok(Ownership::KeepOrSetInherited),
                    ("AlwaysSetInherited" | "KeepOrSetInherited", Some(_)) => {
                        Err(format!("policy {policy} takes no `value`"))
                    }
                    _ => Err(format!(
                        "policy `{policy}` is not one of AlwaysSetExplicit, KeepOrSetExplicit, AlwaysSetInherited, KeepOrSetInherited"
                    )),
                },
            };
            parsed
                .map_err(|e| self.problems.push(format!("{what}: {target}: {field} {e}")))
                .ok()
        };
        let owner = ownership("owner", &file.owner);
        let group = ownership("group", &file.group);
        let encoding = file.encoding;
        (self.problems.len() == before).then_some(FileAttributes {
            encoding,
            owner,
            group,
            permissions,
        })
    }
}

fn inline_origin(raw: &SourceSpec) -> String {
    if let Some(var) = &raw.env {
        format!("env `{var}`")
    } else if let Some(file) = &raw.file {
        format!("file `{file}`")
    } else if raw.sealed.is_some() {
        "inline sealed value".into()
    } else if raw.template.is_some() {
        "inline template".into()
    } else {
        "inline value".into()
    }
}

#[cfg(unix)]
fn os_bytes(value: std::ffi::OsString) -> Vec<u8> {
    std::os::unix::ffi::OsStringExt::into_vec(value)
}

#[cfg(not(unix))]
fn os_bytes(value: std::ffi::OsString) -> Vec<u8> {
    value.to_string_lossy().into_owned().into_bytes()
}

/// Two grants of equal specificity that can match one workload and give one target
/// different items. Equal specificity means the same kind of pattern in each field, so
/// grants are first bucketed by specificity and their exact fields: only grants within a
/// bucket can overlap, and a policy of many exact grants stays linear (and small: one
/// entry per grant, not per item).
fn find_conflicts(grants: &[Grant]) -> Vec<String> {
    type Bucket<'g> = (super::Specificity, [Option<&'g str>; 3]);
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
                let (ga, gb) = (&grants[*a], &grants[*b]);
                if !ga.selector.overlaps(&gb.selector) {
                    continue;
                }
                // Both item lists are sorted by target: walk them together.
                let (mut i, mut j) = (0, 0);
                while i < ga.items.len() && j < gb.items.len() {
                    let (ia, ib) = (&ga.items[i], &gb.items[j]);
                    match ia.target.cmp(&ib.target) {
                        std::cmp::Ordering::Less => i += 1,
                        std::cmp::Ordering::Greater => j += 1,
                        std::cmp::Ordering::Equal => {
                            if ia.identity() != ib.identity() {
                                problems.push(format!(
                                    "{} and {} both give {} with equal specificity ({} / {}) and can match the same workload; make one more specific or give the same value",
                                    ga.describe(),
                                    gb.describe(),
                                    ia.target,
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
        }
    }
    problems.sort();
    problems
}
