//! `envoi run --fallback FILE --fallback-key-file K` (SPEC §8): the last good answer,
//! kept sealed, for when envoi cannot be reached.
//!
//! The file holds one sealed string (AES-256-GCM as in SPEC §3, with a master key in the
//! form `envoi keygen` prints) whose plaintext is the time it was saved and the answer's
//! body. The workload's three names are bound in as associated data: a fallback file
//! copied to another workload does not open there. The saved time is inside the seal, so
//! it cannot be moved forward to pass `--fallback-max-age`.
//!
//! The workload is the one that a minted token is for, or the claims of a token read
//! from a file or a variable, decoded without verifying them: they only name whose
//! fallback this is, and the server is the one that checks the token.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use secrecy::ExposeSecret as _;

use crate::auth::Workload;
use crate::client::answer::Answer;
use crate::client::fetch::{token, TokenSource};
use crate::client::files;
use crate::seal::{Keyring, MasterKey};

const HEADER: &str = "envoi-fallback:v1\n";

#[derive(Debug, thiserror::Error)]
pub enum FallbackError {
    #[error("--fallback-key-file {path}: {problem}")]
    Key { path: String, problem: String },
    #[error("--fallback {path}: {problem}")]
    File { path: String, problem: String },
    #[error("--fallback {path}: saved {age}s ago, longer than --fallback-max-age ({max}s)")]
    TooOld { path: String, age: u64, max: u64 },
    #[error(
        "--fallback {path}: does not open for {workload} (kept for another workload, with another key, or tampered with)"
    )]
    DoesNotOpen { path: String, workload: String },
    #[error("--fallback: the workload cannot be told from the token (its claims do not decode)")]
    Workload,
}

#[derive(Debug)]
pub struct Fallback {
    path: PathBuf,
    keyring: Keyring,
    max_age: Duration,
}

impl Fallback {
    /// Reads the key now, so that a wrong key file fails before anything else.
    pub fn new(path: PathBuf, key_file: &Path, max_age: Duration) -> Result<Self, FallbackError> {
        let key_error = |problem: String| FallbackError::Key {
            path: key_file.display().to_string(),
            problem,
        };
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(key_file).map_err(|e| key_error(e.to_string()))?);
        let key = MasterKey::parse(&text).map_err(|e| key_error(e.to_string()))?;
        Ok(Self {
            path,
            keyring: Keyring::new(vec![key]),
            max_age,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file_error(&self, problem: String) -> FallbackError {
        FallbackError::File {
            path: self.path.display().to_string(),
            problem,
        }
    }

    /// Keeps `answer` as the last good one for the workload of `source`.
    pub fn save(&self, source: &TokenSource, answer: &Answer) -> Result<(), FallbackError> {
        let workload = workload(source)?;
        let mut plaintext = zeroize::Zeroizing::new(Vec::with_capacity(8 + answer.body.len()));
        plaintext.extend_from_slice(&now().to_be_bytes());
        plaintext.extend_from_slice(answer.body.expose());
        let sealed = self
            .keyring
            .seal(&name(&workload), &plaintext)
            .map_err(|e| self.file_error(e.to_string()))?;
        files::write_one(&self.path, format!("{HEADER}{sealed}\n").as_bytes(), 0o600)
            .map_err(|e| self.file_error(e.to_string()))
    }

    /// The answer kept for the workload of `source`, and its age, if young enough.
    pub fn load(&self, source: &TokenSource) -> Result<(Answer, Duration), FallbackError> {
        let workload = workload(source)?;
        let text = std::fs::read_to_string(&self.path).map_err(|e| self.file_error(e.to_string()))?;
        let sealed = text
            .strip_prefix(HEADER)
            .ok_or_else(|| self.file_error("is not a fallback file of envoi run".into()))?;
        let opened = self
            .keyring
            .open(&name(&workload), sealed.trim())
            .map_err(|_| FallbackError::DoesNotOpen {
                path: self.path.display().to_string(),
                workload: workload.to_string(),
            })?;
        let bytes = opened.expose();
        let (saved, body) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| self.file_error("is too short".into()))?;
        let age = now().saturating_sub(u64::from_be_bytes(*saved));
        if age > self.max_age.as_secs() {
            return Err(FallbackError::TooOld {
                path: self.path.display().to_string(),
                age,
                max: self.max_age.as_secs(),
            });
        }
        let answer = Answer::parse(body.to_vec()).map_err(|e| self.file_error(e.to_string()))?;
        Ok((answer, Duration::from_secs(age)))
    }
}

/// The name the seal binds in: the three claims, separated by NUL, which none may hold.
fn name(workload: &Workload) -> String {
    format!("envoi-run-fallback\0{}", workload.index_key())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The workload a token source speaks for (see the module).
fn workload(source: &TokenSource) -> Result<Workload, FallbackError> {
    if let TokenSource::Mint { workload, .. } = source {
        return Ok(workload.clone());
    }
    let token = token(source).map_err(|_| FallbackError::Workload)?;
    claims(token.expose_secret()).ok_or(FallbackError::Workload)
}

/// The workload a JWT's claims name, not verified.
fn claims(token: &str) -> Option<Workload> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Claims {
        project_id: String,
        nf_object_type: String,
        nf_object_id: String,
    }
    let payload = token.split('.').nth(1)?;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let json = zeroize::Zeroizing::new(engine.decode(payload).ok()?);
    let claims: Claims = serde_json::from_slice(&json).ok()?;
    Workload::new(&claims.project_id, &claims.nf_object_type, &claims.nf_object_id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workload_is_read_from_a_tokens_claims_without_verifying_them() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"projectId":"shop","nfObjectType":"service","nfObjectId":"web","exp":1}"#);
        let workload = claims(&format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln")).unwrap();
        assert_eq!(workload.to_string(), "shop/service/web");
        assert!(claims("not-a-token").is_none());
        assert!(claims("a.e30.b").is_none(), "no claims");
    }
}
