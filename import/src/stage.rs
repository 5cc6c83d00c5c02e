//! The staging schema: one UNLOGGED table per source table with the target's column types, filled by
//! `COPY`, checked and cleaned there (`reconcile`), and only then moved into place (`apply`).
//!
//! The schema is named after the file's hash (`import_stage_<16 hex>`), so a run killed half-way leaves
//! it behind for the next run of the same file to drop and rebuild; nothing in it is ever visible to the
//! application. UNLOGGED: it is scratch space, and WAL for it would double the cost of loading.

use sqlx::PgPool;

use crate::spec::{TABLES, Table};

/// The staging schema of a file.
pub fn schema_name(sha256: &str) -> String {
    format!("import_stage_{}", &sha256[..16])
}

async fn execute(pool: &PgPool, statement: String) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(pool)
        .await
        .map(|_| ())
}

/// Drops any leftover staging of this file and creates it empty.
pub async fn create(pool: &PgPool, schema: &str) -> sqlx::Result<()> {
    drop_schema(pool, schema).await?;
    execute(pool, format!("CREATE SCHEMA {schema}")).await?;
    for table in TABLES {
        let mut columns = vec![
            "src_rowid bigint NOT NULL".to_owned(),
            "id uuid NOT NULL".into(),
        ];
        if table.per_user {
            columns.push("src_user bigint NOT NULL".into());
            columns.push("user_id uuid NOT NULL".into());
        } else {
            columns.push("profile_id uuid NOT NULL".into());
        }
        columns.extend(
            table
                .columns
                .iter()
                .map(|c| format!("{} {}", c.name, c.sql_type)),
        );
        execute(
            pool,
            format!(
                "CREATE UNLOGGED TABLE {schema}.{} ({})",
                table.name,
                columns.join(", ")
            ),
        )
        .await?;
    }
    execute(
        pool,
        format!(
            "CREATE UNLOGGED TABLE {schema}.rejects (table_name text, source_rowid bigint,
                column_name text, value text, reason text)"
        ),
    )
    .await?;
    execute(
        pool,
        format!("CREATE UNLOGGED TABLE {schema}.user_gone (src_rowid bigint PRIMARY KEY)"),
    )
    .await
}

pub async fn drop_schema(pool: &PgPool, schema: &str) -> sqlx::Result<()> {
    execute(pool, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await
}

/// The `COPY … FROM STDIN` statement of a table's staging.
pub fn copy_statement(schema: &str, table: &Table) -> String {
    let mut columns = vec!["src_rowid", "id"];
    if table.per_user {
        columns.extend(["src_user", "user_id"]);
    } else {
        columns.push("profile_id");
    }
    columns.extend(table.columns.iter().map(|c| c.name));
    format!(
        "COPY {schema}.{} ({}) FROM STDIN",
        table.name,
        columns.join(", ")
    )
}

/// Appends one field in COPY's text format (`\N` for NULL; backslash, tab, newline, CR escaped).
pub fn push_field(line: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => line.extend_from_slice(b"\\N"),
        Some(text) => {
            for byte in text.bytes() {
                match byte {
                    b'\\' => line.extend_from_slice(b"\\\\"),
                    b'\t' => line.extend_from_slice(b"\\t"),
                    b'\n' => line.extend_from_slice(b"\\n"),
                    b'\r' => line.extend_from_slice(b"\\r"),
                    other => line.push(other),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_its_delimiters_and_marks_null() {
        let mut line = Vec::new();
        push_field(&mut line, Some("a\tb\nc\\d\re 😀"));
        line.push(b'\t');
        push_field(&mut line, None);
        assert_eq!(line, "a\\tb\\nc\\\\d\\re 😀\t\\N".as_bytes());
    }
}
