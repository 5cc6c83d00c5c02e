//! `mingus-bench-email`: e-mails per second to a local SMTP server, beside what that server accepts from
//! a minimal client in the same run.
//!
//! `cargo run --release -p mingus-bench --bin mingus-bench-email -- --emails 2000 --runs 3`
//!
//! Starts its own aiosmtpd (Debian's python3-aiosmtpd, the Maildir handler, as `deploy/local` runs it)
//! on a free loopback port, a database and Redis prefix of its own (as `mingus-bench`), and per run:
//! 1. **server ceiling**: a minimal raw-socket SMTP client (`--connections` connections, one message
//!    transaction after another on each: MAIL, RCPT, DATA, body; no TLS, no pool logic);
//! 2. **sender only**: our `Mailer` (lettre's client under our pool) sending the same bytes;
//! 3. **the e-mail job path**: `--emails` deliveries (rows, outbox rows, jobs pushed), then one worker
//!    runtime serving the `email` queue, as `mingus-worker --queues email` does: claim with a lease,
//!    render, send, mark sent — until every delivery is `sent`.
//!
//! Each phase checks its count of messages in the Maildir. Rates are messages divided by the time from
//! the first to the last message (phase 3: first `sent_at` to last); medians over `--runs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use clap::Parser;
use mingus_common::Config;
use mingus_common::email::deliveries::{self, NewDelivery, Queued};
use mingus_common::email::smtp::Mailer;
use mingus_common::email::templates::{RenderInput, render};
use mingus_common::email::{Template, message};
use mingus_common::jobs::{Envelope, outbox};
use mingus_common::queue::Queue;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use mingus_bench::BenchEnv;
use mingus_bench::stats;

/// The platform's allocator, as every binary's (why: `api/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "mingus-bench-email",
    about = "E-mails per second to a local SMTP server, beside that server's ceiling",
    version
)]
struct Options {
    /// Messages per phase and run.
    #[arg(long, default_value_t = 2000)]
    emails: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// SMTP connections (the raw client's, and SMTP_POOL_SIZE of ours).
    #[arg(long, default_value_t = 10)]
    connections: usize,
    /// Concurrent jobs of the worker's `email` queue.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    ensure!(options.emails > 0 && options.runs > 0 && options.connections > 0);
    let smtp = Aiosmtpd::start()?;
    let bench = BenchEnv::create().await?;
    let result = run(&options, &smtp, &bench).await;
    bench.destroy().await?;
    result
}

async fn run(options: &Options, smtp: &Aiosmtpd, bench: &BenchEnv) -> anyhow::Result<()> {
    let config = Arc::new(config(options, smtp, bench)?);
    let sample = sample_message(&config)?;
    println!(
        "aiosmtpd on 127.0.0.1:{} (Maildir {}), {} messages of {} bytes per phase, {} connections, {} runs",
        smtp.port,
        smtp.maildir.display(),
        options.emails,
        sample.1.len(),
        options.connections,
        options.runs
    );
    let (mut ceiling, mut sender, mut jobs, mut ratios) = (vec![], vec![], vec![], vec![]);
    for run in 1..=options.runs {
        let raw = raw_client(smtp, options, &sample.1).await?;
        let ours = mailer_only(&config, smtp, options, &sample).await?;
        let (path, wall) = job_path(&config, smtp, bench, options).await?;
        println!(
            "run {run}: server ceiling {raw:.0}/s · sender only {ours:.0}/s · e-mail jobs {path:.0}/s \
             ({wall:.0}/s from worker start) · jobs ÷ ceiling {:.2}",
            path / raw
        );
        ceiling.push(raw);
        sender.push(ours);
        jobs.push(path);
        ratios.push(path / raw);
    }
    let show = |name: &str, values: &[f64], unit: &str| {
        let (median, min, max) = stats::summary(values);
        println!("{name:<42} median {median:>8.2}{unit} ({min:.2}–{max:.2})");
    };
    println!();
    show("server ceiling (raw client)", &ceiling, "/s");
    show("sender only (Mailer, pooled)", &sender, "/s");
    show("e-mail jobs (rows → worker → SMTP → sent)", &jobs, "/s");
    show("e-mail jobs ÷ server ceiling", &ratios, "");
    Ok(())
}

