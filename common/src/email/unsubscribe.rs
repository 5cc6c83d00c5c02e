//! Unsubscribe links: a token naming (user, category), signed with `MINGUS_UNSUBSCRIBE_SECRET`, and the
//! `email_suppressions` rows they create. A token never expires (links in old e-mails must keep
//! working) and reveals only the user id; rotating the secret invalidates the links already sent.
//!
//! Token: base64url (no padding) of `user id (16 bytes) ‖ category (1 byte) ‖ HMAC-SHA256(secret,
//! "mingus-unsubscribe-v1" ‖ user id ‖ category)[..16]` — 44 characters, verified in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::Category;

const DOMAIN: &[u8] = b"mingus-unsubscribe-v1";
const TAG_LEN: usize = 16;

fn category_byte(category: Category) -> u8 {
    match category {
        Category::Transactional => 0,
        Category::Reminders => 1,
    }
}

fn category_of(byte: u8) -> Option<Category> {
    match byte {
        1 => Some(Category::Reminders),
        _ => None,
    }
}

fn mac(secret: &SecretString, user_id: Uuid, category: u8) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(DOMAIN);
    mac.update(user_id.as_bytes());
    mac.update(&[category]);
    mac
}

/// The token of an unsubscribe link for `user_id` and an optional `category`.
pub fn token(secret: &SecretString, user_id: Uuid, category: Category) -> String {
    let byte = category_byte(category);
    let tag = mac(secret, user_id, byte).finalize().into_bytes();
    let mut raw = Vec::with_capacity(16 + 1 + TAG_LEN);
    raw.extend_from_slice(user_id.as_bytes());
    raw.push(byte);
    raw.extend_from_slice(&tag[..TAG_LEN]);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The full link: `<public_url>/unsubscribe?token=…`.
pub fn link(public_url: &str, secret: &SecretString, user_id: Uuid, category: Category) -> String {
    format!(
        "{public_url}/unsubscribe?token={}",
        token(secret, user_id, category)
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the unsubscribe token is malformed")]
    Malformed,
    #[error("the unsubscribe token's signature does not match")]
    BadSignature,
}

/// The (user, category) a token names, if its signature is ours.
pub fn verify(secret: &SecretString, token: &str) -> Result<(Uuid, Category), TokenError> {
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| TokenError::Malformed)?;
    if raw.len() != 16 + 1 + TAG_LEN {
        return Err(TokenError::Malformed);
    }
    let user_id = Uuid::from_slice(&raw[..16]).map_err(|_| TokenError::Malformed)?;
    let byte = raw[16];
    mac(secret, user_id, byte)
        .verify_truncated_left(&raw[17..])
        .map_err(|_| TokenError::BadSignature)?;
    let category = category_of(byte).ok_or(TokenError::Malformed)?;
    Ok((user_id, category))
}

/// Records the unsubscription (idempotent); false when the user does not exist (any more).
pub async fn suppress<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    category: Category,
    source: &str,
) -> Result<bool, sqlx::Error> {
    let row: Option<(bool,)> = sqlx::query_as(
        "INSERT INTO email_suppressions (user_id, category, source)
         SELECT id, $2, $3 FROM users WHERE id = $1
         ON CONFLICT (user_id, category) DO UPDATE SET source = email_suppressions.source
         RETURNING true",
    )
    .bind(user_id)
    .bind(category.name())
    .bind(source)
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let secret = SecretString::from("s3cret-for-tests");
        let user = Uuid::new_v4();
        let token = token(&secret, user, Category::Reminders);
        assert_eq!(token.len(), 44);
        assert_eq!(verify(&secret, &token), Ok((user, Category::Reminders)));
        let other = SecretString::from("another-secret");
        assert_eq!(verify(&other, &token), Err(TokenError::BadSignature));
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[3] ^= 1;
        assert_eq!(
            verify(&secret, &URL_SAFE_NO_PAD.encode(&bytes)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(&secret, "not a token"), Err(TokenError::Malformed));
        assert_eq!(verify(&secret, &token[..30]), Err(TokenError::Malformed));
        // A transactional "token" can be signed but names nothing one can leave.
        let transactional = super::token(&secret, user, Category::Transactional);
        assert_eq!(verify(&secret, &transactional), Err(TokenError::Malformed));
    }
}
