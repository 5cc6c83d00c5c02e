//! The operator dashboard in a real headless Chromium, driven over WebDriver (chromedriver): sign in with
//! the admin token, find a dead job, press Retry, watch it succeed; find a failed Stripe event, read its
//! payload and error, press Replay, watch it processed. The customer page's actions: `dashboard_customer`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use mingus_common::jobs::catalog::BenchNoop;
use mingus_common::jobs::{Enqueuer, outbox};
use mingus_common::queue::Queue;
use mingus_common::stripe_api::store_event;
use mingus_tests::stripe::{self as fx, ApiShape, status_of};
use mingus_tests::wait::{count, until};
use mingus_tests::{TestApp, TestWorker};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const LIMIT: Duration = Duration::from_secs(30);

/// chromedriver on a free loopback port, in a process group of its own; the group (chromedriver and the
/// browser it started) is stopped by its id when this is dropped, even when the test fails.
pub(crate) struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    pub(crate) fn start() -> Self {
        use std::os::unix::process::CommandExt;
        assert!(
            std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists(),
            "Chromium and chromedriver are needed: apt-get install chromium chromium-driver (deploy/local/test.sh does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile =
            std::env::temp_dir().join(format!("mingus-chromium-{port}-{}", std::process::id()));
        Driver {
            child,
            port,
            profile,
        }
    }

    pub(crate) async fn browser(&self) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1400,1900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", self.profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({ "goog:chromeOptions": { "binary": CHROMIUM, "args": args } });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a browser session starts")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver's pid is its group id (process_group(0)).
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Waits (bounded) until the CSS selector matches a displayed element.
pub(crate) async fn visible(client: &Client, css: &str) -> fantoccini::elements::Element {
    let started = Instant::now();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && element.is_displayed().await.unwrap_or(false)
        {
            return element;
        }
        assert!(started.elapsed() < LIMIT, "timed out waiting for {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn text_of(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

pub(crate) async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, png).unwrap();
    path
}

/// Scrolls an element to the middle of the window (clear of the sticky top bar, whatever scrolling the
/// page is doing) and clicks it.
pub(crate) async fn click(client: &Client, css: &str) {
    let element = visible(client, css).await;
    client
        .execute(
            "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})",
            vec![serde_json::to_value(&element).unwrap()],
        )
        .await
        .unwrap();
    element.click().await.unwrap();
}

