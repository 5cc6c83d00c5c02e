//! The revenue facts through the real paths: the nightly schedule's tick → the outbox → the
//! `analytics.revenue_rollup` job on a worker; `mingus-admin revenue backfill` as a process; and what
//! `/ops/business/metrics` answers from them.

use std::process::Command;
use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use mingus_api::ops::actor::OpsRole;
use mingus_api::ops::operators;
use mingus_common::cron::{CronTable, fire_due};
use mingus_common::jobs::Job;
use mingus_common::jobs::revenue_jobs::RevenueRollup;
use mingus_common::queue::Queue;
use mingus_common::revenue;
use mingus_tests::wait::{count, until};
use mingus_tests::{JobEnv, TestApp, TestWorker, binary};
use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::{daily_rows, generate, insert, reference};

#[tokio::test]
async fn the_nightly_tick_computes_the_35_days_before_it_through_the_outbox_and_a_worker() {
    let env = JobEnv::new().await;
    let tick_day = Utc::now().date_naive() - Days::new(3);
    let (from, to) = revenue::nightly_range(tick_day);
    let mut rng = StdRng::seed_from_u64(77);
    let history = generate(&mut rng, from - Days::new(100), 20);
    insert(&env.db.pool, &history).await;

    let schedule = CronTable::defaults().get("revenue_rollup").unwrap().clone();
    assert_eq!(schedule.expression.source(), "0 45 0 * * *");
    let table = CronTable::new(vec![schedule]).unwrap();
    let first = (tick_day - Days::new(1))
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    fire_due(&env.db.pool, &env.enqueuer, &table, first, "test").await;
    let due = tick_day.and_hms_opt(0, 45, 5).unwrap().and_utc();
    let report = fire_due(&env.db.pool, &env.enqueuer, &table, due, "test").await;
    assert_eq!(report.fired.len(), 1, "{report:?}");

    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Analytics]).await;
    let sql = format!(
        "SELECT count(*) FROM job_runs WHERE kind = '{}' AND status = 'succeeded'",
        RevenueRollup::SPEC.kind
    );
    until(Duration::from_secs(60), "the revenue job", || async {
        (count(&env.db.pool, &sql).await == 1).then_some(())
    })
    .await;
    worker.stop().await.unwrap();
    let summary: String = sqlx::query_scalar("SELECT args_summary FROM job_runs WHERE kind = $1")
        .bind(RevenueRollup::SPEC.kind)
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(summary, format!("{from}..={to}"));
    let rows = daily_rows(&env.db.pool, from - Days::new(10), to + Days::new(10)).await;
    assert_eq!(
        rows,
        reference::daily(&history.changes, &history.payments, from, to),
        "exactly the 35 days, as the reference computes them"
    );
    let outbox: i64 = count(
        &env.db.pool,
        "SELECT count(*) FROM job_outbox WHERE completed_at IS NULL",
    )
    .await;
    assert_eq!(outbox, 0, "the outbox row is settled");
}

