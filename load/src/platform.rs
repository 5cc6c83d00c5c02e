//! The platform under load: our own database (`mingus_load_<random>`), users made by the platform's
//! generator, and the real `mingus-api`, `mingus-worker` and `mingus-scheduler` processes started on it
//! under a Redis key prefix of our own; or an already-running target. Everything is removed at the end.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mingus_common::analytics::generate::{self, Options};
use mingus_common::billing::access;
use mingus_common::db::MIGRATOR;
use mingus_common::jobs::QueueKeys;
use mingus_common::queue::Queue;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use uuid::Uuid;

use crate::args::Args;
use crate::rates::TIER_MIX;

/// The secrets the simulated users need to talk to the platform.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub jwt: String,
    pub admin_token: String,
    pub webhook: String,
}

/// Users by tier, as the scenarios pick them.
#[derive(Debug, Clone, Default)]
pub struct Population {
    pub essentials: Vec<Uuid>,
    pub professional: Vec<Uuid>,
    pub executive: Vec<Uuid>,
}

pub struct Platform {
    pub base_url: String,
    pub secrets: Secrets,
    pub pool: PgPool,
    pub population: Population,
    /// Name and pid of each process we started (empty with --target).
    pub processes: Vec<(String, u32)>,
    owned: Option<Owned>,
}

struct Owned {
    server: PgConnectOptions,
    db_name: String,
    redis_url: String,
    prefix: String,
    children: Vec<Child>,
}

fn random_secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

impl Platform {
    pub async fn start(args: &Args, users: usize) -> anyhow::Result<Self> {
        match &args.target {
            Some(target) => Self::attach(args, target, users).await,
            None => Self::own(args, users).await,
        }
    }

    async fn attach(args: &Args, target: &str, users: usize) -> anyhow::Result<Self> {
        let url = args.database_url.as_deref().context(
            "--target needs --database-url (users are created in the target's database)",
        )?;
        let secrets = Secrets {
            jwt: args
                .jwt_secret
                .clone()
                .context("--target needs MINGUS_JWT_SECRET")?,
            admin_token: args
                .admin_token
                .clone()
                .context("--target needs MINGUS_ADMIN_TOKEN")?,
            webhook: args
                .webhook_secret
                .clone()
                .context("--target needs STRIPE_WEBHOOK_SECRET")?,
        };
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(url)
            .await
            .context("connect to --database-url")?;
        let population = create_users(&pool, users).await?;
        Ok(Self {
            base_url: target.trim_end_matches('/').to_owned(),
            secrets,
            pool,
            population,
            processes: Vec::new(),
            owned: None,
        })
    }

    async fn own(args: &Args, users: usize) -> anyhow::Result<Self> {
        let server = PgConnectOptions::from_str(&args.server_url).context("--server-url")?;
        let db_name = format!("mingus_load_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let mut admin = server
            .clone()
            .database("postgres")
            .connect()
            .await
            .context("connect to PostgreSQL")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut admin)
            .await
            .context("CREATE DATABASE")?;
        admin.close().await.ok();
        let prefix = format!("mload{}", &db_name[12..]);
        let mut platform = Self {
            base_url: String::new(),
            secrets: Secrets {
                jwt: random_secret(),
                admin_token: random_secret(),
                webhook: format!("whsec_{}", random_secret()),
            },
            pool: PgPoolOptions::new()
                .max_connections(4)
                .connect_with(server.clone().database(&db_name))
                .await
                .context("connect to the load database")?,
            population: Population::default(),
            processes: Vec::new(),
            owned: Some(Owned {
                server: server.clone(),
                db_name: db_name.clone(),
                redis_url: args.redis_url.clone(),
                prefix,
                children: Vec::new(),
            }),
        };
        // From here on a failure still drops the database: the caller's `stop` runs on every path.
        if let Err(error) = platform.prepare(args, users, &server, &db_name).await {
            platform.stop().await;
            return Err(error);
        }
        Ok(platform)
    }