/// Searches the customer panel for `q` and opens `user`'s page from the results.
pub(crate) async fn open_customer(client: &Client, q: &str, user: Uuid) {
    visible(client, "#customer-search input[name=q]")
        .await
        .send_keys(q)
        .await
        .unwrap();
    click(client, "#customer-search button[type=submit]").await;
    click(
        client,
        &format!(r#"#customers a[data-customer-id="{user}"]"#),
    )
    .await;
}

/// Signs in with the admin token and waits for the dashboard.
pub(crate) async fn sign_in(client: &Client, app: &TestApp) {
    client.goto(&app.url("/ops")).await.unwrap();
    let token = app.config.admin_token.as_ref().unwrap().expose_secret();
    visible(client, "#login-form input[name=token]")
        .await
        .send_keys(token)
        .await
        .unwrap();
    client
        .find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    visible(client, "#queues").await;
}

#[tokio::test]
async fn an_operator_signs_in_and_retries_a_dead_job_from_the_dashboard() {
    let app = TestApp::spawn().await;
    let redis = mingus_common::cache::connect(&app.config.redis)
        .await
        .unwrap();
    let enqueuer = Enqueuer::new(redis, app.redis_prefix.clone());
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Bench]).await;
    // Two ordinary jobs for the chart, and one that dies in its first life and succeeds when retried.
    enqueuer
        .enqueue_many(&[BenchNoop::default(), BenchNoop::default()])
        .await
        .unwrap();
    let job = BenchNoop {
        fail_generations: 1,
        mark: Some("dashboard-retry".into()),
        ..Default::default()
    };
    let job_id = enqueuer.enqueue(&job, Default::default()).await.unwrap();
    until(LIMIT, "the job to die", || async {
        (count(
            &app.db.pool,
            "SELECT count(*) FROM job_dead_letters WHERE retried_at IS NULL",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;

    let driver = Driver::start();
    let client = driver.browser().await;
    client.goto(&app.url("/ops")).await.unwrap();
    let field = visible(&client, "#login-form input[name=token]").await;
    assert!(client.source().await.unwrap().contains("Sign in"));
    // A wrong token keeps us on the login page with a message.
    field.send_keys("not-the-token").await.unwrap();
    client
        .find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    visible(&client, ".login-card .error").await;
    let token = app
        .config
        .admin_token
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let field = visible(&client, "#login-form input[name=token]").await;
    field.clear().await.unwrap();
    field.send_keys(&token).await.unwrap();
    client
        .find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The dashboard, with the dead job listed once the script has loaded the JSON.
    visible(&client, "#queues").await;
    let row = format!(r#"#dead tr[data-job-id="{job_id}"]"#);
    visible(&client, &row).await;
    let live = until(LIMIT, "the live status", || async {
        let text = text_of(&client, "#live-status").await;
        text.starts_with("live · updated").then_some(text)
    })
    .await;
    assert!(!live.contains("offline"));
    assert!(
        text_of(&client, &row)
            .await
            .contains("asked to fail generation 0")
    );
    assert_eq!(text_of(&client, "#total-dead").await, "1");
    assert!(
        !client.source().await.unwrap().contains(&token),
        "the page never shows the token"
    );
    let before = screenshot(&client, "mingus-dashboard-dead.png").await;

    client
        .find(Locator::Css(&format!(
            r#"#dead button[data-action="retry"][data-job-id="{job_id}"]"#
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let flash = visible(&client, "#flash").await.text().await.unwrap();
    assert!(flash.contains("retried"), "{flash}");
    until(LIMIT, "the dead list to empty", || async {
        (text_of(&client, "#dead-empty")
            .await
            .contains("No dead jobs"))
        .then_some(())
    })
    .await;
    until(LIMIT, "the retried job to succeed", || async {
        let done = count(
            &app.db.pool,
            &format!(
                "SELECT count(*) FROM job_runs WHERE job_id = '{job_id}' AND status = 'succeeded'"
            ),
        )
        .await;
        (done == 1).then_some(())
    })
    .await;
    assert_eq!(
        count(
            &app.db.pool,
            "SELECT count(*) FROM bench_marks WHERE mark = 'dashboard-retry'"
        )
        .await,
        1
    );

    // Its story, in the detail panel: four attempts, the last one succeeded.
    let link = format!(r#"#runs a[data-job-id="{job_id}"]"#);
    visible(&client, &link).await.click().await.unwrap();
    until(LIMIT, "the detail panel", || async {
        let facts = text_of(&client, "#job-facts").await;
        let rows = client
            .find_all(Locator::Css("#job-attempts tbody tr"))
            .await
            .map(|r| r.len())
            .unwrap_or(0);
        (facts.contains("succeeded") && rows == 4).then_some(())
    })
    .await;
    assert_eq!(text_of(&client, "#total-dead").await, "0");
    let after = screenshot(&client, "mingus-dashboard-retried.png").await;
    println!("screenshots: {} {}", before.display(), after.display());

    client.close().await.unwrap();
    drop(driver);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn an_operator_reads_a_failed_stripe_event_and_replays_it_from_the_dashboard() {
    let app = TestApp::spawn().await;
    let redis = mingus_common::cache::connect(&app.config.redis)
        .await
        .unwrap();
    let enqueuer = Enqueuer::new(redis, app.redis_prefix.clone());
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::StripeEvents]).await;
    // A checkout naming a user who does not exist yet: processing fails it permanently.
    let user_id = Uuid::new_v4();
    let session = fx::checkout(
        ApiShape::Basil,
        "cus_dash",
        &user_id.to_string(),
        "sub_dash",
    );
    let now = chrono::Utc::now().timestamp();
    let event = fx::envelope(
        ApiShape::Basil,
        "evt_dashboard",
        "checkout.session.completed",
        now,
        session,
    );
    let mut conn = app.db.pool.acquire().await.unwrap();
    let stored = store_event(&mut conn, &event, app.config.stripe.mode)
        .await
        .unwrap();
    drop(conn);
    assert!(outbox::push_after_commit(&app.db.pool, &enqueuer, &[stored.envelope.unwrap()]).await);
    until(LIMIT, "the event to fail", || async {
        (status_of(&app.db.pool, "evt_dashboard").await == "failed").then_some(())
    })
    .await;
    // The nightly drift report counts the failed event.
    let report = mingus_common::billing::drift::local(&app.db.pool)
        .await
        .unwrap();
    mingus_common::billing::drift::store(&app.db.pool, "local", report.checked, &report.items)
        .await
        .unwrap();

    let driver = Driver::start();
    let client = driver.browser().await;
    sign_in(&client, &app).await;
    let row = r#"#stripe-events tr[data-event-id="evt_dashboard"]"#;
    visible(&client, row).await;
    let drift = r#"#stripe-drift [data-drift-source="local"]"#;
    assert_eq!(text_of(&client, &format!("{drift} b")).await, "1");
    assert!(
        text_of(&client, drift)
            .await
            .contains("event_stuck evt_dashboard"),
        "{}",
        text_of(&client, drift).await
    );
    assert!(text_of(&client, row).await.contains("does not exist"));
    assert_eq!(
        text_of(&client, r#"#stripe-counts [data-status="failed"] b"#).await,
        "1"
    );
    click(
        &client,
        r#"#stripe-events a[data-event-id="evt_dashboard"]"#,
    )
    .await;
    visible(&client, "#event-detail").await;
    until(LIMIT, "the payload", || async {
        let payload = text_of(&client, "#event-payload").await;
        payload
            .contains(r#""type": "checkout.session.completed""#)
            .then_some(())
    })
    .await;
    assert!(
        text_of(&client, "#event-facts")
            .await
            .contains("does not exist")
    );

    // The cause is fixed; Replay processes the event again.
    sqlx::query("INSERT INTO users (id, email, full_name) VALUES ($1, 'dash@example.com', 'Dash')")
        .bind(user_id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    click(
        &client,
        r#"#stripe-events button[data-action="replay-event"][data-event-id="evt_dashboard"]"#,
    )
    .await;
    let flash = visible(&client, "#flash").await.text().await.unwrap();
    assert!(flash.contains("1 event(s) replayed"), "{flash}");
    until(LIMIT, "the panel to empty", || async {
        (text_of(&client, "#stripe-empty")
            .await
            .contains("No failed"))
        .then_some(())
    })
    .await;
    until(LIMIT, "the event processed", || async {
        (status_of(&app.db.pool, "evt_dashboard").await == "processed").then_some(())
    })
    .await;
    // The open detail follows the replay to its end.
    visible(&client, "#event-facts .pill.processed").await;
    visible(&client, "#event-facts .pill.succeeded").await;
    let linked: Option<String> =
        sqlx::query_scalar("SELECT stripe_customer_id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(linked.as_deref(), Some("cus_dash"));
    let shot = screenshot(&client, "mingus-dashboard-stripe.png").await;
    println!("screenshot: {}", shot.display());

    client.close().await.unwrap();
    drop(driver);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_viewer_signs_in_sees_the_audit_log_no_action_buttons_and_a_customer_page() {
    use mingus_api::ops::{actor::OpsRole, operators};
    let app = TestApp::spawn().await;
    let (_, viewer) = operators::create(&app.db.pool, "vera", OpsRole::Viewer)
        .await
        .unwrap();
    // An action to find in the log: break-glass pauses the bench queue.
    let admin = app.config.admin_token.as_ref().unwrap().expose_secret();
    let paused = app
        .client
        .post(app.url("/ops/queues/bench/pause"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert!(paused.status().is_success());

    let driver = Driver::start();
    let client = driver.browser().await;
    client.goto(&app.url("/ops")).await.unwrap();
    visible(&client, "#login-form input[name=token]")
        .await
        .send_keys(&viewer)
        .await
        .unwrap();
    client
        .find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    visible(&client, "#queues").await;
    assert_eq!(text_of(&client, "#operator").await, "vera · viewer");
    let row = visible(&client, "#audit tbody tr[data-audit-id]").await;
    let text = row.text().await.unwrap();
    assert!(
        text.contains("break-glass") && text.contains("queue.pause") && text.contains("bench"),
        "{text}"
    );
    assert!(
        text.contains(r#"{"paused":false} → {"paused":true}"#),
        "{text}"
    );
    // The paused queue's Resume button exists in the page but a viewer does not see it.
    let resume = client
        .find(Locator::Css(
            r#"#queues button[data-action="resume"][data-queue="bench"]"#,
        ))
        .await
        .unwrap();
    assert!(!resume.is_displayed().await.unwrap());
    visible(&client, "#audit-export button[type=submit]").await;
    assert!(
        !client.source().await.unwrap().contains(&viewer),
        "the page never shows the token"
    );
    screenshot(&client, "mingus-dashboard-audit.png").await;

    // The customer page: find an Essentials customer by the start of their e-mail, open them, and read
    // why custom reports are refused.
    let user: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, full_name) VALUES ('dash.customer@example.com', 'Dash Customer') RETURNING id",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status, current_period_start, current_period_end)
         VALUES ($1, 'essentials', 10.00, 'monthly', 'active', now(), now() + interval '1 month')",
    )
    .bind(user)
    .execute(&app.db.pool)
    .await
    .unwrap();
    sqlx::query("SELECT mingus_recompute_access($1, now())")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    open_customer(&client, "dash.cus", user).await;
    let refused = visible(
        &client,
        r#"#customer-features tr[data-feature="custom_reports"]"#,
    )
    .await;
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("no") && text.contains("feature_not_included"),
        "{text}"
    );
    assert!(
        text_of(&client, "#customer-facts")
            .await
            .contains("essentials")
    );
    // A viewer is shown no customer action.
    let actions = client
        .find(Locator::Css("#customer-actions"))
        .await
        .unwrap();
    assert!(!actions.is_displayed().await.unwrap());
    screenshot(&client, "mingus-dashboard-customer.png").await;
    client.close().await.unwrap();
}
