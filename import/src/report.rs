//! The rejects report: every rejected row and every repaired value, as CSV (for a spreadsheet) and
//! JSON (for a script), with the same fields: table, source rowid, column, value, reason, action.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::row::Finding;

fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// The CSV text of `findings` (RFC 4180 quoting).
pub fn to_csv(findings: &[Finding]) -> String {
    let mut out = String::from("table,source_rowid,column,value,reason,action\n");
    for f in findings {
        for (i, field) in [
            f.table.as_str(),
            &f.source_rowid.to_string(),
            &f.column,
            &f.value,
            &f.reason,
            f.action.as_str(),
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, field);
        }
        out.push('\n');
    }
    out
}

/// Writes `rejects.csv` and `rejects.json` into `dir` (created if missing); returns their paths.
pub fn write(dir: &Path, findings: &[Finding]) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let csv = dir.join("rejects.csv");
    let json = dir.join("rejects.json");
    std::fs::write(&csv, to_csv(findings))
        .with_context(|| format!("cannot write {}", csv.display()))?;
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&json).with_context(|| format!("cannot write {}", json.display()))?,
    );
    serde_json::to_writer_pretty(&mut file, findings)?;
    file.write_all(b"\n")?;
    file.flush()?;
    Ok((csv, json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Action;

    #[test]
    fn csv_quotes_commas_quotes_and_newlines() {
        let findings = [Finding {
            table: "users".into(),
            source_rowid: 3,
            column: "email".into(),
            value: "a,\"b\"\nc".into(),
            reason: "plain".into(),
            action: Action::Rejected,
        }];
        assert_eq!(
            to_csv(&findings),
            "table,source_rowid,column,value,reason,action\nusers,3,email,\"a,\"\"b\"\"\nc\",plain,rejected\n"
        );
    }
}
