//! Applies stored Stripe events (`stripe_events`, written by the webhook ingest) to users,
//! subscriptions, billing history, feature access and billing e-mails.
//!
//! One attempt: read the event; skip it if it is already `processed`, `ignored`, `quarantined` or
//! `unparseable`; quarantine it if its `livemode` is not the configured mode; apply it in one short
//! transaction (per-subscription or per-customer lock, no network call) and mark it `processed`
//! (unknown types: `ignored`) in that same transaction. A subscription state event that needs nothing
//! but its state (no e-mail: every state but a cancellation) is applied the same way by one server-side
//! call that is its own transaction (`mingus_apply_subscription_state`): one round trip instead of four.
//! On failure the transaction rolls back and a separate statement records `attempts` and `last_error`;
//! the event becomes `failed` on a permanent error or on its last attempt (the runtime then
//! dead-letters the job). Dependencies that have not arrived yet (a customer not linked, an invoice
//! before its subscription) are retryable, and the event is parked on what it waits for: applying that
//! re-drives it at once ([`waits`]), the backoff staying as the fallback.
//! The mapping, guard and grace rules are documented in `mingus_common::billing`.

mod customer;
mod history;
mod invoice;
mod refund;
mod subscription;
pub mod waits;

use chrono::{DateTime, Utc};
use mingus_common::billing::{BillingError, Event, email};
use mingus_common::config::stripe::{StripeConfig, StripeMode};
use mingus_common::jobs::{Envelope, outbox};
use mingus_common::stripe_api::{self, StripeApi};
use serde_json::Value;
use sqlx::{Acquire, PgConnection, PgPool};
use uuid::Uuid;

use self::subscription::OneCall;
use crate::context::{JobContext, JobError};

/// Which attempt of the job this is (from its envelope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub max_attempts: u32,
}

impl Attempt {
    pub fn is_last(self) -> bool {
        self.number >= self.max_attempts
    }
}

/// What happened to the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (possibly with no effect, e.g. an out-of-date subscription state) and marked `processed`.
    Processed,
    /// A type we do not handle: marked `ignored`.
    Ignored,
    /// Of the other mode (test/live): marked `quarantined`, not applied.
    Quarantined,
    /// Already in a final status: nothing done.
    AlreadyFinal,
}

impl From<BillingError> for JobError {
    fn from(err: BillingError) -> Self {
        JobError::Permanent(err.into())
    }
}

pub(crate) use waits::not_yet;

/// What an applier works with: the open transaction, the event and the clock.
pub(crate) struct Apply<'a> {
    pub conn: &'a mut PgConnection,
    pub stripe: &'a StripeConfig,
    pub event: &'a Event,
    pub now: DateTime<Utc>,
    /// Users whose access was recomputed (their cached entitlements are evicted after commit).
    pub changed_users: Vec<Uuid>,
    /// E-mail jobs staged in this transaction, pushed after commit.
    pub staged: Vec<Envelope>,
    /// How a subscription state was ordered against the stored one (`stripe_events.order_decision`).
    pub order_decision: Option<String>,
}

impl Apply<'_> {
    /// Serialises everything applied for one Stripe object (subscription or customer id).
    pub async fn lock(&mut self, stripe_id: &str) -> Result<(), sqlx::Error> {
        mingus_common::db::advisory_xact_lock(&mut *self.conn, stripe_id).await
    }

    /// Records that the user's tier or access state changed: the statement that closes the event's
    /// transaction recomputes their feature access (see [`mark`]).
    pub fn access_changed(&mut self, user_id: Uuid) {
        if !self.changed_users.contains(&user_id) {
            self.changed_users.push(user_id);
        }
    }

    /// Queues a billing e-mail (row and job in this transaction); its job is pushed after commit.
    pub async fn queue_email(&mut self, mail: &email::BillingEmail) -> Result<(), sqlx::Error> {
        if let Some(envelope) = email::queue_staged(self.conn, mail).await?.envelope() {
            self.staged.push(envelope);
        }
        Ok(())
    }

    /// The user this event's customer belongs to: its live link, or the link it had when it was deleted
    /// if this event is not newer than the deletion (`mingus_customer_user`, migration `…21`).
    pub async fn user_of_customer(&mut self, customer: &str) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar("SELECT mingus_customer_user($1, $2)")
            .bind(customer)
            .bind(self.event.created)
            .fetch_one(&mut *self.conn)
            .await
    }
}

