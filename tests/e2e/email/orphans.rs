//! Deliveries whose `email.send` job ended without recording an outcome (its last attempt killed, or it
//! found another attempt's lease, or could not mark an accepted message sent) are failed by the minute
//! outbox sweep instead of waiting for ever; a live lease and a job that ended moments ago are left alone.

use std::time::Duration;

use mingus_common::email::Template;
use mingus_common::email::deliveries::{self, Queued};
use mingus_common::queue::Queue;
use mingus_tests::{JobEnv, TestWorker};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// Puts delivery `id` in `status` with its lease ending `lease` from now, and its job's outbox row
/// completed as dead `ended` ago.
async fn after_its_job(pool: &PgPool, id: Uuid, status: &str, lease: Option<&str>, ended: &str) {
    sqlx::query(
        "UPDATE email_deliveries SET status = $2, lease_until = now() + $3::interval WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(lease)
    .execute(pool)
    .await
    .unwrap();
    crate::fixtures::job_ended(pool, id, ended).await;
}

async fn status_and_error(pool: &PgPool, id: Uuid) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, last_error FROM email_deliveries WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn deliveries_whose_job_ended_without_an_outcome_are_failed_by_the_outbox_sweep() {
    let env = JobEnv::new().await;
    let pool = &env.db.pool;
    let user = super::user(pool, "orphan", "Ola", "UTC").await;
    let mut ids = Vec::new();
    for key in ["sending-expired", "queued", "sending-live", "recent"] {
        let queued = super::queue(&env, user, Template::ReportReady, json!({}), key).await;
        let Queued::Staged(envelope) = queued else {
            panic!("{key}: {queued:?}")
        };
        ids.push(envelope.job_id);
    }
    let [expired, queued, live, recent] = ids[..] else {
        unreachable!()
    };
    after_its_job(pool, expired, "sending", Some("-1 minute"), "2 minutes").await;
    after_its_job(pool, queued, "queued", None, "2 minutes").await;
    after_its_job(pool, live, "sending", Some("5 minutes"), "2 minutes").await;
    after_its_job(pool, recent, "queued", None, "0 seconds").await;

    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Maintenance]).await;
    crate::fixtures::outbox_sweep_job(pool, &env.enqueuer).await;
    assert_eq!(
        status_and_error(pool, expired).await,
        (
            "failed".to_owned(),
            Some(
                "its job ended (dead) without recording an outcome; \
                 the SMTP server may have accepted it"
                    .to_owned()
            )
        )
    );
    assert_eq!(
        status_and_error(pool, queued).await,
        (
            "failed".to_owned(),
            Some("its job ended (dead) without recording an outcome".to_owned())
        )
    );
    assert_eq!(
        status_and_error(pool, live).await.0,
        "sending",
        "its lease holder records it"
    );
    assert_eq!(status_and_error(pool, recent).await.0, "queued");
    let again = deliveries::fail_orphans(pool, Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert_eq!(again, 0, "failed once");
    worker.stop().await.unwrap();
}
