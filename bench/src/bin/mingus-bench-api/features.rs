//! `GET /v1/features/{feature}`: users and features in rotation, so every request is a cache hit of a
//! different (user, feature) pair than its neighbours.

use mingus_bench::Request;

/// By default metered and unmetered features alternate, so checks with and without a usage read (one
/// PostgreSQL query) are both measured.
pub const DEFAULT_FEATURES: &str =
    "basic_analytics,custom_reports,api_access,portfolio_optimization";

pub fn requests(tokens: &[String], features: &[String], count: usize) -> Vec<Request> {
    (0..count)
        .map(|n| {
            let token = &tokens[n % tokens.len()];
            let feature = &features[(n / tokens.len()) % features.len()];
            Request::get(format!("/v1/features/{feature}"))
                .header("authorization", &format!("Bearer {token}"))
        })
        .collect()
}
