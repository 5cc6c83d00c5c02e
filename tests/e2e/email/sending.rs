//! Sending over real SMTP: duplicates, permanent and transient refusals, an outage, the retry budget.

use std::time::Duration;

use mingus_common::email::Template;
use mingus_common::email::deliveries::Queued;
use mingus_common::jobs::email_jobs::SendEmail;
use mingus_common::jobs::{EnqueueOptions, Envelope};
use mingus_common::queue::Queue;
use mingus_tests::wait::{count, until};
use mingus_tests::{SmtpServer, TestApp, TestWorker};
use serde_json::json;
use uuid::Uuid;

use super::{address, email_vars, env_with, queue, staged_id, user, wait_for_status};

fn report(name: &str) -> serde_json::Value {
    json!({"report_id": Uuid::new_v4(), "report_name": name})
}

#[tokio::test]
async fn duplicate_jobs_for_one_delivery_send_one_email() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, &[]).await;
    let pool = &env.db.pool;
    let user_id = user(pool, "dup", "Sam", "UTC").await;
    let queued = queue(
        &env,
        user_id,
        Template::ReportReady,
        report("Budget"),
        "dup:1",
    )
    .await;
    let delivery_id = staged_id(&queued);
    // Four more jobs for the same delivery, with job ids of their own (a replayed event, an operator).
    let mut job_ids = vec![delivery_id];
    for _ in 0..4 {
        let id = env
            .enqueuer
            .enqueue(&SendEmail { delivery_id }, EnqueueOptions::default())
            .await
            .unwrap();
        job_ids.push(id);
    }
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Email]).await;
    let state = wait_for_status(pool, delivery_id, "sent", Duration::from_secs(30)).await;
    // Each job ends: the winner sends, the others find it sent (after at most one retry behind the lease).
    until(Duration::from_secs(40), "all five jobs succeeded", || async {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT job_id) FROM job_runs WHERE job_id = ANY($1) AND status = 'succeeded'",
        )
        .bind(&job_ids)
        .fetch_one(pool)
        .await
        .unwrap();
        (done == 5).then_some(())
    })
    .await;
    let mails = smtp.messages_to(&address("dup"));
    assert_eq!(mails.len(), 1, "one e-mail for five jobs");
    assert_eq!(mails[0].header("Message-ID"), state.3.as_deref());
    assert_eq!(state.1, 1, "claimed once");
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_permanent_rejection_fails_at_once_with_the_servers_reason_and_no_retry() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, &[]).await;
    let pool = &env.db.pool;
    let user_id = user(pool, "reject-nobody", "Nia", "UTC").await;
    let queued = queue(
        &env,
        user_id,
        Template::ReportReady,
        report("Budget"),
        "perm:1",
    )
    .await;
    let delivery_id = staged_id(&queued);
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Email]).await;
    let (_, attempts, error, message_id, sent_at) =
        wait_for_status(pool, delivery_id, "failed", Duration::from_secs(30)).await;
    let error = error.unwrap();
    assert!(
        error.contains("550") && error.contains("User unknown"),
        "the server's reason: {error}"
    );
    assert_eq!((attempts, message_id, sent_at), (1, None, None));
    let dead: (i32, String) = until(Duration::from_secs(10), "the dead letter", || async {
        sqlx::query_as("SELECT attempts, last_error FROM job_dead_letters WHERE job_id = $1")
            .bind(delivery_id)
            .fetch_optional(pool)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(dead.0, 1, "dead at its first attempt: no retry");
    assert!(dead.1.contains("User unknown"), "{}", dead.1);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM job_runs WHERE status = 'retrying'"
        )
        .await,
        0
    );
    assert!(smtp.messages().is_empty());
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_transient_rejection_is_retried_with_the_reason_kept() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, &[]).await;
    let pool = &env.db.pool;
    let user_id = user(pool, "tempfail-busy", "Tia", "UTC").await;
    let queued = queue(
        &env,
        user_id,
        Template::ReportReady,
        report("Budget"),
        "temp:1",
    )
    .await;
    let delivery_id = staged_id(&queued);
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Email]).await;
    until(Duration::from_secs(30), "a retrying attempt", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM job_runs WHERE job_id = $1 AND status = 'retrying'",
        )
        .bind(delivery_id)
        .fetch_one(pool)
        .await
        .unwrap();
        (n >= 1).then_some(())
    })
    .await;
    let (status, attempts, error, ..) = super::delivery(pool, delivery_id).await;
    assert_eq!(
        (status.as_str(), attempts),
        ("queued", 1),
        "back in the queue"
    );
    let error = error.unwrap();
    assert!(error.contains("451"), "{error}");
    assert_eq!(
        count(pool, "SELECT count(*) FROM job_dead_letters").await,
        0,
        "not dead"
    );
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn smtp_down_then_up_delivers_everything_and_loses_nothing() {
    let mut smtp = SmtpServer::start();
    let env = env_with(&smtp, &[]).await;
    let pool = &env.db.pool;
    smtp.stop();
    let mut ids = Vec::new();
    for i in 0..20 {
        let user_id = user(pool, &format!("outage{i}"), "Ola", "UTC").await;
        let queued = queue(
            &env,
            user_id,
            Template::ReportReady,
            report("Monthly"),
            &format!("outage:{i}"),
        )
        .await;
        ids.push(staged_id(&queued));
    }
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Email]).await;
    until(Duration::from_secs(30), "every first attempt failed", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM email_deliveries WHERE status = 'queued' AND attempts = 1 AND last_error IS NOT NULL",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        (n == 20).then_some(())
    })
    .await;
    assert!(smtp.messages().is_empty());
    smtp.restart();
    // The first retry comes 7.5–15 s after the failure.
    until(Duration::from_secs(60), "all delivered", || async {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM email_deliveries WHERE status = 'sent'")
                .fetch_one(pool)
                .await
                .unwrap();
        (n == 20).then_some(())
    })
    .await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 20, "each once");
    let mut message_ids: Vec<&str> = mails
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    message_ids.sort();
    message_ids.dedup();
    assert_eq!(message_ids.len(), 20);
    assert_eq!(
        count(pool, "SELECT count(*) FROM job_dead_letters").await,
        0
    );
    worker.stop().await.unwrap();
}

