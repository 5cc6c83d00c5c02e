//! Cron expressions as the scheduler and `MINGUS_SCHEDULE_*` read them (`mingus_common::cron::
//! CronExpression`'s `FromStr`, which also rewrites the day-of-week field for the `cron` crate).
//!
//! Input: the expression's text (lossily decoded).
//!
//! Checks: parsing never panics; an expression that parses keeps its text trimmed as its `source`
//! (and `Display`), re-parses from that `source` to an equal expression, and the two give the same
//! first ticks after and before a fixed instant (so the re-parse means the same schedule).
#![no_main]

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use mingus_common::cron::CronExpression;

/// Ticks compared between the parse and the re-parse.
const TICKS: usize = 3;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = text.parse::<CronExpression>() else {
        return;
    };
    assert_eq!(parsed.source(), text.trim());
    assert_eq!(parsed.to_string(), parsed.source());
    let again: CronExpression = parsed
        .source()
        .parse()
        .unwrap_or_else(|e| panic!("{:?} parsed, its source does not: {e}", parsed.source()));
    assert_eq!(again, parsed);
    assert_eq!(again.source(), parsed.source());

    let start = NaiveDate::from_ymd_opt(2026, 3, 29)
        .and_then(|d| d.and_hms_opt(1, 30, 0))
        .expect("a valid instant");
    let after = |e: &CronExpression| e.ticks_after(start).take(TICKS).collect::<Vec<_>>();
    let before = |e: &CronExpression| e.ticks_before(start).take(TICKS).collect::<Vec<_>>();
    assert_eq!(after(&parsed), after(&again), "{:?}", parsed.source());
    assert_eq!(before(&parsed), before(&again), "{:?}", parsed.source());
    for tick in after(&parsed) {
        assert!(tick > start, "a tick after {start} is {tick}");
    }
    for tick in before(&parsed) {
        assert!(tick < start, "a tick before {start} is {tick}");
    }
});
