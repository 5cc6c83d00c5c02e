//! `GET|POST /unsubscribe`: the link from a real reminder e-mail, one-click and the confirmation page,
//! and typed errors for bad tokens.

use std::time::Duration;

use chrono::Utc;
use mingus_common::email::reminders::sweep;
use mingus_common::jobs::Enqueuer;
use mingus_common::queue::Queue;
use mingus_tests::wait::until;
use mingus_tests::{SmtpServer, TestApp, TestWorker};
use serde_json::Value;

use super::{PUBLIC_URL, address, email_vars, user};

async fn suppressions(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as("SELECT category, source FROM email_suppressions")
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_link_in_a_reminder_unsubscribes_in_one_click_and_the_next_reminder_is_suppressed() {
    let smtp = SmtpServer::start();
    let vars = email_vars(&smtp);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::spawn_with(&vars).await;
    let pool = &app.db.pool;
    let user_id = user(pool, "oneclick", "Omar", "UTC").await;
    let reminder: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO reminder_schedules (user_id, reminder_type, scheduled_date, frequency, local_time)
         VALUES ($1, 'goal_review', now(), 'daily', '09:00') RETURNING id",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await
    .unwrap();
    let enqueuer = Enqueuer::new(
        mingus_common::cache::connect(&app.config.redis)
            .await
            .unwrap(),
        app.redis_prefix.clone(),
    );
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Email]).await;
    sweep(pool, Some(&enqueuer), Utc::now()).await.unwrap();
    let mail = until(Duration::from_secs(30), "the reminder", || async {
        smtp.messages_to(&address("oneclick")).into_iter().next()
    })
    .await;
    let header = mail.header("List-Unsubscribe").unwrap();
    let url = header.trim_start_matches('<').trim_end_matches('>');
    let path = url
        .strip_prefix(PUBLIC_URL)
        .expect("points at MINGUS_PUBLIC_URL");

    // A link preview (GET) changes nothing: it shows a confirmation form.
    let page = app.get(path).await;
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("<form method=\"post\""), "{body}");
    assert!(body.contains("reminder e-mails"));
    assert!(suppressions(&app).await.is_empty());

    // RFC 8058 one-click, as a mail client sends it; twice is the same as once.
    for _ in 0..2 {
        let response = app
            .client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        suppressions(&app).await,
        [("reminders".to_owned(), "one_click".to_owned())]
    );

    // The next occurrence (made due now, an hour before the first one's second) is queued as
    // suppressed and never sent.
    sqlx::query(
        "UPDATE reminder_schedules SET scheduled_date = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(reminder)
    .execute(pool)
    .await
    .unwrap();
    let report = sweep(
        pool,
        Some(&enqueuer),
        Utc::now() + chrono::Duration::seconds(1),
    )
    .await
    .unwrap();
    assert_eq!(report.suppressed, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages_to(&address("oneclick")).len(), 1);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn the_button_unsubscribes_and_bad_tokens_get_typed_errors() {
    let app = TestApp::spawn().await;
    let user_id = user(&app.db.pool, "button", "Bea", "UTC").await;
    let secret = secrecy::SecretString::from("test-unsubscribe-secret-0123456789abcdef");
    let token = mingus_common::email::unsubscribe::token(
        &secret,
        user_id,
        mingus_common::email::Category::Reminders,
    );
    let response = app
        .client
        .post(app.url(&format!("/unsubscribe?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        suppressions(&app).await,
        [("reminders".to_owned(), "link".to_owned())]
    );

    let mut forged = token.into_bytes();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for path in [
        "/unsubscribe".to_owned(),
        "/unsubscribe?token=".to_owned(),
        "/unsubscribe?token=%%%".to_owned(),
        format!("/unsubscribe?token={forged}"),
    ] {
        for post in [false, true] {
            let request = if post {
                app.client.post(app.url(&path))
            } else {
                app.client.get(app.url(&path))
            };
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 400, "{path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "invalid_unsubscribe_token", "{path}");
        }
    }
    assert_eq!(suppressions(&app).await.len(), 1, "nothing else recorded");
}

#[tokio::test]
async fn without_a_secret_unsubscribe_answers_503() {
    let app = TestApp::spawn_with(&[("MINGUS_UNSUBSCRIBE_SECRET", "")]).await;
    let response = app.get("/unsubscribe?token=abc").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsubscribe_disabled");
}
