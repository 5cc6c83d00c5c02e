//! `mingus-admin operators create|disable|list`: the named operators of `/ops`.
//!
//! `create` prints the operator's token once (it is stored only as a SHA-256); hand it over through a
//! channel you trust, or run the command as the operator. A lost token is replaced by disabling the
//! operator and creating another name. Both changes write an audit row as `mingus-admin`, in the same
//! transaction.

use anyhow::Context;
use clap::Subcommand;
use mingus_common::Config;
use mingus_common::db;
use serde_json::json;

use crate::ops::actor::{Actor, OpsRole};
use crate::ops::{actions, audit, operators};

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Creates an operator and prints their token (shown once).
    Create {
        /// 1–64 of a-z 0-9 . _ @ -, e.g. an e-mail address or a login name.
        #[arg(long)]
        name: String,
        /// viewer (reads), support (customer actions: retry one job, replay one event) or admin.
        #[arg(long, value_parser = parse_role)]
        role: OpsRole,
    },
    /// Disables an operator: their token and every dashboard session stop working at once.
    Disable {
        #[arg(long)]
        name: String,
    },
    /// Lists operators (never their tokens).
    List,
}

fn parse_role(raw: &str) -> Result<OpsRole, String> {
    raw.parse()
}

pub async fn execute(command: OperatorsCommand, config: &Config) -> anyhow::Result<()> {
    let pool = db::connect(&config.database)
        .await
        .context("cannot connect to DATABASE_URL")?;
    match command {
        OperatorsCommand::Create { name, role } => {
            let mut tx = pool.begin().await?;
            let (operator, token) = operators::create(&mut *tx, &name, role).await?;
            let entry = audit::Entry {
                target: Some(operator.name.clone()),
                after: Some(json!({ "role": operator.role, "id": operator.id })),
                ..audit::Entry::default()
            };
            audit::record(&mut *tx, &Actor::cli(), actions::OPERATOR_CREATE, entry).await?;
            tx.commit().await?;
            println!("operator {} created ({})", operator.name, operator.role);
            println!("token (shown once): {token}");
            Ok(())
        }
        OperatorsCommand::Disable { name } => {
            let mut tx = pool.begin().await?;
            let operator = operators::disable(&mut *tx, &name)
                .await?
                .with_context(|| format!("no operator named {name:?}"))?;
            let entry = audit::Entry {
                target: Some(operator.name.clone()),
                after: Some(json!({ "disabled_at": operator.disabled_at })),
                ..audit::Entry::default()
            };
            audit::record(&mut *tx, &Actor::cli(), actions::OPERATOR_DISABLE, entry).await?;
            tx.commit().await?;
            println!("operator {} disabled", operator.name);
            Ok(())
        }
        OperatorsCommand::List => {
            for operator in operators::list(&pool).await? {
                let state = match operator.disabled_at {
                    Some(at) => format!("disabled {}", at.format("%Y-%m-%d %H:%M UTC")),
                    None => "enabled".to_owned(),
                };
                println!("{:<32} {:<8} {state}", operator.name, operator.role);
            }
            Ok(())
        }
    }
}
