//! What an API key may do. A user token (JWT) may do everything its user may; an API key only what its
//! scopes (`api_keys.permissions`, a JSON array of scope names) allow.
//!
//! | scope | allows |
//! |---|---|
//! | `features:read` | `GET /v1/features…` |
//! | `reports:read` | `GET /v1/reports/…` and downloads |
//! | `reports:write` | `POST /v1/reports` |
//! | `team:read` | listing team members |
//! | `team:write` | inviting, changing and removing team members |
//! | `api_keys:read` | `GET /v1/api-keys` (creating and revoking keys needs a user session) |
//! | `usage:read` | `GET /v1/usage…` |
//! | `analytics:read` | `GET /v1/analytics` |
//! | `usage:write` | `POST /v1/usage/{metric}` (consuming metered units) |

use std::fmt;

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    FeaturesRead,
    ReportsRead,
    ReportsWrite,
    TeamRead,
    TeamWrite,
    ApiKeysRead,
    UsageRead,
    UsageWrite,
    AnalyticsRead,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::FeaturesRead,
        Scope::ReportsRead,
        Scope::ReportsWrite,
        Scope::TeamRead,
        Scope::TeamWrite,
        Scope::ApiKeysRead,
        Scope::UsageRead,
        Scope::UsageWrite,
        Scope::AnalyticsRead,
    ];

    /// A key created without `scopes` may read, not write.
    pub const DEFAULT: [Scope; 2] = [Scope::FeaturesRead, Scope::ReportsRead];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::FeaturesRead => "features:read",
            Scope::ReportsRead => "reports:read",
            Scope::ReportsWrite => "reports:write",
            Scope::TeamRead => "team:read",
            Scope::TeamWrite => "team:write",
            Scope::ApiKeysRead => "api_keys:read",
            Scope::UsageRead => "usage:read",
            Scope::UsageWrite => "usage:write",
            Scope::AnalyticsRead => "analytics:read",
        }
    }

    pub fn parse(raw: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The scopes stored in a key's `permissions`. Names this version does not know grant nothing.
    pub fn from_permissions(permissions: &serde_json::Value) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = permissions
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().and_then(Scope::parse))
            .collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    /// All scope names, for error messages.
    pub fn names() -> String {
        Scope::ALL.map(Scope::as_str).join(", ")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_permissions_grant_nothing() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("reports:delete"), None);
        let stored = serde_json::json!([
            "reports:write",
            "admin",
            7,
            "features:read",
            "reports:write"
        ]);
        assert_eq!(
            Scope::from_permissions(&stored),
            [Scope::FeaturesRead, Scope::ReportsWrite]
        );
        assert!(Scope::from_permissions(&serde_json::json!({"all": true})).is_empty());
    }
}
