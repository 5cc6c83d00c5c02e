//! `mingus_revenue_compute()` equals the brute-force reference on generated histories, for any range,
//! and is idempotent: running it again, or a backfill of a range inside, changes no row.

use chrono::{Days, NaiveDate};
use mingus_common::revenue;
use mingus_tests::TestDb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{cohort_rows, daily_rows, generate, insert, reference, tier_rows};

/// Generated histories per run; each has 30 customers and about 60 subscriptions.
const CASES: u64 = 6;

async fn clear(pool: &sqlx::PgPool) {
    sqlx::query(
        "TRUNCATE revenue_daily, revenue_daily_tiers, revenue_cohorts, subscription_changes, billing_history,
                  subscriptions, users CASCADE",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_nightly_sql_equals_a_brute_force_recomputation_on_generated_histories() {
    let db = TestDb::new().await;
    let base: NaiveDate = "2026-01-01".parse().unwrap();
    let mut compared = (0, 0);
    for seed in 0..CASES {
        clear(&db.pool).await;
        let mut rng = StdRng::seed_from_u64(2500 + seed);
        let history = generate(&mut rng, base, 30);
        insert(&db.pool, &history).await;
        let to = base + Days::new(rng.random_range(120..260));
        let from = to - Days::new(rng.random_range(60..150));

        revenue::compute(&db.pool, from, to).await.unwrap();
        let daily = daily_rows(&db.pool, from, to).await;
        let expected = reference::daily(&history.changes, &history.payments, from, to);
        assert_eq!(
            daily.len(),
            expected.len(),
            "seed {seed}: rows of {from}..={to}"
        );
        for (got, want) in daily.iter().zip(&expected) {
            assert_eq!(got, want, "seed {seed}");
        }
        assert!(
            daily.iter().any(|r| r.moves.iter().any(|m| !m.is_zero())),
            "seed {seed}: the range saw movements"
        );
        let tiers = tier_rows(&db.pool, from, to).await;
        assert_eq!(
            tiers,
            reference::tiers(&history.changes, from, to),
            "seed {seed}"
        );
        let cohorts = cohort_rows(&db.pool).await;
        assert_eq!(
            cohorts,
            reference::cohorts(&history.changes, to),
            "seed {seed}"
        );
        compared.0 += daily.len();
        compared.1 += cohorts.len();

        // Idempotent: again, and a backfill of a range inside, leave every row as it was.
        revenue::compute(&db.pool, from, to).await.unwrap();
        let inner_from = from + Days::new((to - from).num_days() as u64 / 3);
        revenue::compute(&db.pool, inner_from, to).await.unwrap();
        assert_eq!(daily_rows(&db.pool, from, to).await, daily, "seed {seed}");
        assert_eq!(tier_rows(&db.pool, from, to).await, tiers, "seed {seed}");
        // A backfill of older days leaves the cohorts as of the newest day.
        revenue::compute(&db.pool, from - Days::new(30), from - Days::new(1))
            .await
            .unwrap();
        assert_eq!(cohort_rows(&db.pool).await, cohorts, "seed {seed}");
    }
    assert!(
        compared.0 > 300 && compared.1 > 10,
        "compared {compared:?} rows"
    );
}

#[tokio::test]
async fn a_range_that_is_empty_or_too_long_is_refused_and_writes_nothing() {
    let db = TestDb::new().await;
    let day: NaiveDate = "2026-03-01".parse().unwrap();
    let err = revenue::compute(&db.pool, day, day - Days::new(1))
        .await
        .unwrap_err();
    assert!(matches!(err, revenue::RevenueError::Range { .. }), "{err}");
    assert!(
        revenue::compute(&db.pool, day - Days::new(4000), day)
            .await
            .is_err()
    );
    // The function refuses it too, for callers that bypass the Rust check.
    let err = sqlx::query("SELECT mingus_revenue_compute($1, $2)")
        .bind(day)
        .bind(day - Days::new(1))
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("22023")
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM revenue_daily")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}