/// Processes one stored event now, and pushes the e-mail jobs it staged. `outbox_job` is the outbox row
/// of the running job: on success it is completed in the event's transaction.
pub async fn process_event(
    ctx: &JobContext,
    event_id: &str,
    outbox_job: Option<Uuid>,
    attempt: Attempt,
) -> Result<Outcome, JobError> {
    let mut done = process_staged(
        &ctx.db,
        &ctx.config.stripe,
        event_id,
        outbox_job,
        attempt,
        Utc::now(),
    )
    .await?;
    let outcome = done.outcome;
    let satisfied = std::mem::take(&mut done.satisfies);
    let redriven = redrive(&ctx.db, &ctx.config.stripe, satisfied, Utc::now()).await;
    for done in std::iter::once(done).chain(redriven) {
        ctx.evictor.after_commit(&done.changed_users);
        outbox::push_after_commit(&ctx.db, &ctx.enqueuer, &done.staged).await;
        if let Some((event_id, sub_id)) = &done.undecided {
            refetch(ctx, event_id, sub_id).await;
        }
    }
    Ok(outcome)
}

/// Two states of one subscription of the same second and rank that `previous_attributes` could not
/// order were applied in processing order; with `STRIPE_API_KEY` configured, Stripe's current object is
/// fetched (outside any transaction) and applied as a synthetic event, and the event records that.
/// Without a key, or when Stripe does not answer, processing order stands (the nightly reconciliation
/// is the backstop).
async fn refetch(ctx: &JobContext, event_id: &str, sub_id: &str) {
    let Ok(api) = StripeApi::from_config(&ctx.config) else {
        return;
    };
    let mode = ctx.config.stripe.mode;
    match stripe_api::refetch_subscription(&ctx.db, &ctx.enqueuer, &api, mode, sub_id).await {
        Ok(staged) => {
            tracing::info!(
                event_id,
                subscription = sub_id,
                ?staged,
                "same-second order undecided: subscription refetched"
            );
            let marked = sqlx::query(
                "UPDATE stripe_events SET order_decision = 'same_second_refetched' WHERE id = $1",
            )
            .bind(event_id)
            .execute(&ctx.db)
            .await;
            if let Err(err) = marked {
                tracing::warn!(error = %err, event_id, "refetch decision not recorded");
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, event_id, subscription = sub_id, "subscription refetch failed; processing order stands");
        }
    }
}

/// Applies the events parked on `keys`, oldest first, then those parked on what they satisfied, up
/// to [`waits::MAX_REDRIVE`]. Their failures are recorded as any attempt's (and park them again);
/// a claim that fails leaves them to their backoff.
async fn redrive(
    db: &PgPool,
    stripe: &StripeConfig,
    mut keys: Vec<String>,
    now: DateTime<Utc>,
) -> Vec<Done> {
    // Not a job attempt: never the last one, so an early re-drive cannot fail an event for good.
    let attempt = Attempt {
        number: 0,
        max_attempts: u32::MAX,
    };
    let mut applied = Vec::new();
    let mut budget = waits::MAX_REDRIVE;
    while !keys.is_empty() && budget > 0 {
        let parked = match waits::claim(db, &keys, budget).await {
            Ok(parked) => parked,
            Err(err) => {
                tracing::warn!(error = %err, "parked stripe events not claimed; their backoff retries them");
                break;
            }
        };
        keys.clear();
        for event_id in parked {
            budget -= 1;
            if let Ok(done) = process_staged(db, stripe, &event_id, None, attempt, now).await {
                tracing::debug!(event_id, "parked stripe event re-driven");
                keys.extend(done.satisfies.iter().cloned());
                applied.push(done);
            }
        }
    }
    applied
}

/// [`process_event`] with an explicit clock (`now` decides access expiry and reminder re-checks).
pub async fn process_event_at(
    db: &PgPool,
    stripe: &StripeConfig,
    event_id: &str,
    attempt: Attempt,
    now: DateTime<Utc>,
) -> Result<Outcome, JobError> {
    // The staged e-mail jobs stay in the outbox: the e-mail sweep pushes them within a minute. Nothing
    // is evicted: without a worker's Redis the cached entitlements expire within their TTL.
    let done = process_staged(db, stripe, event_id, None, attempt, now).await?;
    redrive(db, stripe, done.satisfies, now).await;
    Ok(done.outcome)
}

/// What applying an event produced: its outcome, and what is left to do after its commit.
struct Done {
    outcome: Outcome,
    /// Users whose access was recomputed: their cached entitlements are evicted.
    changed_users: Vec<Uuid>,
    /// E-mail jobs staged in the event's transaction: pushed.
    staged: Vec<Envelope>,
    /// What applying it may have satisfied: events parked on these keys are re-driven.
    satisfies: Vec<String>,
    /// How a subscription state was ordered (recorded on the event by the closing statement).
    order_decision: Option<String>,
    /// (event, subscription) when that order was undecided: Stripe's object is fetched if configured.
    undecided: Option<(String, String)>,
}

