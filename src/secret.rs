//! Secret bytes in memory, zeroized on drop and never printed: the vocabulary that the
//! seal, the policy and the answer share, so that none of them imports another for it.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

/// Bytes of a secret value (or of anything that contains one, like a rendered answer
/// fragment). `Debug` is masked; the bytes are read only to write a response or, on
/// explicit request, `explain --show-values`.
///
/// Shared, not copied: a secret granted to 100,000 workloads is held once.
#[derive(Clone)]
pub struct SecretBytes(Arc<Zeroizing<Box<[u8]>>>);

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SecretBytes {}

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Arc::new(Zeroizing::new(bytes.into_boxed_slice())))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted; {} bytes])", self.0.len())
    }
}

impl From<String> for SecretBytes {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}
