//! The revenue facts computed the slow, obvious way: for every day, every subscription's state at its
//! end by scanning its history, summed per customer, compared with the day before. What
//! `mingus_revenue_compute()` must equal (the definitions: `common/src/revenue/README.md`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

/// One `subscription_changes` row, in insertion order.
#[derive(Debug, Clone)]
pub struct Change {
    pub subscription: Uuid,
    pub user: Uuid,
    pub at: DateTime<Utc>,
    pub status: &'static str,
    pub stripe_status: Option<&'static str>,
    pub tier: &'static str,
    pub cycle: &'static str,
    pub price: Decimal,
    pub currency: &'static str,
}

/// One `billing_history` row.
#[derive(Debug, Clone)]
pub struct Payment {
    pub subscription: Uuid,
    pub user: Uuid,
    pub at: DateTime<Utc>,
    pub status: &'static str,
    pub amount: Decimal,
    pub currency: &'static str,
    pub invoice: Option<String>,
    pub transaction: String,
}

/// A `revenue_daily` row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DailyRow {
    pub day: NaiveDate,
    pub currency: String,
    pub mrr: Decimal,
    pub customers: i32,
    /// new, expansion, contraction, churned, reactivated
    pub moves: [Decimal; 5],
    /// new, reactivated, churned customers
    pub customer_moves: [i32; 3],
    pub payments: Decimal,
    pub payment_count: i32,
    pub refunds: Decimal,
    pub refund_count: i32,
    pub failed_invoices: i32,
    pub recovered_invoices: i32,
}

/// Per currency: the day's MRR movements (new, expansion, contraction, churned, reactivated) and
/// customer movements (new, reactivated, churned).
type Moves = BTreeMap<String, ([Decimal; 5], [i32; 3])>;

/// A `revenue_daily_tiers` row: day, tier, subscribers, trialing, starts, conversions, losses.
pub type TierRow = (NaiveDate, String, i32, i32, i32, i32, i32);
/// A `revenue_cohorts` row: cohort month, offset, customers, retained.
pub type CohortRow = (NaiveDate, i16, i32, i32);

pub fn mrr(change: &Change) -> Decimal {
    let counts = matches!(change.status, "active" | "past_due")
        && !matches!(
            change.stripe_status,
            Some("paused" | "unpaid" | "incomplete" | "incomplete_expired")
        );
    if !counts {
        Decimal::ZERO
    } else if change.cycle == "annual" {
        (change.price / Decimal::from(12))
            .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
    } else {
        change.price
    }
}

fn end_of(day: NaiveDate) -> DateTime<Utc> {
    (day + Days::new(1)).and_hms_opt(0, 0, 0).unwrap().and_utc()
}

/// Each subscription's last change before the end of `day` (changes are in insertion order, which
/// breaks ties of equal times as the table's id does).
fn states_at(changes: &[Change], day: NaiveDate) -> HashMap<Uuid, &Change> {
    let end = end_of(day);
    let mut states: HashMap<Uuid, &Change> = HashMap::new();
    for change in changes {
        if change.at >= end {
            continue;
        }
        match states.get(&change.subscription) {
            Some(current) if current.at > change.at => {}
            _ => {
                states.insert(change.subscription, change);
            }
        }
    }
    states
}

/// Each customer's MRR per currency at the end of `day`.
fn levels_at(changes: &[Change], day: NaiveDate) -> BTreeMap<(Uuid, String), Decimal> {
    let mut levels = BTreeMap::new();
    for change in states_at(changes, day).values() {
        let value = mrr(change);
        if value > Decimal::ZERO {
            *levels
                .entry((change.user, change.currency.to_owned()))
                .or_insert(Decimal::ZERO) += value;
        }
    }
    levels
}

