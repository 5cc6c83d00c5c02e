//! The load: `connections` tasks sending signed, distinct events until `events` were sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use mingus_api::webhooks::signature::sign;

use crate::setup::{Bench, SECRET};

pub struct Report {
    pub events: usize,
    pub errors: usize,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn body(run: usize, n: usize, created: i64) -> Vec<u8> {
    format!(
        r#"{{"id":"evt_bench_{run}_{n}","object":"event","type":"customer.subscription.updated","api_version":"2025-03-31.basil","created":{created},"livemode":false,"data":{{"object":{{"id":"sub_bench_{n}","object":"subscription","status":"active"}}}}}}"#
    )
    .into_bytes()
}

pub async fn run(
    bench: &Bench,
    events: usize,
    connections: usize,
    run: usize,
) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let url = Arc::new(format!("{}/webhooks/stripe", bench.base_url));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= events {
                    break;
                }
                let now = chrono::Utc::now().timestamp();
                let payload = body(run, n, now);
                let signature: String = sign(SECRET, now, &payload)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let sent = Instant::now();
                let response = client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .header("stripe-signature", format!("t={now},v1={signature}"))
                    .body(payload)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0)
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(events);
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE id LIKE $1")
        .bind(format!("evt_bench_{run}_%"))
        .fetch_one(&bench.pool)
        .await?;
    anyhow::ensure!(
        stored as usize == events - errors,
        "stored {stored} of {events}"
    );
    Ok(Report {
        events,
        errors,
        rate: latencies.len() as f64 / elapsed,
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    })
}
