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
//!
//! A [`Target`] is the API itself over plain HTTP, or nginx in front of it over HTTPS (a certificate
//! the caller trusts by file): the same connections and requests either way, so the two compare.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::http::{HeaderName, HeaderValue, Method};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

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

/// Where the load goes: one address or several (connection *i* goes to address *i* mod their count,
/// a client-side round robin over API instances), the Host header, and TLS when the target is HTTPS.
#[derive(Clone)]
pub struct Target {
    addresses: Vec<String>,
    host: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Target {
    /// `http://host:port`: the API's own listener.
    pub fn http(base_url: &str) -> anyhow::Result<Self> {
        let address = base_url
            .strip_prefix("http://")
            .with_context(|| format!("{base_url} is not http://host:port"))?
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            host: address.clone(),
            addresses: vec![address],
            tls: None,
        })
    }

    /// Several `http://host:port` API instances, the connections spread evenly over them.
    pub fn http_spread(base_urls: &[String]) -> anyhow::Result<Self> {
        let mut target = Self::http(base_urls.first().context("no API instance")?)?;
        for url in &base_urls[1..] {
            target.addresses.extend(Self::http(url)?.addresses);
        }
        Ok(target)
    }

    /// `https://name:port` connected at `address` (the name need not resolve: it is the TLS server
    /// name and the Host header), trusting only the PEM certificates in `ca_file`.
    pub fn https(url: &str, address: &str, ca_file: &std::path::Path) -> anyhow::Result<Self> {
        let host = url
            .strip_prefix("https://")
            .with_context(|| format!("{url} is not https://name:port"))?
            .trim_end_matches('/')
            .to_owned();
        let name = host
            .rsplit_once(':')
            .map_or(host.as_str(), |(name, _)| name);
        let server_name = ServerName::try_from(name.to_owned())
            .with_context(|| format!("{name} is not a TLS server name"))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_file)
            .with_context(|| format!("cannot read {}", ca_file.display()))?
        {
            roots.add(cert?)?;
        }
        // ring: the provider the workspace's rustls is built with (explicit, as a second provider
        // enabled by another crate would make the process-wide default ambiguous).
        let config = ClientConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            addresses: vec![address.to_owned()],
            host,
            tls: Some((TlsConnector::from(Arc::new(config)), server_name)),
        })
    }

    /// An open keep-alive connection (opened before the clock starts, so connecting is not measured).
    async fn connect(&self, connection: usize) -> anyhow::Result<Sender> {
        let address = &self.addresses[connection % self.addresses.len()];
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connect to {address}"))?;
        stream.set_nodelay(true)?;
        let sender = match &self.tls {
            None => {
                let (sender, conn) = http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender
            }
            Some((connector, name)) => {
                let stream = connector.connect(name.clone(), stream).await?;
                let (sender, conn) = http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender
            }
        };
        Ok(sender)
    }
}

async fn connection(
    index: usize,
    mut sender: Sender,
    target: Target,
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
            .header(hyper::header::HOST, target.host.as_str());
        for (name, value) in &prepared.headers {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(prepared.body.clone()))?;
        // A server may close a keep-alive connection after so many requests (nginx's
        // keepalive_requests): open a new one, as any HTTP client would.
        if sender.ready().await.is_err() {
            sender = target.connect(index).await?;
            sender.ready().await?;
        }
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

/// Sends `requests` over `connections` connections to `target`, closed-loop.
pub async fn run(
    target: &Target,
    requests: Vec<Request>,
    connections: usize,
) -> anyhow::Result<Report> {
    run_paced(target, requests, connections, None).await
}

/// Sends `requests` at `rate` requests per second, open-loop, over `connections` connections (enough
/// of them that the rate does not wait for answers: a connection carries one request at a time).
pub async fn run_at_rate(
    target: &Target,
    requests: Vec<Request>,
    connections: usize,
    rate: f64,
) -> anyhow::Result<Report> {
    anyhow::ensure!(rate > 0.0, "the rate must be positive");
    run_paced(target, requests, connections, Some(rate)).await
}

async fn run_paced(
    target: &Target,
    requests: Vec<Request>,
    connections: usize,
    rate: Option<f64>,
) -> anyhow::Result<Report> {
    let total = requests.len();
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::with_capacity(connections);
    for index in 0..connections {
        senders.push(target.connect(index).await?);
    }
    let started = Instant::now();
    let pace = rate.map(|rate| Pace {
        start: started,
        rate,
    });
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(index, sender)| {
            tokio::spawn(connection(
                index,
                sender,
                target.clone(),
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

/// Waits until `GET /health/ready` through `target` has answered 200 eight times in a row (enough to
/// reach every instance behind a round-robin proxy), for at most 30 seconds.
pub async fn wait_ready(target: &Target) -> anyhow::Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let mut streak = 0;
    let mut last = String::from("no answer");
    while streak < 8 {
        anyhow::ensure!(Instant::now() < deadline, "not ready after 30 s: {last}");
        let answer = async {
            let mut sender = target.connect(0).await?;
            let request = hyper::Request::get("/health/ready")
                .header(hyper::header::HOST, target.host.as_str())
                .body(Full::new(Bytes::new()))?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            anyhow::Ok(status)
        }
        .await;
        match answer {
            Ok(status) if status.is_success() => streak += 1,
            Ok(status) => (streak, last) = (0, format!("status {status}")),
            Err(error) => (streak, last) = (0, format!("{error:#}")),
        }
        if streak < 8 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
