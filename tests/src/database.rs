//! A database per test, cloned from a migrated template.
//!
//! Running the migrations for each test would cost a second or more; `CREATE DATABASE … TEMPLATE` costs
//! tens of milliseconds. The template's name carries a hash of the migrations and the current month
//! (the migrations premake partitions relative to today), so a change to either builds a new one. An
//! advisory lock makes concurrent test processes build it once.

use std::str::FromStr;

use mingus_common::db::MIGRATOR;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// A database that exists for one test and is dropped (with its connections) when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

fn server_options() -> PgConnectOptions {
    PgConnectOptions::from_str(&crate::database_server_url()).expect("valid TEST_DATABASE_URL")
}

async fn admin_connection() -> PgConnection {
    server_options()
        .database("postgres")
        .connect()
        .await
        .expect("connect to the test PostgreSQL server")
}

fn url_for(name: &str) -> String {
    let base = crate::database_server_url();
    let (head, _) = base
        .rsplit_once('/')
        .expect("TEST_DATABASE_URL has a database path");
    format!("{head}/{name}")
}

async fn execute(conn: &mut PgConnection, statement: String) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(conn)
        .await
        .map(|_| ())
}

fn template_name() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let month = chrono::Utc::now().format("%Y%m").to_string();
    let checksums = MIGRATOR.iter().flat_map(|m| m.checksum.iter().copied());
    for byte in checksums.chain(month.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("mingus_tpl_{:012x}", hash & 0xffff_ffff_ffff)
}

async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut admin = admin_connection().await;
            sqlx::query("SELECT pg_advisory_lock(774411)")
                .execute(&mut admin)
                .await
                .unwrap();
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&name)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
            if !exists {
                let building = format!("{name}_building");
                execute(
                    &mut admin,
                    format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
                )
                .await
                .unwrap();
                execute(&mut admin, format!("CREATE DATABASE {building}"))
                    .await
                    .unwrap();
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&url_for(&building))
                    .await
                    .unwrap();
                MIGRATOR
                    .run(&pool)
                    .await
                    .expect("migrations apply to a fresh database");
                pool.close().await;
                // Renaming last means a crash never leaves a half-migrated template behind.
                execute(
                    &mut admin,
                    format!("ALTER DATABASE {building} RENAME TO {name}"),
                )
                .await
                .unwrap();
            }
            sqlx::query("SELECT pg_advisory_unlock(774411)")
                .execute(&mut admin)
                .await
                .unwrap();
            admin.close().await.ok();
            name
        })
        .await
}

impl TestDb {
    /// A migrated database of its own.
    pub async fn new() -> Self {
        let template = template().await;
        Self::create(Some(template)).await
    }

    /// An empty database (no migrations), for migration tests.
    pub async fn empty() -> Self {
        Self::create(None).await
    }

    async fn create(template: Option<&str>) -> Self {
        let name = format!("mingus_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_connection().await;
        let statement = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        // Two clones of one template at the same instant can collide ("source database is being
        // accessed by other users"): retry briefly.
        let mut attempt = 0;
        loop {
            match execute(&mut admin, statement.clone()).await {
                Ok(()) => break,
                Err(err) if attempt < 50 && err.to_string().contains("being accessed") => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(err) => panic!("cannot create test database: {err}"),
            }
        }
        admin.close().await.ok();
        // TEST_DATABASE_POOLER_URL (deploy/production/ci/pgbouncer-e2e.sh): the test and the processes it
        // starts reach their database through PgBouncer; creating, cloning and dropping stay direct
        // (a template with pooled connections open could not be cloned).
        let url = match std::env::var("TEST_DATABASE_POOLER_URL") {
            Ok(pooler) => {
                let (head, _) = pooler
                    .rsplit_once('/')
                    .expect("TEST_DATABASE_POOLER_URL has a database path");
                format!("{head}/{name}")
            }
            Err(_) => url_for(&name),
        };
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(&url)
            .await
            .expect("connect to test database");
        TestDb { name, url, pool }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside or outside a runtime: do the async cleanup on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = admin_connection().await;
                let _ = execute(
                    &mut admin,
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await;
                admin.close().await.ok();
            });
        });
        let _ = cleanup.join();
    }
}
