//! Every template, rendered with realistic data, sent through the worker to the real SMTP server, and
//! read back from its Maildir: both parts, the greeting, the facts, every link, the Message-ID and the
//! unsubscribe headers.

use std::time::Duration;

use mingus_common::email::{Category, Template, unsubscribe};
use mingus_common::queue::Queue;
use mingus_tests::wait::until;
use mingus_tests::{SmtpServer, TestWorker};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{APP_URL, FROM_DOMAIN, PUBLIC_URL, address, env_with, queue, staged_id, user};

/// Realistic data per template (as the billing code, the sweeps and the future features write it),
/// and facts the rendered e-mail must state (in its subject or in both parts).
fn case(template: Template) -> (Value, &'static [&'static str]) {
    let reminder = |kind: &str| {
        json!({"reminder_id": "0b7d4c1e-5a55-4f0e-9a77-0d3c6f1e2a10", "reminder_type": kind,
               "frequency": "weekly", "occurrence": "2026-03-09T13:00:00Z", "message": null, "preferences": {}})
    };
    match template {
        Template::TrialEnding => (
            json!({"subscription": "sub_1QxTrial", "tier": "professional", "trial_end": "2026-12-01T17:00:00Z"}),
            &["Professional", "December 1, 2026"],
        ),
        Template::TrialEnded => (
            json!({"subscription": "sub_1QxTrial", "tier": "essentials", "trial_end": "2026-12-01T17:00:00Z"}),
            &["Essentials", "ended"],
        ),
        Template::PaymentFailed => (
            json!({"invoice": "in_1QxDunning", "amount": "29.00", "currency": "usd", "attempt": 2,
                   "next_payment_attempt": 1_796_947_200, "invoice_url": "https://invoice.stripe.com/i/acct_1/test_in_1QxDunning"}),
            &["$29.00", "attempt 2", "December 10, 2026"],
        ),
        Template::PaymentActionRequired => (
            json!({"invoice": "in_1QxSca", "amount": "990.00", "currency": "usd",
                   "invoice_url": "https://invoice.stripe.com/i/acct_1/test_in_1QxSca"}),
            &["$990.00", "confirm"],
        ),
        Template::RenewalReminder => (
            json!({"subscription": "sub_1QxAnnual", "tier": "executive", "renews_at": "2027-01-15T00:00:00Z"}),
            &["Executive", "renews"],
        ),
        Template::SubscriptionCancelled => (
            json!({"subscription": "sub_1QxGone", "tier": "professional", "ended_at": "2026-11-30T12:00:00Z"}),
            &["Professional", "November 30, 2026"],
        ),
        Template::TeamInvitation => (
            json!({"inviter_name": "Jordan Lee", "team_name": "Lee Family Finances", "role": "member",
                   "accept_url": "https://app.mingus.test/invitations/tm_7f3a?token=abc123&x=1",
                   "expires_at": "2026-12-08T00:00:00Z"}),
            &["Jordan Lee", "Lee Family Finances", "December 7, 2026"],
        ),
        Template::ReportReady => (
            json!({"report_id": "5d2c8a7e-1b3f-4c9d-8e6a-2f4b7c1d9e30", "report_name": "Q3 Cash Flow & Savings"}),
            &["Q3 Cash Flow & Savings"],
        ),
        Template::ReminderHealthCheckin => (reminder("health_checkin"), &["check-in"]),
        Template::ReminderFinancialQuestionnaire => {
            (reminder("financial_questionnaire"), &["questionnaire"])
        }
        Template::ReminderGoalReview => (reminder("goal_review"), &["goals"]),
        Template::ReminderBudgetReview => (reminder("budget_review"), &["budget"]),
        Template::ReminderCustom => (
            json!({"reminder_id": "0b7d4c1e-5a55-4f0e-9a77-0d3c6f1e2a11", "reminder_type": "custom",
                   "frequency": "monthly", "occurrence": "2026-03-09T13:00:00Z",
                   "message": "Move $200 into the emergency fund <before rent>", "preferences": {}}),
            &[
                "Move $200 into the emergency fund",
                "Monday, March 9, 2026 at 9:00 AM EDT",
            ],
        ),
    }
}

