//! Linking Stripe customers to our users (`users.stripe_customer_id`).
//!
//! - `checkout.session.completed`: the session's `client_reference_id` (our user id), else its
//!   `metadata.user_id`, names the user; that explicit reference wins over any earlier link of the
//!   customer (moved from another user) and replaces the user's previous customer. A reference to a
//!   user that does not exist is a permanent error.
//! - `customer.created` / `customer.updated`: `metadata.user_id` links explicitly (ignored if no such
//!   user); otherwise a case-insensitive e-mail match links a user that has no customer yet, and only
//!   if no user has this customer.
//! - `customer.deleted`: unlinks. A link event older than (or of the same second as) a stored
//!   `customer.deleted` of the customer changes nothing, so a late `customer.created` cannot re-link a
//!   deleted customer.

use mingus_common::billing::objects::{CheckoutView, CustomerView};
use uuid::Uuid;

use super::Apply;
use crate::context::JobError;

async fn deleted_since(a: &mut Apply<'_>, customer: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM stripe_events
                        WHERE object_id = $1 AND type = 'customer.deleted' AND created >= $2 AND id <> $3)",
    )
    .bind(customer)
    .bind(a.event.created)
    .bind(&a.event.id)
    .fetch_one(&mut *a.conn)
    .await
}

async fn user_exists(a: &mut Apply<'_>, user_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .bind(user_id)
        .fetch_one(&mut *a.conn)
        .await
}

/// Links `customer` to `user_id`, moving the link from any other user.
async fn link(a: &mut Apply<'_>, customer: &str, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET stripe_customer_id = NULL, updated_at = now() WHERE stripe_customer_id = $1 AND id <> $2")
        .bind(customer)
        .bind(user_id)
        .execute(&mut *a.conn)
        .await?;
    sqlx::query(
        "UPDATE users SET stripe_customer_id = $1, updated_at = now()
         WHERE id = $2 AND stripe_customer_id IS DISTINCT FROM $1",
    )
    .bind(customer)
    .bind(user_id)
    .execute(&mut *a.conn)
    .await?;
    Ok(())
}

pub(super) async fn checkout_completed(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let session = CheckoutView(&event.object);
    let (Some(customer), Some(reference)) = (session.customer(), session.user_reference()) else {
        tracing::debug!(event = %event.id, "checkout without a customer or a user reference: nothing to link");
        return Ok(());
    };
    let user_id = Uuid::parse_str(reference).map_err(|_| {
        JobError::Permanent(anyhow::anyhow!(
            "checkout's user reference {reference:?} is not a user id"
        ))
    })?;
    a.lock(customer).await?;
    if deleted_since(a, customer).await? {
        return Ok(());
    }
    if !user_exists(a, user_id).await? {
        return Err(JobError::Permanent(anyhow::anyhow!(
            "checkout names user {user_id}, who does not exist"
        )));
    }
    link(a, customer, user_id).await?;
    Ok(())
}

pub(super) async fn customer_changed(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let customer = CustomerView(&event.object);
    let customer_id = customer.id()?;
    a.lock(customer_id).await?;
    if deleted_since(a, customer_id).await? {
        return Ok(());
    }
    if let Some(reference) = customer.user_reference() {
        match Uuid::parse_str(reference) {
            Ok(user_id) if user_exists(a, user_id).await? => link(a, customer_id, user_id).await?,
            _ => tracing::warn!(
                customer = customer_id,
                reference,
                "customer metadata.user_id names no user"
            ),
        }
        return Ok(());
    }
    if let Some(email) = customer.email() {
        sqlx::query(
            "UPDATE users SET stripe_customer_id = $1, updated_at = now()
             WHERE lower(email) = lower($2) AND stripe_customer_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM users WHERE stripe_customer_id = $1)",
        )
        .bind(customer_id)
        .bind(email)
        .execute(&mut *a.conn)
        .await?;
    }
    Ok(())
}

pub(super) async fn customer_deleted(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let customer_id = CustomerView(&event.object).id()?;
    a.lock(customer_id).await?;
    sqlx::query("UPDATE users SET stripe_customer_id = NULL, updated_at = now() WHERE stripe_customer_id = $1")
        .bind(customer_id)
        .execute(&mut *a.conn)
        .await?;
    Ok(())
}