fn backfill(env: &JobEnv, args: &[&str]) -> std::process::Output {
    Command::new(binary("mingus-admin"))
        .args(["revenue", "backfill"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &env.db.url)
        .env("REDIS_URL", env.config.redis.url.expose_secret())
        .env("DATABASE_MAX_CONNECTIONS", "2")
        .env("DATABASE_MIN_CONNECTIONS", "0")
        .output()
        .expect("mingus-admin runs")
}

#[tokio::test]
async fn the_backfill_command_fills_any_range_and_refuses_a_reversed_one_without_writing() {
    let env = JobEnv::new().await;
    let base: NaiveDate = "2025-06-01".parse().unwrap();
    let mut rng = StdRng::seed_from_u64(78);
    let history = generate(&mut rng, base, 15);
    insert(&env.db.pool, &history).await;

    let refused = backfill(&env, &["--from", "2025-09-01", "--to", "2025-08-01"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("empty or longer"), "{stderr}");
    let written: i64 = count(&env.db.pool, "SELECT count(*) FROM revenue_daily").await;
    assert_eq!(written, 0);

    let (from, to): (NaiveDate, NaiveDate) =
        ("2025-06-01".parse().unwrap(), "2025-12-31".parse().unwrap());
    let done = backfill(&env, &["--from", "2025-06-01", "--to", "2025-12-31"]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stdout).contains("revenue facts of 214 day(s)"));
    assert_eq!(
        daily_rows(&env.db.pool, from, to).await,
        reference::daily(&history.changes, &history.payments, from, to)
    );
}

async fn metrics(app: &TestApp, bearer: &str, query: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url(&format!("/ops/business/metrics{query}")))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_viewer_reads_the_business_metrics_and_bad_parameters_get_a_typed_400() {
    let app = TestApp::spawn().await;
    let (_, viewer) = operators::create(&app.db.pool, "ann", OpsRole::Viewer)
        .await
        .unwrap();
    let (status, empty) = metrics(&app, &viewer, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["as_of"], Value::Null);
    assert_eq!(empty["targets"]["retention"]["met"], Value::Null);

    let to = Utc::now().date_naive() - Days::new(1);
    let mut rng = StdRng::seed_from_u64(79);
    let history = generate(&mut rng, to - Days::new(200), 40);
    insert(&app.db.pool, &history).await;
    let from = to - Days::new(400);
    revenue::compute(&app.db.pool, from, to).await.unwrap();
    let expected = reference::daily(&history.changes, &history.payments, to, to);

    let (status, body) = metrics(&app, &viewer, "?currency=usd&days=30").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["as_of"], to.to_string());
    assert_eq!(body["currency"], "USD");
    let usd = expected.iter().find(|r| r.currency == "USD").unwrap();
    let mrr: f64 = usd.mrr.try_into().unwrap();
    assert!((body["mrr"].as_f64().unwrap() - mrr).abs() < 1e-6, "{body}");
    assert!((body["arr"].as_f64().unwrap() - 12.0 * mrr).abs() < 1e-4);
    assert_eq!(body["customers"], usd.customers);
    assert_eq!(body["daily"].as_array().unwrap().len(), 30);
    assert_eq!(body["tiers"].as_array().unwrap().len(), 30);
    assert!(
        body["currencies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["currency"] != "USD")
    );
    // Each month's MRR at its end is its start plus its movements; months chain.
    let months = body["months"].as_array().unwrap();
    assert!(months.len() >= 6, "{months:?}");
    for m in months {
        let start = m["customers_start"].as_f64().unwrap();
        match m["logo_churn"].as_f64() {
            Some(rate) => {
                assert!((rate - m["churned_customers"].as_f64().unwrap() / start).abs() < 1e-9)
            }
            None => assert_eq!(start, 0.0, "{m}"),
        }
    }
    for pair in months.windows(2) {
        assert!(
            (pair[0]["mrr_end"].as_f64().unwrap() - pair[1]["mrr_start"].as_f64().unwrap()).abs()
                < 1e-6
        );
    }
    let cohorts = body["cohorts"].as_array().unwrap();
    assert!(!cohorts.is_empty());
    for c in cohorts {
        let size = c["customers"].as_i64().unwrap();
        assert!(
            c["retained"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r.as_i64().unwrap() <= size)
        );
    }
    for key in ["conversion", "revenue_growth", "retention"] {
        let t = &body["targets"][key];
        assert!(t["target"].as_f64().unwrap() > 0.0, "{t}");
        if let Some(v) = t["value"].as_f64() {
            assert_eq!(t["met"], v >= t["target"].as_f64().unwrap(), "{t}");
        }
    }

    for (query, code) in [
        ("?currency=dollars", "invalid_currency"),
        ("?days=0", "invalid_days"),
        ("?days=99999", "invalid_days"),
        ("?days=x", "invalid_days"),
    ] {
        let (status, body) = metrics(&app, &viewer, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }
    let page = app
        .client
        .get(app.url("/ops/business"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("/ops/assets/business.js")
    );
}
