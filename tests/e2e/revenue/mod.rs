//! Revenue and retention (issue 25): the subscription history the trigger writes, the nightly SQL
//! against a brute-force reference on generated histories, the job through the scheduler and the
//! outbox, the backfill command, and `/ops/business`.

mod history;
mod job;
mod page;
mod property;
mod reference;

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use reference::{Change, CohortRow, DailyRow, Payment, TierRow};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

const TIERS: [(&str, i64, i64); 3] = [
    ("essentials", 10, 100),
    ("professional", 29, 290),
    ("executive", 99, 990),
];

/// A random history: users with one to three subscriptions each, each a run of state changes (some on
/// the same day, some weeks apart: trials, conversions, upgrades, downgrades, past-due, pauses,
/// cancellations, reactivations), in USD and EUR; and payments, failed attempts, recoveries and refunds.
pub struct History {
    pub users: Vec<Uuid>,
    pub changes: Vec<Change>,
    pub payments: Vec<Payment>,
}

fn at(rng: &mut StdRng, day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::seconds(rng.random_range(0..86_400))
}

pub fn generate(rng: &mut StdRng, base: NaiveDate, users: usize) -> History {
    let mut history = History {
        users: Vec::new(),
        changes: Vec::new(),
        payments: Vec::new(),
    };
    for _ in 0..users {
        let user = Uuid::new_v4();
        history.users.push(user);
        for _ in 0..rng.random_range(1..=3) {
            let subscription = Uuid::new_v4();
            let currency = if rng.random_bool(0.2) { "EUR" } else { "USD" };
            let offset = rng.random_range(0..120);
            let mut when = at(rng, base + Days::new(offset));
            let (mut tier, mut monthly, mut annual) = TIERS[rng.random_range(0..3)];
            let mut cycle = if rng.random_bool(0.3) {
                "annual"
            } else {
                "monthly"
            };
            let mut status = if rng.random_bool(0.4) {
                "trial"
            } else {
                "active"
            };
            let mut stripe_status = None;
            for step in 0..rng.random_range(1..=7) {
                if step > 0 {
                    when += if rng.random_bool(0.25) {
                        Duration::minutes(rng.random_range(0..240))
                    } else {
                        Duration::hours(rng.random_range(20..1_000))
                    };
                    stripe_status = None;
                    match rng.random_range(0..10) {
                        0..=2 => {
                            (tier, monthly, annual) = TIERS[rng.random_range(0..3)];
                            status = "active";
                        }
                        3 => {
                            cycle = if cycle == "annual" {
                                "monthly"
                            } else {
                                "annual"
                            }
                        }
                        4 => status = "past_due",
                        5 => {
                            status = "past_due";
                            stripe_status = Some(if rng.random_bool(0.5) {
                                "paused"
                            } else {
                                "unpaid"
                            });
                        }
                        6 | 7 => status = "cancelled",
                        8 => status = "trial",
                        _ => status = "active",
                    }
                }
                let cents = if rng.random_bool(0.2) {
                    rng.random_range(1..100)
                } else {
                    0
                };
                let whole = if cycle == "annual" { annual } else { monthly };
                history.changes.push(Change {
                    subscription,
                    user,
                    at: when,
                    status,
                    stripe_status,
                    tier,
                    cycle,
                    price: Decimal::new(whole * 100 + cents, 2),
                    currency,
                });
            }
            for invoice in 0..rng.random_range(0..4) {
                let invoice_id = format!("in_{}_{invoice}", subscription.simple());
                let offset = rng.random_range(0..200);
                let mut when = at(rng, base + Days::new(offset));
                let amount = Decimal::new(rng.random_range(500..10_000), 2);
                let payment = |status, at, transaction: String, invoice: Option<&str>| Payment {
                    subscription,
                    user,
                    at,
                    status,
                    amount,
                    currency,
                    invoice: invoice.map(str::to_owned),
                    transaction,
                };
                for attempt in 0..rng.random_range(0..3) {
                    history.payments.push(payment(
                        "failed",
                        when,
                        format!("{invoice_id}:attempt:{attempt}"),
                        Some(&invoice_id),
                    ));
                    when += Duration::hours(rng.random_range(1..100));
                }
                if rng.random_bool(0.7) {
                    history.payments.push(payment(
                        "paid",
                        when,
                        invoice_id.clone(),
                        Some(&invoice_id),
                    ));
                    if rng.random_bool(0.2) {
                        when += Duration::hours(rng.random_range(1..300));
                        history.payments.push(payment(
                            "refunded",
                            when,
                            format!("re_{}", Uuid::new_v4().simple()),
                            None,
                        ));
                    }
                }
            }
        }
    }
    history
}

