//! The report CSV writer (`mingus_common::reports::kinds::to_csv`, which calls the private row and field
//! writer of `common/src/reports/kinds/csv.rs`).
//!
//! Input, read two ways:
//! - cells separated by NUL bytes, taken in pairs as (metric, value) of a flat `financial` report whose
//!   values are those strings; the expected rows are known exactly: the envelope's scalars under
//!   `report,summary`, then the body's under `financial,summary`, each group by key;
//! - when the input is a JSON object with a known `kind`, that document as the report's content
//!   (nested objects and lists, numbers, nulls).
//!
//! Checks, against what csv.rs documents: never panics; the output is RFC 4180 (CRLF line ends, quoted
//! fields with doubled quotes, nothing else quoted needed) as read back by the strict reader below; its
//! header is `section,subject,metric,value` and every row has four fields; each cell reads back as the
//! text written, except that a text a spreadsheet would evaluate (starting with `=`, `+`, `-`, `@`, a tab
//! or a carriage return) and that is not a plain number (optional sign, digits, optional fraction)
//! reads back with a leading `'`; so no cell read back starts with one of those unless it is a plain
//! number.
#![no_main]

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use mingus_common::reports::kinds::to_csv;
use mingus_common::reports::{Period, ReportFormat, ReportKind, ReportSpec};
use serde_json::{Map, Value};

const HEADER: [&str; 4] = ["section", "subject", "metric", "value"];
/// Keys csv.rs puts in the envelope (`report` section) rather than the body.
const ENVELOPE: [&str; 4] = ["schema_version", "kind", "period", "timezone"];

fuzz_target!(|data: &[u8]| {
    flat_report(data);
    if let Ok(Value::Object(content)) = serde_json::from_slice::<Value>(data) {
        any_report(content);
    }
});

fn spec(kind: ReportKind) -> ReportSpec {
    let day = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a valid date");
    ReportSpec {
        kind,
        period: Period {
            start: day,
            end: day,
        },
        format: ReportFormat::Csv,
        sections: Vec::new(),
    }
}

/// Flat string cells: every row of the output is known.
fn flat_report(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let cells: Vec<&str> = text.split('\0').collect();
    let mut content = Map::new();
    content.insert("kind".into(), Value::String("financial".into()));
    for pair in cells.chunks_exact(2) {
        // `kind` must stay the spec's; any other envelope key is fine.
        if pair[0] != "kind" {
            content.insert(pair[0].to_owned(), Value::String(pair[1].to_owned()));
        }
    }
    let csv = to_csv(
        &spec(ReportKind::Financial),
        &Value::Object(content.clone()),
    )
    .expect("a flat financial report renders");
    let records = read_rfc4180(&csv).unwrap_or_else(|e| panic!("{e}: {csv:?}"));

    // Within a group, csv.rs sorts scalars by key (whatever order the JSON map keeps).
    let mut pairs: Vec<(&String, &Value)> = content.iter().collect();
    pairs.sort_by_key(|(key, _)| *key);
    let mut expected = vec![HEADER.map(str::to_owned)];
    for envelope in [true, false] {
        for (key, value) in &pairs {
            if ENVELOPE.contains(&key.as_str()) == envelope {
                let section = if envelope { "report" } else { "financial" };
                let Value::String(value) = value else {
                    unreachable!("every value of the flat report is a string")
                };
                expected.push([section, "summary", key, value].map(shown));
            }
        }
    }
    let records: Vec<[String; 4]> = records
        .into_iter()
        .map(|r| {
            r.try_into()
                .unwrap_or_else(|r| panic!("a row without 4 fields: {r:?}"))
        })
        .collect();
    assert_eq!(records, expected, "{csv:?}");
}

/// Any JSON object of a known kind: the format holds, and nothing reads back as a formula.
fn any_report(content: Map<String, Value>) {
    let kind = match content.get("kind").and_then(Value::as_str) {
        Some("financial") => ReportKind::Financial,
        Some("health") => ReportKind::Health,
        Some("goals") => ReportKind::Goals,
        Some("custom") => ReportKind::Custom,
        _ => return,
    };
    // A custom report whose `sections` holds a non-object is an error, not a panic.
    let Ok(csv) = to_csv(&spec(kind), &Value::Object(content)) else {
        return;
    };
    let records = read_rfc4180(&csv).unwrap_or_else(|e| panic!("{e}: {csv:?}"));
    assert_eq!(
        records.first().map(Vec::as_slice),
        Some(&HEADER.map(str::to_owned)[..])
    );
    for record in &records {
        assert_eq!(record.len(), 4, "{record:?} in {csv:?}");
        for cell in record {
            assert!(
                !is_risky(cell) || is_plain_number(cell),
                "{cell:?} would be evaluated by a spreadsheet: {csv:?}"
            );
        }
    }
}

/// A cell as the writer documents it is read back.
fn shown(text: &str) -> String {
    if is_risky(text) && !is_plain_number(text) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

fn is_risky(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// An optional sign, ASCII digits, and an optional `.` with at least one digit after it.
fn is_plain_number(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let mut parts = unsigned.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && parts.next().is_none_or(digits)
}

/// A strict RFC 4180 reader: records end with CRLF (the last one too); a field is either quoted (`"`,
/// any text with `"` doubled, `"`) or plain (no `"`, CR or LF); fields are separated by commas.
fn read_rfc4180(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let mut record = Vec::new();
        loop {
            let mut field = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => field.push(c),
                        None => return Err("a quoted field is not closed".into()),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    match c {
                        ',' | '\r' => break,
                        '"' | '\n' => return Err(format!("{c:?} in a plain field")),
                        _ => {
                            field.push(c);
                            chars.next();
                        }
                    }
                }
            }
            record.push(field);
            match chars.next() {
                Some(',') => continue,
                Some('\r') if chars.next() == Some('\n') => break,
                other => return Err(format!("{other:?} after a field, not a comma or CRLF")),
            }
        }
        records.push(record);
    }
    Ok(records)
}