impl Done {
    /// Names what an applied event satisfied (nothing unless it was applied).
    fn satisfying(mut self, keys: Vec<String>) -> Self {
        if self.outcome == Outcome::Processed {
            self.satisfies = keys;
        }
        self
    }

    fn nothing(outcome: Outcome) -> Self {
        Done {
            outcome,
            changed_users: Vec::new(),
            staged: Vec::new(),
            satisfies: Vec::new(),
            order_decision: None,
            undecided: None,
        }
    }
}

/// [`process_event_at`], returning what is left to do after the event's commit. An attempt that failed
/// for a dependency applied meanwhile (see [`record_failure`]) is made again at once, at most
/// [`READY_RETRIES`] times.
async fn process_staged(
    db: &PgPool,
    stripe: &StripeConfig,
    event_id: &str,
    outbox_job: Option<Uuid>,
    attempt: Attempt,
    now: DateTime<Utc>,
) -> Result<Done, JobError> {
    let mut retries = 0;
    loop {
        // The last immediate retry parks whatever it finds: its dependency check may be too broad.
        let check = retries < READY_RETRIES;
        match attempt_once(db, stripe, event_id, outbox_job, attempt, now, check).await {
            Ok(done) => return Ok(done),
            Err(Failed { ready: true, .. }) if retries < READY_RETRIES => retries += 1,
            Err(failed) => return Err(failed.err),
        }
    }
}

/// Immediate attempts after a failure whose dependency was applied meanwhile.
const READY_RETRIES: u32 = 3;

/// A failed attempt; `ready` when what it waited for was applied while it failed.
struct Failed {
    err: JobError,
    ready: bool,
}

impl<E: Into<JobError>> From<E> for Failed {
    fn from(err: E) -> Self {
        Failed {
            err: err.into(),
            ready: false,
        }
    }
}

/// Records a failed attempt (see [`record_failure`]) on the attempt's own connection, and returns it.
/// (A second connection from the pool while holding the first deadlocked the pool when as many
/// attempts as it has connections failed at once — a stream delivered newest first — until the
/// acquire timeout, 30 s.)
async fn failed(
    conn: &mut PgConnection,
    event_id: &str,
    err: JobError,
    attempt: Attempt,
    check: bool,
) -> Failed {
    match record_failure(conn, event_id, &err, attempt, check).await {
        Ok(ready) => Failed { err, ready },
        Err(db_err) => Failed::from(db_err),
    }
}

