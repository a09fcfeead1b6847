//! Settings that work but are weak: said as warnings when `serve` and `check` start,
//! naming the setting and never its value.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use secrecy::ExposeSecret as _;

use super::Settings;

/// Below this, a shared signing secret can be searched for offline from one token: HS256
/// keys should carry at least the hash's 256 bits.
pub const MIN_SIGNING_SECRET_BYTES: usize = 32;

impl Settings {
    /// Every weak setting, one sentence each: a short shared signing secret, a key file
    /// that its group or others may read, plain HTTP on an address other than loopback.
    /// What cannot be read is left to the checks that refuse it.
    pub fn weak_settings(&self) -> Vec<String> {
        let mut found = Vec::new();
        let short = |len: usize| len < MIN_SIGNING_SECRET_BYTES;
        for (n, secret) in self.auth.secrets.iter().enumerate() {
            if short(secret.expose_secret().len()) {
                found.push(format!(
                    "`auth.secrets` entry {} is shorter than {MIN_SIGNING_SECRET_BYTES} bytes: a short shared secret can be guessed offline from one token; use a long random one (openssl rand -base64 48)",
                    n + 1
                ));
            }
        }
        for path in &self.auth.secret_files {
            if let Ok(secret) = super::read_secret_file(path, "auth.secret_files") {
                if short(secret.expose_secret().len()) {
                    found.push(format!(
                        "`auth.secret_files`: the secret in {} is shorter than {MIN_SIGNING_SECRET_BYTES} bytes: a short shared secret can be guessed offline from one token; use a long random one (openssl rand -base64 48)",
                        path.display()
                    ));
                }
            }
        }
        for (key, paths) in [
            ("seal.key_files", &self.seal.key_files),
            ("auth.secret_files", &self.auth.secret_files),
        ] {
            for path in paths {
                if let Some(mode) = readable_by_others(path) {
                    found.push(format!(
                        "`{key}`: {} can be read by its group or others (mode {mode:04o}); make it readable by envoi's user alone (chmod 0400)",
                        path.display()
                    ));
                }
            }
        }
        if self.server.tls.cert.is_none() && !is_loopback(&self.server.listen) {
            found.push(
                "`server.listen` serves plain HTTP on an address other than loopback: tokens and secrets cross the network in clear unless a TLS-terminating proxy is in front; set `server.tls.cert` and `server.tls.key` otherwise".to_owned(),
            );
        }
        found
    }
}

/// The file's permission bits when its group or others may read it.
fn readable_by_others(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o044 != 0).then_some(mode)
}

/// Whether every address that `listen` resolves to is a loopback one. One that does not
/// resolve is `check_listeners`' to name.
fn is_loopback(listen: &str) -> bool {
    use std::net::ToSocketAddrs as _;
    match listen.to_socket_addrs() {
        Ok(addresses) => addresses.into_iter().all(|a| a.ip().is_loopback()),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_addresses_are_told_from_the_others() {
        for (listen, loopback) in [
            ("127.0.0.1:8080", true),
            ("[::1]:8080", true),
            ("localhost:8080", true),
            ("0.0.0.0:8080", false),
            ("[::]:8443", false),
            ("10.1.2.3:80", false),
        ] {
            assert_eq!(is_loopback(listen), loopback, "{listen}");
        }
    }
}
