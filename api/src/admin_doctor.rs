//! `mingus-admin doctor [--repair]`: checks the invariants that are cheap to check and that nothing else
//! watches. Today: every user's subscription-granted `feature_access` rows are what their subscriptions
//! grant now (a subscription written outside event processing — by hand, an import, an old seed — leaves
//! them stale, and the user is refused features they pay for). Exit status 0 when everything holds (or
//! was repaired), 1 when something is out of order and `--repair` was not given.

use chrono::{DateTime, Utc};
use mingus_common::billing::access;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// What one doctor run found.
#[derive(Debug, Default)]
pub struct Report {
    pub users_checked: usize,
    /// Users whose access rows differed from what their subscriptions grant.
    pub stale_access: Vec<Uuid>,
    pub repaired: bool,
}

impl Report {
    pub fn healthy(&self) -> bool {
        self.stale_access.is_empty() || self.repaired
    }
}

type Grant = (String, String, Option<DateTime<Utc>>);

async fn grants(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Vec<Grant>> {
    sqlx::query_as(
        "SELECT feature_name, access_level::text, expires_at FROM feature_access
         WHERE user_id = $1 AND granted_by = 'subscription' ORDER BY feature_name",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// Recomputes each subscriber's access in a transaction of its own and compares; keeps the result only
/// when `repair` is set.
pub async fn run(pool: &PgPool, repair: bool) -> anyhow::Result<Report> {
    let users: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT user_id FROM subscriptions
         UNION SELECT DISTINCT user_id FROM feature_access WHERE granted_by = 'subscription'
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut report = Report {
        users_checked: users.len(),
        repaired: repair,
        ..Report::default()
    };
    for user_id in users {
        let mut tx = pool.begin().await?;
        let before = grants(&mut tx, user_id).await?;
        access::recompute(&mut tx, user_id, Utc::now()).await?;
        let after = grants(&mut tx, user_id).await?;
        if before != after {
            report.stale_access.push(user_id);
        }
        if repair && before != after {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
    }
    Ok(report)
}

/// The report as an operator reads it.
pub fn print(report: &Report) {
    println!("users with subscriptions checked: {}", report.users_checked);
    if report.stale_access.is_empty() {
        println!("feature access: OK");
        return;
    }
    let verb = if report.repaired {
        "repaired"
    } else {
        "out of date (run with --repair)"
    };
    println!(
        "feature access {verb}: {} user(s)",
        report.stale_access.len()
    );
    for user in &report.stale_access {
        println!("  {user}");
    }
}
