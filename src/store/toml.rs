//! The TOML store: one file or a folder of `*.toml` files.

use std::path::{Path, PathBuf};

use crate::policy::{self, Policy, PolicyError};

#[derive(Debug, Clone)]
pub struct TomlStore {
    path: PathBuf,
}

impl TomlStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and compiles the whole policy, reading `file` and `env` values afresh.
    pub fn load(&self) -> Result<Policy, PolicyError> {
        policy::load_path(&self.path)
    }
}