/// Writes the history: users and subscription rows (whose trigger rows are then replaced by the
/// generated history, in its order so ids break ties as the reference does), and the payments.
pub async fn insert(pool: &PgPool, history: &History) {
    let mut tx = pool.begin().await.unwrap();
    for user in &history.users {
        sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
            .bind(user)
            .bind(format!("{}@revenue.test", user.simple()))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    for change in &history.changes {
        if seen.insert(change.subscription) {
            sqlx::query(
                "INSERT INTO subscriptions (id, user_id, plan_tier, plan_price, currency, billing_cycle, status,
                     current_period_start, current_period_end)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(change.subscription)
            .bind(change.user)
            .bind(change.tier)
            .bind(change.price)
            .bind(change.currency)
            .bind(change.cycle)
            .bind(change.status)
            .bind(change.at)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
    }
    sqlx::query("DELETE FROM subscription_changes")
        .execute(&mut *tx)
        .await
        .unwrap();
    for c in &history.changes {
        sqlx::query(
            "INSERT INTO subscription_changes (subscription_id, user_id, changed_at, status, stripe_status,
                 plan_tier, billing_cycle, plan_price, currency, cancel_at_period_end, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false, 'generated')",
        )
        .bind(c.subscription)
        .bind(c.user)
        .bind(c.at)
        .bind(c.status)
        .bind(c.stripe_status)
        .bind(c.tier)
        .bind(c.cycle)
        .bind(c.price)
        .bind(c.currency)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    for p in &history.payments {
        sqlx::query(
            "INSERT INTO billing_history (subscription_id, user_id, amount, currency, status, payment_method,
                 transaction_id, stripe_invoice_id, created_at)
             VALUES ($1, $2, $3, $4, $5, 'stripe', $6, $7, $8)",
        )
        .bind(p.subscription)
        .bind(p.user)
        .bind(p.amount)
        .bind(p.currency)
        .bind(p.status)
        .bind(&p.transaction)
        .bind(&p.invoice)
        .bind(p.at)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// The `revenue_daily` rows of `from..=to`.
pub async fn daily_rows(pool: &PgPool, from: NaiveDate, to: NaiveDate) -> Vec<DailyRow> {
    type Row = (
        NaiveDate,
        String,
        Decimal,
        i32,
        Decimal,
        Decimal,
        Decimal,
        Decimal,
        Decimal,
        i32,
        i32,
        i32,
        (Decimal, i32, Decimal, i32, i32, i32),
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT day, currency::text, mrr, customers, new_mrr, expansion_mrr, contraction_mrr, churned_mrr,
                reactivated_mrr, new_customers, reactivated_customers, churned_customers,
                ROW(payments, payment_count, refunds, refund_count, failed_invoices, recovered_invoices)
         FROM revenue_daily WHERE day BETWEEN $1 AND $2 ORDER BY day, currency",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|r| DailyRow {
            day: r.0,
            currency: r.1,
            mrr: r.2,
            customers: r.3,
            moves: [r.4, r.5, r.6, r.7, r.8],
            customer_moves: [r.9, r.10, r.11],
            payments: r.12.0,
            payment_count: r.12.1,
            refunds: r.12.2,
            refund_count: r.12.3,
            failed_invoices: r.12.4,
            recovered_invoices: r.12.5,
        })
        .collect()
}

pub async fn tier_rows(pool: &PgPool, from: NaiveDate, to: NaiveDate) -> Vec<TierRow> {
    sqlx::query_as(
        "SELECT day, plan_tier::text, subscribers, trialing, trial_starts, trial_conversions, trial_losses
         FROM revenue_daily_tiers WHERE day BETWEEN $1 AND $2 ORDER BY day, plan_tier",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
    .unwrap()
}

pub async fn cohort_rows(pool: &PgPool) -> Vec<CohortRow> {
    sqlx::query_as(
        "SELECT cohort_month, month_offset, customers, retained FROM revenue_cohorts
         ORDER BY cohort_month, month_offset",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}