/// An outage longer than the retry budget: the delivery fails with the last reason, the job is a dead
/// letter, and an operator's retry from `/ops` delivers it once SMTP is back. (The job's budget here is
/// two attempts instead of the catalog's nine, so the test takes seconds, not half an hour.)
#[tokio::test]
async fn an_outage_longer_than_the_retry_budget_dead_letters_and_an_operator_retry_delivers() {
    let mut smtp = SmtpServer::start();
    let vars = email_vars(&smtp);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::spawn_with(&vars).await;
    let pool = &app.db.pool;
    let user_id = user(pool, "budget", "Bo", "UTC").await;
    // Scheduled for later, so no job is staged; the test pushes one with a budget of two attempts.
    let mut conn = pool.acquire().await.unwrap();
    let queued = mingus_common::email::deliveries::queue(
        &mut conn,
        &mingus_common::email::deliveries::NewDelivery {
            user_id: Some(user_id),
            recipient: None,
            template: Template::ReportReady,
            data: report("Yearly"),
            dedupe_key: "budget:1".into(),
            scheduled_for: chrono::Utc::now() + chrono::Duration::days(1),
        },
    )
    .await
    .unwrap();
    assert_eq!(queued, Queued::Scheduled);
    drop(conn);
    let delivery_id: Uuid = sqlx::query_scalar("SELECT id FROM email_deliveries")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut envelope = Envelope::new(&SendEmail { delivery_id }, delivery_id).unwrap();
    envelope.max_attempts = 2;
    let enqueuer = mingus_common::jobs::Enqueuer::new(
        mingus_common::cache::connect(&app.config.redis)
            .await
            .unwrap(),
        app.redis_prefix.clone(),
    );
    enqueuer.push(&[envelope], None, None).await.unwrap();
    smtp.stop();
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Email]).await;
    let (_, attempts, error, ..) =
        wait_for_status(pool, delivery_id, "failed", Duration::from_secs(40)).await;
    assert_eq!(attempts, 2);
    let error = error.unwrap();
    assert!(error.starts_with("gave up after 2 attempts"), "{error}");
    until(Duration::from_secs(10), "the dead letter", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM job_dead_letters WHERE job_id = $1")
            .bind(delivery_id)
            .fetch_one(pool)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    assert!(smtp.messages().is_empty());

    smtp.restart();
    let response = app
        .client
        .post(app.url(&format!("/ops/jobs/{delivery_id}/retry")))
        .bearer_auth("test-admin-token-0123456789abcdef01234567")
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "retry: {}",
        response.status()
    );
    let (_, attempts, error, message_id, _) =
        wait_for_status(pool, delivery_id, "sent", Duration::from_secs(30)).await;
    assert_eq!((attempts, error), (3, None));
    let mails = smtp.messages_to(&address("budget"));
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].header("Message-ID"), message_id.as_deref());
    worker.stop().await.unwrap();
}

