//! The load: `connections` HTTP/1.1 keep-alive connections sending prepared requests until none are
//! left. Requests are built before the clock starts and each connection is a bare hyper connection, so
//! the load generator (which shares the machine with the API, PostgreSQL and Redis) spends as little
//! CPU as it can.
//!
//! Two modes: [`run`] is closed-loop (each connection sends its next request as soon as the previous one
//! is answered: the throughput at saturation, and the latency at that saturation); [`run_at_rate`] is
//! open-loop (request *n* is due at `start + n / rate`, whatever the server is doing: the latency a
//! given traffic sees). Open-loop latencies count from the moment a request was due, so a server that
//! falls behind is charged for the queue it builds (no coordinated omission, as in wrk2) — except when
//! its connection was idle and only the generator's timer woke late (tokio's timer has millisecond
//! resolution), where the clock starts at the actual send.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::http::{HeaderName, HeaderValue, Method};
use tokio::net::TcpStream;

/// One prepared request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Request {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn post_json(path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            headers: vec![(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: body.into(),
        }
    }

    /// Adds a header (panics on a value that is not a valid header value: benchmark input is ours).
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("a valid header value"),
        ));
        self
    }
}

/// What a run measured. Latencies are of successful (2xx) requests.
#[derive(Debug, Clone)]
pub struct Report {
    pub requests: usize,
    pub errors: usize,
    /// The first non-2xx status seen, for the error message.
    pub first_error: Option<u16>,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

struct Connection {
    latencies: Vec<f64>,
    errors: usize,
    first_error: Option<u16>,
}

/// When request `n` is due in an open-loop run.
#[derive(Debug, Clone, Copy)]
struct Pace {
    start: Instant,
    rate: f64,
}

impl Pace {
    fn due(&self, n: usize) -> Instant {
        self.start + std::time::Duration::from_secs_f64(n as f64 / self.rate)
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;

/// An open keep-alive connection (opened before the clock starts, so connecting is not measured).
async fn connect(address: &str) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn connection(
    mut sender: Sender,
    address: String,
    requests: Arc<Vec<Request>>,
    next: Arc<AtomicUsize>,
    pace: Option<Pace>,
) -> anyhow::Result<Connection> {
    let mut out = Connection {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
    };
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let Some(prepared) = requests.get(n) else {
            break;
        };
        let mut request = hyper::Request::builder()
            .method(prepared.method.clone())
            .uri(prepared.path.as_str())
            .header(hyper::header::HOST, address.as_str());
        for (name, value) in &prepared.headers {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(prepared.body.clone()))?;
        sender.ready().await?;
        let sent = match pace {
            None => Instant::now(),
            Some(pace) => {
                let due = pace.due(n);
                if Instant::now() < due {
                    tokio::time::sleep_until(due.into()).await;
                    Instant::now()
                } else {
                    due
                }
            }
        };
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if status.is_success() {
            out.latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        } else {
            out.errors += 1;
            out.first_error.get_or_insert(status.as_u16());
        }
    }
    Ok(out)
}

/// Sends `requests` over `connections` connections to `base_url` (`http://host:port`), closed-loop.
pub async fn run(
    base_url: &str,
    requests: Vec<Request>,
    connections: usize,
) -> anyhow::Result<Report> {
    run_paced(base_url, requests, connections, None).await
}

/// Sends `requests` at `rate` requests per second, open-loop, over `connections` connections (enough
/// of them that the rate does not wait for answers: a connection carries one request at a time).
pub async fn run_at_rate(
    base_url: &str,
    requests: Vec<Request>,
    connections: usize,
    rate: f64,
) -> anyhow::Result<Report> {
    anyhow::ensure!(rate > 0.0, "the rate must be positive");
    run_paced(base_url, requests, connections, Some(rate)).await
}

async fn run_paced(
    base_url: &str,
    requests: Vec<Request>,
    connections: usize,
    rate: Option<f64>,
) -> anyhow::Result<Report> {
    let address = base_url
        .strip_prefix("http://")
        .context("the API listens on http")?
        .to_owned();
    let total = requests.len();
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(&address).await?);
    }
    let started = Instant::now();
    let pace = rate.map(|rate| Pace {
        start: started,
        rate,
    });
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            tokio::spawn(connection(
                sender,
                address.clone(),
                requests.clone(),
                next.clone(),
                pace,
            ))
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let (mut errors, mut first_error) = (0, None);
    for task in tasks {
        let done = task.await??;
        latencies.extend(done.latencies);
        errors += done.errors;
        first_error = first_error.or(done.first_error);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(Report {
        requests: total,
        errors,
        first_error,
        rate: latencies.len() as f64 / elapsed,
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    })
}
