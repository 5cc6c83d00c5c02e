//! The benchmarks through the production proxies: nginx (TLS, HTTP/1.1 keep-alive to an upstream of
//! API instances) and PgBouncer (session mode) in front of PostgreSQL, beside the same API reached
//! directly, in the same run. The proxies are started outside (`deploy/production/ci/bench-proxied.sh`
//! renders the committed nginx and PgBouncer files); this side serves the API instances nginx's
//! upstream names, with `DATABASE_URL` through PgBouncer, and builds the two [`Target`]s.
//!
//! Both sides are the same: as many API instances as nginx's upstream names, each with the production
//! pool (`mingus.env.example`: 10 connections). Directly, the load generator spreads its connections
//! over the instances itself and they connect to PostgreSQL; through the proxies, nginx spreads them
//! and they connect through PgBouncer. So the comparison measures the proxies, not a different number
//! of instances (each instance batches webhook inserts and usage reads on its own).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use super::{Scratch, load::Target};

/// The benchmark binaries' options for the proxied comparison (all or none).
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// nginx's public URL, `https://name:port`: also measure every run through nginx and PgBouncer.
    #[arg(long, requires_all = ["nginx_address", "nginx_ca", "upstreams", "pgbouncer"])]
    pub via_nginx: Option<String>,
    /// Where nginx listens (`127.0.0.1:port`; the URL's name need not resolve).
    #[arg(long)]
    pub nginx_address: Option<String>,
    /// The PEM certificate nginx serves, trusted by the load generator.
    #[arg(long)]
    pub nginx_ca: Option<PathBuf>,
    /// The addresses in nginx's upstream block: an API instance is served on each.
    #[arg(long, value_delimiter = ',')]
    pub upstreams: Vec<SocketAddr>,
    /// PgBouncer, `postgres://user@host:port`: the proxied instances' database URL (the scratch
    /// database's name is appended).
    #[arg(long)]
    pub pgbouncer: Option<String>,
    /// Database connections per API instance (`DATABASE_MAX_CONNECTIONS`, as in production).
    #[arg(long, default_value_t = 10)]
    pub pool_per_instance: u32,
}

impl ProxyArgs {
    /// Whether the proxied comparison was asked for.
    pub fn enabled(&self) -> bool {
        self.via_nginx.is_some()
    }

    /// What the two sides are, printed before the figures.
    pub fn describe(&self) -> String {
        format!(
            "direct: {n} API instances, the load generator's connections spread over them, PostgreSQL \
             reached directly; via nginx + PgBouncer: {n} more behind nginx, PostgreSQL through \
             PgBouncer; {pool} database connections per instance",
            n = self.upstreams.len(),
            pool = self.pool_per_instance
        )
    }

    /// `DATABASE_MAX_CONNECTIONS` of every instance, direct or proxied.
    pub fn pool(&self) -> String {
        self.pool_per_instance.to_string()
    }

    /// The direct side: the scratch API and as many more instances (on free ports, the same settings)
    /// as the proxied side has, the load spread over them.
    pub async fn start_direct(&self, scratch: &Scratch) -> anyhow::Result<Target> {
        let mut urls = vec![scratch.base_url.clone()];
        for _ in 1..self.upstreams.len() {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            urls.push(format!("http://{}", listener.local_addr()?));
            scratch.spawn_api(listener, &[])?;
        }
        Target::http_spread(&urls)
    }

    /// Serves an API instance on every upstream address, its database reached through PgBouncer, and
    /// returns the target through nginx once nginx answers `/health/ready` through them.
    pub async fn start(&self, scratch: &Scratch) -> anyhow::Result<Target> {
        let (Some(url), Some(address), Some(ca), Some(pgbouncer)) = (
            &self.via_nginx,
            &self.nginx_address,
            &self.nginx_ca,
            &self.pgbouncer,
        ) else {
            anyhow::bail!("--via-nginx needs --nginx-address, --nginx-ca and --pgbouncer");
        };
        anyhow::ensure!(!self.upstreams.is_empty(), "--upstreams names no address");
        let database_url = format!(
            "{}/{}",
            pgbouncer.trim_end_matches('/'),
            scratch.database_name()
        );
        let pool = self.pool();
        for upstream in &self.upstreams {
            let listener = tokio::net::TcpListener::bind(upstream)
                .await
                .with_context(|| format!("cannot listen on upstream {upstream}"))?;
            scratch.spawn_api(
                listener,
                &[
                    ("DATABASE_URL", database_url.as_str()),
                    ("DATABASE_MAX_CONNECTIONS", pool.as_str()),
                    // As in production: the client's address comes from nginx's X-Forwarded-For.
                    ("MINGUS_TRUSTED_PROXIES", "127.0.0.1"),
                ],
            )?;
        }
        let target = Target::https(url, address, ca)?;
        super::load::wait_ready(&target)
            .await
            .with_context(|| format!("no healthy API through nginx at {url}"))?;
        Ok(target)
    }
}
