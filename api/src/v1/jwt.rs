//! User tokens, Supabase-compatible: HS256 with `MINGUS_JWT_SECRET`, and ES256 or RS256 with a key of the
//! issuer's JWKS (`MINGUS_JWT_JWKS_URL`, by the header's `kid`; [`super::jwks`]). Claims: `sub` (the user
//! id, a UUID), `exp` (required), `aud` (a string or a list that must name `MINGUS_JWT_AUDIENCE`, default
//! `authenticated`), `role`, optional `nbf`.
//!
//! The checks run in an order that never trusts unsigned data: the header's `alg` must be one of those
//! three (`none` and every other algorithm are refused before anything else, as is a `crit` extension),
//! then the signature is verified by `jsonwebtoken` with the key that algorithm calls for (an HS256
//! token is never checked against a public key, nor the reverse), and only then are the claims read.
//! `exp` and `nbf` allow [`LEEWAY_SECS`] of clock skew between the token issuer and us.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::Value;
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
    /// An ES256/RS256 token whose `kid` names no key of the issuer's set (or that names none).
    UnknownKey,
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
            JwtError::UnknownKey => "token_key_unknown",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            JwtError::Malformed => "the bearer token is not a well-formed JWT",
            JwtError::UnsupportedAlgorithm => {
                "only HS256, and ES256 or RS256 with MINGUS_JWT_JWKS_URL, tokens are accepted"
            }
            JwtError::BadSignature => "the token's signature does not verify",
            JwtError::Expired => "the token has expired",
            JwtError::NotYetValid => "the token is not valid yet (nbf)",
            JwtError::WrongAudience => "the token is not meant for this API (aud)",
            JwtError::InvalidClaims => "the token needs sub (a user UUID) and a numeric exp",
            JwtError::UnknownKey => "the token's kid names no key of the issuer's key set",
        }
    }
}

fn decode_json(part: &str) -> Result<Value, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

/// What the header asks for, checked before anything else is read: the algorithm (one of ours) and,
/// for the asymmetric ones, the key's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub algorithm: Algorithm,
    pub kid: Option<String>,
}

/// Reads the header under our policy (see the module).
pub fn header(token: &str) -> Result<Wanted, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header = decode_json(header)?;
    let header = header.as_object().ok_or(JwtError::Malformed)?;
    let algorithm = match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => Algorithm::HS256,
        Some("ES256") => Algorithm::ES256,
        Some("RS256") => Algorithm::RS256,
        Some(_) => return Err(JwtError::UnsupportedAlgorithm),
        None => return Err(JwtError::Malformed),
    };
    // An extension we would have to understand to use the token safely: we understand none.
    if header.contains_key("crit") {
        return Err(JwtError::UnsupportedAlgorithm);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(JwtError::Malformed),
    };
    Ok(Wanted { algorithm, kid })
}

/// Verifies an HS256 `token` with `secret` and returns its claims. `now` is in Unix seconds.
pub fn verify(token: &str, secret: &[u8], audience: &str, now: i64) -> Result<Claims, JwtError> {
    if header(token)?.algorithm != Algorithm::HS256 {
        return Err(JwtError::UnsupportedAlgorithm);
    }
    // An empty secret verifies nothing (jsonwebtoken refuses to make a key of it).
    let key = DecodingKey::from_secret(secret).map_err(|_| JwtError::BadSignature)?;
    verify_with(token, Algorithm::HS256, &key, audience, now)
}

/// Verifies `token`'s signature as `algorithm` with `key` (the header was read by [`header`]), then its
/// claims. The signature is jsonwebtoken's to check (constant-time for HMAC; the key must be of the
/// algorithm's family); the claims are ours (RFC 7519's fractional NumericDates, our leeway, our
/// error codes), read only once the signature holds.
pub fn verify_with(
    token: &str,
    algorithm: Algorithm,
    key: &DecodingKey,
    audience: &str,
    now: i64,
) -> Result<Claims, JwtError> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
    let (_, payload) = signing_input.split_once('.').ok_or(JwtError::Malformed)?;
    let verified =
        jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), key, algorithm).map_err(
            |err| match err.kind() {
                ErrorKind::Base64(_) => JwtError::Malformed,
                // A key that cannot check this algorithm (an EC key for an RS256 token, a broken JWK).
                _ => JwtError::BadSignature,
            },
        )?;
    if !verified {
        return Err(JwtError::BadSignature);
    }
    claims(&decode_json(payload)?, audience, now)
}

/// The claims of a verified token, checked.
fn claims(claims: &Value, audience: &str, now: i64) -> Result<Claims, JwtError> {
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
/// An empty secret signs nothing: the token then carries an empty signature, which never verifies.
pub fn sign_hs256(claims: &Value, secret: &[u8]) -> String {
    match EncodingKey::from_secret(secret) {
        Ok(key) => jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
            .expect("HS256 signs any JSON claims"),
        Err(_) => format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        ),
    }
}

#[cfg(test)]
mod tests;