fn config(options: &Options, smtp: &Aiosmtpd, bench: &BenchEnv) -> anyhow::Result<Config> {
    let vars = [
        ("DATABASE_URL", bench.db_url.clone()),
        ("DATABASE_MAX_CONNECTIONS", "20".to_owned()),
        ("REDIS_URL", bench.redis_url.clone()),
        ("REDIS_KEY_PREFIX", bench.prefix.clone()),
        ("SMTP_URL", format!("smtp://127.0.0.1:{}", smtp.port)),
        ("MAIL_FROM", "Mingus <no-reply@mingus.bench>".to_owned()),
        ("SMTP_POOL_SIZE", options.connections.to_string()),
        (
            "MINGUS_QUEUE_CONCURRENCY",
            format!("email={}", options.concurrency),
        ),
        ("MINGUS_WORKER_METRICS_ADDR", "off".to_owned()),
        (
            "MINGUS_UNSUBSCRIBE_SECRET",
            "bench-unsubscribe-secret-0123456789abcdef".to_owned(),
        ),
    ];
    Ok(Config::from_vars(vars)?)
}

/// A realistic message (the report-ready e-mail, rendered and formatted) and its bytes.
fn sample_message(config: &Config) -> anyhow::Result<(lettre::Message, Vec<u8>)> {
    let data =
        json!({"report_id": "5d2c8a7e-1b3f-4c9d-8e6a-2f4b7c1d9e30", "report_name": "Q3 Cash Flow"});
    let rendered = render(&RenderInput {
        template: Template::ReportReady,
        data: &data,
        first_name: Some("Pat"),
        timezone: Some("America/New_York"),
        app_url: &config.email.app_url,
        unsubscribe_url: None,
    })?;
    let built = message::build(
        &message::Envelope {
            delivery_id: uuid::Uuid::now_v7(),
            from: &config.email.from,
            from_domain: &config.email.from_domain,
            to: "pat@example.com",
            unsubscribe_url: None,
            template: "report_ready",
        },
        &rendered,
    )?;
    let bytes = built.formatted();
    Ok((built, bytes))
}

