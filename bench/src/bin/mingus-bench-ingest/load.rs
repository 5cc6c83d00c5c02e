//! The load: signed, distinct `customer.subscription.updated` events, prepared before the clock starts,
//! sent by `mingus_bench::load`; afterwards every event must be stored with its outbox row.

use mingus_api::webhooks::signature::sign;
use mingus_bench::{Report, Request, Scratch, Target, load};

use crate::setup::SECRET;

fn body(run: &str, n: usize, created: i64) -> Vec<u8> {
    format!(
        r#"{{"id":"evt_bench_{run}_{n}","object":"event","type":"customer.subscription.updated","api_version":"2025-03-31.basil","created":{created},"livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},"data":{{"object":{{"id":"sub_bench_{n}","object":"subscription","customer":"cus_bench_{n}","status":"active","cancel_at_period_end":false,"items":{{"object":"list","data":[{{"id":"si_bench_{n}","object":"subscription_item","current_period_start":{created},"current_period_end":{},"price":{{"id":"price_bench","object":"price","lookup_key":"professional_monthly","currency":"usd","unit_amount":2900,"recurring":{{"interval":"month","interval_count":1}}}}}}]}}}}}}}}"#,
        created + 30 * 24 * 3600
    )
    .into_bytes()
}

fn prepare(run: &str, events: usize) -> Vec<Request> {
    let now = chrono::Utc::now().timestamp();
    (0..events)
        .map(|n| {
            let payload = body(run, n, now);
            let mac: String = sign(SECRET, now, &payload)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Request::post_json("/webhooks/stripe", payload)
                .header("stripe-signature", &format!("t={now},v1={mac}"))
        })
        .collect()
}

/// Sends `events` new events (ids `evt_bench_{run}_…`: `run` names the run and the side) to `target`.
pub async fn run(
    scratch: &Scratch,
    target: &Target,
    events: usize,
    connections: usize,
    run: &str,
) -> anyhow::Result<Report> {
    let report = load::run(target, prepare(run, events), connections).await?;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE id LIKE $1")
        .bind(format!("evt_bench_{run}_%"))
        .fetch_one(&scratch.pool)
        .await?;
    anyhow::ensure!(
        stored as usize == events - report.errors,
        "stored {stored} of {events}"
    );
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_outbox o JOIN stripe_events e ON e.job_id = o.job_id WHERE e.id LIKE $1",
    )
    .bind(format!("evt_bench_{run}_%"))
    .fetch_one(&scratch.pool)
    .await?;
    anyhow::ensure!(queued == stored, "{queued} outbox rows for {stored} events");
    Ok(report)
}
