//! `report.generate`: compute one report and store it.
//!
//! 1. **Claim** (one autocommit `UPDATE`): `queued`/`running` → `running`, `attempts + 1`. A `ready` or
//!    `failed` report is final: a redelivered job finds it so and does nothing. `running` is claimed
//!    again because the previous attempt may have died with its worker; two live attempts at once only
//!    compute twice, and the guarded marks below let exactly one of them record the outcome.
//! 2. **Compute** in a transaction begun with `begin_as_user(owner)` so row-level security limits every
//!    read to the owner's rows (rolled back: it only reads), render the CSV for csv reports, all under
//!    [`COMPUTE_TIMEOUT`] (shorter than the job's timeout, so the outcome is always recorded).
//! 3. **Record**, in one owner transaction: `ready` with the content (only if still `running`) and the
//!    `report_ready` e-mail to the requester (dedupe key `report_ready:<id>`), pushed after commit.
//!    A permanent error (the computation or rendering refused: bad data, a bug, a permission) marks it
//!    `failed` with the reason at once; a transient one (connection, serialisation, timeout) retries
//!    with the job's backoff and marks it `failed` ("gave up after N attempts: …") on the last attempt.
//!    A failed report gives its usage unit back in the same transaction, exactly once.

use std::panic::AssertUnwindSafe;

use chrono::{NaiveDate, Utc};
use futures::FutureExt;
use mingus_common::db::begin_as_user;
use mingus_common::email::Template;
use mingus_common::email::deliveries::{self, NewDelivery};
use mingus_common::entitlements::Entitlements;
use mingus_common::jobs::report_jobs::{COMPUTE_TIMEOUT, GenerateReport};
use mingus_common::jobs::{Envelope, outbox};
use mingus_common::reports::{Period, ReportFormat, ReportKind, ReportSpec, kinds};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::Handler;
use crate::context::{JobContext, JobError};

/// Longest failure reason stored (and shown to the user).
const MAX_REASON_CHARS: usize = 500;

#[derive(sqlx::FromRow)]
struct Claimed {
    user_id: Uuid,
    kind: String,
    format: String,
    period_start: NaiveDate,
    period_end: NaiveDate,
    sections: Vec<String>,
}

impl Claimed {
    fn spec(&self) -> Option<ReportSpec> {
        Some(ReportSpec {
            kind: ReportKind::parse(&self.kind)?,
            format: ReportFormat::parse(&self.format)?,
            period: Period {
                start: self.period_start,
                end: self.period_end,
            },
            sections: self
                .sections
                .iter()
                .map(|s| ReportKind::parse(s))
                .collect::<Option<Vec<_>>>()?,
        })
    }
}

/// Why a computation did not produce a report.
enum Failure {
    /// Retrying cannot help: the report fails with this reason.
    Permanent(String),
    /// The database (or the clock) got in the way: worth another attempt.
    Transient(anyhow::Error),
}

impl Handler for GenerateReport {
    async fn run(ctx: &JobContext, envelope: &Envelope, job: Self) -> Result<(), JobError> {
        let id = job.report_id;
        let Some(claimed) = claim(&ctx.db, id).await? else {
            tracing::debug!(report_id = %id, "report is final or gone; nothing to do");
            return Ok(());
        };
        let Some(spec) = claimed.spec() else {
            let reason = "the stored report request is not valid".to_owned();
            mark_failed(&ctx.db, id, &reason).await?;
            return Err(JobError::Permanent(anyhow::anyhow!(
                "report {id}: {reason}"
            )));
        };
        match compute(&ctx.db, claimed.user_id, &spec).await {
            Ok((content, rendered)) => {
                let staged = mark_ready(&ctx.db, id, &spec, &content, rendered.as_deref()).await?;
                outbox::push_after_commit(&ctx.db, &ctx.enqueuer, &staged).await;
                Ok(())
            }
            Err(Failure::Permanent(reason)) => {
                mark_failed(&ctx.db, id, &reason).await?;
                // A dead letter makes the failure visible in /ops; retrying it finds the report final.
                Err(JobError::Permanent(anyhow::anyhow!(
                    "report {id} failed: {reason}"
                )))
            }
            Err(Failure::Transient(err)) if envelope.attempt >= envelope.max_attempts => {
                let reason = format!("gave up after {} attempts: {err:#}", envelope.attempt);
                mark_failed(&ctx.db, id, &truncate(&reason)).await?;
                Err(JobError::Retryable(err))
            }
            Err(Failure::Transient(err)) => Err(JobError::Retryable(err)),
        }
    }

    /// The report fails with the job's last error and gives its unit back ([`give_up`]).
    async fn on_dead(ctx: &JobContext, job: Self, error: &str) -> Result<(), sqlx::Error> {
        give_up(&ctx.db, job.report_id, error).await
    }
}

/// `queued`/`running` → `running`; `None` when the report is final or does not exist.
async fn claim(db: &PgPool, id: Uuid) -> Result<Option<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE reports SET status = 'running', started_at = coalesce(started_at, now()),
                            attempts = attempts + 1
         WHERE id = $1 AND status IN ('queued', 'running')
         RETURNING user_id, kind, format, period_start, period_end, sections",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The content (and the CSV file of csv reports), computed under the owner's row-level security.
