//! Small helpers that insert valid rows, so each test states only what it is about.

use sqlx::PgPool;
use uuid::Uuid;

pub async fn user(pool: &PgPool) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email, full_name) VALUES ($1, $2, 'Test User')")
        .bind(id)
        .bind(format!("{id}@example.com"))
        .execute(pool)
        .await
        .expect("insert user");
    id
}

pub async fn profile(pool: &PgPool, user_id: Uuid) {
    sqlx::query("INSERT INTO user_profiles (user_id, first_name, monthly_income) VALUES ($1, 'Pat', 4200.50)")
        .bind(user_id)
        .execute(pool)
        .await
        .expect("insert profile");
}

pub async fn subscription(pool: &PgPool, user_id: Uuid) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status, current_period_start, current_period_end)
         VALUES ($1, 'professional', 29.00, 'monthly', 'active', now(), now() + interval '1 month') RETURNING id",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await
    .expect("insert subscription")
}

pub async fn checkin(pool: &PgPool, user_id: Uuid, date: chrono::NaiveDate) {
    sqlx::query(
        "INSERT INTO user_health_checkins (user_id, checkin_date, stress_level, energy_level, mood_rating)
         VALUES ($1, $2, 5, 6, 7)",
    )
    .bind(user_id)
    .bind(date)
    .execute(pool)
    .await
    .expect("insert check-in");
}

/// Runs one `maintenance.outbox_sweep` job (a worker on the maintenance queue must be running) and
/// waits until the ledger records it succeeded.
pub async fn outbox_sweep_job(pool: &PgPool, enqueuer: &mingus_common::jobs::Enqueuer) {
    let job_id = Uuid::now_v7();
    let envelope =
        mingus_common::jobs::Envelope::new(&mingus_common::jobs::catalog::OutboxSweep {}, job_id)
            .unwrap();
    enqueuer.push(&[envelope], None, None).await.unwrap();
    mingus_tests::wait::until(
        std::time::Duration::from_secs(30),
        "the outbox sweep to run",
        || async {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM job_runs WHERE job_id = $1 AND status = 'succeeded'",
            )
            .bind(job_id)
            .fetch_one(pool)
            .await
            .unwrap();
            (done > 0).then_some(())
        },
    )
    .await;
}

/// Waits until job `job_id` is among the dead letters.
pub async fn dead_letter(pool: &PgPool, job_id: Uuid) {
    mingus_tests::wait::until(
        std::time::Duration::from_secs(30),
        "the job among the dead letters",
        || async {
            let dead: i64 =
                sqlx::query_scalar("SELECT count(*) FROM job_dead_letters WHERE job_id = $1")
                    .bind(job_id)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            (dead == 1).then_some(())
        },
    )
    .await;
}

/// Marks job `job_id`'s outbox row completed as dead, `ago` (an SQL interval) ago.
pub async fn job_ended(pool: &PgPool, job_id: Uuid, ago: &str) {
    sqlx::query(
        "UPDATE job_outbox SET completed_at = now() - $2::interval, outcome = 'dead' WHERE job_id = $1",
    )
    .bind(job_id)
    .bind(ago)
    .execute(pool)
    .await
    .unwrap();
}
