//! Operator tools that talk to Stripe, and the thin client they use.
//!
//! - [`StripeApi`]: list/retrieve subscriptions and list events through async-stripe (rustls, the
//!   configured `STRIPE_API_BASE`, the secret `STRIPE_API_KEY`, a per-request timeout). Requests are
//!   built with async-stripe's typed parameters; responses are kept as **raw JSON**: a stored event must
//!   keep every field of its API version (the appliers read both shapes through `billing::objects`), and
//!   a typed decode would drop what the pinned types do not know.
//! - [`replay`]: re-stage processing of stored events (by id, status and/or type).
//! - [`fetch_undelivered`]: store the events Stripe could not deliver (`delivery_success=false`), exactly
//!   as the webhook ingest stores a delivery, and stage their processing.
//! - [`reconcile`]: compare Stripe's subscriptions with ours; with `fix`, stage a synthetic
//!   `customer.subscription.updated` event per drifted subscription so the normal, guarded processing
//!   path applies Stripe's current state.
//!
//! `mingus-admin stripe …` and the nightly `billing.stripe_reconcile` job call these functions; the plan
//! routes of the API call [`billing`].

pub mod billing;
mod fetch;
pub mod plan_calls;
mod reconcile;
mod store;

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use stripe::StripeRequest;
use stripe_billing::subscription::{
    ListSubscription, ListSubscriptionStatus, RetrieveSubscription,
};
use stripe_core::event::ListEvent;
use stripe_types::RangeQueryTs;

use crate::Config;

pub use fetch::{FetchOptions, FetchReport, fetch_undelivered, parse_since};
pub use reconcile::{
    Drift, DriftKind, FieldDiff, ReconcileOptions, ReconcileReport, reconcile, refetch_subscription,
};
pub use store::{
    EVENT_JOB_NAMESPACE, PROTECTED, ReplayFilter, ReplayReport, STATUSES, StoredEvent, is_event,
    replay, store_event, strip_nul,
};

/// Per-request timeout of Stripe calls (each page is one request).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Stripe's largest page.
pub const MAX_PAGE_SIZE: u8 = 100;

#[derive(Debug, thiserror::Error)]
pub enum StripeApiError {
    #[error("STRIPE_API_KEY is not set: the Stripe API commands need the secret API key")]
    MissingKey,
    #[error("invalid STRIPE_API_BASE {0:?}: {1}")]
    InvalidBase(String, String),
    #[error("Stripe did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Stripe answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("calling Stripe failed: {0}")]
    Transport(String),
    #[error("unexpected answer from Stripe: {0}")]
    Response(String),
}

/// One page of a Stripe list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub data: Vec<Value>,
    pub has_more: bool,
}

impl Page {
    /// The cursor of the next page (`starting_after`), when there is one.
    pub fn next_cursor(&self) -> Option<&str> {
        self.has_more
            .then(|| self.data.last().and_then(|item| item["id"].as_str()))
            .flatten()
    }
}

/// A Stripe API client. The key lives only in async-stripe's (sensitive) header value; `Debug` shows
/// the base URL alone.
#[derive(Clone)]
pub struct StripeApi {
    client: stripe::Client,
    base: String,
    timeout: Duration,
}

impl fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeApi")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl StripeApi {
    pub fn new(base: &str, key: &SecretString, timeout: Duration) -> Result<Self, StripeApiError> {
        if key.expose_secret().trim().is_empty() {
            return Err(StripeApiError::MissingKey);
        }
        let trimmed = base.trim();
        if !(trimmed.starts_with("https://") || trimmed.starts_with("http://")) {
            return Err(StripeApiError::InvalidBase(
                trimmed.to_owned(),
                "expected an http(s) URL".into(),
            ));
        }
        // async-stripe appends `v1/<path>` to the base: make sure it ends with a slash.
        let base = format!("{}/", trimmed.trim_end_matches('/'));
        let client = stripe::ClientBuilder::new(key.expose_secret())
            .url(base.clone())
            .timeout(timeout)
            .app_info("mingus-jobs", Some(env!("CARGO_PKG_VERSION").into()), None)
            .build()
            .map_err(|err| StripeApiError::InvalidBase(base.clone(), err.to_string()))?;
        Ok(StripeApi {
            client,
            base,
            timeout,
        })
    }

    /// The client of the configuration; a missing `STRIPE_API_KEY` is [`StripeApiError::MissingKey`].
    pub fn from_config(config: &Config) -> Result<Self, StripeApiError> {
        let key = config
            .stripe_api_key
            .as_ref()
            .ok_or(StripeApiError::MissingKey)?;
        StripeApi::new(&config.stripe_api_base, key, DEFAULT_TIMEOUT)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get(&self, request: &impl StripeRequest) -> Result<Value, StripeApiError> {
        let raw: miniserde::json::Value = request
            .build()
            .customize::<miniserde::json::Value>()
            .send(&self.client)
            .await
            .map_err(|err| self.error(err))?;
        serde_json::from_str(&miniserde::json::to_string(&raw))
            .map_err(|err| StripeApiError::Response(err.to_string()))
    }

    fn error(&self, err: stripe::StripeError) -> StripeApiError {
        match err {
            stripe::StripeError::Stripe(api, status) => StripeApiError::Api {
                status,
                message: api
                    .message
                    .clone()
                    .unwrap_or_else(|| api.type_.as_str().to_owned()),
            },
            stripe::StripeError::Timeout => StripeApiError::Timeout(self.timeout),
            stripe::StripeError::JSONDeserialize(msg) => StripeApiError::Response(msg),
            stripe::StripeError::ClientError(msg) | stripe::StripeError::ConfigError(msg) => {
                StripeApiError::Transport(msg)
            }
        }
    }

    async fn page(&self, request: &impl StripeRequest) -> Result<Page, StripeApiError> {
        let body = self.get(request).await?;
        let Some(data) = body["data"].as_array() else {
            return Err(StripeApiError::Response(
                "a list without a data array".into(),
            ));
        };
        Ok(Page {
            data: data.clone(),
            has_more: body["has_more"].as_bool().unwrap_or(false),
        })
    }

    /// One page of every subscription, whatever its status (`status=all`, newest first).
    pub async fn list_subscriptions(
        &self,
        starting_after: Option<&str>,
        limit: u8,
    ) -> Result<Page, StripeApiError> {
        let mut request = ListSubscription::new()
            .status(ListSubscriptionStatus::All)
            .limit(i64::from(limit.clamp(1, MAX_PAGE_SIZE)));
        if let Some(cursor) = starting_after {
            request = request.starting_after(cursor);
        }
        self.page(&request).await
    }

    pub async fn retrieve_subscription(&self, id: &str) -> Result<Value, StripeApiError> {
        self.get(&RetrieveSubscription::new(id)).await
    }

    /// One page of the events created at or after `created_gte` whose delivery failed.
    pub async fn list_undelivered_events(
        &self,
        created_gte: i64,
        starting_after: Option<&str>,
        limit: u8,
    ) -> Result<Page, StripeApiError> {
        let mut request = ListEvent::new()
            .delivery_success(false)
            .created(RangeQueryTs::gte(created_gte))
            .limit(i64::from(limit.clamp(1, MAX_PAGE_SIZE)));
        if let Some(cursor) = starting_after {
            request = request.starting_after(cursor);
        }
        self.page(&request).await
    }
}
