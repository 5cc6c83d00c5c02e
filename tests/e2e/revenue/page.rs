//! `/ops/business` in a real headless Chromium: an operator follows the dashboard's link and finds the
//! charts drawn from the facts (MRR line, movements stacked by kind, subscribers by tier, conversion),
//! the cohort grid, the three success metrics with their verdicts, and switches the currency.

use chrono::{Days, Utc};
use fantoccini::Locator;
use mingus_common::revenue;
use mingus_tests::TestApp;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{cohort_rows, generate, insert, reference};
use crate::dashboard::{Driver, click, screenshot, sign_in, text_of, visible};

async fn count(client: &fantoccini::Client, css: &str) -> usize {
    client.find_all(Locator::Css(css)).await.unwrap().len()
}

#[tokio::test]
async fn an_operator_reads_the_business_charts_cohorts_and_targets_in_a_browser() {
    let app = TestApp::spawn().await;
    let to = Utc::now().date_naive() - Days::new(1);
    let mut rng = StdRng::seed_from_u64(80);
    let history = generate(&mut rng, to - Days::new(200), 40);
    insert(&app.db.pool, &history).await;
    revenue::compute(&app.db.pool, to - Days::new(400), to)
        .await
        .unwrap();
    let cohorts = cohort_rows(&app.db.pool).await;
    let cohort_months: std::collections::BTreeSet<_> = cohorts.iter().map(|c| c.0).collect();
    let today = reference::daily(&history.changes, &history.payments, to, to);

    let driver = Driver::start();
    let client = driver.browser().await;
    sign_in(&client, &app).await;
    click(&client, "#business-link").await;
    visible(&client, "body[data-loaded=true]").await;

    assert_eq!(
        text_of(&client, "#as-of").await,
        format!("as of {to} (UTC)")
    );
    assert_eq!(count(&client, "#mrr-chart svg polyline").await, 1);
    let moves = count(&client, "#moves-chart svg rect[data-series]").await;
    assert!(moves >= 6, "movement bars: {moves}");
    for series in ["new", "churn"] {
        assert!(
            count(&client, &format!("#moves-chart rect[data-series={series}]")).await > 0,
            "{series} bars"
        );
    }
    assert!(count(&client, "#tiers-chart svg rect[data-series]").await > 30);
    assert!(count(&client, "#conversion-chart svg rect").await > 0);
    assert_eq!(
        count(&client, "#cohorts tbody tr").await,
        cohort_months.len()
    );
    assert_eq!(count(&client, "#targets .card").await, 3);
    for metric in ["conversion", "revenue_growth", "retention"] {
        let card = text_of(&client, &format!("#targets [data-metric={metric}]")).await;
        assert!(
            card.contains("PASS") || card.contains("FAIL") || card.contains("no data"),
            "{metric}: {card}"
        );
    }
    let usd = today.iter().find(|r| r.currency == "USD").unwrap();
    let shown = text_of(&client, "#mrr").await;
    let whole = usd.mrr.round().to_string();
    let digits: String = shown.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(digits, whole, "MRR shown as {shown}");
    let png = screenshot(&client, "mingus-business.png").await;
    assert!(std::fs::metadata(png).unwrap().len() > 10_000);

    // Another currency: its own MRR, USD listed beside it.
    if let Some(eur) = today.iter().find(|r| r.currency == "EUR") {
        client
            .execute(
                "const s = document.getElementById('currency'); s.value = 'EUR'; \
                 s.dispatchEvent(new Event('change'));",
                vec![],
            )
            .await
            .unwrap();
        let whole = eur.mrr.round().to_string();
        let started = std::time::Instant::now();
        loop {
            let digits: String = text_of(&client, "#mrr")
                .await
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            if digits == whole {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(15),
                "EUR MRR {whole} never shown (last {digits})"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    client.close().await.unwrap();
}
