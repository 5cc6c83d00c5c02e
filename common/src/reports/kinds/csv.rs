//! A report's content as CSV (RFC 4180: a header row, CRLF line ends, fields with a comma, quote or
//! line break quoted and quotes doubled), in one long layout for every kind:
//! `section,subject,metric,value`.
//!
//! - `section`: `report` for the envelope (kind, period, zone, schema version), else the kind whose body
//!   the row comes from (a custom report's rows carry each of its sections' names).
//! - `subject`: `summary` for the body's own scalars; an object's key for its fields (`latest`,
//!   `average`, `trend_per_week`, `by_status`…, dotted when nested); `list[key]` for a list's entries,
//!   keyed by their `month`, `week_start` or `id` (`monthly[2026-01]`, `weekly[2026-01-05]`,
//!   `goals[<uuid>]`).
//! - `metric`, `value`: the field and its value as in the JSON (decimals keep their fixed decimals; `null`
//!   is an empty field). A text that a spreadsheet would evaluate as a formula (a goal title starting
//!   with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'`; plain numbers are not.
//!
//! Rows follow the JSON: within an object its scalars, then its objects, then its lists, each group in
//! alphabetical order; list entries in the list's order. Every value of
//! the JSON content appears in exactly one row, so a spreadsheet pivot on (subject, metric) rebuilds it.

use std::fmt::Write;

use serde_json::{Map, Value};

/// Fields that name a list entry, in order of preference.
const ENTRY_KEYS: [&str; 3] = ["month", "week_start", "id"];

/// Envelope fields; everything else of a standard report is its body.
const ENVELOPE: [&str; 4] = ["schema_version", "kind", "period", "timezone"];

struct Rows(Vec<[String; 4]>);

impl Rows {
    fn push(&mut self, section: &str, subject: &str, metric: &str, value: &Value) {
        let subject = if subject.is_empty() {
            "summary"
        } else {
            subject
        };
        self.0
            .push([section.into(), subject.into(), metric.into(), scalar(value)]);
    }

    /// One row per scalar of `map`, recursing into objects and lists.
    fn flatten(&mut self, section: &str, subject: &str, map: &Map<String, Value>) {
        // The object's own scalars first (so a summary reads as one block), then nested objects, then
        // lists; alphabetical within each group.
        let rank = |v: &Value| match v {
            Value::Object(_) => 1,
            Value::Array(_) => 2,
            _ => 0,
        };
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort_by_key(|k| (rank(&map[k.as_str()]), *k));
        for key in keys {
            let nested = |name: &str| {
                if subject.is_empty() {
                    name.to_owned()
                } else {
                    format!("{subject}.{name}")
                }
            };
            match &map[key] {
                Value::Object(inner) => self.flatten(section, &nested(key), inner),
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        match item {
                            Value::Object(entry) => {
                                let name = ENTRY_KEYS
                                    .iter()
                                    .find_map(|k| entry.get(*k).map(scalar))
                                    .unwrap_or_else(|| index.to_string());
                                self.flatten(section, &nested(&format!("{key}[{name}]")), entry);
                            }
                            value => self.push(section, subject, &format!("{key}[{index}]"), value),
                        }
                    }
                }
                value => self.push(section, subject, key, value),
            }
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One CSV field: neutralised if a spreadsheet would run it as a formula, then quoted when it must be.
fn field(text: &str) -> String {
    let text = neutralised(text);
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.into_owned()
    }
}

/// A field a spreadsheet would evaluate (OWASP's CSV injection: it starts with `=`, `+`, `-`, `@`, a tab
/// or a carriage return) gets a leading `'`, which spreadsheets show as text. A plain number (`-12.50`,
/// a negative balance) is left alone: it cannot run anything and must stay a number. User text — goal
/// titles — reaches the CSV, so `=HYPERLINK(…)` in a title must not become a live link in the analyst's
/// spreadsheet.
fn neutralised(text: &str) -> std::borrow::Cow<'_, str> {
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_plain_number(text) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// An optional sign, digits, and an optional fraction: nothing else.
fn is_plain_number(text: &str) -> bool {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

pub(super) fn render(content: &Value) -> anyhow::Result<String> {
    let Some(map) = content.as_object() else {
        anyhow::bail!("report content is not a JSON object");
    };
    let mut rows = Rows(Vec::new());
    let envelope: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| ENVELOPE.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    rows.flatten("report", "", &envelope);
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    match map.get("sections") {
        Some(Value::Object(sections)) if kind == "custom" => {
            let mut names: Vec<&String> = sections.keys().collect();
            names.sort();
            for name in names {
                let Some(body) = sections[name].as_object() else {
                    anyhow::bail!("section {name} is not a JSON object");
                };
                rows.flatten(name, "", body);
            }
        }
        _ => {
            let body: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| !ENVELOPE.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            rows.flatten(kind, "", &body);
        }
    }
    let mut out = String::from("section,subject,metric,value\r\n");
    for row in &rows.0 {
        let line: Vec<String> = row.iter().map(|f| field(f)).collect();
        write!(out, "{}\r\n", line.join(","))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_quoting() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(field(""), "");
    }

    #[test]
    fn formulas_are_neutralised_and_numbers_are_not() {
        assert_eq!(field("=1+2"), "'=1+2");
        assert_eq!(
            field("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        assert_eq!(field("+cmd|' /C calc'!A0"), "'+cmd|' /C calc'!A0");
        assert_eq!(field("-2+3"), "'-2+3");
        assert_eq!(field("@SUM(A1:A2)"), "'@SUM(A1:A2)");
        assert_eq!(field("\tx"), "'\tx");
        assert_eq!(field("\rx"), "\"'\rx\"");
        for number in ["-12.50", "-3", "+4.0", "0.25", "17"] {
            assert_eq!(field(number), number);
        }
        for not_a_number in ["-", "-.5", "-1.", "-1.2.3", "-1e5"] {
            assert_eq!(field(not_a_number), format!("'{not_a_number}"));
        }
        assert_eq!(field("a=b"), "a=b", "only a leading trigger counts");
    }
}
