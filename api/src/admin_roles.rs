//! `mingus-admin create-roles`: the two login roles of a production database, run once by a superuser
//! (idempotent: running it again resets the passwords and re-applies the grants).
//!
//! - the **owner** (`mingus_owner`) owns the database, its schemas and every object in them: migrations,
//!   the workers and the scheduler log in as it (monthly partition maintenance is DDL);
//! - the **API** role (`mingus_api`) reads and writes rows and nothing else: no DDL, no TRUNCATE, cannot
//!   turn row-level security off, and only adds to the append-only audit log (`ops_audit_log`). It may `SET ROLE mingus_app` (user-scoped transactions, where the RLS
//!   policies apply) and has `BYPASSRLS` itself, since webhook ingest and `/ops` read across users.
//!
//! Passwords come from files (never the command line, which `ps` shows to every local user). The
//! statements carrying them are built server-side with `format(%L)`; PostgreSQL logs them only under
//! `log_statement = ddl` or `all`, which Debian's default and our conf.d fragment leave off.

use anyhow::Context;
use sqlx::{Connection, PgConnection};

/// Tables no login role may change or remove rows of: the blanket grant below is taken back on them
/// (the table's own trigger refuses too; migration …60 does the same for roles that got the default
/// privileges before it ran).
const APPEND_ONLY: [&str; 1] = ["ops_audit_log"];

/// Schemas the migrations create objects in.
const SCHEMAS: [&str; 3] = ["public", "auth", "archive"];

/// The role names (the defaults are the ones the docs and units use; tests pick their own, since roles
/// are cluster-wide).
#[derive(Debug, Clone)]
pub struct Roles {
    pub owner: String,
    pub owner_password: String,
    pub api: String,
    pub api_password: String,
}

/// Runs a statement built by `format()` on the server from the given arguments.
async fn run_formatted(conn: &mut PgConnection, template: &str, args: &[&str]) -> sqlx::Result<()> {
    let placeholders: Vec<String> = (1..=args.len()).map(|i| format!("${i}")).collect();
    let select = format!("SELECT format('{template}', {})", placeholders.join(", "));
    // Safe: `template` is one of this file's constants; every name and password is a bound argument
    // that the server's format() quotes (%I, %L).
    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(select));
    for arg in args {
        query = query.bind(*arg);
    }
    let statement = query.fetch_one(&mut *conn).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn ensure_login_role(
    conn: &mut PgConnection,
    name: &str,
    password: &str,
) -> anyhow::Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        run_formatted(conn, "CREATE ROLE %I LOGIN", &[name]).await?;
    }
    run_formatted(conn, "ALTER ROLE %I LOGIN PASSWORD %L", &[name, password])
        .await
        .with_context(|| format!("cannot set the password of {name}"))?;
    Ok(())
}

/// Every object of the migrations' schemas not owned by `owner` (extension members excepted: they
/// belong to the extension), as `ALTER … OWNER TO` statements.
const REASSIGN: &str = "
SELECT format('ALTER %s %s OWNER TO %I',
              CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
              c.oid::regclass, $1)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($2) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND pg_get_userbyid(c.relowner) <> $1
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
UNION ALL
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, $1)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY($2) AND pg_get_userbyid(p.proowner) <> $1
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, $1)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = ANY($2) AND t.typtype IN ('e', 'd') AND pg_get_userbyid(t.typowner) <> $1
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')";

