//! Reading a policy's files into sources, and naming what is wrong with one that does
//! not parse, without quoting it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::files::{self, io_reason, Digest, Fingerprint};
use super::super::Location;
use super::PolicyError;

/// The largest policy file envoi reads: far above a 100,000-workload policy (tens of
/// MiB), far below what would exhaust memory.
pub const MAX_POLICY_FILE_BYTES: usize = 1 << 30;

/// The policy's files: `path` itself, or the `*.toml` files of the folder, by name.
/// Every file that cannot be read is named, not only the first.
pub(super) fn read_sources(path: &Path) -> Result<Vec<Source>, PolicyError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| PolicyError::one(format!("cannot read policy {}: {}", path.display(), io_reason(&e))))?;
    let (files, folder) = if meta.is_dir() {
        // Taken before the listing: a file added or removed while it lists moves it.
        let fingerprint = Fingerprint::now(path);
        let files = files::list_policy_folder(path).map_err(PolicyError::new)?;
        if files.is_empty() {
            return Err(PolicyError::one(format!(
                "policy folder {} holds no *.toml file",
                path.display()
            )));
        }
        // The folder's own fingerprint changes when a file is added, removed or renamed.
        (files, fingerprint.map(|f| (path.to_path_buf(), f)))
    } else {
        (vec![path.to_path_buf()], None)
    };
    let mut problems = Vec::new();
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let read = files::read_regular(&file, MAX_POLICY_FILE_BYTES)
            .map_err(|e| e.to_string())
            .and_then(|read| {
                let (fingerprint, digest) = (read.fingerprint, read.digest);
                String::from_utf8(read.bytes)
                    .map(|text| (text, fingerprint, digest))
                    .map_err(|_| "is not UTF-8 text".to_owned())
            });
        match read {
            Ok((text, fingerprint, digest)) => {
                let mut source = Source::new(
                    file.display().to_string(),
                    Some(file.clone()),
                    file.parent().map(Path::to_path_buf),
                    text,
                );
                source.fingerprint = Some(fingerprint);
                source.digest = Some(digest);
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

/// How the files of `sources` looked as they were read: the folder (as listed) and each
/// file.
pub(super) fn seen_of(sources: &[Source]) -> Vec<(PathBuf, Fingerprint)> {
    sources
        .iter()
        .flat_map(|s| {
            let file = s.path.clone().zip(s.fingerprint);
            s.folder.clone().into_iter().chain(file)
        })
        .collect()
}

pub(super) struct Source {
    pub(super) name: String,
    /// The file it was read from, if any.
    pub(super) path: Option<PathBuf>,
    pub(super) base: Option<PathBuf>,
    /// Released once the file is compiled: a policy folder is never all in memory twice.
    pub(super) text: RefCell<String>,
    /// Where each line starts, computed on first use: a policy of 100,000 grants asks for
    /// as many locations.
    pub(super) line_starts: RefCell<Option<Vec<usize>>>,
    pub(super) shared_name: std::cell::OnceCell<Arc<str>>,
    /// How the file looked when it was read, and what it held.
    pub(super) fingerprint: Option<Fingerprint>,
    pub(super) digest: Option<Digest>,
    /// For the first file of a policy folder: the folder and how it looked when listed.
    pub(super) folder: Option<(PathBuf, Fingerprint)>,
}

impl Source {
    pub(super) fn new(name: String, path: Option<PathBuf>, base: Option<PathBuf>, text: String) -> Self {
        Self {
            name,
            path,
            base,
            text: RefCell::new(text),
            line_starts: RefCell::new(None),
            shared_name: std::cell::OnceCell::new(),
            fingerprint: None,
            digest: None,
            folder: None,
        }
    }

    /// Drops the text and its line index; locations are no longer asked for.
    pub(super) fn release(&self) {
        *self.text.borrow_mut() = String::new();
        *self.line_starts.borrow_mut() = None;
    }

    /// Where `offset` stands, as a shared file name and a line number.
    pub(super) fn place(&self, offset: usize) -> Location {
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

    pub(super) fn location(&self, offset: usize) -> String {
        self.place(offset).to_string()
    }

    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        match &self.base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_path_buf(),
        }
    }
}

/// Every problem of a file that does not deserialize: its syntax error, or each of its
/// shape problems (unknown keys, wrong types), not only the first that serde met.
pub(super) fn shape_problems(source: &Source, e: &toml::de::Error) -> Vec<String> {
    let text = source.text.borrow();
    match super::super::diagnose::shape_problems(&text, redact_message) {
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
pub(super) fn syntax_problem(source: &Source, e: &toml::de::Error) -> String {
    let at = e
        .span()
        .map(|span| source.location(span.start))
        .unwrap_or_else(|| source.name.clone());
    format!("{at}: {}", redact_message(e.message()))
}

/// serde names the offending value in "invalid type/value" and "unknown variant"
/// messages; keep the message, drop the value. Syntax messages quote only grammar.
pub(super) fn redact_message(message: &str) -> String {
    let names_a_value = ["invalid type", "invalid value", "invalid length", "unknown variant"]
        .iter()
        .any(|kind| message.contains(kind));
    if names_a_value {
        crate::redact::redact_values(message)
    } else {
        message.trim().to_owned()
    }
}
