//! `mingus-admin stripe …`: replay stored events, fetch undelivered ones, reconcile subscriptions.
//! The work is done by `mingus_common::stripe_api`; this module parses arguments and prints results.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use mingus_common::jobs::Enqueuer;
use mingus_common::stripe_api::{
    self, FetchOptions, ReconcileOptions, ReplayFilter, StripeApi, parse_since,
};
use mingus_common::{Config, cache, db};
use sqlx::PgPool;

#[derive(Debug, Subcommand)]
pub enum StripeCommand {
    /// Re-stages processing of stored events (by id, status and/or type).
    ///
    /// Each matching event is reset to `received` (last error cleared, attempts kept) and gets a new
    /// processing job. Criteria combine; name at least one. `unparseable` and `quarantined` events are
    /// left alone unless --force (processing would refuse an unparseable body again; a quarantined
    /// event is of the other mode and is quarantined again unless STRIPE_MODE was wrong).
    Replay {
        /// One event id (`evt_…`).
        #[arg(long)]
        id: Option<String>,
        /// Events with this status.
        #[arg(long, value_parser = ["received", "processed", "ignored", "failed", "unparseable", "quarantined"])]
        status: Option<String>,
        /// Events of this type (e.g. `invoice.paid`).
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// Also replay `unparseable` and `quarantined` events.
        #[arg(long)]
        force: bool,
        /// At most this many events (oldest first; at most 10000).
        #[arg(long, default_value_t = 10_000)]
        limit: i64,
    },
    /// Stores the events Stripe could not deliver and stages their processing. Needs STRIPE_API_KEY.
    ///
    /// Pages through GET /v1/events?delivery_success=false and stores each event as the webhook does
    /// (insert if absent; quarantined when of the other mode).
    FetchUndelivered {
        /// How far back to look: 90m, 12h, 3d … (at most 30d, Stripe's event retention).
        #[arg(long, default_value = "3d", value_parser = parse_since)]
        since: Duration,
    },
    /// Reports drift between Stripe's subscriptions and ours; --fix corrects it. Needs STRIPE_API_KEY.
    ///
    /// Compares every Stripe subscription with our row: status, cancel_at_period_end, current period
    /// end and price.
    Reconcile {
        /// Correct drift: stage a synthetic `customer.subscription.updated` event with Stripe's
        /// current object, applied by the normal (guarded) processing.
        #[arg(long)]
        fix: bool,
    },
}

async fn connect(config: &Config) -> anyhow::Result<(PgPool, Enqueuer)> {
    let pool = db::connect(&config.database)
        .await
        .context("cannot connect to DATABASE_URL")?;
    let redis = cache::connect(&config.redis)
        .await
        .context("cannot connect to REDIS_URL")?;
    Ok((pool, Enqueuer::new(redis, config.redis.key_prefix.clone())))
}

pub async fn execute(command: StripeCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        StripeCommand::Replay {
            id,
            status,
            kind,
            force,
            limit,
        } => {
            let filter = ReplayFilter {
                id,
                status,
                kind,
                force,
                limit,
            };
            let (pool, enqueuer) = connect(config).await?;
            let report = stripe_api::replay(&pool, &enqueuer, &filter).await?;
            println!("replayed: {}", report.replayed);
            if report.skipped_protected > 0 {
                println!(
                    "skipped (unparseable/quarantined, use --force): {}",
                    report.skipped_protected
                );
            }
            if report.truncated {
                println!("more events match: run again");
            }
            Ok(())
        }
        StripeCommand::FetchUndelivered { since } => {
            // The key is checked before anything else connects.
            let api = StripeApi::from_config(config)?;
            let (pool, enqueuer) = connect(config).await?;
            let options = FetchOptions {
                since,
                ..FetchOptions::default()
            };
            let report =
                stripe_api::fetch_undelivered(&pool, &enqueuer, &api, config.stripe.mode, options)
                    .await?;
            println!(
                "fetched: {}\nnew: {}\nquarantined: {}",
                report.fetched, report.new, report.quarantined
            );
            if report.invalid > 0 {
                println!("not events (skipped): {}", report.invalid);
            }
            if report.truncated {
                println!("stopped after {} pages: run again", report.pages);
            }
            Ok(())
        }
        StripeCommand::Reconcile { fix } => {
            let api = StripeApi::from_config(config)?;
            let (pool, enqueuer) = connect(config).await?;
            let options = ReconcileOptions {
                fix,
                ..ReconcileOptions::default()
            };
            let report =
                stripe_api::reconcile(&pool, &enqueuer, &api, config.stripe.mode, options).await?;
            for drift in &report.drift {
                println!("drift {drift}");
            }
            println!(
                "checked: {}\nin sync: {}\ndrift: {}\nfixes staged: {}",
                report.checked,
                report.in_sync,
                report.drift.len(),
                report.fixes_staged
            );
            if report.truncated {
                println!(
                    "stopped after {} pages: not every subscription was checked",
                    report.pages
                );
            }
            Ok(())
        }
    }
}
