//! One source row through its table's rules: the COPY cells, or the reasons it is rejected.

use serde::Serialize;

use crate::spec::{Null, Table};
use crate::transform::{self, Outcome, Raw};

/// What happened to a row or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The row was not imported.
    Rejected,
    /// The row was imported with this value changed (repaired, defaulted or NULL-ed).
    Repaired,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Rejected => "rejected",
            Action::Repaired => "repaired",
        }
    }
}

/// One line of the rejects report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub table: String,
    pub source_rowid: i64,
    pub column: String,
    pub value: String,
    pub reason: String,
    pub action: Action,
}

/// A transformed row: the cells of `Table::columns` in order (COPY text, `None` is NULL), and the
/// findings. `rejected` rows have only their rejecting findings.
#[derive(Debug, Default)]
pub struct Transformed {
    pub cells: Vec<Option<String>>,
    pub findings: Vec<Finding>,
    pub rejected: bool,
}

/// Applies the rules and NULL policies of `table` to `raws` (one per column, in order).
pub fn transform_row(
    table: &Table,
    rowid: i64,
    raws: &[Raw<'_>],
    import_time: &str,
) -> Transformed {
    let mut out = Transformed {
        cells: Vec::with_capacity(raws.len()),
        ..Transformed::default()
    };
    let mut rejects = Vec::new();
    for (column, raw) in table.columns.iter().zip(raws) {
        let finding = |reason: String, action| Finding {
            table: table.name.to_owned(),
            source_rowid: rowid,
            column: column.name.to_owned(),
            value: raw.display(),
            reason,
            action,
        };
        let problem = match transform::apply(column.rule, *raw) {
            Outcome::Value(Some(value)) => {
                out.cells.push(Some(value));
                continue;
            }
            Outcome::Repaired(value, why) => {
                out.cells.push(Some(value));
                out.findings.push(finding(why.to_owned(), Action::Repaired));
                continue;
            }
            Outcome::Value(None) if column.null == Null::Allowed => {
                out.cells.push(None);
                continue;
            }
            Outcome::Value(None) => "NULL".to_owned(),
            Outcome::Invalid(reason) => reason,
        };
        match column.null {
            Null::Reject => {
                out.cells.push(None);
                let reason = if problem == "NULL" {
                    "NULL where PostgreSQL requires a value".to_owned()
                } else {
                    problem
                };
                rejects.push(finding(reason, Action::Rejected));
            }
            Null::Allowed => {
                out.cells.push(None);
                out.findings
                    .push(finding(format!("{problem}; stored NULL"), Action::Repaired));
            }
            Null::Default(default) => {
                out.cells.push(Some(default.to_owned()));
                out.findings.push(finding(
                    format!("{problem}; stored the default {default}"),
                    Action::Repaired,
                ));
            }
            Null::ImportTime => {
                out.cells.push(Some(import_time.to_owned()));
                out.findings.push(finding(
                    format!("{problem}; stored the import time"),
                    Action::Repaired,
                ));
            }
        }
    }
    if !rejects.is_empty() {
        out.rejected = true;
        out.findings = rejects;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{FINANCIAL_QUESTIONNAIRES, USERS};

    const NOW: &str = "2026-12-01T00:00:00Z";

    #[test]
    fn nullable_defaulted_and_required_columns_follow_their_policy() {
        let row = transform_row(
            &USERS,
            7,
            &[
                Raw::Text("A@B.C"),
                Raw::Null,
                Raw::Text("Ana\0"),
                Raw::Null,
                Raw::Int(5),
                Raw::Null,
                Raw::Text("2025-01-05"),
            ],
            NOW,
        );
        assert!(!row.rejected);
        assert_eq!(row.cells[0].as_deref(), Some("a@b.c"));
        assert_eq!(row.cells[2].as_deref(), Some("Ana"));
        assert_eq!(
            row.cells[4].as_deref(),
            Some("t"),
            "invalid boolean → default"
        );
        assert_eq!(
            row.cells[5].as_deref(),
            Some(NOW),
            "NULL created_at → import time"
        );
        assert_eq!(row.findings.len(), 3);
        assert!(row.findings.iter().all(|f| f.action == Action::Repaired));

        let rejected = transform_row(
            &FINANCIAL_QUESTIONNAIRES,
            9,
            &[
                Raw::Int(-5),
                Raw::Null,
                Raw::Null,
                Raw::Null,
                Raw::Null,
                Raw::Null,
                Raw::Text("[oops"),
                Raw::Null,
                Raw::Null,
                Raw::Null,
                Raw::Null,
            ],
            NOW,
        );
        assert!(rejected.rejected);
        let columns: Vec<_> = rejected
            .findings
            .iter()
            .map(|f| f.column.as_str())
            .collect();
        assert_eq!(columns, ["monthly_income", "monthly_expenses"]);
        assert!(rejected.findings[0].reason.contains("outside"));
        assert_eq!(rejected.findings[0].value, "-5");
        assert!(rejected.findings[1].reason.contains("NULL"));
    }
}
