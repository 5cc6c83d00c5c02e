//! Linking Stripe customers to our users (`users.stripe_customer_id`).
//!
//! - `checkout.session.completed`: the session's `client_reference_id` (our user id), else its
//!   `metadata.user_id`, names the user; that explicit reference wins over any earlier link of the
//!   customer (moved from another user) and replaces the user's previous customer. A reference to a
//!   user that does not exist is a permanent error.
//! - `customer.created` / `customer.updated`: `metadata.user_id` links explicitly (ignored if no such
//!   user); otherwise a case-insensitive e-mail match links a user that has no customer yet, and only
//!   if no user has this customer.
//! - `customer.deleted`: unlinks, and leaves a tombstone in the link history (`stripe_customers`,
//!   migration `…21`): the user the customer belonged to and when it was deleted. The customer's events
//!   created up to the deletion still resolve to that user (`mingus_customer_user`), whatever order they
//!   arrive in; a link event newer than the deletion changes nothing, and one not newer than it (a late
//!   `customer.created`) records the history without re-linking the live column.
//!
//! Every link is also recorded in the history with its event time; a link event older than the recorded
//! link does not move it back.

use chrono::{DateTime, Utc};
use mingus_common::billing::objects::{CheckoutView, CustomerView};
use uuid::Uuid;

use super::Apply;
use crate::context::JobError;

/// When the customer was deleted: its applied tombstone, else a stored `customer.deleted` not applied yet.
async fn deleted_at(
    a: &mut Apply<'_>,
    customer: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(
             (SELECT deleted_at FROM stripe_customers WHERE customer_id = $1),
             (SELECT min(created) FROM stripe_events
              WHERE object_id = $1 AND type = 'customer.deleted' AND id <> $2))",
    )
    .bind(customer)
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

/// Records in the link history that `customer` belongs to `user_id` as of this event, unless a newer
/// link event already moved it (then `false`). The tombstone, if any, is kept.
async fn remember(a: &mut Apply<'_>, customer: &str, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let written = sqlx::query(
        "INSERT INTO stripe_customers (customer_id, user_id, linked_at) VALUES ($1, $2, $3)
         ON CONFLICT (customer_id) DO UPDATE SET user_id = EXCLUDED.user_id, linked_at = EXCLUDED.linked_at
         WHERE stripe_customers.user_id IS NULL OR stripe_customers.linked_at IS NULL
            OR stripe_customers.linked_at <= EXCLUDED.linked_at",
    )
    .bind(customer)
    .bind(user_id)
    .bind(a.event.created)
    .execute(&mut *a.conn)
    .await?
    .rows_affected();
    Ok(written == 1)
}

/// Links `customer` to `user_id` as this event says, if the customer is not deleted: the live link
/// (moved from any other user) and the history. A link event of a deleted customer that is not newer
/// than the deletion is history only — the customer's older events resolve through it — and a newer one
/// changes nothing.
async fn link(a: &mut Apply<'_>, customer: &str, user_id: Uuid) -> Result<(), sqlx::Error> {
    match deleted_at(a, customer).await? {
        Some(deleted) if a.event.created > deleted => return Ok(()),
        Some(deleted) => {
            remember(a, customer, user_id).await?;
            sqlx::query("UPDATE stripe_customers SET deleted_at = $2 WHERE customer_id = $1 AND deleted_at IS NULL")
                .bind(customer)
                .bind(deleted)
                .execute(&mut *a.conn)
                .await?;
            return Ok(());
        }
        None => {}
    }
    if !remember(a, customer, user_id).await? {
        return Ok(());
    }
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
    // Otherwise by e-mail: a user without a customer, if no user has this one and no link was recorded.
    let Some(email) = customer.email() else {
        return Ok(());
    };
    let matched: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM users
         WHERE lower(email) = lower($2) AND stripe_customer_id IS NULL
           AND NOT EXISTS (SELECT 1 FROM users WHERE stripe_customer_id = $1)
           AND NOT EXISTS (SELECT 1 FROM stripe_customers WHERE customer_id = $1 AND user_id IS NOT NULL)
         ORDER BY created_at, id LIMIT 1",
    )
    .bind(customer_id)
    .bind(email)
    .fetch_optional(&mut *a.conn)
    .await?;
    if let Some(user_id) = matched {
        link(a, customer_id, user_id).await?;
    }
    Ok(())
}

pub(super) async fn customer_deleted(a: &mut Apply<'_>) -> Result<(), JobError> {
    let event = a.event;
    let customer_id = CustomerView(&event.object).id()?;
    a.lock(customer_id).await?;
    // The tombstone keeps whom the customer belonged to (the live link, else a link already recorded).
    sqlx::query(
        "INSERT INTO stripe_customers (customer_id, user_id, deleted_at)
         VALUES ($1, (SELECT id FROM users WHERE stripe_customer_id = $1), $2)
         ON CONFLICT (customer_id) DO UPDATE SET
             user_id = coalesce(EXCLUDED.user_id, stripe_customers.user_id),
             deleted_at = least(EXCLUDED.deleted_at, stripe_customers.deleted_at)",
    )
    .bind(customer_id)
    .bind(event.created)
    .execute(&mut *a.conn)
    .await?;
    sqlx::query("UPDATE users SET stripe_customer_id = NULL, updated_at = now() WHERE stripe_customer_id = $1")
        .bind(customer_id)
        .execute(&mut *a.conn)
        .await?;
    Ok(())
}
