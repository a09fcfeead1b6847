//! Sealed values (SPEC §3): AES-256-GCM, a random 96-bit nonce per seal, the secret's
//! name bound in as associated data, and the key id in every sealed string so that old
//! and new master keys can coexist while values are re-sealed.
//!
//! A master key is written `envoi-key:v1:<id>:<base64 of 32 bytes>`; a sealed value is
//! `envoi:v1:<key id>:<base64url of nonce ‖ ciphertext ‖ tag>`.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom as _, SystemRandom};
use zeroize::Zeroizing;

use crate::secret::SecretBytes;

const KEY_PREFIX: &str = "envoi-key:v1:";
const SEALED_PREFIX: &str = "envoi:v1:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "no master key is configured: set `seal.key_files` (ENVOI__SEAL__KEY_FILES) or `seal.keys` (ENVOI__SEAL__KEYS)"
    )]
    NoKey,
    #[error("not a master key (expected `envoi-key:v1:<id>:<base64 of 32 bytes>`, as `envoi keygen` prints)")]
    BadKey,
    #[error("not a sealed value (expected `envoi:v1:<key id>:<data>`, as `envoi seal` prints)")]
    Malformed,
    #[error("sealed with key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("does not open with key `{0}`: sealed for another name, with another key of that id, or tampered with")]
    DoesNotOpen(String),
}

/// One AES-256 master key and its id.
pub struct MasterKey {
    id: String,
    cipher: LessSafeKey,
    bytes: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, [redacted])", self.id)
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        fill_random(bytes.as_mut());
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(b"envoi key id\0");
        context.update(bytes.as_ref());
        let digest = context.finish();
        let id = format!(
            "k{}",
            digest.as_ref()[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let cipher = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes.as_ref()).expect("a 32-byte key"));
        Self { id, cipher, bytes }
    }

    /// Parses `envoi-key:v1:<id>:<base64>`; surrounding white space is ignored.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let rest = text.trim().strip_prefix(KEY_PREFIX).ok_or(SealError::BadKey)?;
        let (id, encoded) = rest.split_once(':').ok_or(SealError::BadKey)?;
        let decoded = Zeroizing::new(STANDARD.decode(encoded).map_err(|_| SealError::BadKey)?);
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| SealError::BadKey)?;
        let key = Self::from_bytes(Zeroizing::new(bytes));
        // The id is derived from the key, so a mistyped key cannot pose as another.
        if key.id != id {
            return Err(SealError::BadKey);
        }
        Ok(key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key in the form a `key_files` file holds.
    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{KEY_PREFIX}{}:{}",
            self.id,
            STANDARD.encode(self.bytes.as_ref())
        ))
    }
}

/// The configured master keys, newest first: the first seals, all open.
#[derive(Debug, Default)]
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl Keyring {
    /// No keys: sealed values do not open.
    pub const fn empty() -> Self {
        Self { keys: Vec::new() }
    }
}

/// Bytes from the operating system's generator.
pub fn fill_random(out: &mut [u8]) {
    SystemRandom::new()
        .fill(out)
        .expect("the operating system's random generator works");
}

fn associated_data(name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(SEALED_PREFIX.len() + name.len());
    aad.extend_from_slice(SEALED_PREFIX.as_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad
}

impl Keyring {
    pub fn new(keys: Vec<MasterKey>) -> Self {
        Self { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The id of the key that seals.
    pub fn newest_id(&self) -> Option<&str> {
        self.keys.first().map(MasterKey::id)
    }

    /// Seals `plaintext` for the secret `name` with the newest key.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let key = self.keys.first().ok_or(SealError::NoKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        // nonce ‖ ciphertext ‖ tag, sealed in place after the nonce.
        let mut data = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN));
        data.extend_from_slice(&nonce);
        data.extend_from_slice(plaintext);
        let mut sealed = data.split_off(NONCE_LEN);
        key.cipher
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(name)),
                &mut sealed,
            )
            .expect("AES-GCM sealing of a bounded message cannot fail");
        data.extend_from_slice(&sealed);
        Ok(format!(
            "{SEALED_PREFIX}{}:{}",
            key.id,
            URL_SAFE_NO_PAD.encode(data.as_slice())
        ))
    }

    /// The id of the key a sealed string names, if it is well-formed.
    pub fn key_id(sealed: &str) -> Result<&str, SealError> {
        let rest = sealed.trim().strip_prefix(SEALED_PREFIX).ok_or(SealError::Malformed)?;
        rest.split_once(':').map(|(id, _)| id).ok_or(SealError::Malformed)
    }

    /// Opens a sealed string made for the secret `name`.
    pub fn open(&self, name: &str, sealed: &str) -> Result<SecretBytes, SealError> {
        let rest = sealed.trim().strip_prefix(SEALED_PREFIX).ok_or(SealError::Malformed)?;
        let (id, encoded) = rest.split_once(':').ok_or(SealError::Malformed)?;
        let data = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| SealError::Malformed)?;
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        if self.keys.is_empty() {
            return Err(SealError::NoKey);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let mut data = Zeroizing::new(data);
        let nonce: [u8; NONCE_LEN] = data[..NONCE_LEN].try_into().expect("checked length");
        let opened = key
            .cipher
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(name)),
                &mut data[NONCE_LEN..],
            )
            .map_err(|_| SealError::DoesNotOpen(id.to_owned()))?;
        Ok(SecretBytes::new(opened.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with the aes-gcm crate before the move to ring: what is already sealed in
    /// policies and databases keeps opening. The key is a throwaway.
    #[test]
    fn a_value_sealed_before_the_move_to_ring_still_opens() {
        let key = MasterKey::parse("envoi-key:v1:ke56fb536:IBwxc++Mr9TBKCmhu8j8ijf9RMMX+RB4sMUMAw5yFYA=").unwrap();
        let ring = Keyring::new(vec![key]);
        let sealed = "envoi:v1:ke56fb536:91OGuyPXC4ivVtoVt4aTmO2zHoaOQTOKWPbBw7AXhnrnYbp_AR6oxREc1cKAOBACLN_UeA";
        let opened = ring.open("compat_check", sealed).unwrap();
        assert_eq!(opened.expose(), b"old-aes-gcm-sealed-value");
        assert!(ring.open("another_name", sealed).is_err(), "the name is bound in");
    }

    #[test]
    fn a_key_survives_its_encoding() {
        let key = MasterKey::generate();
        let again = MasterKey::parse(&key.encode()).unwrap();
        assert_eq!(key.id(), again.id());
        assert!(!format!("{key:?}").contains(&key.encode()[KEY_PREFIX.len() + 10..]));
    }

    #[test]
    fn a_mistyped_key_is_refused() {
        let key = MasterKey::generate();
        let text = key.encode().to_string();
        let at = text.len() - 6;
        let flip = if &text[at..=at] == "A" { "B" } else { "A" };
        let mistyped = format!("{}{flip}{}", &text[..at], &text[at + 1..]);
        assert_eq!(MasterKey::parse(&mistyped).unwrap_err(), SealError::BadKey);
    }
}
