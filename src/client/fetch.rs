//! One fetch of a workload's answer over HTTP(S), with bounded retries (SPEC §8).
//!
//! Retried, with exponential backoff, until `retry_for` is spent: a connection that
//! cannot be made or breaks, a timeout, and any 5xx (envoi's 503 while no policy is
//! loaded is the usual one). Never retried: a 401 (the token is wrong, and asking again
//! only fills the server's audit log), every other 4xx, and a server certificate that
//! does not verify. No error text carries the
//! token or a value: the URL is shown without its user part, query or fragment.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};

use crate::auth::{mint_token, SigningKey, Workload};
use crate::client::answer::{Answer, AnswerError};

/// An answer larger than this is refused: no policy gives one workload 64 MiB.
pub const MAX_ANSWER_BYTES: usize = 64 << 20;

/// How long a minted token lives: long enough for every retry, short if it leaks.
const MINTED_TTL_SECONDS: u64 = 300;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where each attempt takes its token from.
pub enum TokenSource {
    /// Re-read on every attempt (a platform rotates it in place); one trailing newline
    /// (`\n` or `\r\n`) is dropped.
    File(PathBuf),
    /// Read once, from the variable named.
    Env(String),
    /// Minted for the workload with the configured signing key.
    Mint { key: SigningKey, workload: Workload },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "File({})", path.display()),
            Self::Env(name) => write!(f, "Env({name})"),
            Self::Mint { workload, .. } => write!(f, "Mint({workload})"),
        }
    }
}

#[derive(Debug)]
pub struct FetchSettings {
    pub url: reqwest::Url,
    pub token: TokenSource,
    /// PEM certificates trusted instead of the built-in web roots.
    pub cafile: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub retry_for: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("--url {0}: {1}")]
    Url(String, &'static str),
    #[error("--cafile {path}: {problem}")]
    CaFile { path: String, problem: String },
    #[error("the HTTP client cannot be built: {0}")]
    Client(String),
    #[error("--token-file {path}: {problem}")]
    TokenFile { path: String, problem: String },
    #[error("--token-env {name}: {problem}")]
    TokenEnv { name: String, problem: &'static str },
    #[error("the token is not a valid HTTP header value (a control character?)")]
    TokenHeader,
    #[error("{url}: the token was refused (401 Unauthorized); not retried")]
    Unauthorized { url: String },
    #[error("{url}: the server's certificate is not trusted (is --cafile its CA?); not retried: {cause}")]
    Certificate { url: String, cause: String },
    #[error("{url}: the server refused the request with {status}; not retried")]
    Refused { url: String, status: String },
    #[error("{url}: no answer after {attempts} attempt(s) over {waited:?} (--retry-for): {last}")]
    GaveUp {
        url: String,
        attempts: u32,
        waited: Duration,
        last: String,
    },
    #[error("{url}: the answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge { url: String },
    #[error("{url}: {source}")]
    Answer {
        url: String,
        #[source]
        source: AnswerError,
    },
}

/// The URL as it may be shown: scheme, host, port and path only.
pub fn shown(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Checks a `--url` value: http or https with a host.
pub fn parse_url(text: &str) -> Result<reqwest::Url, FetchError> {
    // Not echoed: a URL that does not parse may still carry a password or a query.
    let url = reqwest::Url::parse(text).map_err(|_| FetchError::Url("(as given)".into(), "not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(FetchError::Url(shown(&url), "must be http:// or https:// with a host"));
    }
    Ok(url)
}

/// Fetches once, retrying as the module says (blocking: builds a runtime of its own).
pub fn fetch(settings: &FetchSettings) -> Result<Answer, FetchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FetchError::Client(e.to_string()))?;
    runtime.block_on(fetch_async(settings))
}

fn client(settings: &FetchSettings) -> Result<reqwest::Client, FetchError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(settings.url.scheme() == "https")
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.read_timeout)
        .user_agent(concat!("envoi/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &settings.cafile {
        let ca_error = |problem: String| FetchError::CaFile {
            path: path.display().to_string(),
            problem,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
        if certificates.is_empty() {
            return Err(ca_error("holds no PEM certificate".into()));
        }
        builder = builder.tls_built_in_root_certs(false);
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| FetchError::Client(cause(&e)))
}

pub(crate) fn token(source: &TokenSource) -> Result<SecretString, FetchError> {
    let text = match source {
        TokenSource::File(path) => {
            let file_error = |problem: String| FetchError::TokenFile {
                path: path.display().to_string(),
                problem,
            };
            let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| file_error(e.to_string()))?);
            let text = std::str::from_utf8(&bytes).map_err(|_| file_error("is not UTF-8 text".into()))?;
            let text = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(text);
            if text.is_empty() {
                return Err(file_error("is empty".into()));
            }
            SecretString::from(text.to_owned())
        }
        TokenSource::Env(name) => {
            let env_error = |problem| FetchError::TokenEnv {
                name: name.clone(),
                problem,
            };
            let value = std::env::var(name).map_err(|e| {
                env_error(match e {
                    std::env::VarError::NotPresent => "is not set",
                    std::env::VarError::NotUnicode(_) => "is not UTF-8 text",
                })
            })?;
            if value.is_empty() {
                return Err(env_error("is empty"));
            }
            SecretString::from(value)
        }
        TokenSource::Mint { key, workload } => SecretString::from(mint_token(key, workload, MINTED_TTL_SECONDS)),
    };
    Ok(text)
}

