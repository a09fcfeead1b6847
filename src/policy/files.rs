//! Reading the files a policy is made of, so that what is compiled is what an operator
//! wrote: only regular files (a FIFO or a device would hang the load), never a file
//! caught in the middle of a write, and each with the fingerprint a reload compares.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// How often a file that changes while it is read is read again before the load fails.
const READ_ATTEMPTS: u32 = 5;
/// The pause between two attempts: long enough for a writer's next `write(2)`.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// What a file looked like when it was read: if any of it differs later, the file (or
/// what a symlink points to) has changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    device: u64,
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
    /// The inode's change time, which every write and every `touch` moves and no one can
    /// set back.
    changed: (i64, i64),
    /// Taken a while after the last change: a later change shows in the change time, not
    /// lost in the same clock tick as the last one.
    settled: bool,
}

impl Fingerprint {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        let changed = (meta.ctime(), meta.ctime_nsec());
        let changed_at = u64::try_from(changed.0)
            .ok()
            .map(|seconds| SystemTime::UNIX_EPOCH + Duration::new(seconds, changed.1.clamp(0, 999_999_999) as u32));
        let settled = changed_at
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .is_some_and(|age| age >= SETTLED_AFTER);
        Self {
            device: meta.dev(),
            inode: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
            changed,
            settled,
        }
    }

    /// The fingerprint of `path` now, following symlinks; `None` if it cannot be read.
    pub fn now(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|meta| Self::of(&meta))
    }

    /// Whether the file is, without a doubt, as it was when `self` was taken: `self` was
    /// settled, and nothing of it differs now.
    pub fn still(&self, path: &Path) -> bool {
        self.settled && Self::now(path).as_ref() == Some(self)
    }
}

/// How long after its last change a file's fingerprint is trusted to show the next one:
/// timestamps move by clock ticks of a few milliseconds, so two changes within one tick
/// can leave the same times.
const SETTLED_AFTER: Duration = Duration::from_millis(50);

/// What a file held when it was read: an HMAC-SHA-256 of its bytes under a key drawn
/// when the process starts. Two reads with the same digest read the same bytes, whatever
/// their timestamps say (a file rewritten within one clock tick, or its time set back);
/// keyed, so that the digest of a secret file tells nothing of its value outside envoi.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        static KEY: OnceLock<ring::hmac::Key> = OnceLock::new();
        let key = KEY.get_or_init(|| {
            ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                // No random source: digests are still exact, only no longer private.
                .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[0; 32]))
        });
        let mut digest = [0; 32];
        digest.copy_from_slice(ring::hmac::sign(key, bytes).as_ref());
        Self(digest)
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digest(..)")
    }
}

/// The files a policy was compiled from and what each held: the policy files, by name,
/// then the files its `file` values read. A reload that finds the same bytes in every
/// one of them would compile the same policy (the master keys and the environment a
/// policy reads do not change while envoi runs).
#[derive(Debug, Clone, Default)]
pub struct Contents {
    pub policy_files: Vec<(PathBuf, Digest)>,
    pub value_files: Vec<(PathBuf, Digest)>,
}

impl Contents {
    /// How `policy_files`, just read, compare with those the policy was compiled from;
    /// every value file is read again here. A policy read from no file (text, a database)
    /// compares as [`Comparison::Other`].
    pub fn compare(&self, policy_files: &[(&Path, Digest)]) -> Comparison {
        let same_files = !self.policy_files.is_empty()
            && policy_files.len() == self.policy_files.len()
            && policy_files
                .iter()
                .zip(&self.policy_files)
                .all(|((path, _), (was, _))| path == was);
        let mut values_seen = Vec::with_capacity(self.value_files.len());
        let mut same_values = || {
            self.value_files.iter().all(|(path, was)| {
                let read = read_regular(path, super::load::MAX_VALUE_BYTES);
                read.is_ok_and(|read| {
                    values_seen.push((path.clone(), read.fingerprint));
                    read.digest == *was
                })
            })
        };
        if !same_files || !same_values() {
            return Comparison::Other;
        }
        let changed: Vec<bool> = policy_files
            .iter()
            .zip(&self.policy_files)
            .map(|((_, digest), (_, was))| digest != was)
            .collect();
        if changed.contains(&true) {
            Comparison::PolicyFilesChanged(changed)
        } else {
            Comparison::Same(values_seen)
        }
    }
}

/// How each file read looked, the policy folder's listing included: a reload that finds
/// every one of them [`Fingerprint::still`] as it was reads nothing.
#[derive(Debug, Clone, Default)]
pub struct Seen(pub(super) Vec<(PathBuf, Fingerprint)>);

impl Seen {
    /// Whether every file is, without a doubt, as it was seen; `false` for none seen.
    pub(super) fn untouched(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|(path, seen)| seen.still(path))
    }
}

/// How the files of a reload compare with those the serving policy was compiled from.
#[derive(Debug, PartialEq, Eq)]
pub enum Comparison {
    /// Every file holds what it held; how the value files looked as they were read.
    Same(Vec<(PathBuf, Fingerprint)>),
    /// The same policy files, those marked holding something else; every value file
    /// holds what it held.
    PolicyFilesChanged(Vec<bool>),
    /// Policy files added, removed or renamed, or a value file changed or gone.
    Other,
}

/// A file read whole, and how it looked while it was read.
pub struct ReadFile {
    pub bytes: Vec<u8>,
    pub fingerprint: Fingerprint,
    pub digest: Digest,
}

