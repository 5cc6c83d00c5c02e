//! What production asks of a secret besides being set: enough length, enough variety, and no two secrets
//! the same. The messages name the variable, never the secret or anything computed from it.
//!
//! The rule for variety, and why this one. A length minimum alone lets hand-made filler through: 32 × "a",
//! "abcdefgh" four times. The tempting estimate "length × log2(distinct characters) ≥ 128 bits" refuses
//! good secrets at random instead: a 32-character `openssl rand -hex 16` (128 random bits) shows 14 of the
//! 16 hex digits on average, so the estimate comes out near 122 bits and refuses about nine such secrets in
//! ten. What we refuse is what generated secrets practically never look like: fewer than 8 different
//! characters (a random 32-character hex string has fewer with a probability of about 1 in 3 × 10⁷,
//! base64 far less), or one block repeated (a random string of 32+ characters is periodic with a probability
//! below 16⁻¹⁶). Length comes from the minimum below; together they are a cheap net under an operator's
//! mistake, not a strength meter.

use std::collections::HashSet;

use super::ConfigError;

/// The shortest JWT, admin and unsubscribe secret production accepts: 128 random bits written in hex.
pub(super) const MIN_SECRET_LEN: usize = 32;

/// Fewer different characters than this is filler, not generated.
const MIN_DISTINCT_CHARS: usize = 8;

/// Stripe webhook secrets start with this; the rest is the secret.
pub(super) const WEBHOOK_PREFIX: &str = "whsec_";

/// Length and variety of a secret we ask operators to generate. `unit` is how the length is counted in
/// the message ("bytes" where the secret keys an HMAC).
pub(super) fn check_strength(
    name: &'static str,
    secret: &str,
    unit: &str,
) -> Result<(), ConfigError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(ConfigError::insecure(
            name,
            format!("shorter than {MIN_SECRET_LEN} {unit}"),
        ));
    }
    check_variety(secret).map_err(|reason| ConfigError::insecure(name, reason))
}

/// Variety only: for secrets Stripe generates (their length is Stripe's business).
pub(super) fn check_variety(secret: &str) -> Result<(), String> {
    let distinct: HashSet<char> = secret.chars().collect();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Err(format!(
            "fewer than {MIN_DISTINCT_CHARS} different characters: not a generated secret \
             (use e.g. `openssl rand -hex 32`)"
        ));
    }
    if is_repeated_block(secret.as_bytes()) {
        return Err(
            "a shorter string repeated: not a generated secret (use e.g. `openssl rand -hex 32`)"
                .to_owned(),
        );
    }
    Ok(())
}

/// True when `s` is a block of at most half its length written again and again (the last copy may be
/// cut short): "abcdabcdab".
fn is_repeated_block(s: &[u8]) -> bool {
    (1..=s.len() / 2).any(|period| s[period..] == s[..s.len() - period])
}

/// Refuses any two of the given secrets with the same value: one leaked secret must not open a second
/// door (an admin token equal to the JWT secret lets anyone who can mint user tokens into `/ops`, and the
/// other way round). A webhook secret is compared without its `whsec_` prefix, so reusing its random part
/// elsewhere is caught too.
pub(super) fn check_all_different(secrets: &[(&'static str, &str)]) -> Result<(), ConfigError> {
    let material = |s: &str| s.strip_prefix(WEBHOOK_PREFIX).unwrap_or(s).to_owned();
    for (i, (name, secret)) in secrets.iter().enumerate() {
        let mine = material(secret);
        if let Some((earlier, _)) = secrets[..i]
            .iter()
            .find(|(_, other)| material(other) == mine)
        {
            let reason = if earlier == name {
                "the same secret is listed twice".to_owned()
            } else {
                format!("same value as {earlier}: generate each secret on its own")
            };
            return Err(ConfigError::insecure(name, reason));
        }
    }
    Ok(())
}
