use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use super::*;

/// HMAC-SHA256 computed apart from jsonwebtoken, to check its signatures and to forge test tokens.
fn mac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

const SECRET: &[u8] = b"super-secret-jwt-token-with-at-least-32-characters-long";
const NOW: i64 = 1_800_000_000;
const USER: &str = "5f1c8a2e-4b7d-4e1a-9c3f-2d6b8e0a1f47";

/// Made by Python's hmac/hashlib (an implementation independent of ours), as Supabase shapes them.
const INDEPENDENT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJhdXRoZW50aWNhdGVkIiwiZXhwIjo0MTAyNDQ0ODAwLCJzdWIiOiI1ZjFjOGEyZS00YjdkLTRlMWEtOWMzZi0yZDZiOGUwYTFmNDciLCJyb2xlIjoiYXV0aGVudGljYXRlZCIsImVtYWlsIjoicGF0QGV4YW1wbGUuY29tIn0.vaw_pNIfcRnzafHfx9ZhfIcxtNS6QD-XxFgIstAzAao";

fn claims() -> Value {
    json!({"sub": USER, "aud": "authenticated", "role": "authenticated", "exp": NOW + 600})
}

fn check(token: &str) -> Result<Claims, JwtError> {
    verify(token, SECRET, "authenticated", NOW)
}

fn with(field: &str, value: Value) -> String {
    let mut c = claims();
    c[field] = value;
    sign_hs256(&c, SECRET)
}

fn b64(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(value)
}

#[test]
fn a_token_signed_elsewhere_verifies() {
    let claims = check(INDEPENDENT).unwrap();
    assert_eq!(claims.user_id.to_string(), USER);
    assert_eq!(claims.role, "authenticated");
    assert_eq!(claims.expires_at, 4_102_444_800);
    assert_eq!(
        verify(INDEPENDENT, b"another-secret", "authenticated", NOW),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn our_signature_is_the_hmac_of_the_signing_input() {
    let token = sign_hs256(&claims(), SECRET);
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let mut mac = mac(SECRET);
    mac.update(signing_input.as_bytes());
    assert_eq!(
        signature,
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    assert!(check(&token).is_ok());
}

#[test]
fn an_empty_secret_verifies_nothing() {
    let token = sign_hs256(&claims(), b"");
    assert!(token.ends_with('.'), "no signature: {token}");
    assert_eq!(
        verify(&token, b"", "authenticated", NOW),
        Err(JwtError::BadSignature)
    );
    assert_eq!(
        verify(INDEPENDENT, b"", "authenticated", NOW),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn expiry_allows_only_the_documented_leeway() {
    assert!(check(&with("exp", json!(NOW - LEEWAY_SECS + 1))).is_ok());
    assert_eq!(
        check(&with("exp", json!(NOW - LEEWAY_SECS))),
        Err(JwtError::Expired)
    );
    assert_eq!(
        check(&with("exp", json!(NOW - 3600))),
        Err(JwtError::Expired)
    );
    // Fractional NumericDates are allowed.
    assert!(check(&with("exp", json!((NOW + 60) as f64 + 0.5))).is_ok());
    assert_eq!(
        check(&with("exp", json!("tomorrow"))),
        Err(JwtError::InvalidClaims)
    );
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        check(&sign_hs256(&no_exp, SECRET)),
        Err(JwtError::InvalidClaims)
    );
    assert_eq!(
        check(&with("nbf", json!(NOW + LEEWAY_SECS + 5))),
        Err(JwtError::NotYetValid)
    );
    assert!(check(&with("nbf", json!(NOW + 5))).is_ok());
}

#[test]
fn only_hs256_is_accepted_whatever_the_signature() {
    let payload = b64(&claims().to_string());
    for alg in ["none", "None", "HS512", "RS256", "hs256"] {
        let header = b64(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        for signature in ["", "c2ln"] {
            assert_eq!(
                check(&format!("{header}.{payload}.{signature}")),
                Err(JwtError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
    }
    // A valid HS256 signature does not rescue a critical extension.
    let header = b64(r#"{"alg":"HS256","crit":["exp"]}"#);
    let input = format!("{header}.{payload}");
    let mut mac = mac(SECRET);
    mac.update(input.as_bytes());
    let token = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(check(&token), Err(JwtError::UnsupportedAlgorithm));
}

#[test]
fn tampering_breaks_the_signature() {
    let token = sign_hs256(&claims(), SECRET);
    let (header, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let other = b64(
        &json!({"sub": Uuid::new_v4().to_string(), "aud": "authenticated", "exp": NOW + 600})
            .to_string(),
    );
    assert_eq!(
        check(&format!("{header}.{other}.{signature}")),
        Err(JwtError::BadSignature)
    );
    let mut truncated = token.clone();
    truncated.truncate(token.len() - 4);
    assert!(matches!(
        check(&truncated),
        Err(JwtError::BadSignature | JwtError::Malformed)
    ));
}

#[test]
fn audience_and_subject_are_required() {
    assert_eq!(
        check(&with("aud", json!("anon"))),
        Err(JwtError::WrongAudience)
    );
    assert!(check(&with("aud", json!(["other", "authenticated"]))).is_ok());
    assert_eq!(
        check(&with("aud", json!(["other"]))),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(
        check(&with("aud", Value::Null)),
        Err(JwtError::WrongAudience)
    );
    assert!(verify(&with("aud", json!("mingus")), SECRET, "mingus", NOW).is_ok());
    assert_eq!(
        check(&with("sub", json!("not-a-uuid"))),
        Err(JwtError::InvalidClaims)
    );
    assert_eq!(
        check(&with("sub", json!(Uuid::nil().to_string()))),
        Err(JwtError::InvalidClaims)
    );
    assert_eq!(check(&with("role", json!(5))), Err(JwtError::InvalidClaims));
}

#[test]
fn malformed_tokens_are_malformed() {
    let token = sign_hs256(&claims(), SECRET);
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        &format!("{token}.extra"),
        &format!("{}.{}.sig", b64("not json"), b64("{}")),
        &format!("{}.{}.sig", b64("[1]"), b64("{}")),
        &format!("{}=", token),
    ] {
        assert!(
            matches!(
                check(bad),
                Err(JwtError::Malformed | JwtError::BadSignature)
            ),
            "{bad:?}: {:?}",
            check(bad)
        );
    }
    assert_eq!(check("a.b"), Err(JwtError::Malformed));
    assert_eq!(
        check(&"x".repeat(MAX_TOKEN_LEN + 1)),
        Err(JwtError::Malformed)
    );
}

#[test]
fn extreme_numeric_dates_are_judged_without_overflow() {
    let with = |extra: serde_json::Value| {
        let mut claims = claims();
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        sign_hs256(&claims, SECRET)
    };
    let far = with(json!({"exp": i64::MAX}));
    assert!(verify(&far, SECRET, "authenticated", 1_700_000_000).is_ok());
    assert_eq!(
        verify(&far, SECRET, "authenticated", i64::MAX),
        Err(JwtError::Expired)
    );
    let never_valid = with(json!({"exp": i64::MAX, "nbf": i64::MAX}));
    assert_eq!(
        verify(&never_valid, SECRET, "authenticated", 1_700_000_000),
        Err(JwtError::NotYetValid)
    );
}
