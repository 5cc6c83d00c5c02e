//! Opening the SQLite file: every check that can refuse it runs here, before PostgreSQL is touched.
//!
//! The file is opened read-only and read inside one read transaction, from the checks to the last row:
//! the SHARED lock that transaction holds keeps a writer from committing in between (in rollback-journal
//! mode; in WAL mode the transaction reads one snapshot), so the hash, the counts and the rows all
//! describe the same bytes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::source_schema::KNOWN_REVISIONS;
use crate::spec::TABLES;

/// How long to wait for a writer's lock before calling the file locked.
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// An opened, checked source file inside its read transaction.
pub struct Source {
    pub path: PathBuf,
    pub conn: Connection,
    pub revision: String,
    pub sha256: String,
    /// Rows per table of `spec::TABLES`, in order.
    pub counts: Vec<u64>,
    /// Per table of `spec::TABLES`: which of its spec columns the file has (older revisions lack some).
    pub present: Vec<Vec<bool>>,
}

fn sqlite_error_is(err: &anyhow::Error, code: rusqlite::ErrorCode) -> bool {
    err.chain().any(|cause| {
        matches!(cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(e, _)) if e.code == code)
    })
}

/// Opens and checks `path`: it exists, is SQLite, is not corrupt, is not locked by a writer, and has a
/// known schema revision.
pub fn open(path: &Path) -> anyhow::Result<Source> {
    let mut file = std::fs::File::open(path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!("{}: no such file", path.display()),
        _ => anyhow::anyhow!("{}: cannot open: {err}", path.display()),
    })?;
    let mut header = [0u8; 16];
    if file.read_exact(&mut header).is_err() || &header != b"SQLite format 3\0" {
        bail!(
            "{}: not an SQLite database (no SQLite header)",
            path.display()
        );
    }
    drop(file);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("{}: cannot open as SQLite", path.display()))?;
    conn.busy_timeout(BUSY_WAIT)?;
    let checked = check(&conn, path);
    match checked {
        Ok(revision) => finish(conn, path, revision),
        Err(err) if sqlite_error_is(&err, rusqlite::ErrorCode::DatabaseBusy) => bail!(
            "{}: locked by another process that is writing to it (stop the Flask app or the script \
             holding it, then retry)",
            path.display()
        ),
        Err(err)
            if sqlite_error_is(&err, rusqlite::ErrorCode::DatabaseCorrupt)
                || sqlite_error_is(&err, rusqlite::ErrorCode::NotADatabase) =>
        {
            bail!("{}: the SQLite file is corrupt: {err:#}", path.display())
        }
        Err(err) => Err(err),
    }
}

/// Starts the read transaction, runs SQLite's quick check and reads the revision.
fn check(conn: &Connection, path: &Path) -> anyhow::Result<String> {
    conn.execute_batch("BEGIN DEFERRED")?;
    // The first read takes the SHARED lock (and fails with BUSY while a writer holds EXCLUSIVE).
    let _: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    let problems: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if problems != ["ok"] {
        bail!(
            "{}: the SQLite file is corrupt: {}",
            path.display(),
            problems.join("; ")
        );
    }
    let has_alembic: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version')",
        [],
        |r| r.get(0),
    )?;
    if !has_alembic {
        bail!(
            "{}: unknown schema version: no alembic_version table (not a Mingus development database?)",
            path.display()
        );
    }
    let revisions: Vec<String> = conn
        .prepare("SELECT version_num FROM alembic_version")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    match revisions.as_slice() {
        [one] if KNOWN_REVISIONS.contains(&one.as_str()) => Ok(one.clone()),
        _ => bail!(
            "{}: unknown schema version {revisions:?} (this importer knows {KNOWN_REVISIONS:?})",
            path.display()
        ),
    }
}

fn finish(conn: Connection, path: &Path, revision: String) -> anyhow::Result<Source> {
    let mut counts = Vec::new();
    let mut present = Vec::new();
    for table in TABLES {
        let columns: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{}')",
                table.name
            ))?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if columns.is_empty() {
            bail!(
                "{}: unknown schema version: table {} is missing",
                path.display(),
                table.name
            );
        }
        let needed = if table.per_user {
            ["id", "user_id"]
        } else {
            ["id", "id"]
        };
        if let Some(missing) = needed.iter().find(|n| !columns.iter().any(|c| c == *n)) {
            bail!(
                "{}: unknown schema version: {}.{missing} is missing",
                path.display(),
                table.name
            );
        }
        present.push(
            table
                .columns
                .iter()
                .map(|c| columns.iter().any(|name| name == c.name))
                .collect(),
        );
        let count: i64 =
            conn.query_row(&format!("SELECT count(*) FROM {}", table.name), [], |r| {
                r.get(0)
            })?;
        counts.push(count as u64);
    }
    // Hashed inside the read transaction: no writer can commit while it runs.
    let sha256 = hash_file(path)?;
    Ok(Source {
        path: path.to_owned(),
        conn,
        revision,
        sha256,
        counts,
        present,
    })
}

/// The file's SHA-256, read in 1 MiB pieces.
pub fn hash_file(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
