//! A worker killed between the SMTP server's acceptance and the `sent` mark: after the lease expires
//! the re-run sends it again — at most one duplicate, with the same Message-ID.

use std::time::Duration;

use mingus_common::email::Template;
use mingus_common::queue::Queue;
use mingus_tests::wait::until;
use mingus_tests::{SmtpServer, TestWorker, WorkerProcess};
use serde_json::json;

use super::{FROM_DOMAIN, address, email_vars, env_with, queue, staged_id, user};

#[tokio::test]
async fn a_worker_killed_after_acceptance_sends_at_most_one_duplicate_with_the_same_message_id() {
    let smtp = SmtpServer::start();
    let fast_orphans = [
        ("MINGUS_WORKER_HEARTBEAT_SECS", "1"),
        ("MINGUS_WORKER_MISSED_HEARTBEATS", "3"),
    ];
    let env = env_with(&smtp, &fast_orphans).await;
    let pool = &env.db.pool;
    let user_id = user(pool, "crash", "Kim", "UTC").await;
    let queued = queue(
        &env,
        user_id,
        Template::ReportReady,
        json!({"report_id": "r-crash", "report_name": "Net worth"}),
        "crash:1",
    )
    .await;
    let delivery_id = staged_id(&queued);

    // The victim: the real binary, pausing 60 s between the server's acceptance and the mark.
    let mut vars = email_vars(&smtp);
    vars.extend(
        fast_orphans
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    vars.push((
        "MINGUS_EMAIL_TEST_PAUSE_AFTER_ACCEPT_MS".into(),
        "60000".into(),
    ));
    vars.push((
        "MINGUS_UNSUBSCRIBE_SECRET".into(),
        "test-unsubscribe-secret-0123456789abcdef".into(),
    ));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut victim = WorkerProcess::start(&env, "email", &vars);
    until(
        Duration::from_secs(30),
        "the server accepted it",
        || async { (smtp.messages_to(&address("crash")).len() == 1).then_some(()) },
    )
    .await;
    let (status, ..) = super::delivery(pool, delivery_id).await;
    assert_eq!(status, "sending", "accepted but not marked: the window");
    victim.signal("KILL");
    victim.wait(Duration::from_secs(5));

    // The rescuer re-runs the orphaned job; the lease (10 s) expires, the delivery is claimed again.
    let rescuer = TestWorker::spawn(env.config.clone(), &[Queue::Email]).await;
    let (_, attempts, _, message_id, _) =
        super::wait_for_status(pool, delivery_id, "sent", Duration::from_secs(60)).await;
    assert_eq!(attempts, 2, "claimed by the victim, then by the rescuer");
    let expected = format!("<{delivery_id}@{FROM_DOMAIN}>");
    assert_eq!(message_id.as_deref(), Some(expected.as_str()));
    let mails = smtp.messages_to(&address("crash"));
    assert!(
        (1..=2).contains(&mails.len()),
        "at most one duplicate, got {}",
        mails.len()
    );
    for mail in &mails {
        assert_eq!(mail.header("Message-ID"), Some(expected.as_str()));
    }
    rescuer.stop().await.unwrap();
}
