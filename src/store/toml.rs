//! The TOML store: one file or a folder of `*.toml` files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::policy::{FilesSeen, Loader, Policy, PolicyError, Reloaded};
use crate::seal::Keyring;

#[derive(Debug, Clone)]
pub struct TomlStore {
    path: PathBuf,
    keyring: Arc<Keyring>,
}

impl TomlStore {
    pub fn new(path: impl Into<PathBuf>, keyring: Arc<Keyring>) -> Self {
        Self {
            path: path.into(),
            keyring,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and compiles the whole policy, reading `file` and `env` values afresh.
    pub fn load(&self) -> Result<Policy, PolicyError> {
        Loader::new(&self.keyring).load_path(&self.path)
    }

    /// Reads the policy again and compiles it unless every file reads as it did when
    /// `serving` was compiled; `seen`, how the files looked when last found so.
    pub fn reload(&self, serving: Option<&Policy>, seen: Option<&FilesSeen>) -> Result<Reloaded, PolicyError> {
        Loader::new(&self.keyring).reload_path(&self.path, serving, seen)
    }
}
