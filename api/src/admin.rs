//! The `mingus-admin` ops CLI. Later work adds commands here (replay, reconcile, backfill, …).

use anyhow::Context;
use clap::{Parser, Subcommand};
use mingus_common::config::Needs;
use mingus_common::db::{self, MIGRATOR};
use mingus_common::{Config, seed};
use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;

#[derive(Debug, Parser)]
#[command(
    name = "mingus-admin",
    about = "Operator commands for the Mingus job platform",
    version
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates the database named in DATABASE_URL when it does not exist yet.
    CreateDatabase,
    /// Applies pending migrations (default), or reverts down to a version, or lists their state.
    Migrate {
        /// Revert every migration newer than this version (0 reverts all).
        #[arg(long, value_name = "VERSION")]
        down_to: Option<i64>,
        /// Only print which migrations are applied.
        #[arg(long, conflicts_with = "down_to")]
        status: bool,
    },
    /// Inserts a small set of demo users, profiles and subscriptions (idempotent).
    SeedDemo,
    /// Creates (or updates) the owner and API login roles of a production database; run as a superuser.
    CreateRoles {
        /// File holding the owner role's password.
        #[arg(long, value_name = "FILE")]
        owner_password_file: std::path::PathBuf,
        /// File holding the API role's password.
        #[arg(long, value_name = "FILE")]
        api_password_file: std::path::PathBuf,
        #[arg(long, default_value = "mingus_owner")]
        owner_role: String,
        #[arg(long, default_value = "mingus_api")]
        api_role: String,
    },
    /// Checks invariants nothing else watches (feature access matching subscriptions); exits 1 when one
    /// is broken, unless --repair fixed it.
    Doctor {
        /// Write the fixes (each user in a transaction of its own).
        #[arg(long)]
        repair: bool,
    },
    /// Stripe operations: replay stored events, fetch undelivered ones, reconcile subscriptions.
    #[command(subcommand)]
    Stripe(crate::admin_stripe::StripeCommand),
    /// Named operators of /ops: create (prints the token once), disable, list.
    #[command(subcommand)]
    Operators(crate::admin_operators::OperatorsCommand),
    /// Analytics: generate synthetic data, backfill the daily rollup.
    #[command(subcommand)]
    Analytics(crate::admin_analytics::AnalyticsCommand),
    /// Revenue and retention facts: backfill any range of days.
    #[command(subcommand)]
    Revenue(crate::admin_revenue::RevenueCommand),
    /// Monthly partitions: premake, rescue, retire.
    #[command(subcommand)]
    Partitions(crate::admin_analytics::PartitionsCommand),
    /// Imports the Flask app's development SQLite database (or --verify / --rollback a batch).
    ImportSqlite(crate::admin_import::ImportArgs),
    /// Writes a development SQLite database with realistic dirt, for trying and testing the import.
    SqliteFixture(crate::admin_import::FixtureArgs),
}

impl Command {
    /// The settings this command uses: production asks for no secret a command does not use (the
    /// migrate unit gets nothing but `DATABASE_URL`).
    pub fn needs(&self) -> Needs {
        match self {
            // Replays, fetches and backfills enqueue jobs.
            Command::Stripe(_) | Command::Analytics(_) => Needs {
                redis: true,
                ..Needs::DATABASE
            },
            _ => Needs::DATABASE,
        }
    }
}

pub async fn execute(cli: Cli, config: &Config) -> anyhow::Result<()> {
    match cli.command {
        Command::CreateDatabase => create_database(config).await,
        Command::Stripe(command) => crate::admin_stripe::execute(command, config).await,
        Command::Analytics(command) => crate::admin_analytics::analytics(command, config).await,
        Command::Operators(command) => crate::admin_operators::execute(command, config).await,
        Command::Partitions(command) => crate::admin_analytics::partitions(command, config).await,
        Command::Revenue(command) => crate::admin_revenue::execute(command, config).await,
        Command::ImportSqlite(args) => crate::admin_import::import(args, config).await,
        Command::SqliteFixture(args) => crate::admin_import::generate_fixture(args),
        Command::Migrate {
            down_to: None,
            status: false,
        } => {
            let pool = db::connect(&config.database)
                .await
                .context("cannot connect to DATABASE_URL")?;
            MIGRATOR.run(&pool).await.context("migration failed")?;
            println!(
                "migrations applied: {}",
                applied_versions(&pool).await?.len()
            );
            Ok(())
        }
        Command::Migrate {
            down_to: Some(target),
            ..
        } => {
            let pool = db::connect(&config.database)
                .await
                .context("cannot connect to DATABASE_URL")?;
            MIGRATOR
                .undo(&pool, target)
                .await
                .context("revert failed")?;
            println!("reverted down to version {target}");
            Ok(())
        }
        Command::Migrate { status: true, .. } => {
            let pool = db::connect(&config.database)
                .await
                .context("cannot connect to DATABASE_URL")?;
            let applied = applied_versions(&pool).await?;
            for migration in MIGRATOR
                .iter()
                .filter(|m| m.migration_type.is_up_migration())
            {
                let state = if applied.contains(&migration.version) {
                    "applied"
                } else {
                    "pending"
                };
                println!("{} {state:8} {}", migration.version, migration.description);
            }
            Ok(())
        }
        Command::SeedDemo => {
            let pool = db::connect(&config.database)
                .await
                .context("cannot connect to DATABASE_URL")?;
            let users = seed::demo(&pool).await?;
            println!("demo data ready: {users} users");
            Ok(())
        }
        Command::CreateRoles {
            owner_password_file,
            api_password_file,
            owner_role,
            api_role,
        } => {
            let roles = crate::admin_roles::Roles {
                owner_password: crate::admin_roles::read_password(&owner_password_file)?,
                api_password: crate::admin_roles::read_password(&api_password_file)?,
                owner: owner_role,
                api: api_role,
            };
            let mut conn = PgConnectOptions::from_str(config.database.url.expose_secret())
                .context("invalid DATABASE_URL")?
                .connect()
                .await
                .context("cannot connect to DATABASE_URL")?;
            crate::admin_roles::create(&mut conn, &roles).await?;
            println!("roles ready: {} (owner), {} (api)", roles.owner, roles.api);
            Ok(())
        }
        Command::Doctor { repair } => {
            let pool = db::connect(&config.database)
                .await
                .context("cannot connect to DATABASE_URL")?;
            let report = crate::admin_doctor::run(&pool, repair).await?;
            crate::admin_doctor::print(&report);
            anyhow::ensure!(report.healthy(), "invariants broken (see above)");
            Ok(())
        }
    }
}

async fn applied_versions(pool: &sqlx::PgPool) -> anyhow::Result<Vec<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?,
    )
}

/// Connects to the server's `postgres` database and creates ours if it is missing.
async fn create_database(config: &Config) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(config.database.url.expose_secret())
        .context("invalid DATABASE_URL")?;
    let name = options
        .get_database()
        .context("DATABASE_URL names no database")?
        .to_owned();
    let mut conn = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("cannot connect to the server")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if exists {
        println!("database {name} exists");
    } else {
        // Identifiers cannot be bound as parameters; the name is quoted with its quotes doubled.
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await?;
        println!("database {name} created");
    }
    conn.close().await?;
    Ok(())
}
