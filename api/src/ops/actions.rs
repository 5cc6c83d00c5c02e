//! Every `/ops` route that changes something: the role it needs and the name its audit row carries.
//! The one place to look when asking "who may do what": [`super::auth::require`] checks it before the
//! handler runs, and each handler writes its audit row with its [`Action`].
//!
//! Reads (`GET`, `HEAD`) need a viewer. A change that is not listed here needs an admin, so a route
//! added without thinking about its role is closed rather than open.

use axum::http::Method;

use super::actor::OpsRole;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// The audit log's `action` column.
    pub name: &'static str,
    pub method: &'static str,
    /// The route template, as axum's `MatchedPath` reports it.
    pub route: &'static str,
    pub role: OpsRole,
}

pub const QUEUE_PAUSE: Action = Action {
    name: "queue.pause",
    method: "POST",
    route: "/ops/queues/{queue}/pause",
    role: OpsRole::Admin,
};
pub const QUEUE_RESUME: Action = Action {
    name: "queue.resume",
    method: "POST",
    route: "/ops/queues/{queue}/resume",
    role: OpsRole::Admin,
};
pub const JOB_RETRY: Action = Action {
    name: "job.retry",
    method: "POST",
    route: "/ops/jobs/{job_id}/retry",
    role: OpsRole::Support,
};
pub const JOB_DELETE: Action = Action {
    name: "job.delete",
    method: "DELETE",
    route: "/ops/jobs/{job_id}",
    role: OpsRole::Admin,
};
pub const DEAD_RETRY_ALL: Action = Action {
    name: "dead.retry_all",
    method: "POST",
    route: "/ops/dead/retry",
    role: OpsRole::Admin,
};
pub const SCHEDULE_RUN: Action = Action {
    name: "schedule.run",
    method: "POST",
    route: "/ops/schedules/{name}/run",
    role: OpsRole::Admin,
};
pub const STRIPE_EVENT_REPLAY: Action = Action {
    name: "stripe_event.replay",
    method: "POST",
    route: "/ops/stripe-events/{id}/replay",
    role: OpsRole::Support,
};
pub const STRIPE_EVENTS_REPLAY: Action = Action {
    name: "stripe_events.replay",
    method: "POST",
    route: "/ops/stripe-events/replay",
    role: OpsRole::Admin,
};

// The customer page's actions (`customer_actions`): support may take them, as they act on one customer
// whose problem is in front of them; each is idempotent and writes one audit row targeting the user id.
pub const CUSTOMER_PROMOTION_GRANT: Action = Action {
    name: "customer.promotion_grant",
    method: "POST",
    route: "/ops/customers/{id}/promotions",
    role: OpsRole::Support,
};
pub const CUSTOMER_PROMOTION_REVOKE: Action = Action {
    name: "customer.promotion_revoke",
    method: "POST",
    route: "/ops/customers/{id}/promotions/{feature}/revoke",
    role: OpsRole::Support,
};
pub const CUSTOMER_TRIAL_EXTEND: Action = Action {
    name: "customer.trial_extend",
    method: "POST",
    route: "/ops/customers/{id}/trial/extend",
    role: OpsRole::Support,
};
pub const CUSTOMER_USAGE_RESET: Action = Action {
    name: "customer.usage_reset",
    method: "POST",
    route: "/ops/customers/{id}/usage/{metric}/reset",
    role: OpsRole::Support,
};
pub const CUSTOMER_EMAIL_RESEND: Action = Action {
    name: "customer.email_resend",
    method: "POST",
    route: "/ops/customers/{id}/emails/{delivery_id}/resend",
    role: OpsRole::Support,
};
pub const CUSTOMER_STRIPE_REPLAY: Action = Action {
    name: "customer.stripe_replay",
    method: "POST",
    route: "/ops/customers/{id}/stripe-events/replay",
    role: OpsRole::Support,
};
pub const CUSTOMER_ACCESS_RECOMPUTE: Action = Action {
    name: "customer.access_recompute",
    method: "POST",
    route: "/ops/customers/{id}/access/recompute",
    role: OpsRole::Support,
};

/// Operator management happens in `mingus-admin`, not over HTTP; its rows carry these names.
pub const OPERATOR_CREATE: Action = Action {
    name: "operator.create",
    method: "CLI",
    route: "mingus-admin operators create",
    role: OpsRole::Admin,
};
pub const OPERATOR_DISABLE: Action = Action {
    name: "operator.disable",
    method: "CLI",
    route: "mingus-admin operators disable",
    role: OpsRole::Admin,
};

/// Every HTTP action (the ones the role check and the tests go through).
pub const ALL: [Action; 15] = [
    QUEUE_PAUSE,
    QUEUE_RESUME,
    JOB_RETRY,
    JOB_DELETE,
    DEAD_RETRY_ALL,
    SCHEDULE_RUN,
    STRIPE_EVENT_REPLAY,
    STRIPE_EVENTS_REPLAY,
    CUSTOMER_PROMOTION_GRANT,
    CUSTOMER_PROMOTION_REVOKE,
    CUSTOMER_TRIAL_EXTEND,
    CUSTOMER_USAGE_RESET,
    CUSTOMER_EMAIL_RESEND,
    CUSTOMER_STRIPE_REPLAY,
    CUSTOMER_ACCESS_RECOMPUTE,
];

/// The role a request to `route` with `method` needs.
pub fn required_role(method: &Method, route: &str) -> OpsRole {
    if matches!(*method, Method::GET | Method::HEAD) {
        return OpsRole::Viewer;
    }
    ALL.iter()
        .find(|a| a.method == method.as_str() && a.route == route)
        .map_or(OpsRole::Admin, |a| a.role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_a_viewer_listed_changes_their_role_and_unlisted_changes_an_admin() {
        assert_eq!(
            required_role(&Method::GET, "/ops/jobs/{job_id}"),
            OpsRole::Viewer
        );
        assert_eq!(
            required_role(&Method::DELETE, "/ops/jobs/{job_id}"),
            OpsRole::Admin
        );
        assert_eq!(
            required_role(&Method::POST, "/ops/jobs/{job_id}/retry"),
            OpsRole::Support
        );
        assert_eq!(
            required_role(&Method::POST, "/ops/something-new"),
            OpsRole::Admin
        );
        let mut names: Vec<_> = ALL.iter().map(|a| a.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "audit names are unique");
    }
}
