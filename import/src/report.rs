//! The rejects report: every rejected row and every repaired value, as CSV (for a spreadsheet) and
//! JSON (for a script), with the same fields: table, source rowid, column, value, reason, action.
//!
//! Written line by line ([`Report`]): the rows the whole-file rules reject (most of the lines: 300,000 at
//! 10,000 users) go from the staging table straight to the files, never all in memory at once (as a
//! list they were most of the 10,000-user import's 196 MB peak RSS).

use std::fs::File;
use std::io::{BufWriter, Write};
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
    for f in findings {
        write_csv_line(out, f)?;
    }
    Ok(())
}

fn write_csv_line(out: &mut impl Write, f: &Finding) -> std::io::Result<()> {
    let mut line = String::new();
    let rowid = f.source_rowid.to_string();
    let fields = [
        f.table.as_str(),
        &rowid,
        &f.column,
        &f.value,
        &f.reason,
        f.action.as_str(),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        csv_field(&mut line, field);
    }
    line.push('\n');
    out.write_all(line.as_bytes())
}

/// `rejects.csv` and `rejects.json` being written, one finding at a time.
pub struct Report {
    csv_path: PathBuf,
    json_path: PathBuf,
    csv: BufWriter<File>,
    json: BufWriter<File>,
    lines: u64,
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    Ok(BufWriter::new(File::create(path).with_context(|| {
        format!("cannot write {}", path.display())
    })?))
}

impl Report {
    /// Creates both files in `dir` (created if missing).
    pub fn create(dir: &Path) -> anyhow::Result<Report> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let (csv_path, json_path) = (dir.join("rejects.csv"), dir.join("rejects.json"));
        let mut report = Report {
            csv: create(&csv_path)?,
            json: create(&json_path)?,
            csv_path,
            json_path,
            lines: 0,
        };
        write_csv(&mut report.csv, &[])?;
        Ok(report)
    }

    pub fn push(&mut self, finding: &Finding) -> anyhow::Result<()> {
        write_csv_line(&mut self.csv, finding)?;
        // The layout `serde_json::to_writer_pretty` gives a whole list: elements indented by two.
        self.json
            .write_all(if self.lines == 0 { b"[\n  " } else { b",\n  " })?;
        let element = serde_json::to_string_pretty(finding)?;
        self.json
            .write_all(element.replace('\n', "\n  ").as_bytes())?;
        self.lines += 1;
        Ok(())
    }

    /// Flushes both files; returns their paths and the number of lines.
    pub fn finish(mut self) -> anyhow::Result<(PathBuf, PathBuf, u64)> {
        self.json
            .write_all(if self.lines == 0 { b"[]\n" } else { b"\n]\n" })?;
        self.csv.flush()?;
        self.json.flush()?;
        Ok((self.csv_path, self.json_path, self.lines))
    }
}

/// Writes `rejects.csv` and `rejects.json` of `findings` into `dir`; returns their paths.
pub fn write(dir: &Path, findings: &[Finding]) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut report = Report::create(dir)?;
    for finding in findings {
        report.push(finding)?;
    }
    let (csv, json, _) = report.finish()?;
    Ok((csv, json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Action;

    #[test]
    fn the_json_written_line_by_line_is_the_pretty_list() {
        let finding = |rowid| Finding {
            table: "users".into(),
            source_rowid: rowid,
            column: "email".into(),
            value: "a\nb".into(),
            reason: "plain".into(),
            action: Action::Repaired,
        };
        for findings in [vec![], vec![finding(1)], vec![finding(1), finding(2)]] {
            let dir = std::env::temp_dir().join(format!(
                "mingus-report-test-{}-{}",
                std::process::id(),
                findings.len()
            ));
            let (_, json) = write(&dir, &findings).unwrap();
            let text = std::fs::read_to_string(json).unwrap();
            assert_eq!(
                text,
                serde_json::to_string_pretty(&findings).unwrap() + "\n"
            );
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

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
