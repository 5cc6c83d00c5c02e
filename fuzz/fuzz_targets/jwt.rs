//! HS256 token verification (`mingus_api::v1::jwt::verify`) and signing (`sign_hs256`).
//!
//! Input: any bytes, used twice: as a token (lossily decoded text) and, when they parse as JSON, as the
//! claims of a token made by `sign_hs256`.
//!
//! Checks: `verify` never panics on any token; a token signed from fuzzed claims never panics either,
//! and — being correctly signed HS256 — is never refused as malformed, badly signed or of another
//! algorithm when its claims are a JSON object (it may be refused for its claims: exp, nbf, aud, sub).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mingus_api::v1::jwt::{JwtError, sign_hs256, verify};

const SECRET: &[u8] = b"fuzz-jwt-secret-0123456789abcdef";
const AUDIENCE: &str = "authenticated";
/// 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600;
/// `verify` refuses longer tokens as malformed before decoding them.
const MAX_TOKEN_LEN: usize = 8 * 1024;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = verify(&text, SECRET, AUDIENCE, NOW);
    let _ = verify(&text, b"", AUDIENCE, NOW);

    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let token = sign_hs256(&claims, SECRET);
    for now in [NOW, 0, i64::MIN / 2, i64::MAX / 2] {
        let result = verify(&token, SECRET, AUDIENCE, now);
        if claims.is_object() && token.len() <= MAX_TOKEN_LEN {
            assert!(
                !matches!(
                    result,
                    Err(JwtError::Malformed
                        | JwtError::BadSignature
                        | JwtError::UnsupportedAlgorithm)
                ),
                "a token we signed was refused as {result:?}: {token}"
            );
        }
    }
    // The same token with another secret never verifies.
    assert!(verify(&token, b"another secret", AUDIENCE, NOW).is_err());
});