/// A server that accepts connections and never greets: the connect timeout turns it into a transient
/// failure within `SMTP_CONNECT_TIMEOUT_SECS`, and the delivery waits for its retry.
#[tokio::test]
async fn a_server_that_never_answers_times_out_as_a_transient_failure() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        for _ in 0..100 {
            match silent.accept().await {
                Ok((socket, _)) => sockets.push(socket),
                Err(_) => break,
            }
        }
    });
    let smtp = SmtpServer::start();
    let url = format!("smtp://127.0.0.1:{port}");
    let env = env_with(
        &smtp,
        &[("SMTP_URL", &url), ("SMTP_CONNECT_TIMEOUT_SECS", "1")],
    )
    .await;
    let pool = &env.db.pool;
    let user_id = user(pool, "silent", "Sil", "UTC").await;
    let queued = queue(
        &env,
        user_id,
        Template::ReportReady,
        report("Budget"),
        "silent:1",
    )
    .await;
    let delivery_id = staged_id(&queued);
    let started = std::time::Instant::now();
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Email]).await;
    let error: String = until(Duration::from_secs(15), "a timed-out attempt", || async {
        sqlx::query_scalar("SELECT error FROM job_runs WHERE job_id = $1 AND status = 'retrying'")
            .bind(delivery_id)
            .fetch_optional(pool)
            .await
            .unwrap()
    })
    .await;
    assert!(error.contains("SMTP_CONNECT_TIMEOUT_SECS"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the timeout"
    );
    let (status, attempts, last_error, ..) = super::delivery(pool, delivery_id).await;
    assert_eq!((status.as_str(), attempts), ("queued", 1));
    assert!(last_error.unwrap().contains("longer than 1 s"));
    worker.stop().await.unwrap();
    held.abort();
}

/// An invitee has no account: the delivery names only the address; it is sent like any other.
#[tokio::test]
async fn a_recipient_without_an_account_gets_the_invitation() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, &[]).await;
    let pool = &env.db.pool;
    let mut conn = pool.acquire().await.unwrap();
    let queued = mingus_common::email::deliveries::queue(
        &mut conn,
        &mingus_common::email::deliveries::NewDelivery {
            user_id: None,
            recipient: Some(address("invitee")),
            template: Template::TeamInvitation,
            data: json!({"inviter_name": "Jordan Lee", "team_name": "Lee Family", "role": "member",
                         "accept_url": "https://app.mingus.test/invitations/tm_1", "expires_at": null}),
            dedupe_key: "invite:tm_1".into(),
            scheduled_for: chrono::Utc::now(),
        },
    )
    .await
    .unwrap();
    drop(conn);
    let delivery_id = staged_id(&queued);
    mingus_common::jobs::outbox::push_after_commit(
        pool,
        &env.enqueuer,
        &[queued.envelope().unwrap()],
    )
    .await;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Email]).await;
    wait_for_status(pool, delivery_id, "sent", Duration::from_secs(30)).await;
    let mails = smtp.messages_to(&address("invitee"));
    assert_eq!(mails.len(), 1);
    assert!(mails[0].text.as_deref().unwrap().starts_with("Hi there,"));
    worker.stop().await.unwrap();
}
