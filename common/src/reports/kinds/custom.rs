//! A custom report: the bodies of the standard kinds the user picked, under `sections` keyed by kind
//! name (`{"sections": {"financial": {…}, "health": {…}}}`), each exactly what that kind's own report
//! holds for the same period. A kind picked twice appears once; no pick, or `custom` among them, is an
//! error (the API refuses such a request before it is stored).

use serde_json::{Map, Value};
use sqlx::PgConnection;

use super::Window;
use crate::reports::ReportKind;

pub(super) async fn body(
    conn: &mut PgConnection,
    w: &Window,
    sections: &[ReportKind],
) -> anyhow::Result<Map<String, Value>> {
    anyhow::ensure!(
        !sections.is_empty(),
        "a custom report needs at least one section"
    );
    anyhow::ensure!(
        !sections.contains(&ReportKind::Custom),
        "a custom report cannot be a section of itself"
    );
    let mut combined = Map::new();
    for &kind in sections {
        if !combined.contains_key(kind.name()) {
            let body = super::section(conn, w, kind).await?;
            combined.insert(kind.name().to_owned(), Value::Object(body));
        }
    }
    let mut body = Map::new();
    body.insert("sections".into(), Value::Object(combined));
    Ok(body)
}
