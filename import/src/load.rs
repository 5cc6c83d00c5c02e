//! Streams the source tables through the transforms into staging with `COPY`.
//!
//! SQLite is read on a blocking thread (rusqlite is synchronous) that hands ~1 MiB pieces of COPY text
//! to the async side over a channel of four: memory stays bounded whatever the file's size, and reading
//! and transforming overlap PostgreSQL's parsing of the previous piece.

use indicatif::ProgressBar;
use rusqlite::types::ValueRef;
use sqlx::PgPool;
use sqlx::postgres::PgPoolCopyExt;
use tokio::sync::mpsc;

use crate::ids;
use crate::row::{Action, Finding, transform_row};
use crate::source::Source;
use crate::spec::{TABLES, Table, USERS};
use crate::stage;
use crate::transform::Raw;

const PIECE: usize = 1 << 20;

enum Piece {
    Begin(usize),
    Data(Vec<u8>),
    End,
}

/// What the transforms found while loading.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Rows read per table of `TABLES`.
    pub read: Vec<u64>,
    /// Rows rejected by the transforms, per table.
    pub rejected: Vec<u64>,
    pub findings: Vec<Finding>,
    /// Rowids of users the transforms rejected (their rows are rejected with that reason later).
    pub rejected_users: Vec<i64>,
}

fn raw(value: ValueRef<'_>) -> Raw<'_> {
    match value {
        ValueRef::Null => Raw::Null,
        ValueRef::Integer(i) => Raw::Int(i),
        ValueRef::Real(r) => Raw::Real(r),
        ValueRef::Text(bytes) => std::str::from_utf8(bytes).map_or(Raw::Bytes(bytes), Raw::Text),
        ValueRef::Blob(bytes) => Raw::Bytes(bytes),
    }
}

/// The source user rowid a child row names, or why it names none.
fn user_rowid(value: Raw<'_>) -> Result<i64, String> {
    match value {
        Raw::Int(i) if i >= 0 => Ok(i),
        Raw::Null => Err("NULL where PostgreSQL requires a value".into()),
        Raw::Text(t) => t
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|i| *i >= 0)
            .ok_or_else(|| format!("{t:?} is not a user id")),
        other => Err(format!("{} is not a user id", other.display())),
    }
}

fn select_statement(table: &Table, present: &[bool]) -> String {
    let mut columns = vec!["rowid".to_owned()];
    if table.per_user {
        columns.push("user_id".into());
    }
    for (column, here) in table.columns.iter().zip(present) {
        columns.push(if *here {
            format!("\"{}\"", column.name)
        } else {
            "NULL".into()
        });
    }
    format!(
        "SELECT {} FROM {} ORDER BY rowid",
        columns.join(", "),
        table.name
    )
}

fn reject(table: &Table, rowid: i64, column: &str, value: String, reason: String) -> Finding {
    Finding {
        table: table.name.to_owned(),
        source_rowid: rowid,
        column: column.into(),
        value,
        reason,
        action: Action::Rejected,
    }
}

