//! A value as it is served: bytes known at load, or a template rendered per request.

use std::fmt;

use crate::secret::SecretBytes;

/// A value as it will be served: known at load, or rendered per request from claims.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Static(SecretBytes),
    Template(super::template::Template),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static(_) => f.write_str("Value::Static([redacted])"),
            Self::Template(_) => f.write_str("Value::Template([redacted])"),
        }
    }
}
