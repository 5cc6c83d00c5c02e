//! HS256 user tokens, Supabase-compatible: `sub` (the user id, a UUID), `exp` (required), `aud` (a string
//! or a list that must name `MINGUS_JWT_AUDIENCE`, default `authenticated`), `role`, optional `nbf`.
//!
//! The checks run in an order that never trusts unsigned data: the header's `alg` must be `HS256`
//! (`none` and every other algorithm are refused before anything else), then the signature is verified
//! (constant-time, by `hmac`'s `verify_slice`), and only then are the claims read. `exp` and `nbf` allow
//! [`LEEWAY_SECS`] of clock skew between the token issuer and us.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use uuid::Uuid;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 30;
/// Far above any real token; stops pathological headers before they are decoded.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The claims we use from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user_id: Uuid,
    /// Supabase's `role` claim (`authenticated` for signed-in users); `authenticated` when absent.
    pub role: String,
    pub expires_at: i64,
}

/// Why a token was refused; each has its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    UnsupportedAlgorithm,
    BadSignature,
    Expired,
    NotYetValid,
    WrongAudience,
    InvalidClaims,
}

impl JwtError {
    pub fn code(self) -> &'static str {
        match self {
            JwtError::Malformed => "token_malformed",
            JwtError::UnsupportedAlgorithm => "token_algorithm_unsupported",
            JwtError::BadSignature => "token_signature_invalid",
            JwtError::Expired => "token_expired",
            JwtError::NotYetValid => "token_not_yet_valid",
            JwtError::WrongAudience => "token_audience_invalid",
            JwtError::InvalidClaims => "token_claims_invalid",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            JwtError::Malformed => "the bearer token is not a well-formed JWT",
            JwtError::UnsupportedAlgorithm => "only HS256 tokens are accepted",
            JwtError::BadSignature => "the token's signature does not verify",
            JwtError::Expired => "the token has expired",
            JwtError::NotYetValid => "the token is not valid yet (nbf)",
            JwtError::WrongAudience => "the token is not meant for this API (aud)",
            JwtError::InvalidClaims => "the token needs sub (a user UUID) and a numeric exp",
        }
    }
}

fn decode_json(part: &str) -> Result<Value, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Verifies `token` and returns its claims. `now` is in Unix seconds.
pub fn verify(token: &str, secret: &[u8], audience: &str, now: i64) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header = decode_json(header)?;
    let header = header.as_object().ok_or(JwtError::Malformed)?;
    match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => {}
        Some(_) => return Err(JwtError::UnsupportedAlgorithm),
        None => return Err(JwtError::Malformed),
    }
    // An extension we would have to understand to use the token safely: we understand none.
    if header.contains_key("crit") {
        return Err(JwtError::UnsupportedAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    let signed_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
    let mut mac = mac(secret);
    mac.update(&token.as_bytes()[..signed_len]);
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::BadSignature)?;

    let claims = decode_json(payload)?;
    let claims = claims.as_object().ok_or(JwtError::Malformed)?;
    let expires_at = numeric_date(claims.get("exp")).ok_or(JwtError::InvalidClaims)?;
    // Saturating: a signed `exp` near i64::MAX must not overflow (found by the `jwt` fuzz target).
    if now >= expires_at.saturating_add(LEEWAY_SECS) {
        return Err(JwtError::Expired);
    }
    if let Some(raw) = claims.get("nbf") {
        let not_before = numeric_date(Some(raw)).ok_or(JwtError::InvalidClaims)?;
        if now.saturating_add(LEEWAY_SECS) < not_before {
            return Err(JwtError::NotYetValid);
        }
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(JwtError::WrongAudience);
    }
    let user_id = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|sub| Uuid::parse_str(sub).ok())
        .filter(|id| !id.is_nil())
        .ok_or(JwtError::InvalidClaims)?;
    let role = match claims.get("role") {
        None => "authenticated".to_owned(),
        Some(Value::String(role)) => role.clone(),
        Some(_) => return Err(JwtError::InvalidClaims),
    };
    Ok(Claims {
        user_id,
        role,
        expires_at,
    })
}

/// A NumericDate: seconds since the epoch, possibly fractional (RFC 7519 §2); fractions are floored.
fn numeric_date(value: Option<&Value>) -> Option<i64> {
    let number = value?.as_number()?;
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })
}

/// Signs `claims` as an HS256 token: for development tools and tests (the API itself only verifies).
pub fn sign_hs256(claims: &Value, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = mac(secret);
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

#[cfg(test)]
mod tests;