/// Reads every table of `source` (on the calling, blocking thread) and sends COPY pieces.
fn read_source(
    source: &Source,
    tag: u64,
    import_time: &str,
    bars: &[ProgressBar],
    pieces: &mpsc::Sender<Piece>,
) -> anyhow::Result<Loaded> {
    let mut loaded = Loaded::default();
    let send = |piece| {
        pieces
            .blocking_send(piece)
            .map_err(|_| anyhow::anyhow!("the PostgreSQL side of the load stopped"))
    };
    for (index, table) in TABLES.iter().enumerate() {
        send(Piece::Begin(index))?;
        let mut statement = source
            .conn
            .prepare(&select_statement(table, &source.present[index]))?;
        let mut rows = statement.query([])?;
        let (mut read, mut rejected) = (0u64, 0u64);
        let mut buffer = Vec::with_capacity(PIECE + 64 * 1024);
        let first = if table.per_user { 2 } else { 1 };
        while let Some(row) = rows.next()? {
            read += 1;
            let rowid: i64 = row.get(0)?;
            let raws: Vec<Raw<'_>> = (first..first + table.columns.len())
                .map(|i| row.get_ref(i).map(raw))
                .collect::<Result<_, _>>()?;
            let owner = if table.per_user {
                let value = raw(row.get_ref(1)?);
                match user_rowid(value) {
                    Ok(owner) => Some(owner),
                    Err(reason) => {
                        rejected += 1;
                        loaded.findings.push(reject(
                            table,
                            rowid,
                            "user_id",
                            value.display(),
                            reason,
                        ));
                        continue;
                    }
                }
            } else {
                None
            };
            let transformed = transform_row(table, rowid, &raws, import_time);
            if transformed.rejected {
                rejected += 1;
                if table.name == USERS.name {
                    loaded.rejected_users.push(rowid);
                }
            } else {
                encode(&mut buffer, table, tag, rowid, owner, &transformed.cells);
            }
            loaded.findings.extend(transformed.findings);
            if buffer.len() >= PIECE {
                send(Piece::Data(std::mem::replace(
                    &mut buffer,
                    Vec::with_capacity(PIECE + 64 * 1024),
                )))?;
            }
            if read % 4096 == 0 {
                bars[index].set_position(read);
            }
        }
        if !buffer.is_empty() {
            send(Piece::Data(buffer))?;
        }
        send(Piece::End)?;
        bars[index].set_position(read);
        bars[index].finish();
        loaded.read.push(read);
        loaded.rejected.push(rejected);
    }
    Ok(loaded)
}

fn encode(
    buffer: &mut Vec<u8>,
    table: &Table,
    tag: u64,
    rowid: i64,
    owner: Option<i64>,
    cells: &[Option<String>],
) {
    buffer.extend_from_slice(rowid.to_string().as_bytes());
    buffer.push(b'\t');
    buffer.extend_from_slice(ids::row_id(tag, table.code, rowid).to_string().as_bytes());
    buffer.push(b'\t');
    match owner {
        Some(owner) => {
            buffer.extend_from_slice(owner.to_string().as_bytes());
            buffer.push(b'\t');
            buffer.extend_from_slice(ids::row_id(tag, USERS.code, owner).to_string().as_bytes());
        }
        None => {
            let profile = ids::row_id(tag, crate::spec::CREATED_PROFILE_CODE, rowid);
            buffer.extend_from_slice(profile.to_string().as_bytes());
        }
    }
    for cell in cells {
        buffer.push(b'\t');
        stage::push_field(buffer, cell.as_deref());
    }
    buffer.push(b'\n');
}

/// Loads `source` into the staging `schema`; gives the source back with what the transforms found.
pub async fn load(
    pool: &PgPool,
    schema: &str,
    source: Source,
    tag: u64,
    import_time: String,
    bars: Vec<ProgressBar>,
) -> anyhow::Result<(Source, Loaded)> {
    let (sender, mut receiver) = mpsc::channel::<Piece>(4);
    let reader = tokio::task::spawn_blocking(move || {
        let loaded = read_source(&source, tag, &import_time, &bars, &sender);
        (source, loaded)
    });
    let mut copy = None;
    let mut failure: Option<anyhow::Error> = None;
    while let Some(piece) = receiver.recv().await {
        let step: anyhow::Result<()> = async {
            match piece {
                Piece::Begin(index) => {
                    let statement = stage::copy_statement(schema, TABLES[index]);
                    copy = Some(pool.copy_in_raw(&statement).await?);
                }
                Piece::Data(data) => {
                    if let Some(copy) = copy.as_mut() {
                        copy.send(data).await?;
                    }
                }
                Piece::End => {
                    if let Some(copy) = copy.take() {
                        copy.finish().await?;
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(err) = step {
            // Closing the channel stops the reader at its next piece.
            failure = Some(err);
            break;
        }
    }
    drop(receiver);
    let (source, loaded) = reader.await?;
    if let Some(err) = failure {
        return Err(err.context("loading the staging tables failed"));
    }
    Ok((source, loaded?))
}
