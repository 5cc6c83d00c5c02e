//! The listeners beside the public API: the operator listener (`/ops`, `/metrics`), the worker's and the
//! scheduler's probe listeners, and which proxies' `X-Forwarded-For` the API believes.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::ConfigError;
use super::parse::{self, Vars};

/// A listening address. One given explicitly must be bound or the process stops; a default (a probe
/// port nobody chose) falls back to a free port on the same interface, so two workers started on one
/// host with no settings both come up instead of the second exiting on "address in use".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    pub addr: SocketAddr,
    pub explicit: bool,
}

/// `MINGUS_OPS_ADDR`, `MINGUS_OPS_PUBLIC`, `MINGUS_TRUSTED_PROXIES`, `MINGUS_SCHEDULER_METRICS_ADDR`.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// Where `/ops` and `/metrics` are served besides (or instead of) the public listener.
    pub ops_addr: Option<SocketAddr>,
    /// Whether the public listener serves `/ops` and `/metrics` too. Development without `MINGUS_OPS_ADDR`:
    /// yes (one port for everything); otherwise only when `MINGUS_OPS_PUBLIC=true`.
    pub ops_on_public: bool,
    /// Peers whose `X-Forwarded-For` names the client (nginx on this host: `127.0.0.1`). Empty: the
    /// socket's peer address is the client, whatever headers say.
    pub trusted_proxies: Vec<IpNet>,
    /// The scheduler's `/health/*` and `/metrics`; `None` when set to `off`.
    pub scheduler_probe: Option<ListenAddr>,
}

pub(super) fn parse(vars: &Vars<'_>, dev: bool) -> Result<ListenConfig, ConfigError> {
    let ops_addr = vars.parse_with("MINGUS_OPS_ADDR", None, parse::optional_addr)?;
    Ok(ListenConfig {
        ops_addr,
        ops_on_public: vars.parse_with(
            "MINGUS_OPS_PUBLIC",
            dev && ops_addr.is_none(),
            parse::boolean,
        )?,
        trusted_proxies: vars.parse_with("MINGUS_TRUSTED_PROXIES", Vec::new(), proxies)?,
        scheduler_probe: probe(vars, "MINGUS_SCHEDULER_METRICS_ADDR", "127.0.0.1:9092")?,
    })
}

/// A probe address with a default that may fall back to a free port, or `off`.
pub(super) fn probe(
    vars: &Vars<'_>,
    name: &'static str,
    default: &str,
) -> Result<Option<ListenAddr>, ConfigError> {
    let default = ListenAddr {
        addr: default.parse().expect("valid default"),
        explicit: false,
    };
    vars.parse_with(name, Some(default), |raw| {
        parse::optional_addr(raw).map(|addr| {
            addr.map(|addr| ListenAddr {
                addr,
                explicit: true,
            })
        })
    })
}

/// `127.0.0.1, 10.0.0.0/8, ::1`: addresses or CIDR ranges.
fn proxies(raw: &str) -> Result<Vec<IpNet>, String> {
    parse::list_items(raw)
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is neither an IP address nor a CIDR range"))
        })
        .collect()
}