    async fn prepare(
        &mut self,
        args: &Args,
        users: usize,
        server: &PgConnectOptions,
        db_name: &str,
    ) -> anyhow::Result<()> {
        tokio::time::timeout(Duration::from_secs(300), MIGRATOR.run(&self.pool))
            .await
            .context("migrations timed out")??;
        self.population = create_users(&self.pool, users).await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        self.base_url = format!("http://127.0.0.1:{port}");
        let database_url = format!(
            "postgres://{}@{}:{}/{db_name}",
            server.get_username(),
            server.get_host(),
            server.get_port()
        );
        let owned = self.owned.as_ref().expect("own platform");
        let env: Vec<(&str, String)> = vec![
            ("MINGUS_ENV", "development".into()),
            ("DATABASE_URL", database_url),
            ("REDIS_URL", owned.redis_url.clone()),
            ("REDIS_KEY_PREFIX", owned.prefix.clone()),
            ("MINGUS_API_ADDR", format!("127.0.0.1:{port}")),
            ("MINGUS_JWT_SECRET", self.secrets.jwt.clone()),
            ("MINGUS_ADMIN_TOKEN", self.secrets.admin_token.clone()),
            ("STRIPE_WEBHOOK_SECRETS", self.secrets.webhook.clone()),
            ("SMTP_URL", args.smtp_url.clone()),
            ("MAIL_FROM", "Mingus <noreply@load.mingus.local>".into()),
            ("MINGUS_WORKER_METRICS_ADDR", "off".into()),
            ("MINGUS_SCHEDULER_METRICS_ADDR", "off".into()),
            ("LOG_FORMAT", "json".into()),
            ("RUST_LOG", "warn".into()),
        ];
        let bin_dir = match &args.bin_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("executable has no directory")?
                .to_path_buf(),
        };
        for name in ["mingus-api", "mingus-worker", "mingus-scheduler"] {
            let child = spawn(&bin_dir.join(name), &env)?;
            self.processes.push((name.to_owned(), child.id()));
            self.owned
                .as_mut()
                .expect("own platform")
                .children
                .push(child);
        }
        self.wait_ready().await
    }

    /// Waits (at most 60 s) for `/health/ready`, checking that no started process died.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(owned) = self.owned.as_mut() {
                for (child, (name, _)) in owned.children.iter_mut().zip(&self.processes) {
                    if let Some(status) = child.try_wait()? {
                        bail!(
                            "{name} exited during start-up ({status}); run with LOAD_LOG=1 to see why"
                        );
                    }
                }
            }
            let ready = client
                .get(format!("{}/health/ready", self.base_url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if matches!(&ready, Ok(r) if r.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("{} was not ready within 60 s: {ready:?}", self.base_url);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ends the processes we started (by their pid), drops our database and our Redis keys.
    pub async fn stop(&mut self) {
        let Some(mut owned) = self.owned.take() else {
            return;
        };
        for child in &mut owned.children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut owned.children {
            let started = Instant::now();
            while matches!(child.try_wait(), Ok(None))
                && started.elapsed() < Duration::from_secs(15)
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.pool.close().await;
        if let Ok(mut admin) = owned.server.clone().database("postgres").connect().await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                owned.db_name
            )))
            .execute(&mut admin)
            .await;
        }
        if let Ok(client) = redis::Client::open(owned.redis_url.as_str())
            && let Ok(mut conn) = client.get_multiplexed_async_connection().await
        {
            let _ = mingus_common::cache::delete_prefix(&mut conn, &owned.prefix).await;
            for queue in Queue::ALL {
                let _: redis::RedisResult<()> = redis::cmd("ZREM")
                    .arg("core:apalis:queues:list")
                    .arg(QueueKeys::new(&owned.prefix, queue).workers())
                    .query_async(&mut conn)
                    .await;
            }
        }
    }
}

fn spawn(path: &Path, env: &[(&str, String)]) -> anyhow::Result<Child> {
    let log = std::env::var_os("LOAD_LOG").is_some();
    let mut command = Command::new(path);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(if log { Stdio::inherit() } else { Stdio::null() })
        .stderr(if log { Stdio::inherit() } else { Stdio::null() });
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().with_context(|| {
        format!(
            "start {} (build it first: cargo build --bins)",
            path.display()
        )
    })
}

/// Users, profiles, questionnaires, goals, check-ins and 30 days of activity from the platform's own
/// generator (`mingus_common::analytics::generate`, what `mingus-admin` and the benchmarks use); then a
/// subscription on each user's tier in the seed's mix, written as `mingus_common::seed::demo` and the
/// tests write one (no library function subscribes a batch of users; the Stripe path is what the webhook
/// stream exercises during the run), and the access it grants from `billing::access::recompute`.
pub async fn create_users(pool: &PgPool, users: usize) -> anyhow::Result<Population> {
    let seed = i64::from(rand::random::<u32>());
    generate::generate(
        pool,
        Options {
            users: users as u64,
            days: 30,
            seed,
            end: chrono::Utc::now().date_naive(),
            chunk_users: 500,
            parallel: 2,
        },
        |_| {},
    )
    .await
    .context("generate users")?;
    let (essentials, professional) = (TIER_MIX[0].1, TIER_MIX[0].1 + TIER_MIX[1].1);
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "WITH numbered AS (
             SELECT u.id, (row_number() OVER (ORDER BY u.id) * 1000 / count(*) OVER ()) AS per_mille
             FROM users u WHERE NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = u.id)),
         tiered AS (
             SELECT id, CASE WHEN per_mille < $1 THEN 'essentials' WHEN per_mille < $2 THEN 'professional'
                             ELSE 'executive' END AS tier FROM numbered)
         INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status,
                                    current_period_start, current_period_end)
         SELECT t.id, p.tier_name, p.monthly_price, 'monthly', 'active', now() - interval '10 days',
                now() + interval '20 days'
         FROM tiered t JOIN pricing_tiers p ON p.tier_name = t.tier
         RETURNING user_id, plan_tier",
    )
    .bind(i64::from(essentials))
    .bind(i64::from(professional))
    .fetch_all(pool)
    .await
    .context("subscribe the generated users")?;
    // The entitlements (`feature_access`) the subscriptions grant, recomputed by the platform's own
    // function, as Stripe processing does after every subscription change.
    let now = chrono::Utc::now();
    for chunk in rows.chunks(500) {
        let mut tx = pool.begin().await?;
        for (id, _) in chunk {
            access::recompute(&mut tx, *id, now)
                .await
                .context("recompute access")?;
        }
        tx.commit().await?;
    }
    let mut population = Population::default();
    for (id, tier) in rows {
        match tier.as_str() {
            "essentials" => population.essentials.push(id),
            "professional" => population.professional.push(id),
            _ => population.executive.push(id),
        }
    }
    anyhow::ensure!(
        !population.executive.is_empty(),
        "no executive user was created"
    );
    Ok(population)
}
