//! `Verifier::verify` on arbitrary bytes, at a fixed time with a fixed key: it must
//! never panic, and whatever it accepts must be a well-formed workload.
//!
//! Raw bytes rarely get past the HMAC check, so each input is also tried a second way:
//! split at the first newline into header and claims JSON, base64url-encoded and signed
//! with the right key, which lets the fuzzer reach header and claims parsing and the
//! time rules.

#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use envoi::auth::{SigningKey, TokenRules, Verifier, Workload, MAX_CLAIM_LEN};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use sha2::Sha256;

const KEY: &str = "fuzz-key-not-a-secret";
/// 2023-11-14T22:13:20Z; seeds use times around it.
const NOW: i64 = 1_700_000_000;

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        Verifier::new(
            &[
                SigningKey::new(SecretString::from(KEY)),
                SigningKey::new(SecretString::from("fuzz-previous-key")),
            ],
            TokenRules {
                leeway_seconds: 30,
                max_lifetime_seconds: 604_800,
            },
        )
    })
}

fn check(workload: &Workload) {
    for name in [workload.project(), workload.kind(), workload.id()] {
        assert!(!name.is_empty(), "an accepted claim is empty");
        assert!(name.len() <= MAX_CLAIM_LEN, "an accepted claim is too long");
        assert!(
            !name.chars().any(char::is_control),
            "an accepted claim has a control character"
        );
    }
}

fn signed(header: &[u8], claims: &[u8]) -> Vec<u8> {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(KEY.as_bytes()).expect("HMAC takes any key");
    mac.update(input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{signature}").into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let verifier = verifier();
    if let Ok(workload) = verifier.verify(data, NOW) {
        check(&workload);
    }
    if let Some(at) = data.iter().position(|&b| b == b'\n') {
        let token = signed(&data[..at], &data[at + 1..]);
        if let Ok(workload) = verifier.verify(&token, NOW) {
            check(&workload);
        }
    }
});