/// Why a file could not be read, in words fit for an operator; never its contents.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    NotRegular(&'static str),
    TooLarge(usize),
    KeptChanging,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => f.write_str(&io_reason(e)),
            Self::NotRegular(kind) => write!(f, "is {kind}, not a regular file"),
            Self::TooLarge(limit) => write!(f, "is larger than {limit} bytes"),
            Self::KeptChanging => write!(
                f,
                "changed while it was read, {READ_ATTEMPTS} times in a row (write it by rename)"
            ),
        }
    }
}

pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => match e.raw_os_error() {
            Some(libc::ELOOP) => "too many levels of symbolic links (a symlink loop?)".into(),
            _ => e.to_string(),
        },
    }
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let kind = meta.file_type();
    if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Reads the regular file at `path` (following symlinks), at most `limit` bytes. A file
/// whose size or modification time changes while it is read, or that is not as long as it
/// said, is read again: a writer that truncates and then writes is not compiled half-way.
pub fn read_regular(path: &Path, limit: usize) -> Result<ReadFile, ReadError> {
    for attempt in 1..=READ_ATTEMPTS {
        if attempt > 1 {
            std::thread::sleep(RETRY_PAUSE);
        }
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
                .map_err(ReadError::Io)?
        };
        let before = file.metadata().map_err(ReadError::Io)?;
        if !before.is_file() {
            return Err(ReadError::NotRegular(kind_of(&before)));
        }
        if before.len() > limit as u64 {
            return Err(ReadError::TooLarge(limit));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(before.len()).unwrap_or(0));
        // One byte past the bound tells an oversized file from a full one.
        (&mut file)
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(ReadError::Io)?;
        if bytes.len() > limit {
            return Err(ReadError::TooLarge(limit));
        }
        let after = file.metadata().map_err(ReadError::Io)?;
        let (seen, now) = (Fingerprint::of(&before), Fingerprint::of(&after));
        if seen == now && bytes.len() as u64 == now.len && !just_modified(&now) {
            return Ok(ReadFile {
                digest: Digest::of(&bytes),
                bytes,
                fingerprint: now,
            });
        }
    }
    Err(ReadError::KeptChanging)
}

/// A file modified in the last few milliseconds may still be being written: its
/// timestamp can stay the same across two writes that land in one clock tick.
fn just_modified(fingerprint: &Fingerprint) -> bool {
    fingerprint
        .modified
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .is_some_and(|age| age < RETRY_PAUSE / 2)
}

/// Whether a folder entry is a policy file: `*.toml`, not hidden. Hidden names are an
/// editor's lock or swap files (Emacs' `.#policy.toml` is a dangling symlink) and a
/// Kubernetes volume's `..data` machinery.
pub fn is_policy_file_name(name: &std::ffi::OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    !bytes.starts_with(b".") && bytes.ends_with(b".toml") && bytes.len() > ".toml".len()
}

/// The policy files of a folder, by name. An entry named like a policy file that is not
/// a readable regular file (a dangling symlink, a loop, a folder) is a problem, named,
/// not something to skip: skipping it would serve a smaller policy without a word.
pub fn list_policy_folder(folder: &Path) -> Result<Vec<PathBuf>, Vec<String>> {
    let entries = std::fs::read_dir(folder).map_err(|e| {
        vec![format!(
            "cannot list policy folder {}: {}",
            folder.display(),
            io_reason(&e)
        )]
    })?;
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(format!(
                    "cannot list policy folder {}: {}",
                    folder.display(),
                    io_reason(&e)
                ));
                continue;
            }
        };
        if !is_policy_file_name(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => files.push(path),
            Ok(meta) => problems.push(format!(
                "policy folder entry {} is {}, not a file",
                path.display(),
                kind_of(&meta)
            )),
            Err(e) => {
                let dangling = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
                    && e.kind() == std::io::ErrorKind::NotFound;
                let why = if dangling {
                    "is a symlink to nothing (dangling)".to_owned()
                } else {
                    format!("cannot be read: {}", io_reason(&e))
                };
                problems.push(format!("policy folder entry {} {why}", path.display()));
            }
        }
    }
    if !problems.is_empty() {
        problems.sort();
        return Err(problems);
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_trusted_once_settled_and_any_write_shows_in_it() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("value.txt");
        let written = std::time::Instant::now();
        std::fs::write(&path, "one").unwrap();
        let fresh = Fingerprint::now(&path).unwrap();
        // Unless this thread was held up past the settling time (a loaded machine).
        if written.elapsed() < SETTLED_AFTER / 2 {
            assert!(!fresh.still(&path), "taken right after the write: not trusted");
        }
        std::thread::sleep(SETTLED_AFTER * 2);
        let settled = Fingerprint::now(&path).unwrap();
        assert!(settled.still(&path));
        // The same length, the modification time put back: the change time still moves.
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, "two").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert!(!settled.still(&path));
    }

    #[test]
    fn policy_file_names_are_visible_toml_files() {
        for (name, want) in [
            ("policy.toml", true),
            ("a.b.toml", true),
            (".toml", false),
            (".#policy.toml", false),
            ("..data", false),
            ("policy.toml.swp", false),
            ("policy.TOML", false),
        ] {
            assert_eq!(is_policy_file_name(std::ffi::OsStr::new(name)), want, "{name}");
        }
    }
}
