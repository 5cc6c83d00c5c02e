//! Benchmark users: subscribers (Executive unless asked otherwise) with their feature access, and a user token each.

use mingus_bench::Scratch;
use serde_json::json;
use uuid::Uuid;

/// Creates `count` users on an active Executive plan and returns a valid token for each.
pub async fn executives(scratch: &Scratch, count: usize) -> anyhow::Result<Vec<String>> {
    on_tier(scratch, count, "executive").await
}

/// Creates `count` users on an active plan of `tier` and returns a valid token for each.
pub async fn on_tier(scratch: &Scratch, count: usize, tier: &str) -> anyhow::Result<Vec<String>> {
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    let mut tx = scratch.pool.begin().await?;
    sqlx::query(
        "INSERT INTO users (id, email, full_name)
         SELECT id, id::text || '@bench.example', 'Bench User' FROM UNNEST($1::uuid[]) AS t(id)",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status,
                                    current_period_start, current_period_end)
         SELECT u.id, t.tier_name, t.monthly_price, 'monthly', 'active', now() - interval '1 day',
                now() + interval '29 days'
         FROM UNNEST($1::uuid[]) AS u(id) JOIN pricing_tiers t ON t.tier_name = $2",
    )
    .bind(&ids)
    .bind(tier)
    .execute(&mut *tx)
    .await?;
    let now = chrono::Utc::now();
    for id in &ids {
        mingus_common::billing::access::recompute(&mut tx, *id, now).await?;
    }
    tx.commit().await?;
    let expires = now.timestamp() + 24 * 3600;
    Ok(ids
        .iter()
        .map(|id| {
            let claims = json!({
                "sub": id.to_string(),
                "aud": "authenticated",
                "role": "authenticated",
                "iat": now.timestamp(),
                "exp": expires,
            });
            mingus_api::v1::jwt::sign_hs256(&claims, crate::JWT_SECRET.as_bytes())
        })
        .collect())
}
