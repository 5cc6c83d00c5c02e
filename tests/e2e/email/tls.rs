//! `SMTP_URL` with STARTTLS and with implicit TLS, against aiosmtpd serving a certificate signed by a
//! test CA (`SMTP_TLS_CA_FILE`); plain SMTP to a server that requires STARTTLS is refused for good.

use std::time::Duration;

use mingus_common::email::Template;
use mingus_common::queue::Queue;
use mingus_tests::{SmtpServer, TestWorker, Tls};
use serde_json::json;

use super::{address, env_with, queue, staged_id, user, wait_for_status};

#[tokio::test]
async fn starttls_and_implicit_tls_deliver_and_plain_smtp_to_a_starttls_only_server_fails() {
    let cases = [
        (
            Tls::StartTls,
            "smtp://127.0.0.1:{port}?tls=required",
            "sent",
        ),
        (Tls::Implicit, "smtps://127.0.0.1:{port}", "sent"),
        (Tls::StartTls, "smtp://127.0.0.1:{port}", "failed"),
    ];
    for (i, (tls, url, outcome)) in cases.into_iter().enumerate() {
        let smtp = SmtpServer::start_with(tls);
        let url = url.replace("{port}", &smtp.port.to_string());
        let ca = smtp.ca_file().to_string_lossy().into_owned();
        let env = env_with(&smtp, &[("SMTP_URL", &url), ("SMTP_TLS_CA_FILE", &ca)]).await;
        let pool = &env.db.pool;
        let local = format!("tls{i}");
        let user_id = user(pool, &local, "Tam", "UTC").await;
        let queued = queue(
            &env,
            user_id,
            Template::ReportReady,
            json!({"report_id": "r-tls", "report_name": "Secure"}),
            "tls:1",
        )
        .await;
        let worker = TestWorker::spawn(env.config.clone(), &[Queue::Email]).await;
        let (_, _, error, ..) =
            wait_for_status(pool, staged_id(&queued), outcome, Duration::from_secs(30)).await;
        let delivered = smtp.messages_to(&address(&local));
        if outcome == "sent" {
            assert_eq!(delivered.len(), 1, "{url}");
        } else {
            assert!(delivered.is_empty(), "{url}");
            let error = error.unwrap();
            assert!(
                error.contains("530") && error.contains("STARTTLS"),
                "{url}: {error}"
            );
        }
        worker.stop().await.unwrap();
    }
}
