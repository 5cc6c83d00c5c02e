//! How each report kind's content is computed from the user's data. The caller runs [`compute`] in a
//! transaction begun with [`crate::db::begin_as_user`], so row-level security limits every read to the
//! report's owner; the queries still filter by `user_id` so they use the per-user indexes.
//!
//! **Content.** Every report is one JSON document: `schema_version`, `kind`, `period` (`start`, `end`,
//! both inclusive, and `days`), `timezone` (the zone the period's days are read in), and the kind's
//! body ([`financial`], [`health`], [`goals`]; a custom report has `sections` holding the bodies it
//! combines, see [`custom`]). The content carries no generation time: the same data gives the same
//! document (the caller records when it was generated), so a report can be regenerated and compared.
//!
//! **Which days.** The period is a range of calendar days in the **user's own zone**
//! (`user_profiles.timezone`; no profile or a name PostgreSQL does not know counts as UTC), as the daily
//! analytics rollup reads them: a timestamp (`submitted_at`, a goal's `created_at`…) belongs to the
//! period when it lies in `[start 00:00, end + 1 day 00:00)` local time. Check-ins carry their local
//! date already.
//!
//! **Numbers** ([`number`]): money and averages are decimal strings with 2 decimals, ratios and trend
//! slopes strings with 4, rounded half away from zero (as PostgreSQL's `round`); counts are JSON
//! integers; a value that cannot be computed (no data, a zero denominator) is `null`.
//!
//! **CSV** ([`csv`]): the same content flattened to `section,subject,metric,value` rows.

mod csv;
mod custom;
mod financial;
mod goals;
mod health;
mod number;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Period, ReportKind, ReportSpec};

/// The version of the content's layout; bumped when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// The period as instants: the user's zone and the half-open UTC range its days cover.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub user_id: Uuid,
    pub period: Period,
    pub timezone: String,
    /// Local midnight at the start of `period.start`.
    pub start: DateTime<Utc>,
    /// Local midnight at the end of `period.end` (exclusive).
    pub end: DateTime<Utc>,
}

impl Window {
    /// Resolves the user's zone and the period's bounds in it.
    async fn resolve(
        conn: &mut PgConnection,
        user_id: Uuid,
        period: Period,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            period.start <= period.end,
            "the period starts ({}) after it ends ({})",
            period.start,
            period.end
        );
        let (timezone, start, end): (String, DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
            "SELECT z.zone, ($2::date)::timestamp AT TIME ZONE z.zone, ($3::date + 1)::timestamp AT TIME ZONE z.zone
             FROM (SELECT coalesce(
                       (SELECT p.timezone FROM user_profiles p
                        WHERE p.user_id = $1
                          AND EXISTS (SELECT 1 FROM pg_timezone_names t WHERE t.name = p.timezone)),
                       'UTC') AS zone) z",
        )
        .bind(user_id)
        .bind(period.start)
        .bind(period.end)
        .fetch_one(conn)
        .await
        .context("resolve the report period in the user's zone")?;
        Ok(Self {
            user_id,
            period,
            timezone,
            start,
            end,
        })
    }

    fn days(&self) -> i64 {
        (self.period.end - self.period.start).num_days() + 1
    }
}

/// The report's content as a JSON document.
pub async fn compute(
    conn: &mut PgConnection,
    user_id: Uuid,
    spec: &ReportSpec,
) -> anyhow::Result<Value> {
    let window = Window::resolve(conn, user_id, spec.period).await?;
    let mut content = Map::new();
    content.insert("schema_version".into(), json!(SCHEMA_VERSION));
    content.insert("kind".into(), json!(spec.kind.name()));
    content.insert(
        "period".into(),
        json!({"start": spec.period.start, "end": spec.period.end, "days": window.days()}),
    );
    content.insert("timezone".into(), json!(window.timezone));
    let body = match spec.kind {
        ReportKind::Custom => custom::body(conn, &window, &spec.sections).await?,
        kind => section(conn, &window, kind).await?,
    };
    content.extend(body);
    Ok(Value::Object(content))
}

/// The body of one standard kind.
async fn section(
    conn: &mut PgConnection,
    window: &Window,
    kind: ReportKind,
) -> anyhow::Result<Map<String, Value>> {
    match kind {
        ReportKind::Financial => financial::body(conn, window)
            .await
            .context("compute the financial summary"),
        ReportKind::Health => health::body(conn, window)
            .await
            .context("compute the health summary"),
        ReportKind::Goals => goals::body(conn, window)
            .await
            .context("compute the goals progress"),
        ReportKind::Custom => anyhow::bail!("a custom report cannot be a section of itself"),
    }
}

/// The content of [`compute`] as a CSV file.
pub fn to_csv(spec: &ReportSpec, content: &Value) -> anyhow::Result<String> {
    let kind = content.get("kind").and_then(Value::as_str);
    anyhow::ensure!(
        kind == Some(spec.kind.name()),
        "the content is a {kind:?} report, the spec a {} one",
        spec.kind.name()
    );
    csv::render(content)
}