/// One attempt of [`process_staged`].
async fn attempt_once(
    db: &PgPool,
    stripe: &StripeConfig,
    event_id: &str,
    outbox_job: Option<Uuid>,
    attempt: Attempt,
    now: DateTime<Utc>,
    check: bool,
) -> Result<Done, Failed> {
    // Read without a row lock: the transaction below marks the event only if no one finished it
    // meanwhile (a concurrent replay of the same event), and rolls back otherwise. A lock here cost a
    // WAL record on every event to protect against a rare race the conditional mark catches anyway.
    let mut conn = db.acquire().await?;
    let row: Option<(String, Option<sqlx::types::Json<Value>>)> =
        sqlx::query_as("SELECT status, payload FROM stripe_events WHERE id = $1")
            .bind(event_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((status, payload)) = row else {
        return Err(Failed::from(JobError::Permanent(anyhow::anyhow!(
            "stripe event {event_id:?} is not stored"
        ))));
    };
    if is_final(&status) {
        complete_outbox(&mut conn, outbox_job).await?;
        return Ok(Done::nothing(Outcome::AlreadyFinal));
    }
    let event = match parse(event_id, payload) {
        Ok(event) => event,
        Err(err) => return Err(failed(&mut conn, event_id, err, attempt, check).await),
    };
    let satisfies = waits::satisfied_by(&event);
    if let Some(state) = one_call_state(&event, stripe) {
        let call = OneCallAttempt {
            event_id,
            outbox_job,
            attempt,
            now,
            check,
        };
        let done = apply_in_one_call(&mut conn, &state, call).await?;
        return Ok(done.satisfying(satisfies));
    }
    // One commit per event: the applied state, the event's status and the job's outbox completion are
    // durable together, or (a crash before the commit) none of them is and the outbox re-drives it.
    let mut tx = conn.begin().await?;
    match apply(&mut tx, stripe, &event, now).await {
        Ok(done) => {
            let closing = Closing {
                event_id,
                outcome: done.outcome,
                outbox_job,
                changed_users: &done.changed_users,
                order_decision: done.order_decision.as_deref(),
                now,
            };
            if !mark(&mut tx, closing).await? {
                // Someone else finished this event while we applied it: theirs stands.
                tx.rollback().await?;
                complete_outbox(&mut conn, outbox_job).await?;
                return Ok(Done::nothing(Outcome::AlreadyFinal));
            }
            tx.commit().await?;
            Ok(done.satisfying(satisfies))
        }
        Err(err) => {
            tx.rollback().await?;
            Err(failed(&mut conn, event_id, err, attempt, check).await)
        }
    }
}

/// The stored payload as an event (an unparseable one fails for good).
fn parse(event_id: &str, payload: Option<sqlx::types::Json<Value>>) -> Result<Event, JobError> {
    match payload {
        Some(payload) => Ok(Event::parse(&payload.0)?),
        None => Err(JobError::Permanent(anyhow::anyhow!(
            "stripe event {event_id:?} has no JSON payload"
        ))),
    }
}

/// The state of a subscription event of the configured mode that needs nothing but the state applied
/// (no e-mail): applied in one call. Anything else — other types, the other mode, a cancellation, a
/// payload the state cannot be read from (the transaction path reports why) — goes through the
/// worker's transaction.
fn one_call_state<'a>(event: &'a Event, stripe: &StripeConfig) -> Option<subscription::State<'a>> {
    if !is_of_mode(event, stripe) || !subscription::STATE_EVENTS.contains(&event.kind.as_str()) {
        return None;
    }
    subscription::State::of(event, stripe)
        .ok()
        .filter(|state| !state.needs_transaction())
}

fn is_of_mode(event: &Event, stripe: &StripeConfig) -> bool {
    event.livemode == (stripe.mode == StripeMode::Live)
}

/// A subscription state event in one round trip (see `subscription::apply_in_one_call`), with the same
/// outcomes as the transaction path.
/// The attempt a one-call application belongs to.
struct OneCallAttempt<'a> {
    event_id: &'a str,
    outbox_job: Option<Uuid>,
    attempt: Attempt,
    now: DateTime<Utc>,
    check: bool,
}

async fn apply_in_one_call(
    conn: &mut PgConnection,
    state: &subscription::State<'_>,
    call: OneCallAttempt<'_>,
) -> Result<Done, Failed> {
    let OneCallAttempt {
        event_id,
        outbox_job,
        attempt,
        now,
        check,
    } = call;
    let err = match subscription::apply_in_one_call(conn, state, event_id, outbox_job, now).await {
        Ok(OneCall::Processed(user, decision)) => {
            let undecided = (decision.as_deref() == Some(subscription::UNDECIDED))
                .then(|| (event_id.to_owned(), state.subscription_id().to_owned()));
            return Ok(Done {
                changed_users: user.into_iter().collect(),
                order_decision: decision,
                undecided,
                ..Done::nothing(Outcome::Processed)
            });
        }
        Ok(OneCall::AlreadyFinal) => {
            complete_outbox(conn, outbox_job).await?;
            return Ok(Done::nothing(Outcome::AlreadyFinal));
        }
        Ok(OneCall::Unlinked) => subscription::unlinked(state),
        Err(err) => err.into(),
    };
    Err(failed(conn, event_id, err, attempt, check).await)
}

/// Statuses an event never leaves by processing.
fn is_final(status: &str) -> bool {
    matches!(
        status,
        "processed" | "ignored" | "quarantined" | "unparseable"
    )
}

