//! Demo data for local runs: a user on each tier with a profile and an active subscription.

use sqlx::PgPool;

const DEMO_USERS: [(&str, &str, &str, &str); 3] = [
    (
        "00000000-0000-4000-8000-000000000001",
        "essentials@demo.mingus.local",
        "Ada Essentials",
        "essentials",
    ),
    (
        "00000000-0000-4000-8000-000000000002",
        "professional@demo.mingus.local",
        "Ben Professional",
        "professional",
    ),
    (
        "00000000-0000-4000-8000-000000000003",
        "executive@demo.mingus.local",
        "Cy Executive",
        "executive",
    ),
];

/// Inserts the demo users when missing; running it again changes nothing. Returns how many demo users exist.
pub async fn demo(pool: &PgPool) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    for (id, email, name, tier) in DEMO_USERS {
        let id: uuid::Uuid = id.parse()?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, full_name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(email)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO user_profiles (user_id, first_name, monthly_income, timezone, zip_code, is_complete)
             VALUES ($1, split_part($2, ' ', 1), 6500.00, 'America/New_York', '10001', TRUE)",
        )
        .bind(id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status,
                                        current_period_start, current_period_end)
             SELECT $1, tier_name, monthly_price, 'monthly', 'active', now(), now() + interval '1 month'
             FROM pricing_tiers WHERE tier_name = $2",
        )
        .bind(id)
        .bind(tier)
        .execute(&mut *tx)
        .await?;
    }
    // Access follows the subscription as it does after a Stripe event: without these rows every demo
    // user would be answered `feature_not_included`. Recomputed for every demo user, so running the
    // command again repairs a database seeded before this step existed.
    for (id, ..) in DEMO_USERS {
        crate::billing::access::recompute(&mut tx, id.parse()?, chrono::Utc::now()).await?;
    }
    tx.commit().await?;
    Ok(DEMO_USERS.len())
}
