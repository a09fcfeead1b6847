//! What every test binary that runs `envoi` as a process needs: reading a finished
//! command's output, TOML strings, and HS256 tokens minted independently of envoi.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// The signing key every test server shares with its "platform".
pub const SIGNING_KEY: &str = "test-signing-key-0123456789abcdef";

/// A TOML basic string holding `text`.
pub fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// What a finished command did, for assertions whose failure shows everything.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn of(mut cmd: impl std::borrow::BorrowMut<assert_cmd::Command>) -> Self {
        let out = cmd.borrow_mut().output().expect("envoi runs");
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success\n{self}");
        self
    }

    #[track_caller]
    pub fn failure(self) -> Self {
        assert!(
            matches!(self.code, Some(code) if code != 0),
            "expected a non-zero exit\n{self}"
        );
        self
    }

    #[track_caller]
    pub fn stderr_names(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr should name `{needle}`\n{self}");
        self
    }

    #[track_caller]
    pub fn stdout_names(&self, needle: &str) -> &Self {
        assert!(self.stdout.contains(needle), "stdout should contain `{needle}`\n{self}");
        self
    }

    /// Neither output contains `secret`.
    #[track_caller]
    pub fn never_shows(&self, secret: &str) -> &Self {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "`{secret}` must not be printed\n{self}"
        );
        self
    }

    /// The last non-empty line of standard output.
    #[track_caller]
    pub fn last_line(&self) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("no output\n{self}"))
            .trim()
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

// ---- Tokens ----

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A compact HS256 JWT over `claims`, keyed with the UTF-8 bytes of `key`.
pub fn sign(key: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{claims}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// A token for the workload, valid for an hour, signed with [`SIGNING_KEY`].
pub fn token(project: &str, kind: &str, id: &str) -> String {
    let now = now();
    sign(
        SIGNING_KEY,
        &json!({"projectId": project, "nfObjectType": kind, "nfObjectId": id, "iat": now, "exp": now + 3600}),
    )
}
