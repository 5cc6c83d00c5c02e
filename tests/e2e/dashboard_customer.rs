//! The customer page's actions in a real headless Chromium (the harness is `dashboard`'s): find a
//! customer, choose a promotion, see the confirm step, cancel (nothing sent), confirm (granted, audited).

use mingus_tests::TestApp;
use mingus_tests::wait::count;
use serde_json::json;
use uuid::Uuid;

use crate::dashboard::{Driver, click, open_customer, screenshot, sign_in, text_of, visible};

#[tokio::test]
async fn an_operator_grants_a_promotion_from_the_customer_page_only_after_confirming() {
    let app = TestApp::spawn().await;
    let user: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, full_name) VALUES ('promo.customer@example.com', 'Promo Customer') RETURNING id",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let promotions = || {
        count(
            &app.db.pool,
            "SELECT count(*) FROM feature_access WHERE granted_by = 'promotion'",
        )
    };
    let driver = Driver::start();
    let client = driver.browser().await;
    sign_in(&client, &app).await;
    open_customer(&client, "promo.cus", user).await;
    visible(&client, "#promotion-form select[name=feature]")
        .await
        .select_by_value("custom_reports")
        .await
        .unwrap();
    let day = (chrono::Utc::now() + chrono::Duration::days(20)).date_naive();
    // A date input's typing follows the browser's locale; its value is ISO.
    client
        .execute(
            "document.querySelector('#promotion-form input[name=expires]').value = arguments[0]",
            vec![json!(day.to_string())],
        )
        .await
        .unwrap();

    // The first press only asks; Cancel sends nothing.
    click(&client, "#promotion-form button[type=submit]").await;
    let question = text_of(&client, "#customer-confirm-text").await;
    assert!(
        question.contains("custom_reports") && question.contains("promo.customer@example.com"),
        "{question}"
    );
    click(
        &client,
        r#"#customer-confirm button[data-action="cx-cancel"]"#,
    )
    .await;
    assert_eq!(promotions().await, 0);
    click(&client, "#promotion-form button[type=submit]").await;
    click(
        &client,
        r#"#customer-confirm button[data-action="cx-confirm"]"#,
    )
    .await;
    let row = visible(
        &client,
        r#"#customer-grants tr[data-feature="custom_reports"]"#,
    )
    .await;
    assert!(row.text().await.unwrap().contains("promotion"));
    assert_eq!(promotions().await, 1);
    let expires: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT expires_at FROM feature_access WHERE user_id = $1 AND feature_name = 'custom_reports'",
    )
    .bind(user)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(expires.date_naive(), day);
    assert_eq!(
        count(
            &app.db.pool,
            "SELECT count(*) FROM ops_audit_log WHERE action = 'customer.promotion_grant'"
        )
        .await,
        1
    );
    screenshot(&client, "mingus-dashboard-customer-promotion.png").await;
    client.close().await.unwrap();
}
