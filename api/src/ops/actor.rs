//! Who is acting on `/ops`, and with which role.
//!
//! Three roles, ordered: a **viewer** reads everything and changes nothing; **support** may do what a
//! customer's problem needs (retry one dead job, replay one Stripe event, the customer page's actions);
//! an **admin** may do everything (pauses, deletes, bulk retries and replays, running schedules). What
//! each action needs is written once, in [`super::actions`].

use std::net::IpAddr;

use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpsRole {
    Viewer,
    Support,
    Admin,
}

impl OpsRole {
    pub const ALL: [OpsRole; 3] = [OpsRole::Viewer, OpsRole::Support, OpsRole::Admin];

    pub fn name(self) -> &'static str {
        match self {
            OpsRole::Viewer => "viewer",
            OpsRole::Support => "support",
            OpsRole::Admin => "admin",
        }
    }
}

impl std::str::FromStr for OpsRole {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        OpsRole::ALL
            .into_iter()
            .find(|role| role.name() == raw)
            .ok_or_else(|| format!("unknown role {raw:?} (one of viewer, support, admin)"))
    }
}

/// The name break-glass access (`MINGUS_ADMIN_TOKEN`) is audited under; no operator may take it.
pub const BREAK_GLASS: &str = "break-glass";
/// The name `mingus-admin` (whoever has the database credentials) is audited under.
pub const CLI: &str = "mingus-admin";

/// The authenticated caller of a protected `/ops` route, put in the request's extensions by
/// [`super::auth::require`].
#[derive(Debug, Clone)]
pub struct Actor {
    /// The operator's name, or [`BREAK_GLASS`].
    pub name: String,
    /// `None` for break-glass.
    pub operator_id: Option<Uuid>,
    pub role: OpsRole,
    pub request_id: Option<String>,
    pub client_ip: Option<IpAddr>,
}

impl Actor {
    /// The command line: it holds the database credentials, so it acts as an admin.
    pub fn cli() -> Self {
        Actor {
            name: CLI.to_owned(),
            ..Actor::break_glass()
        }
    }

    pub fn break_glass() -> Self {
        Actor {
            name: BREAK_GLASS.to_owned(),
            operator_id: None,
            role: OpsRole::Admin,
            request_id: None,
            client_ip: None,
        }
    }
}
