//! Token verification: a bearer JWT becomes a [`Workload`], or an [`AuthError`] that says
//! why without repeating anything the token carried.

mod verifier;

pub use verifier::{bearer_token, mint_token, AuthError, SigningKey, TokenRules, Verifier, MAX_TOKEN_BYTES};

use std::fmt;

/// A claim longer than this is not a name a platform gives; refusing it bounds what a
/// signed but absurd token can make envoi match and log.
pub const MAX_CLAIM_LEN: usize = 256;

/// The workload a verified token names: project, type and id, each a non-empty string
/// without control characters. Held as one `project\0type\0id` string: one allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Workload {
    key: String,
    kind_at: usize,
    id_at: usize,
}

impl Workload {
    /// Builds a workload from three claim values, refusing what a token could not carry.
    pub fn new(project: &str, kind: &str, id: &str) -> Result<Self, AuthError> {
        for value in [project, kind, id] {
            if value.is_empty() || value.len() > MAX_CLAIM_LEN || value.chars().any(char::is_control) {
                return Err(AuthError::BadClaims);
            }
        }
        let mut key = String::with_capacity(project.len() + kind.len() + id.len() + 2);
        key.push_str(project);
        key.push('\0');
        let kind_at = key.len();
        key.push_str(kind);
        key.push('\0');
        let id_at = key.len();
        key.push_str(id);
        Ok(Self { key, kind_at, id_at })
    }

    /// `projectId`
    pub fn project(&self) -> &str {
        &self.key[..self.kind_at - 1]
    }

    /// `nfObjectType`
    pub fn kind(&self) -> &str {
        &self.key[self.kind_at..self.id_at - 1]
    }

    /// `nfObjectId`
    pub fn id(&self) -> &str {
        &self.key[self.id_at..]
    }

    /// The three names joined by NUL, which no claim may contain.
    pub fn index_key(&self) -> &str {
        &self.key
    }
}

/// Workload names are not secret: they go to the audit log as they are.
impl fmt::Debug for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.project(), self.kind(), self.id())
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