/// What one attempt came to.
enum Attempt {
    Done(Vec<u8>),
    /// Worth another try, with the reason.
    Again(String),
    Fatal(FetchError),
}

/// [`fetch`] inside a runtime that is already running (`envoi run` keeps one).
pub async fn fetch_async(settings: &FetchSettings) -> Result<Answer, FetchError> {
    let client = client(settings)?;
    let url = shown(&settings.url);
    let started = Instant::now();
    let deadline = started + settings.retry_for;
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let last = match attempt(&client, settings, &url).await? {
            Attempt::Done(body) => {
                return Answer::parse(body).map_err(|source| FetchError::Answer { url, source });
            }
            Attempt::Fatal(error) => return Err(error),
            Attempt::Again(why) => why,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(FetchError::GaveUp {
                url,
                attempts,
                waited: round(now - started),
                last,
            });
        }
        tokio::time::sleep(backoff.min(deadline - now)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn round(waited: Duration) -> Duration {
    Duration::from_millis(waited.as_millis().try_into().unwrap_or(u64::MAX) / 100 * 100)
}

async fn attempt(client: &reqwest::Client, settings: &FetchSettings, url: &str) -> Result<Attempt, FetchError> {
    // Read again on every attempt: a token file may be rotated while envoi is down.
    let token = token(&settings.token)?;
    let mut header = reqwest::header::HeaderValue::try_from(format!("Bearer {}", token.expose_secret()))
        .map_err(|_| FetchError::TokenHeader)?;
    header.set_sensitive(true);
    let response = client
        .get(settings.url.clone())
        .header(reqwest::header::AUTHORIZATION, header)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await;
    let mut response = match response {
        Ok(response) => response,
        // A certificate that does not verify will not verify on the next attempt either.
        Err(error) if is_certificate_problem(&error) => {
            return Ok(Attempt::Fatal(FetchError::Certificate {
                url: url.to_owned(),
                cause: cause(&error),
            }))
        }
        Err(error) => return Ok(Attempt::Again(cause(&error))),
    };
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Ok(Attempt::Fatal(FetchError::Unauthorized { url: url.to_owned() }));
    }
    if status.is_server_error() {
        return Ok(Attempt::Again(format!("the server answered {status}")));
    }
    if status != reqwest::StatusCode::OK {
        return Ok(Attempt::Fatal(FetchError::Refused {
            url: url.to_owned(),
            status: status.to_string(),
        }));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    zeroize::Zeroize::zeroize(&mut body);
                    return Ok(Attempt::Fatal(FetchError::TooLarge { url: url.to_owned() }));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Attempt::Done(body)),
            Err(error) => {
                zeroize::Zeroize::zeroize(&mut body);
                return Ok(Attempt::Again(format!("the answer broke off: {}", cause(&error))));
            }
        }
    }
}

/// Whether rustls refused the server's certificate somewhere in the chain. An
/// `io::Error` hides what it wraps from `source` (and may wrap another), hence `get_ref`.
fn is_certificate_problem(error: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(inner) = next {
        if matches!(
            inner.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        ) {
            return true;
        }
        next = match inner.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(wrapped) => Some(wrapped),
            None => inner.source(),
        };
    }
    false
}

/// The error and its causes, without reqwest's own "for url (...)" repetition; a
/// connection error names the host in the URL shown beside it.
fn cause(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else if error.is_body() || error.is_decode() {
        "the body could not be read".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    let mut seen = Vec::new();
    while let Some(inner) = source {
        let line = inner.to_string();
        if !seen.contains(&line) && !line.contains("error sending request") {
            text.push_str(": ");
            text.push_str(&line);
            seen.push(line);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_loses_one_trailing_newline_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        for (contents, expected) in [
            ("abc", "abc"),
            ("abc\n", "abc"),
            ("abc\r\n", "abc"),
            ("abc\n\n", "abc\n"),
        ] {
            std::fs::write(&path, contents).unwrap();
            let token = token(&TokenSource::File(path.clone())).unwrap();
            assert_eq!(token.expose_secret(), expected, "{contents:?}");
        }
        std::fs::write(&path, "\n").unwrap();
        let error = token(&TokenSource::File(path.clone())).unwrap_err().to_string();
        assert!(error.contains("--token-file") && error.contains("empty"), "{error}");
    }

    #[test]
    fn a_url_is_shown_without_its_user_part_or_query() {
        let url = parse_url("https://user:hunter2@envoi.internal:8443/x?token=hunter2#f").unwrap();
        assert_eq!(shown(&url), "https://envoi.internal:8443/x");
        assert!(parse_url("ftp://envoi.internal/").is_err());
        assert!(parse_url("not a url").is_err());
    }
}
