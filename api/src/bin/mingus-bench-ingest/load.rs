//! The load: `connections` HTTP/1.1 keep-alive connections sending signed, distinct events until `events`
//! were sent. Bodies and signatures are prepared before the clock starts and each connection is a bare
//! hyper connection, so the load generator (which shares the machine with the API, PostgreSQL and Redis)
//! spends as little CPU as it can — as pgbench, its baseline, does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use mingus_api::webhooks::signature::sign;
use tokio::net::TcpStream;

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
        r#"{{"id":"evt_bench_{run}_{n}","object":"event","type":"customer.subscription.updated","api_version":"2025-03-31.basil","created":{created},"livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},"data":{{"object":{{"id":"sub_bench_{n}","object":"subscription","customer":"cus_bench_{n}","status":"active","cancel_at_period_end":false,"items":{{"object":"list","data":[{{"id":"si_bench_{n}","object":"subscription_item","current_period_start":{created},"current_period_end":{},"price":{{"id":"price_bench","object":"price","lookup_key":"professional_monthly","currency":"usd","unit_amount":2900,"recurring":{{"interval":"month","interval_count":1}}}}}}]}}}}}}}}"#,
        created + 30 * 24 * 3600
    )
    .into_bytes()
}

/// A signed delivery, ready to send.
struct Delivery {
    body: Bytes,
    signature: String,
}

fn prepare(run: usize, events: usize) -> Vec<Delivery> {
    let now = chrono::Utc::now().timestamp();
    (0..events)
        .map(|n| {
            let payload = body(run, n, now);
            let mac: String = sign(SECRET, now, &payload)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Delivery {
                body: Bytes::from(payload),
                signature: format!("t={now},v1={mac}"),
            }
        })
        .collect()
}

/// One keep-alive connection sending deliveries until none are left; latencies in ms and errors.
async fn connection(
    address: String,
    deliveries: Arc<Vec<Delivery>>,
    next: Arc<AtomicUsize>,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let stream = TcpStream::connect(&address).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (mut latencies, mut errors) = (Vec::new(), 0usize);
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let Some(delivery) = deliveries.get(n) else {
            break;
        };
        let request = hyper::Request::post("/webhooks/stripe")
            .header("host", address.as_str())
            .header("content-type", "application/json")
            .header("stripe-signature", delivery.signature.as_str())
            .body(Full::new(delivery.body.clone()))?;
        sender.ready().await?;
        let sent = Instant::now();
        let response = sender.send_request(request).await?;
        let ok = response.status().is_success();
        response.into_body().collect().await?;
        if ok {
            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        } else {
            errors += 1;
        }
    }
    Ok((latencies, errors))
}

pub async fn run(
    bench: &Bench,
    events: usize,
    connections: usize,
    run: usize,
) -> anyhow::Result<Report> {
    let deliveries = Arc::new(prepare(run, events));
    let address = bench
        .base_url
        .strip_prefix("http://")
        .context("the API listens on http")?
        .to_owned();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        tasks.push(tokio::spawn(connection(
            address.clone(),
            deliveries.clone(),
            next.clone(),
        )));
    }
    let mut latencies = Vec::with_capacity(events);
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await??;
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
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_outbox o JOIN stripe_events e ON e.job_id = o.job_id WHERE e.id LIKE $1",
    )
    .bind(format!("evt_bench_{run}_%"))
    .fetch_one(&bench.pool)
    .await?;
    anyhow::ensure!(queued == stored, "{queued} outbox rows for {stored} events");
    Ok(Report {
        events,
        errors,
        rate: latencies.len() as f64 / elapsed,
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    })
}