/// Creates or updates both roles on the database `conn` is connected to, in one transaction.
pub async fn create(conn: &mut PgConnection, roles: &Roles) -> anyhow::Result<()> {
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut *conn)
            .await?;
    anyhow::ensure!(
        superuser,
        "create-roles must run as a superuser (e.g. sudo -u postgres): it creates roles and grants BYPASSRLS"
    );
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *conn)
        .await?;
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = ANY($1)")
            .bind(SCHEMAS)
            .fetch_all(&mut *conn)
            .await?;
    let (owner, api) = (roles.owner.as_str(), roles.api.as_str());
    let mut tx = conn.begin().await?;
    ensure_login_role(&mut tx, owner, &roles.owner_password).await?;
    ensure_login_role(&mut tx, api, &roles.api_password).await?;
    sqlx::raw_sql(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mingus_app') THEN
             CREATE ROLE mingus_app NOLOGIN NOBYPASSRLS;
           END IF;
         END $$",
    )
    .execute(&mut *tx)
    .await?;

    // The owner: the database, the schemas and what is in them (migrations run before this, by a
    // superuser, left objects owned by that superuser).
    run_formatted(
        &mut tx,
        "ALTER DATABASE %I OWNER TO %I",
        &[&database, owner],
    )
    .await?;
    run_formatted(
        &mut tx,
        "ALTER ROLE %I NOSUPERUSER NOCREATEROLE NOBYPASSRLS",
        &[owner],
    )
    .await?;
    for schema in &schemas {
        run_formatted(&mut tx, "ALTER SCHEMA %I OWNER TO %I", &[schema, owner]).await?;
    }
    let statements: Vec<String> = sqlx::query_scalar(REASSIGN)
        .bind(owner)
        .bind(&schemas)
        .fetch_all(&mut *tx)
        .await?;
    for statement in &statements {
        // Safe: built by the server's format() with %I and regclass/regprocedure/regtype quoting.
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.as_str()))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("failed: {statement}"))?;
    }
    // A migration reads shared_preload_libraries to decide about pg_stat_statements, which only a
    // superuser can create: done here when the library is loaded.
    run_formatted(&mut tx, "GRANT pg_read_all_settings TO %I", &[owner]).await?;
    let preloaded: bool = sqlx::query_scalar(
        "SELECT current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%'",
    )
    .fetch_one(&mut *tx)
    .await?;
    if preloaded {
        sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut *tx)
            .await?;
    }

    // The API: rows only.
    run_formatted(
        &mut tx,
        "ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS",
        &[api],
    )
    .await?;
    run_formatted(
        &mut tx,
        "GRANT CONNECT ON DATABASE %I TO %I",
        &[&database, api],
    )
    .await?;
    run_formatted(
        &mut tx,
        "REVOKE CREATE ON DATABASE %I FROM PUBLIC",
        &[&database],
    )
    .await?;
    run_formatted(&mut tx, "GRANT mingus_app TO %I", &[api]).await?;
    run_formatted(&mut tx, "GRANT pg_monitor TO %I", &[api]).await?;
    for schema in &schemas {
        let args = [schema.as_str(), api];
        run_formatted(&mut tx, "REVOKE CREATE ON SCHEMA %I FROM PUBLIC", &[schema]).await?;
        run_formatted(&mut tx, "GRANT USAGE ON SCHEMA %I TO %I", &args).await?;
        run_formatted(
            &mut tx,
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I",
            &args,
        )
        .await?;
        run_formatted(
            &mut tx,
            "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I",
            &args,
        )
        .await?;
        run_formatted(
            &mut tx,
            "GRANT EXECUTE ON ALL ROUTINES IN SCHEMA %I TO %I",
            &args,
        )
        .await?;
        // What later migrations and partition maintenance create (as the owner) gets the same grants.
        let args = [owner, schema.as_str(), api];
        run_formatted(&mut tx, "ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I", &args).await?;
        run_formatted(&mut tx, "ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I", &args).await?;
    }
    for table in APPEND_ONLY {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&mut *tx)
            .await?;
        if exists {
            run_formatted(
                &mut tx,
                "REVOKE UPDATE, DELETE, TRUNCATE ON %I FROM %I",
                &[table, api],
            )
            .await?;
        }
    }
    tx.commit().await?;
    tracing::info!(owner, api, objects = statements.len(), "roles ready");
    Ok(())
}

/// A password from a file: one trailing line break dropped, at least 16 characters.
pub fn read_password(path: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let password = text
        .strip_suffix('\n')
        .unwrap_or(&text)
        .trim_end_matches('\r');
    anyhow::ensure!(
        password.chars().count() >= 16,
        "{} holds fewer than 16 characters: generate one with `openssl rand -hex 32`",
        path.display()
    );
    Ok(password.to_owned())
}
