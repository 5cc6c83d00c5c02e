//! `Stripe-Signature` parsing and verification (`mingus_api::webhooks::signature::verify`).
//!
//! Input: the header's text, a line break, then the raw body (bytes up to the first `\n` are the header;
//! without one, the whole input is the header and the body is empty).
//!
//! Checks: `verify` never panics, whatever the header and body; when it accepts, the signed timestamp
//! is within the tolerance of `now`; and a header made with `sign()` for the fuzzed body (alone, or after
//! a wrong `v1`, signed with either configured secret) verifies to its timestamp.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mingus_api::webhooks::signature::{sign, verify};
use secrecy::SecretString;

/// Stripe's published test vector's timestamp; the seed corpus holds that vector.
const NOW: i64 = 1_492_774_577 + 10;
const TOLERANCE: Duration = Duration::from_secs(300);
const SECRETS: [&str; 2] = ["whsec_test_secret", "whsec_rotated_secret"];

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let secrets: Vec<SecretString> = SECRETS.iter().map(|s| SecretString::from(*s)).collect();

    // 1. Whatever arrives: no panic; an accepted timestamp is within the tolerance.
    let header = String::from_utf8_lossy(header);
    for candidate in [Some(header.as_ref()), None] {
        if let Ok(t) = verify(candidate, body, &secrets, TOLERANCE, NOW) {
            assert!(
                (NOW - 300..=NOW + 300).contains(&t),
                "accepted t={t}, beyond the tolerance of now={NOW}"
            );
        }
    }

    // 2. A header we sign for this body verifies, with either secret, whatever else it lists.
    let skew = i64::try_from(body.len() % 601).unwrap_or(0) - 300;
    let t = NOW + skew;
    for secret in SECRETS {
        let v1 = hex::encode(sign(secret, t, body));
        for signed in [
            format!("t={t},v1={v1}"),
            format!("t={t},v1={},v1={v1},v0=00", "00".repeat(32)),
        ] {
            assert_eq!(
                verify(Some(&signed), body, &secrets, TOLERANCE, NOW),
                Ok(t),
                "a header signed with {secret} for this body: {signed}"
            );
        }
    }
});
