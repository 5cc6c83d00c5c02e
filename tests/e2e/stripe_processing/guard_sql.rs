//! The subscription upsert decides with `mingus_guard_allows` in SQL; it must answer exactly as
//! `billing::should_apply`, the documented rule, for every pair of keys.

use chrono::{DateTime, Utc};
use mingus_common::billing::{GuardKey, StripeStatus, should_apply};
use mingus_tests::TestDb;

fn second(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

#[tokio::test]
async fn the_sql_guard_answers_as_the_rust_rule_for_every_key_pair() {
    let db = TestDb::new().await;
    let ranks: Vec<Option<i16>> = std::iter::once(None)
        .chain(StripeStatus::ALL.iter().map(|s| Some(s.rank())))
        .collect();
    // Stored keys: none at all, and every (second, rank or NULL) around the incoming seconds.
    let mut stored: Vec<(Option<DateTime<Utc>>, Option<i16>)> = vec![(None, None), (None, Some(3))];
    for s in 0..3 {
        stored.extend(ranks.iter().map(|r| (Some(second(s)), *r)));
    }
    let mut checked = 0;
    for (stored_at, stored_rank) in &stored {
        for s in 0..3 {
            for status in StripeStatus::ALL {
                for creation in [false, true] {
                    let incoming = GuardKey::new(second(s), status);
                    let expected = should_apply(
                        GuardKey::stored(*stored_at, *stored_rank),
                        incoming,
                        creation,
                    );
                    let sql: bool =
                        sqlx::query_scalar("SELECT mingus_guard_allows($1, $2, $3, $4, $5)")
                            .bind(stored_at)
                            .bind(stored_rank)
                            .bind(incoming.at)
                            .bind(incoming.rank)
                            .bind(creation)
                            .fetch_one(&db.pool)
                            .await
                            .unwrap();
                    assert_eq!(
                        sql, expected,
                        "stored ({stored_at:?}, {stored_rank:?}), incoming ({s}, {status:?}), creation {creation}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, stored.len() * 3 * StripeStatus::ALL.len() * 2);
}
