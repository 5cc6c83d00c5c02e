//! The benchmark's scratch database and API (see `mingus_bench::Scratch`), and pgbench.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use mingus_bench::{ProxyArgs, Scratch, with_sslmode_disable};

pub const SECRET: &str = "whsec_bench_secret";

/// The scratch API with a webhook secret (and, for the comparison through the proxies, the pool of
/// one instance), and pgbench's table beside it.
pub async fn create(proxy: &ProxyArgs) -> anyhow::Result<Scratch> {
    let pool = proxy.pool();
    let mut settings = vec![("STRIPE_WEBHOOK_SECRETS", SECRET)];
    if proxy.enabled() {
        settings.push(("DATABASE_MAX_CONNECTIONS", pool.as_str()));
    }
    let scratch = Scratch::create(&settings).await?;
    sqlx::query("CREATE TABLE pgbench_insert (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .execute(&scratch.pool)
        .await?;
    Ok(scratch)
}

/// pgbench's TPS for a single-row JSONB insert with `clients` connections for `duration`.
pub fn pgbench(scratch: &Scratch, clients: usize, duration: Duration) -> anyhow::Result<f64> {
    let script = std::env::temp_dir().join(format!("{}-insert.sql", scratch.prefix));
    std::fs::write(
        &script,
        "INSERT INTO pgbench_insert (payload) VALUES ('{\"id\":\"evt_x\",\"type\":\"invoice.paid\"}');\n",
    )?;
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &duration.as_secs().to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(with_sslmode_disable(&scratch.database_url))
        .output()
        .context("pgbench is installed (postgresql-contrib)")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| {
            format!(
                "no tps in pgbench output: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}
