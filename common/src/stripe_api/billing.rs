//! The outbound Stripe calls of the plan routes (issue 21, part C): Billing Portal sessions and
//! subscription updates (cancel at period end, resume), as form-encoded POSTs; the checkout and
//! plan-change calls are in [`super::plan_calls`], over the same transport.
//!
//! - **Idempotency.** Every call carries an `Idempotency-Key` the caller derives from its own request's
//!   key (or the account and the action), so a retry — ours or the client's — is answered by Stripe with
//!   the first result instead of acting twice.
//! - **Timeout** per attempt ([`CALL_TIMEOUT`]); the caller holds no database transaction meanwhile.
//! - **Retries only where Stripe says it is safe**: a connection failure or timeout, a 409 idempotency
//!   lock, a 429 or a 5xx — and never when Stripe answers `Stripe-Should-Retry: false`; always with the
//!   same idempotency key, at most [`ATTEMPTS`] attempts with a short growing pause.
//! - **Errors by what the user can do**: a declined card ([`CallError::CardDeclined`]), a request Stripe
//!   refused ([`CallError::Refused`]), Stripe unavailable or rate limiting us ([`CallError::Unavailable`]).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::StripeApiError;
use crate::Config;

/// One attempt's limit: the plan routes answer a person waiting on a button.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per call, the first included.
pub const ATTEMPTS: u32 = 3;
/// The pause before the second attempt; doubled before each further one.
const FIRST_PAUSE: Duration = Duration::from_millis(250);

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the card was declined: {message}")]
    CardDeclined {
        decline_code: Option<String>,
        message: String,
    },
    #[error("Stripe refused the request ({status}): {message}")]
    Refused {
        status: u16,
        code: Option<String>,
        message: String,
    },
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
}

/// The client (cheap to clone: one connection pool).
#[derive(Clone)]
pub struct BillingApi {
    http: reqwest::Client,
    base: String,
    key: SecretString,
}

impl std::fmt::Debug for BillingApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingApi")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl BillingApi {
    pub fn new(base: &str, key: &SecretString) -> Result<Self, StripeApiError> {
        if key.expose_secret().trim().is_empty() {
            return Err(StripeApiError::MissingKey);
        }
        let base = base.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(StripeApiError::InvalidBase(
                base,
                "expected an http(s) URL".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|err| StripeApiError::Transport(err.to_string()))?;
        Ok(Self {
            http,
            base,
            key: key.clone(),
        })
    }

    /// The configuration's client; without `STRIPE_API_KEY` → [`StripeApiError::MissingKey`].
    pub fn from_config(config: &Config) -> Result<Self, StripeApiError> {
        let key = config
            .stripe_api_key
            .as_ref()
            .ok_or(StripeApiError::MissingKey)?;
        Self::new(&config.stripe_api_base, key)
    }

    /// `POST /v1/billing_portal/sessions`: a portal session for the customer, back to `return_url`.
    pub async fn portal_session(
        &self,
        customer: &str,
        return_url: &str,
        idempotency_key: &str,
    ) -> Result<Value, CallError> {
        let form = [("customer", customer), ("return_url", return_url)];
        self.post("/v1/billing_portal/sessions", &form, idempotency_key)
            .await
    }

    /// `POST /v1/subscriptions/{id}` with `cancel_at_period_end` (cancel at period end, or resume).
    pub async fn set_cancel_at_period_end(
        &self,
        subscription: &str,
        cancel: bool,
        idempotency_key: &str,
    ) -> Result<Value, CallError> {
        let value = if cancel { "true" } else { "false" };
        let form = [("cancel_at_period_end", value)];
        let path = format!("/v1/subscriptions/{subscription}");
        self.post(&path, &form, idempotency_key).await
    }

    /// One form POST, retried only where it is safe (see the module documentation).
    pub(super) async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<Value, CallError> {
        self.send(reqwest::Method::POST, path, form, Some(idempotency_key))
            .await
    }

    /// One GET: a read acts on nothing, so it is retried like a keyed write.
    pub(super) async fn get(&self, path: &str) -> Result<Value, CallError> {
        self.send(reqwest::Method::GET, path, &[], None).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
        idempotency_key: Option<&str>,
    ) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        let mut pause = FIRST_PAUSE;
        let mut last = CallError::Unavailable("no attempt made".into());
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.key.expose_secret());
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key).form(form);
            }
            let sent = request.send().await;
            let response = match sent {
                Ok(response) => response,
                Err(err) => {
                    // Nothing (or nothing we know of) reached Stripe: the key makes a resend safe.
                    last = CallError::Unavailable(format!("calling Stripe failed: {err}"));
                    continue;
                }
            };
            let status = response.status().as_u16();
            let should_retry = response
                .headers()
                .get("stripe-should-retry")
                .and_then(|v| v.to_str().ok())
                .map(|v| v == "true");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if (200..300).contains(&status) {
                return Ok(body);
            }
            last = classify(status, &body);
            let transient = status == 409 || status == 429 || status >= 500;
            if should_retry == Some(false) || !(transient || should_retry == Some(true)) {
                break;
            }
        }
        Err(last)
    }
}

/// A Stripe error answer → what the user can do about it.
fn classify(status: u16, body: &Value) -> CallError {
    let error = &body["error"];
    let message = error["message"].as_str().unwrap_or("no message").to_owned();
    let code = error["code"].as_str().map(str::to_owned);
    if status == 429 || status >= 500 {
        return CallError::Unavailable(format!("Stripe answered {status}: {message}"));
    }
    if status == 402 || error["type"] == "card_error" {
        return CallError::CardDeclined {
            decline_code: error["decline_code"].as_str().map(str::to_owned).or(code),
            message,
        };
    }
    CallError::Refused {
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stripe_errors_are_classified_by_what_the_user_can_do() {
        let declined = json!({"error": {"type": "card_error", "code": "card_declined",
                                        "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}});
        assert!(matches!(
            classify(402, &declined),
            CallError::CardDeclined { decline_code: Some(code), .. } if code == "insufficient_funds"
        ));
        assert!(matches!(
            classify(429, &json!({})),
            CallError::Unavailable(_)
        ));
        assert!(matches!(
            classify(500, &Value::Null),
            CallError::Unavailable(_)
        ));
        let missing = json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such subscription"}});
        assert!(matches!(
            classify(404, &missing),
            CallError::Refused { status: 404, code: Some(code), .. } if code == "resource_missing"
        ));
    }
}