/// The server's ceiling: `connections` plain clients, each sending its share back to back.
async fn raw_client(smtp: &Aiosmtpd, options: &Options, body: &[u8]) -> anyhow::Result<f64> {
    let before = smtp.count();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..options.connections {
        let share = options.emails / options.connections
            + usize::from(c < options.emails % options.connections);
        let body = body.to_vec();
        let port = smtp.port;
        tasks.push(tokio::spawn(async move {
            raw_session(port, share, &body).await
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    ensure!(
        smtp.count() - before == options.emails,
        "the raw client's messages did not all arrive"
    );
    Ok(options.emails as f64 / elapsed.as_secs_f64())
}

async fn raw_session(port: u16, messages: usize, body: &[u8]) -> anyhow::Result<()> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, "220").await?;
    write.write_all(b"EHLO bench.local\r\n").await?;
    expect(&mut read, "250").await?;
    let mut framed = body.to_vec();
    framed.extend_from_slice(b"\r\n.\r\n");
    for _ in 0..messages {
        write
            .write_all(b"MAIL FROM:<no-reply@mingus.bench>\r\n")
            .await?;
        expect(&mut read, "250").await?;
        write.write_all(b"RCPT TO:<pat@example.com>\r\n").await?;
        expect(&mut read, "250").await?;
        write.write_all(b"DATA\r\n").await?;
        expect(&mut read, "354").await?;
        // lettre's formatted bytes are CRLF lines; none starts with a dot (nothing to stuff). One
        // write for body and terminator, as for every command: no Nagle stall behind a delayed ACK.
        write.write_all(&framed).await?;
        expect(&mut read, "250").await?;
    }
    write.write_all(b"QUIT\r\n").await?;
    Ok(())
}

/// Reads one (possibly multi-line) reply and checks its code.
async fn expect<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
    code: &str,
) -> anyhow::Result<()> {
    loop {
        let mut line = String::new();
        ensure!(
            read.read_line(&mut line).await? > 0,
            "the server closed the connection"
        );
        ensure!(line.starts_with(code), "expected {code}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

/// Our sender alone: the same bytes through `Mailer` with `connections` pooled connections.
async fn mailer_only(
    config: &Config,
    smtp: &Aiosmtpd,
    options: &Options,
    sample: &(lettre::Message, Vec<u8>),
) -> anyhow::Result<f64> {
    let mailer = Arc::new(Mailer::new(&config.email)?);
    let envelope = sample.0.envelope().clone();
    let before = smtp.count();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..options.connections {
        let share = options.emails / options.connections
            + usize::from(c < options.emails % options.connections);
        let (mailer, envelope, body) = (mailer.clone(), envelope.clone(), sample.1.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                mailer
                    .send_raw(&envelope, &body)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    mailer.shutdown().await;
    ensure!(
        smtp.count() - before == options.emails,
        "the sender's messages did not all arrive"
    );
    Ok(options.emails as f64 / elapsed.as_secs_f64())
}

/// The whole path: deliveries and their jobs, then a worker until every one is `sent`. Returns the
/// rate from the first `sent_at` to the last, and the rate from the worker's start.
async fn job_path(
    config: &Arc<Config>,
    smtp: &Aiosmtpd,
    bench: &BenchEnv,
    options: &Options,
) -> anyhow::Result<(f64, f64)> {
    let pool = &bench.pool;
    bench.reset().await?;
    sqlx::query("TRUNCATE email_deliveries, job_outbox, users CASCADE")
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO users (email, full_name)
         SELECT 'user' || i || '@example.com', 'Bench User ' || i FROM generate_series(1, $1) AS i",
    )
    .bind(options.emails as i64)
    .execute(pool)
    .await?;
    let users: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM users")
        .fetch_all(pool)
        .await?;
    let mut envelopes: Vec<Envelope> = Vec::with_capacity(users.len());
    let mut tx = pool.begin().await?;
    for (i, user_id) in users.iter().enumerate() {
        let queued = deliveries::queue(
            &mut tx,
            &NewDelivery {
                user_id: Some(*user_id),
                recipient: None,
                template: Template::ReportReady,
                data: json!({"report_id": uuid::Uuid::now_v7(), "report_name": format!("Report {i}")}),
                dedupe_key: format!("bench:{}:{i}", bench.prefix),
                scheduled_for: Utc::now(),
            },
        )
        .await?;
        match queued {
            Queued::Staged(envelope) => envelopes.push(envelope),
            other => bail!("expected a staged delivery, got {other:?}"),
        }
    }
    tx.commit().await?;
    ensure!(
        outbox::push_after_commit(pool, &bench.enqueuer, &envelopes).await,
        "push failed"
    );

    let before = smtp.count();
    let started = Instant::now();
    let runtime = mingus_worker::WorkerRuntime::connect(config.clone()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(async move {
        runtime
            .run(&[Queue::Email], async {
                let _ = stopped.await;
            })
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let sent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM email_deliveries WHERE status = 'sent'")
                .fetch_one(pool)
                .await?;
        if sent as usize == options.emails {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {sent} of {} sent in 10 minutes",
            options.emails
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed();
    let _ = stop.send(());
    worker.await??;
    let (first, last): (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("SELECT min(sent_at), max(sent_at) FROM email_deliveries")
            .fetch_one(pool)
            .await?;
    ensure!(
        smtp.count() - before == options.emails,
        "exactly one message per delivery"
    );
    let span = (last - first).to_std()?.as_secs_f64().max(1e-3);
    Ok((
        (options.emails - 1).max(1) as f64 / span,
        options.emails as f64 / wall.as_secs_f64(),
    ))
}

/// aiosmtpd with the Maildir handler on a free loopback port, killed (by its pid) on drop.
struct Aiosmtpd {
    port: u16,
    maildir: PathBuf,
    dir: PathBuf,
    child: Child,
}

impl Aiosmtpd {
    fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("mingus-bench-email-{}", std::process::id()));
        let maildir = dir.join("maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub))?;
        }
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("python3 -m aiosmtpd (apt-get install python3-aiosmtpd)")?;
        let server = Aiosmtpd {
            port,
            maildir,
            dir,
            child,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                started.elapsed() < Duration::from_secs(15),
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(server)
    }

    /// Messages in the Maildir.
    fn count(&self) -> usize {
        count_files(&self.maildir.join("new")) + count_files(&self.maildir.join("cur"))
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