async fn apply(
    conn: &mut PgConnection,
    stripe: &StripeConfig,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<Done, JobError> {
    if !is_of_mode(event, stripe) {
        return Ok(Done::nothing(Outcome::Quarantined));
    }
    let mut apply = Apply {
        conn,
        stripe,
        event,
        now,
        changed_users: Vec::new(),
        staged: Vec::new(),
        order_decision: None,
    };
    let outcome = dispatch(&mut apply).await?;
    let undecided = (apply.order_decision.as_deref() == Some(subscription::UNDECIDED)).then(|| {
        (
            event.id.clone(),
            event.object["id"].as_str().unwrap_or_default().to_owned(),
        )
    });
    Ok(Done {
        changed_users: apply.changed_users,
        staged: apply.staged,
        order_decision: apply.order_decision,
        undecided,
        ..Done::nothing(outcome)
    })
}

async fn dispatch(a: &mut Apply<'_>) -> Result<Outcome, JobError> {
    match a.event.kind.as_str() {
        "checkout.session.completed" => customer::checkout_completed(a).await?,
        "customer.created" | "customer.updated" => customer::customer_changed(a).await?,
        "customer.deleted" => customer::customer_deleted(a).await?,
        "customer.subscription.trial_will_end" => subscription::trial_will_end(a).await?,
        kind if subscription::STATE_EVENTS.contains(&kind) => {
            subscription::state_changed(a).await?
        }
        "invoice.paid" | "invoice.payment_succeeded" => invoice::paid(a).await?,
        "invoice.payment_failed" => invoice::payment_failed(a).await?,
        "invoice.payment_action_required" => invoice::action_required(a).await?,
        "charge.refunded" => refund::charge_refunded(a).await?,
        "refund.created" | "refund.updated" | "charge.refund.updated" => {
            refund::refund_changed(a).await?
        }
        _ => return Ok(Outcome::Ignored),
    }
    Ok(Outcome::Processed)
}

/// What the closing statement of an applied event writes.
struct Closing<'a> {
    event_id: &'a str,
    outcome: Outcome,
    outbox_job: Option<Uuid>,
    changed_users: &'a [Uuid],
    order_decision: Option<&'a str>,
    now: DateTime<Utc>,
}

/// The closing statement, `mingus_close_stripe_event` (migration `…21`): recomputes the feature access
/// of the users whose access changed, completes the job's outbox row and marks the event — one round
/// trip. `false` when the event reached a final status meanwhile (a concurrent replay finished it):
/// nothing is marked and the caller rolls back.
async fn mark(conn: &mut PgConnection, closing: Closing<'_>) -> Result<bool, sqlx::Error> {
    let status = match closing.outcome {
        Outcome::Processed | Outcome::AlreadyFinal => "processed",
        Outcome::Ignored => "ignored",
        Outcome::Quarantined => "quarantined",
    };
    sqlx::query_scalar("SELECT mingus_close_stripe_event($1, $2, $3, $4, $5, $6)")
        .bind(closing.event_id)
        .bind(status)
        .bind(closing.outbox_job)
        .bind(closing.changed_users)
        .bind(closing.now)
        .bind(closing.order_decision)
        .fetch_one(conn)
        .await
}

/// Completes the job's outbox row when the event needed nothing (already final).
async fn complete_outbox(
    conn: &mut PgConnection,
    outbox_job: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    match outbox_job {
        Some(job_id) => outbox::complete(&mut *conn, job_id, "succeeded").await,
        None => Ok(()),
    }
}

/// An error as stored in `stripe_events.last_error`: its first 2,000 characters.
fn error_text(error: &str) -> String {
    mingus_common::text::clip(error, 2_000)
}

/// The job of event `event_id` died outside its handler's own record (its last attempt killed by the
/// timeout or a panic): a still `received` event becomes `failed` with the job's error, so operators
/// find it among the failed events and "replay all failed" includes it. A final event is left alone.
pub async fn give_up(db: &PgPool, event_id: &str, error: &str) -> Result<(), sqlx::Error> {
    let message = error_text(&format!("gave up: {error}"));
    sqlx::query(
        "UPDATE stripe_events SET status = 'failed', last_error = $2
         WHERE id = $1 AND status = 'received'",
    )
    .bind(event_id)
    .bind(message)
    .execute(db)
    .await
    .map(|_| ())
}

/// Records a failed attempt after the transaction rolled back; the last one (or a permanent error)
/// marks it `failed`. An event waiting for a dependency is parked on its key — unless (`check`) the
/// dependency was applied meanwhile (after this attempt read its absence, before the park): then nothing
/// parks it and `true` says to try again at once. The key's lock, which the re-drive's claim also takes
/// (`waits::claim`), orders the two, so a dependency is never applied unseen by a parked event
/// (`mingus_record_stripe_failure`, migration `…21`).
async fn record_failure(
    conn: &mut PgConnection,
    event_id: &str,
    err: &JobError,
    attempt: Attempt,
    check: bool,
) -> Result<bool, sqlx::Error> {
    let dead = matches!(err, JobError::Permanent(_)) || attempt.is_last();
    let message = error_text(&err.to_string());
    sqlx::query_scalar("SELECT mingus_record_stripe_failure($1, $2, $3, $4, $5)")
        .bind(event_id)
        .bind(message)
        .bind(dead)
        .bind(waits::waits_for(err))
        .bind(check)
        .fetch_one(conn)
        .await
}