async fn compute(
    db: &PgPool,
    owner: Uuid,
    spec: &ReportSpec,
) -> Result<(Value, Option<String>), Failure> {
    let work = async {
        let mut tx = begin_as_user(db, owner).await?;
        let content = kinds::compute(&mut tx, owner, spec).await?;
        // Nothing to keep: the computation only reads.
        tx.rollback().await?;
        let rendered = match spec.format {
            ReportFormat::Json => None,
            ReportFormat::Csv => Some(kinds::to_csv(spec, &content)?),
        };
        anyhow::Ok((content, rendered))
    };
    match tokio::time::timeout(COMPUTE_TIMEOUT, AssertUnwindSafe(work).catch_unwind()).await {
        Err(_) => Err(Failure::Transient(anyhow::anyhow!(
            "the computation took longer than {} s",
            COMPUTE_TIMEOUT.as_secs()
        ))),
        Ok(Err(_panic)) => Err(Failure::Permanent(
            "the computation stopped on an internal error".into(),
        )),
        Ok(Ok(Err(err))) if mingus_common::db::any_transient(&err) => Err(Failure::Transient(err)),
        Ok(Ok(Err(err))) => Err(Failure::Permanent(truncate(&format!("{err:#}")))),
        Ok(Ok(Ok(done))) => Ok(done),
    }
}

fn truncate(text: &str) -> String {
    mingus_common::text::clip_marked(text, MAX_REASON_CHARS)
}

/// `running` → `ready` with the content, and the requester's e-mail, in one transaction. Returns the
/// e-mail job to push after commit (none when another attempt recorded the outcome first).
async fn mark_ready(
    db: &PgPool,
    id: Uuid,
    spec: &ReportSpec,
    content: &Value,
    rendered: Option<&str>,
) -> Result<Vec<Envelope>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let recipient: Option<(Option<Uuid>, Uuid)> = sqlx::query_as(
        "UPDATE reports SET status = 'ready', content = $2, rendered = $3, finished_at = now()
         WHERE id = $1 AND status = 'running'
         RETURNING requested_by, user_id",
    )
    .bind(id)
    .bind(sqlx::types::Json(content))
    .bind(rendered)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((requested_by, owner)) = recipient else {
        return Ok(Vec::new());
    };
    // The one who asked is the one waiting (a team member acting for the owner, or the owner).
    let delivery = NewDelivery {
        user_id: Some(requested_by.unwrap_or(owner)),
        recipient: None,
        template: Template::ReportReady,
        data: json!({ "report_id": id, "report_name": spec.title() }),
        dedupe_key: format!("report_ready:{id}"),
        scheduled_for: Utc::now(),
    };
    let queued = deliveries::queue(&mut tx, &delivery).await?;
    tx.commit().await?;
    Ok(queued.envelope().into_iter().collect())
}

/// The job of report `id` died (its last attempt timed out, panicked, or could not record its outcome):
/// the report fails with the job's last error and gives its unit back, unless an attempt recorded an
/// outcome first. Without this a user polling the report would see `running` for ever.
pub async fn give_up(db: &PgPool, id: Uuid, error: &str) -> Result<(), sqlx::Error> {
    mark_failed(db, id, &truncate(&format!("gave up: {error}"))).await
}

/// Fails the unfinished reports whose job has ended (its outbox row completed more than `grace` ago, dead
/// or not) without recording an outcome, up to `limit`; returns how many it failed. Run by the minute
/// outbox sweep: the runtime settles a dead report at once ([`give_up`]), so this only catches a worker
/// that died between the two.
pub async fn fail_orphans(
    db: &PgPool,
    grace: std::time::Duration,
    limit: i64,
) -> anyhow::Result<usize> {
    let cutoff = Utc::now() - chrono::Duration::from_std(grace)?;
    let orphans: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT r.id, o.outcome FROM reports r JOIN job_outbox o ON o.job_id = r.id
         WHERE r.status IN ('queued', 'running') AND o.completed_at < $1
         ORDER BY o.completed_at LIMIT $2",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(db)
    .await?;
    for (id, outcome) in &orphans {
        let outcome = outcome.as_deref().unwrap_or("unknown");
        let reason = format!("the report's job ended ({outcome}) without recording a result");
        mark_failed(db, *id, &reason).await?;
    }
    Ok(orphans.len())
}

/// `queued`/`running` → `failed` with `reason`, giving the usage unit back, in one transaction (once:
/// only the attempt that moves it out of an unfinished status refunds).
async fn mark_failed(db: &PgPool, id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let failed: Option<(Uuid, String, chrono::DateTime<Utc>)> = sqlx::query_as(
        "UPDATE reports SET status = 'failed', failure_reason = $2, finished_at = now(),
                            usage_refunded = true
         WHERE id = $1 AND status IN ('queued', 'running')
         RETURNING user_id, usage_metric, usage_period_end",
    )
    .bind(id)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((owner, metric, period_end)) = failed {
        Entitlements::refund_in(&mut tx, owner, &metric, period_end, 1).await?;
        tracing::warn!(report_id = %id, %reason, "report failed; usage unit given back");
    }
    tx.commit().await
}
