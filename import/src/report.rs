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

/// The CSV text of `findings` (RFC 4180 quoting), written line by line (a big report is never one
/// string in memory).
pub fn write_csv(out: &mut impl Write, findings: &[Finding]) -> std::io::Result<()> {
    out.write_all(b"table,source_rowid,column,value,reason,action\n")?;
    let mut line = String::new();
    for f in findings {
        line.clear();
        let out_line = &mut line;
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
                out_line.push(',');
            }
            csv_field(out_line, field);
        }
        out_line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Writes `rejects.csv` and `rejects.json` into `dir` (created if missing); returns their paths.
pub fn write(dir: &Path, findings: &[Finding]) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let csv = dir.join("rejects.csv");
    let json = dir.join("rejects.json");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&csv).with_context(|| format!("cannot write {}", csv.display()))?,
    );
    write_csv(&mut file, findings)?;
    file.flush()?;
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
        let mut out = Vec::new();
        write_csv(&mut out, &findings).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "table,source_rowid,column,value,reason,action\nusers,3,email,\"a,\"\"b\"\"\nc\",plain,rejected\n"
        );
    }
}
