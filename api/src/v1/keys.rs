//! API key material: `mk_live_` followed by 43 base62 characters drawn from the OS random source
//! (43 × log2 62 ≈ 256 bits). Only the SHA-256 of the whole key is stored (`api_key_hash`, hex); a key is
//! found by that hash, so the secret itself is never compared. The first characters (`key_prefix`) are
//! kept in clear so users can tell their keys apart.

use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "mk_live_";
const SECRET_CHARS: usize = 43;
/// `mk_live_` and the first 6 random characters.
const VISIBLE_CHARS: usize = KEY_PREFIX.len() + 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key: the secret to show once, and what is stored.
pub struct NewKey {
    pub secret: String,
    pub prefix: String,
    pub hash: String,
}

pub fn generate() -> anyhow::Result<NewKey> {
    let mut secret = String::with_capacity(KEY_PREFIX.len() + SECRET_CHARS);
    secret.push_str(KEY_PREFIX);
    let mut buf = [0u8; 64];
    while secret.len() < KEY_PREFIX.len() + SECRET_CHARS {
        OsRng
            .try_fill_bytes(&mut buf)
            .map_err(|e| anyhow::anyhow!("OS random source failed: {e}"))?;
        // Rejection sampling keeps every character uniform: 248 = 4 × 62.
        for byte in buf.iter().copied().filter(|b| *b < 248) {
            if secret.len() == KEY_PREFIX.len() + SECRET_CHARS {
                break;
            }
            secret.push(char::from(ALPHABET[usize::from(byte % 62)]));
        }
    }
    Ok(NewKey {
        prefix: secret[..VISIBLE_CHARS].to_owned(),
        hash: hash(&secret),
        secret,
    })
}

/// Whether `presented` has the shape of one of our keys (checked before any database read).
pub fn well_formed(presented: &str) -> bool {
    presented.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == SECRET_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_well_formed_distinct_and_stored_only_as_hashes() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(well_formed(&a.secret) && well_formed(&b.secret));
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), 51);
        assert!(a.secret.starts_with(&a.prefix) && a.prefix.len() == 14);
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.secret[KEY_PREFIX.len()..]));
        assert!(!well_formed("mk_live_short"));
        assert!(!well_formed(&a.secret.replace("mk_live_", "mk_test_")));
        assert!(!well_formed(&format!("{}!", &a.secret[..50])));
    }

    #[test]
    fn characters_cover_the_whole_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.extend(generate().unwrap().secret[KEY_PREFIX.len()..].chars());
        }
        assert_eq!(seen.len(), 62);
    }
}
