//! `mingus-admin create-roles`: the owner owns everything and may run DDL; the API role writes rows but
//! runs no DDL, cannot truncate or switch row-level security off, and sees one user's rows when it
//! switches to `mingus_app`; it only adds to and reads the audit log.

use std::str::FromStr;

use mingus_api::admin_roles::{self, Roles};
use mingus_common::db::{self, MIGRATOR};
use mingus_tests::TestDb;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use uuid::Uuid;

async fn pool_as(url: &str, user: &str, password: &str) -> PgPool {
    let options = PgConnectOptions::from_str(url)
        .unwrap()
        .username(user)
        .password(password);
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap()
}

async fn refused(pool: &PgPool, statement: &'static str) {
    let err = sqlx::raw_sql(statement)
        .execute(pool)
        .await
        .expect_err(statement);
    let text = err.to_string();
    assert!(
        text.contains("permission denied") || text.contains("must be owner"),
        "{statement}: {text}"
    );
}

#[tokio::test]
async fn the_owner_runs_ddl_and_the_api_role_only_touches_rows_under_rls() {
    let db = TestDb::new().await;
    let suffix = &Uuid::new_v4().simple().to_string()[..10];
    let roles = Roles {
        owner: format!("t_owner_{suffix}"),
        owner_password: format!("owner-password-{suffix}"),
        api: format!("t_api_{suffix}"),
        api_password: format!("api-password-{suffix}"),
    };
    let mut superuser = PgConnection::connect(&db.url).await.unwrap();
    admin_roles::create(&mut superuser, &roles).await.unwrap();
    // Idempotent: a second run changes passwords and grants, and fails on nothing.
    admin_roles::create(&mut superuser, &roles).await.unwrap();
    superuser.close().await.unwrap();

    let owner = pool_as(&db.url, &roles.owner, &roles.owner_password).await;
    let api = pool_as(&db.url, &roles.api, &roles.api_password).await;

    // The owner: migrations (the bookkeeping table is its own now) and DDL.
    MIGRATOR.run(&owner).await.unwrap();
    sqlx::raw_sql("CREATE TABLE owner_made (id int PRIMARY KEY)")
        .execute(&owner)
        .await
        .unwrap();

    // The API: rows yes, in tables the owner creates later too (default privileges)...
    sqlx::raw_sql("INSERT INTO owner_made VALUES (1)")
        .execute(&api)
        .await
        .unwrap();
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, name) in [(alice, "alice"), (bob, "bob")] {
        sqlx::query("INSERT INTO users (id, email, full_name) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(format!("{name}-{suffix}@example.com"))
            .bind(name)
            .execute(&api)
            .await
            .unwrap();
        sqlx::query("INSERT INTO user_profiles (user_id, first_name) VALUES ($1, $2)")
            .bind(id)
            .bind(name)
            .execute(&api)
            .await
            .unwrap();
    }
    // ...DDL, TRUNCATE and switching RLS off no.
    refused(&api, "CREATE TABLE api_made (id int)").await;
    refused(&api, "DROP TABLE owner_made").await;
    refused(&api, "TRUNCATE user_profiles").await;
    refused(&api, "ALTER TABLE user_profiles DISABLE ROW LEVEL SECURITY").await;
    refused(&api, "CREATE SCHEMA api_schema").await;

    // The audit log: the API role adds and reads rows, never changes or removes them — whether the
    // table existed when create-roles ran (its revoke) or the owner created it afterwards, when the
    // default privileges granted everything (the migration's revoke).
    for recreate in [false, true] {
        if recreate {
            MIGRATOR.undo(&owner, 20261101000059).await.unwrap();
            MIGRATOR.run(&owner).await.unwrap();
        }
        sqlx::raw_sql(
            "INSERT INTO ops_audit_log (actor, actor_role, action, outcome) VALUES ('t', 'admin', 'test', 'ok')",
        )
        .execute(&api)
        .await
        .unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM ops_audit_log")
            .fetch_one(&api)
            .await
            .unwrap();
        assert_eq!(rows, 1, "recreated: {recreate}");
        refused(&api, "UPDATE ops_audit_log SET actor = 'someone-else'").await;
        refused(&api, "DELETE FROM ops_audit_log").await;
        refused(&api, "TRUNCATE ops_audit_log").await;
    }

    // Under mingus_app, one user's rows.
    let mut tx = db::begin_as_user(&api, alice).await.unwrap();
    let names: Vec<String> = sqlx::query_scalar("SELECT first_name FROM user_profiles")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(names, ["alice"]);
    tx.rollback().await.unwrap();

    owner.close().await;
    api.close().await;
    drop(db);
    let mut server = PgConnectOptions::from_str(&mingus_tests::database_server_url())
        .unwrap()
        .database("postgres")
        .connect()
        .await
        .unwrap();
    for role in [&roles.api, &roles.owner] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
            .execute(&mut server)
            .await
            .unwrap();
    }
}
