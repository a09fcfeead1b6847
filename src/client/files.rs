//! FILE items written as the protocol says (SPEC §8), all or nothing.
//!
//! Every file is first written whole to a temporary file in its own folder (created
//! exclusively, owner and mode set on the open descriptor, fsynced); only when every one
//! of them is ready are they renamed into place, and the folders fsynced. A failure
//! before that removes the temporary files: a run that fails leaves no half-written
//! file, and the files that were there before are untouched.
//!
//! Under `--root`, a path is taken as relative to it: `..` that climbs above it, or a
//! symbolic link (a folder on the way, or the file itself) that points out of it, is
//! refused and named. Without `--root`, paths are used as given.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::client::answer::{FileItem, Ownership};

/// The mode of a FILE that comes without permissions.
pub const DEFAULT_MODE: u32 = 0o600;

/// The mode of a folder made on the way to a file.
const FOLDER_MODE: u32 = 0o755;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("FILE {path}: the path names no file")]
    NoFileName { path: String },
    #[error("FILE {path}: `..` climbs out of --root {root}; refused")]
    Climbs { path: String, root: String },
    #[error("FILE {path}: {link} is a symbolic link that points out of --root {root}; refused")]
    LinkOut { path: String, link: String, root: String },
    #[error("FILE {path}: {folder} is in the way and is not a folder")]
    NotAFolder { path: String, folder: String },
    #[error("FILE {path}: owner `{name}` is not a user of this system")]
    UnknownUser { path: String, name: String },
    #[error("FILE {path}: group `{name}` is not a group of this system")]
    UnknownGroup { path: String, name: String },
    #[error("FILE {path}: cannot {action} {target}: {cause}")]
    Io {
        path: String,
        action: &'static str,
        target: String,
        #[source]
        cause: std::io::Error,
    },
    #[error(
        "FILE {path}: cannot give {target} owner {owner} and group {group} (giving a file to another user needs root or CAP_CHOWN): {cause}"
    )]
    Chown {
        path: String,
        target: String,
        owner: String,
        group: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("--root {root}: {cause}")]
    Root {
        root: String,
        #[source]
        cause: std::io::Error,
    },
}

/// Writes every FILE item, or none (see the module).
pub fn write_all(root: Option<&Path>, files: &[FileItem]) -> Result<(), WriteError> {
    let root = match root {
        None => None,
        Some(root) => {
            let error = |cause| WriteError::Root {
                root: root.display().to_string(),
                cause,
            };
            fs::DirBuilder::new()
                .recursive(true)
                .mode(FOLDER_MODE)
                .create(root)
                .map_err(error)?;
            Some(fs::canonicalize(root).map_err(error)?)
        }
    };
    let mut staged = Staged::default();
    for file in files {
        let target = target(root.as_deref(), &file.path)?;
        staged.stage(target, file)?;
    }
    staged.commit()
}

/// Writes `data` to `path` atomically with `mode` (used for the fallback file as well).
pub fn write_one(path: &Path, data: &[u8], mode: u32) -> Result<(), WriteError> {
    let mut staged = Staged::default();
    let shown = path.display().to_string();
    let io = |action, cause| WriteError::Io {
        path: shown.clone(),
        action,
        target: shown.clone(),
        cause,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(FOLDER_MODE)
        .create(&dir)
        .map_err(|e| io("make the folder of", e))?;
    staged.write(
        &shown,
        path.to_owned(),
        data,
        Attributes {
            mode,
            uid: None,
            gid: None,
        },
    )?;
    staged.commit()
}

/// Where a FILE item goes, its folders made; checked against `root` as the module says.
fn target(root: Option<&Path>, path: &str) -> Result<PathBuf, WriteError> {
    let shown = || path.to_owned();
    let Some(root) = root else {
        let target = PathBuf::from(path);
        if target.file_name().is_none() {
            return Err(WriteError::NoFileName { path: shown() });
        }
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(FOLDER_MODE)
                .create(dir)
                .map_err(|cause| WriteError::Io {
                    path: shown(),
                    action: "make the folder",
                    target: dir.display().to_string(),
                    cause,
                })?;
        }
        return Ok(target);
    };
    let root_shown = || root.display().to_string();
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(WriteError::Climbs {
                        path: shown(),
                        root: root_shown(),
                    });
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let Some(name) = parts.pop() else {
        return Err(WriteError::NoFileName { path: shown() });
    };
    let mut here = root.to_owned();
    for part in parts {
        let next = here.join(part);
        let io = |action, cause| WriteError::Io {
            path: shown(),
            action,
            target: next.display().to_string(),
            cause,
        };
        here = match fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let resolved = inside(root, &next, path)?;
                if !resolved.is_dir() {
                    return Err(WriteError::NotAFolder {
                        path: shown(),
                        folder: next.display().to_string(),
                    });
                }
                resolved
            }
            Ok(meta) if meta.is_dir() => next,
            Ok(_) => {
                return Err(WriteError::NotAFolder {
                    path: shown(),
                    folder: next.display().to_string(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(FOLDER_MODE)
                    .create(&next)
                    .map_err(|e| io("make the folder", e))?;
                next
            }
            Err(e) => return Err(io("look at", e)),
        };
    }
    let target = here.join(name);
    match fs::symlink_metadata(&target) {
        // A link inside the root (as Kubernetes lays out a mounted secret) is followed:
        // the file it points to is the one replaced.
        Ok(meta) if meta.file_type().is_symlink() => inside(root, &target, path),
        _ => Ok(target),
    }
}

/// Where the link `link` leads, if that is inside `root`.
fn inside(root: &Path, link: &Path, path: &str) -> Result<PathBuf, WriteError> {
    let out = || WriteError::LinkOut {
        path: path.to_owned(),
        link: link.display().to_string(),
        root: root.display().to_string(),
    };
    // A link that leads nowhere cannot be shown to stay inside: refused as well.
    let resolved = fs::canonicalize(link).map_err(|_| out())?;
    if resolved.starts_with(root) {
        Ok(resolved)
    } else {
        Err(out())
    }
}

struct Attributes {
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
}

/// The mode, owner and group that a FILE item's policies give, against the file that is
/// there now (if any).
fn attributes(file: &FileItem, existing: Option<&fs::Metadata>) -> Result<Attributes, WriteError> {
    let mode = match file.permissions {
        None => DEFAULT_MODE,
        Some(p) if p.always => p.mode,
        Some(p) => existing.map_or(p.mode, |m| m.mode() & 0o7777),
    };
    let uid = match &file.owner {
        None => None,
        Some(owner) => Some(owned(
            owner,
            existing.map(MetadataExt::uid),
            nix::unistd::getuid().as_raw(),
            |name| user(&file.path, name),
        )?),
    };
    let gid = match &file.group {
        None => None,
        Some(group) => Some(owned(
            group,
            existing.map(MetadataExt::gid),
            nix::unistd::getgid().as_raw(),
            |name| group_id(&file.path, name),
        )?),
    };
    Ok(Attributes { mode, uid, gid })
}

/// One owner (or group) policy: `existing` is the id of the file there now, `inherited`
/// the process's own, which the command keeps (exec, or a child of envoi).
fn owned(
    policy: &Ownership,
    existing: Option<u32>,
    inherited: u32,
    resolve: impl Fn(&str) -> Result<u32, WriteError>,
) -> Result<u32, WriteError> {
    match (policy, existing) {
        (Ownership::KeepOrSetExplicit(_) | Ownership::KeepOrSetInherited, Some(id)) => Ok(id),
        (Ownership::AlwaysSetExplicit(name) | Ownership::KeepOrSetExplicit(name), _) => resolve(name),
        (Ownership::AlwaysSetInherited | Ownership::KeepOrSetInherited, _) => Ok(inherited),
    }
}

/// A user name or numeric id, as `chown` takes it.
fn user(path: &str, name: &str) -> Result<u32, WriteError> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        _ => Err(WriteError::UnknownUser {
            path: path.to_owned(),
            name: name.to_owned(),
        }),
    }
}