fn days(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

pub fn daily(
    changes: &[Change],
    payments: &[Payment],
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<DailyRow> {
    let first = changes
        .iter()
        .map(|c| c.at.date_naive())
        .min()
        .unwrap_or(from)
        .min(from);
    let mut currencies: BTreeSet<String> = payments
        .iter()
        .filter(|p| (from..=to).contains(&p.at.date_naive()))
        .map(|p| p.currency.to_owned())
        .collect();
    let mut paid_before: BTreeSet<(Uuid, String)> = BTreeSet::new();
    let mut previous: BTreeMap<(Uuid, String), Decimal> = BTreeMap::new();
    let mut per_day: Vec<(NaiveDate, Moves)> = Vec::new();
    for day in days(first - Days::new(1), to) {
        let levels = levels_at(changes, day);
        let mut moves = Moves::new();
        let keys: BTreeSet<&(Uuid, String)> = levels.keys().chain(previous.keys()).collect();
        for key in keys {
            let now = levels.get(key).copied().unwrap_or_default();
            let before = previous.get(key).copied().unwrap_or_default();
            currencies.insert(key.1.clone());
            let entry = moves.entry(key.1.clone()).or_default();
            let zero = Decimal::ZERO;
            if before == zero && now > zero {
                if paid_before.contains(key) {
                    entry.0[4] += now;
                    entry.1[1] += 1;
                } else {
                    entry.0[0] += now;
                    entry.1[0] += 1;
                }
            } else if before > zero && now == zero {
                entry.0[3] += before;
                entry.1[2] += 1;
            } else if now > before {
                entry.0[1] += now - before;
            } else if now < before {
                entry.0[2] += before - now;
            }
        }
        for (key, level) in &levels {
            if *level > Decimal::ZERO {
                paid_before.insert(key.clone());
            }
        }
        per_day.push((day, moves));
        previous = levels;
    }
    let mut rows = Vec::new();
    for (day, moves) in per_day {
        if day < from {
            continue;
        }
        let levels = levels_at(changes, day);
        for currency in &currencies {
            let (m, cm) = moves.get(currency).copied().unwrap_or_default();
            let of_day: Vec<&Payment> = payments
                .iter()
                .filter(|p| p.at.date_naive() == day && p.currency == currency)
                .collect();
            let sum = |status: &str| {
                of_day
                    .iter()
                    .filter(|p| p.status == status)
                    .map(|p| p.amount)
                    .sum::<Decimal>()
            };
            let count = |status: &str| of_day.iter().filter(|p| p.status == status).count() as i32;
            let failed_first = of_day
                .iter()
                .filter(|p| p.status == "failed")
                .filter(|p| match &p.invoice {
                    None => true,
                    Some(inv) => !payments.iter().any(|e| {
                        e.status == "failed"
                            && e.invoice.as_ref() == Some(inv)
                            && (e.at, &e.transaction) < (p.at, &p.transaction)
                    }),
                })
                .count() as i32;
            let recovered = of_day
                .iter()
                .filter(|p| p.status == "paid")
                .filter(|p| {
                    p.invoice.as_ref().is_some_and(|inv| {
                        payments.iter().any(|e| {
                            e.status == "failed" && e.invoice.as_ref() == Some(inv) && e.at <= p.at
                        })
                    })
                })
                .count() as i32;
            rows.push(DailyRow {
                day,
                currency: currency.clone(),
                mrr: levels
                    .iter()
                    .filter(|((_, c), _)| c == currency)
                    .map(|(_, l)| *l)
                    .sum(),
                customers: levels.keys().filter(|(_, c)| c == currency).count() as i32,
                moves: m,
                customer_moves: cm,
                payments: sum("paid"),
                payment_count: count("paid"),
                refunds: sum("refunded"),
                refund_count: count("refunded"),
                failed_invoices: failed_first,
                recovered_invoices: recovered,
            });
        }
    }
    rows.sort();
    rows
}

pub fn tiers(changes: &[Change], from: NaiveDate, to: NaiveDate) -> Vec<TierRow> {
    let mut rows = Vec::new();
    for day in days(from, to) {
        let states = states_at(changes, day);
        for tier in ["essentials", "executive", "professional"] {
            let subscribers = states
                .values()
                .filter(|c| c.tier == tier && mrr(c) > Decimal::ZERO)
                .count() as i32;
            let trialing = states
                .values()
                .filter(|c| c.tier == tier && c.status == "trial")
                .count() as i32;
            let (mut starts, mut conversions, mut losses) = (0, 0, 0);
            let mut last: HashMap<Uuid, &Change> = HashMap::new();
            for change in changes {
                let prev = last.insert(change.subscription, change).map(|c| c.status);
                if change.at.date_naive() != day || change.tier != tier {
                    continue;
                }
                if change.status == "trial" && prev != Some("trial") {
                    starts += 1;
                }
                if prev == Some("trial") && change.status != "trial" {
                    if mrr(change) > Decimal::ZERO {
                        conversions += 1;
                    } else {
                        losses += 1;
                    }
                }
            }
            rows.push((
                day,
                tier.to_owned(),
                subscribers,
                trialing,
                starts,
                conversions,
                losses,
            ));
        }
    }
    rows.sort();
    rows
}

fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap()
}

fn month_end(month: NaiveDate) -> NaiveDate {
    month.checked_add_months(chrono::Months::new(1)).unwrap() - Days::new(1)
}

pub fn cohorts(changes: &[Change], to: NaiveDate) -> Vec<CohortRow> {
    let first = changes.iter().map(|c| c.at.date_naive()).min().unwrap();
    let paying_on = |day: NaiveDate| -> BTreeSet<Uuid> {
        levels_at(changes, day)
            .into_iter()
            .filter(|(_, l)| *l > Decimal::ZERO)
            .map(|((user, _), _)| user)
            .collect()
    };
    let mut cohort_of: BTreeMap<Uuid, NaiveDate> = BTreeMap::new();
    for day in days(first, to) {
        for user in paying_on(day) {
            cohort_of.entry(user).or_insert_with(|| month_start(day));
        }
    }
    let mut sizes: BTreeMap<NaiveDate, i32> = BTreeMap::new();
    for cohort in cohort_of.values() {
        *sizes.entry(*cohort).or_default() += 1;
    }
    let mut rows = Vec::new();
    for (cohort, size) in sizes {
        let mut month = cohort;
        let mut offset = 0i16;
        while month <= month_start(to) {
            let checkpoint = month_end(month).min(to);
            let paying = paying_on(checkpoint);
            let retained = cohort_of
                .iter()
                .filter(|(user, c)| **c == cohort && paying.contains(user))
                .count() as i32;
            rows.push((cohort, offset, size, retained));
            month = month.checked_add_months(chrono::Months::new(1)).unwrap();
            offset += 1;
        }
    }
    rows
}