#[tokio::test]
async fn every_template_arrives_with_both_parts_its_facts_and_correct_links_and_headers() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, &[]).await;
    let pool = &env.db.pool;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Email]).await;
    let secret = SecretString::from("test-unsubscribe-secret-0123456789abcdef");
    let mut sent = Vec::new();
    for template in Template::ALL {
        let local = format!("pat.{}", template.name());
        let user_id = user(pool, &local, "Pat", "America/New_York").await;
        let (data, facts) = case(template);
        let queued = queue(&env, user_id, template, data, &format!("test:{template}")).await;
        sent.push((template, user_id, local, staged_id(&queued), facts));
    }
    until(
        Duration::from_secs(30),
        "every template delivered",
        || async { (smtp.messages().len() == Template::ALL.len()).then_some(()) },
    )
    .await;

    for (template, user_id, local, delivery_id, facts) in &sent {
        let mails = smtp.messages_to(&address(local));
        assert_eq!(mails.len(), 1, "{template}: one message");
        let mail = &mails[0];
        let (text, html) = (mail.text.as_deref().unwrap(), mail.html.as_deref().unwrap());
        let subject = mail.header("Subject").unwrap();
        assert!(
            !subject.is_empty() && !subject.contains('{'),
            "{template}: {subject}"
        );
        assert_eq!(
            mail.header("Message-ID"),
            Some(format!("<{delivery_id}@{FROM_DOMAIN}>").as_str()),
            "{template}: Message-ID derived from the delivery"
        );
        assert_eq!(
            mail.header("From"),
            Some(format!("Mingus <no-reply@{FROM_DOMAIN}>").as_str())
        );
        assert_eq!(mail.header("To"), Some(address(local).as_str()));
        assert_eq!(mail.header("X-Mingus-Template"), Some(template.name()));
        assert!(
            mail.header("Content-Type")
                .unwrap()
                .starts_with("multipart/alternative")
        );
        assert!(text.starts_with("Hi Pat,"), "{template} text: {text}");
        assert!(html.contains("<p>Hi Pat,</p>"), "{template} html");
        for part in [text, html] {
            assert!(
                !part.contains("{{") && !part.contains("{%"),
                "{template}: raw template"
            );
        }
        let html_unescaped = html
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
        for fact in *facts {
            let in_subject = subject.contains(fact);
            assert!(
                in_subject || (text.contains(fact) && html_unescaped.contains(fact)),
                "{template}: {fact:?} in the subject or both parts\nsubject: {subject}\ntext: {text}"
            );
        }
        // Links: the app, Stripe's hosted invoice, the invitation, or the unsubscribe page — in both parts.
        let text_links = mail.text_links();
        let html_links = mail.html_links();
        assert!(
            !text_links.is_empty(),
            "{template}: a link in the text part"
        );
        for link in text_links.iter().chain(&html_links) {
            assert!(
                link.starts_with(&format!("{APP_URL}/"))
                    || link.starts_with("https://invoice.stripe.com/")
                    || link.starts_with(&format!("{PUBLIC_URL}/unsubscribe?token=")),
                "{template}: unexpected link {link}"
            );
        }
        for link in &html_links {
            assert!(
                text_links.contains(link),
                "{template}: {link} also in the text part"
            );
        }
        match template.category() {
            Category::Transactional => {
                assert_eq!(mail.header_count("List-Unsubscribe"), 0, "{template}");
                assert!(!text.contains("/unsubscribe"), "{template}");
            }
            Category::Reminders => {
                let header = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
                let url = header.trim_start_matches('<').trim_end_matches('>');
                assert!(url.starts_with(&format!("{PUBLIC_URL}/unsubscribe?token=")));
                assert_eq!(
                    mail.header("List-Unsubscribe-Post"),
                    Some("List-Unsubscribe=One-Click")
                );
                assert!(
                    text_links.iter().any(|l| l == url),
                    "{template}: link in text"
                );
                assert!(
                    html_links.iter().any(|l| l == url),
                    "{template}: link in html"
                );
                let token = url.rsplit_once("token=").unwrap().1;
                assert_eq!(
                    unsubscribe::verify(&secret, token),
                    Ok((*user_id, Category::Reminders)),
                    "{template}: the token names this user"
                );
            }
        }
    }
    // Specific renderings: the invitation URL survives HTML escaping; user text is escaped in HTML.
    let invite = &smtp.messages_to(&address("pat.team_invitation"))[0];
    assert!(
        invite
            .html_links()
            .contains(&"https://app.mingus.test/invitations/tm_7f3a?token=abc123&x=1".to_owned())
    );
    let custom = &smtp.messages_to(&address("pat.reminder_custom"))[0];
    assert!(
        custom
            .html
            .as_deref()
            .unwrap()
            .contains("&lt;before rent&gt;")
    );
    assert!(custom.text.as_deref().unwrap().contains("<before rent>"));
    // Accepted by the server, then marked: every delivery ends `sent` with its Message-ID.
    until(Duration::from_secs(10), "every delivery marked sent", || async {
        let sent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM email_deliveries WHERE status = 'sent' AND message_id IS NOT NULL",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        (sent == Template::ALL.len() as i64).then_some(())
    })
    .await;
    worker.stop().await.unwrap();
}