fn group_id(path: &str, name: &str) -> Result<u32, WriteError> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        _ => Err(WriteError::UnknownGroup {
            path: path.to_owned(),
            name: name.to_owned(),
        }),
    }
}

/// Temporary files written and not yet renamed; removed when dropped.
#[derive(Default)]
struct Staged {
    ready: Vec<Ready>,
}

struct Ready {
    shown: String,
    temporary: PathBuf,
    target: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        for ready in &self.ready {
            let _ = fs::remove_file(&ready.temporary);
        }
    }
}

/// Makes temporary names unique within the process; the pid makes them unique between.
static NEXT: AtomicU64 = AtomicU64::new(0);

impl Staged {
    fn stage(&mut self, target: PathBuf, file: &FileItem) -> Result<(), WriteError> {
        let existing = fs::metadata(&target).ok().filter(fs::Metadata::is_file);
        let attributes = attributes(file, existing.as_ref())?;
        self.write(&file.path, target, file.data.expose(), attributes)
    }

    fn write(&mut self, shown: &str, target: PathBuf, data: &[u8], attributes: Attributes) -> Result<(), WriteError> {
        let name = target.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let temporary = target.with_file_name(format!(
            ".{name}.envoi-{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |action, cause| WriteError::Io {
            path: shown.to_owned(),
            action,
            target: target.display().to_string(),
            cause,
        };
        let mut file: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|cause| WriteError::Io {
                path: shown.to_owned(),
                action: "create a temporary file in",
                target: target.parent().unwrap_or(Path::new(".")).display().to_string(),
                cause,
            })?;
        self.ready.push(Ready {
            shown: shown.to_owned(),
            temporary: temporary.clone(),
            target: target.clone(),
        });
        file.write_all(data).map_err(|e| io("write", e))?;
        if attributes.uid.is_some() || attributes.gid.is_some() {
            std::os::unix::fs::fchown(&file, attributes.uid, attributes.gid).map_err(|cause| WriteError::Chown {
                path: shown.to_owned(),
                target: target.display().to_string(),
                owner: attributes.uid.map_or_else(|| "as it is".into(), |id| id.to_string()),
                group: attributes.gid.map_or_else(|| "as it is".into(), |id| id.to_string()),
                cause,
            })?;
        }
        // After the owner: chown clears the set-user-id and set-group-id bits.
        file.set_permissions(fs::Permissions::from_mode(attributes.mode))
            .map_err(|e| io("set the mode of", e))?;
        file.sync_all().map_err(|e| io("sync", e))?;
        Ok(())
    }

    /// Renames every temporary file into place, then syncs their folders.
    fn commit(mut self) -> Result<(), WriteError> {
        let mut folders: Vec<PathBuf> = Vec::new();
        while !self.ready.is_empty() {
            let ready = &self.ready[0];
            fs::rename(&ready.temporary, &ready.target).map_err(|cause| WriteError::Io {
                path: ready.shown.clone(),
                action: "rename into place",
                target: ready.target.display().to_string(),
                cause,
            })?;
            let ready = self.ready.remove(0);
            if let Some(dir) = ready.target.parent() {
                if !folders.iter().any(|f| f == dir) {
                    folders.push(dir.to_owned());
                }
            }
        }
        for dir in folders {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &dir
            };
            // Best effort: some file systems refuse fsync on a folder.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}
