//! Stripe webhook signatures, verified the way Stripe's own SDKs do — but against **every** `v1` value of
//! the header and **every** configured secret (async-stripe keeps only the last `v1`, which rejects valid
//! deliveries during a secret roll).
//!
//! `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`; `v1` is
//! `hex(HMAC-SHA256(key = the whole "whsec_…" string, msg = "<t>.<raw body>"))`. Only `v1` counts.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("no v1 signature in the Stripe-Signature header")]
    NoV1,
    #[error("no signature matches the payload")]
    Mismatch,
    #[error("the signed timestamp is {0} s old, beyond the tolerance")]
    TooOld(i64),
    #[error("the signed timestamp is {0} s in the future, beyond the tolerance")]
    InFuture(i64),
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing => "missing_signature",
            SignatureError::Malformed(_) | SignatureError::NoV1 => "malformed_signature",
            SignatureError::Mismatch => "invalid_signature",
            SignatureError::TooOld(_) => "stale_timestamp",
            SignatureError::InFuture(_) => "future_timestamp",
        }
    }
}

struct Header {
    timestamp: i64,
    v1: Vec<Vec<u8>>,
}

fn parse(header: &str) -> Result<Header, SignatureError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed("an element is not key=value"));
        };
        match key {
            "t" => {
                let t = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("t is not a number"))?;
                timestamp = Some(t);
            }
            // A v1 that is not hex can never match; keep looking at the others.
            "v1" => v1.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t= timestamp"))?;
    if v1.is_empty() {
        return Err(SignatureError::NoV1);
    }
    Ok(Header { timestamp, v1 })
}

/// The `v1` signature of `body` at `timestamp` with `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Verifies the header against the raw body; returns the signed timestamp. The signature is checked
/// before the timestamp; timestamps more than `tolerance` old, or ahead of our clock by more than
/// `tolerance`, are refused. Stripe's own libraries only look backwards, but a signature dated a day
/// ahead is one captured or made to be replayed later: it would pass every later check for as long.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
    tolerance: Duration,
    now: i64,
) -> Result<i64, SignatureError> {
    let header = parse(header.ok_or(SignatureError::Missing)?)?;
    let mut matched = false;
    for secret in secrets {
        let expected = sign(secret.expose_secret(), header.timestamp, body);
        for candidate in &header.v1 {
            // Accumulate without short-circuiting, so timing does not reveal which pair matched.
            matched |= bool::from(expected.ct_eq(candidate));
        }
    }
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    let age = now.saturating_sub(header.timestamp);
    if age > tolerance {
        return Err(SignatureError::TooOld(age));
    }
    let ahead = header.timestamp.saturating_sub(now);
    if ahead > tolerance {
        return Err(SignatureError::InFuture(ahead));
    }
    Ok(header.timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOLERANCE: Duration = Duration::from_secs(300);
    const VECTOR_BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const VECTOR_T: i64 = 1_492_774_577;
    const VECTOR_V1: &str = "88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a";

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|s| SecretString::from(*s)).collect()
    }

    fn header_with(v1s: &[String]) -> String {
        let mut header = format!("t={VECTOR_T}");
        for v in v1s {
            header.push_str(&format!(",v1={v}"));
        }
        header
    }

    #[test]
    fn stripes_published_test_vector_verifies() {
        assert_eq!(
            hex::encode(sign("whsec_test_secret", VECTOR_T, VECTOR_BODY)),
            VECTOR_V1
        );
        let header = format!("t={VECTOR_T},v1={VECTOR_V1}");
        assert_eq!(
            verify(
                Some(&header),
                VECTOR_BODY,
                &secrets(&["whsec_test_secret"]),
                TOLERANCE,
                VECTOR_T + 10
            ),
            Ok(VECTOR_T)
        );
    }

    #[test]
    fn any_v1_in_either_order_matches_any_secret() {
        let good = VECTOR_V1.to_owned();
        let bad = "00".repeat(32);
        for header in [
            header_with(&[good.clone(), bad.clone()]),
            header_with(&[bad.clone(), good.clone()]),
        ] {
            assert!(
                verify(
                    Some(&header),
                    VECTOR_BODY,
                    &secrets(&["whsec_test_secret"]),
                    TOLERANCE,
                    VECTOR_T
                )
                .is_ok(),
                "{header}"
            );
        }
        // Two configured secrets during a rotation: the delivery signed with the second one verifies.
        let header = header_with(&[good]);
        let rotated = secrets(&["whsec_new_secret", "whsec_test_secret"]);
        assert!(verify(Some(&header), VECTOR_BODY, &rotated, TOLERANCE, VECTOR_T).is_ok());
    }

    #[test]
    fn tampering_wrong_secrets_and_bad_headers_are_refused() {
        let header = format!("t={VECTOR_T},v1={VECTOR_V1}");
        let s = secrets(&["whsec_test_secret"]);
        let tampered = br#"{"id":"evt_test_webhook","object":"event" }"#;
        assert_eq!(
            verify(Some(&header), tampered, &s, TOLERANCE, VECTOR_T),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                Some(&header),
                VECTOR_BODY,
                &secrets(&["whsec_other"]),
                TOLERANCE,
                VECTOR_T
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header), VECTOR_BODY, &[], TOLERANCE, VECTOR_T),
            Err(SignatureError::Mismatch)
        );
        let v0_only = format!("t={VECTOR_T},v0={VECTOR_V1}");
        assert_eq!(
            verify(Some(&v0_only), VECTOR_BODY, &s, TOLERANCE, VECTOR_T),
            Err(SignatureError::NoV1)
        );
        assert_eq!(
            verify(None, VECTOR_BODY, &s, TOLERANCE, VECTOR_T),
            Err(SignatureError::Missing)
        );
        for garbage in ["", "garbage", "v1=abc", "t=soon,v1=00", "t=1,,v1"] {
            assert!(
                matches!(
                    verify(Some(garbage), VECTOR_BODY, &s, TOLERANCE, VECTOR_T),
                    Err(SignatureError::Malformed(_) | SignatureError::NoV1)
                ),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn timestamps_beyond_the_tolerance_either_way_are_refused() {
        let header = format!("t={VECTOR_T},v1={VECTOR_V1}");
        let s = secrets(&["whsec_test_secret"]);
        assert_eq!(
            verify(Some(&header), VECTOR_BODY, &s, TOLERANCE, VECTOR_T + 301),
            Err(SignatureError::TooOld(301))
        );
        assert!(verify(Some(&header), VECTOR_BODY, &s, TOLERANCE, VECTOR_T + 300).is_ok());
        assert!(
            verify(Some(&header), VECTOR_BODY, &s, TOLERANCE, VECTOR_T - 300).is_ok(),
            "a clock behind Stripe's by up to the tolerance is fine"
        );
        assert_eq!(
            verify(Some(&header), VECTOR_BODY, &s, TOLERANCE, VECTOR_T - 86_400),
            Err(SignatureError::InFuture(86_400)),
            "a signature dated a day ahead"
        );
        // A bad signature is reported as such even when the timestamp is also stale.
        let wrong = format!("t={VECTOR_T},v1={}", "11".repeat(32));
        assert_eq!(
            verify(Some(&wrong), VECTOR_BODY, &s, TOLERANCE, VECTOR_T + 9_999),
            Err(SignatureError::Mismatch)
        );
    }
}
