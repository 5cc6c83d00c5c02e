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

/// `MINGUS_OPS_ADDR`, `MINGUS_OPS_PUBLIC`, `MINGUS_TRUSTED_PROXIES`, `MINGUS_OPS_PROXY_USER_HEADER`,
/// `MINGUS_OPS_PROXY_ADDRS`, `MINGUS_SCHEDULER_METRICS_ADDR`.
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
    /// An identity proxy in front of `/ops` (oauth2-proxy, Pomerium, …) that names the signed-in person.
    pub ops_proxy: Option<OpsProxy>,
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
        ops_proxy: ops_proxy(vars)?,
        scheduler_probe: probe(vars, "MINGUS_SCHEDULER_METRICS_ADDR", "127.0.0.1:9092")?,
    })
}

/// Sign-in delegated to an identity proxy: the header it sets to the person's login (their operator
/// name, e.g. `X-Forwarded-Email` from oauth2-proxy) is believed only on connections whose socket peer
/// is one of `addrs` — never from `X-Forwarded-For`, which anyone can write. The operator must exist
/// and be enabled (`mingus-admin operators create`): the proxy says who, our table says which role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsProxy {
    /// Lower-case header name.
    pub user_header: String,
    pub addrs: Vec<IpNet>,
}

/// Headers that carry something else and must never be read as an identity.
const RESERVED_HEADERS: [&str; 7] = [
    "authorization",
    "cookie",
    "host",
    "x-forwarded-for",
    "x-real-ip",
    "x-request-id",
    "x-mingus-ops",
];

fn user_header(raw: &str) -> Result<Option<String>, String> {
    let name = raw.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Ok(None);
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!(
            "{name:?} is not a header name (letters, digits and '-')"
        ));
    }
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(format!(
            "{name} carries something else; use the proxy's user header"
        ));
    }
    Ok(Some(name))
}

fn ops_proxy(vars: &Vars<'_>) -> Result<Option<OpsProxy>, ConfigError> {
    let header = vars.parse_with("MINGUS_OPS_PROXY_USER_HEADER", None, user_header)?;
    let addrs = vars.parse_with("MINGUS_OPS_PROXY_ADDRS", Vec::new(), proxies)?;
    match (header, addrs.is_empty()) {
        (None, true) => Ok(None),
        (Some(_), true) => Err(ConfigError::invalid(
            "MINGUS_OPS_PROXY_ADDRS",
            "MINGUS_OPS_PROXY_USER_HEADER is set: name the identity proxy's addresses, the only peers whose header is believed",
        )),
        (None, false) => Err(ConfigError::invalid(
            "MINGUS_OPS_PROXY_USER_HEADER",
            "MINGUS_OPS_PROXY_ADDRS is set but no header names the signed-in person",
        )),
        (Some(_), false) if addrs.iter().any(|net| net.prefix_len() == 0) => {
            Err(ConfigError::insecure(
                "MINGUS_OPS_PROXY_ADDRS",
                "a range of every address would let anyone sign in as anyone",
            ))
        }
        (Some(user_header), false) => Ok(Some(OpsProxy { user_header, addrs })),
    }
}

/// Production: the identity proxy is named narrowly (hosts, or ranges no wider than /24 or /64), so a
/// neighbour on a shared network cannot claim to be it.
pub(super) fn check_production(listen: &ListenConfig) -> Result<(), ConfigError> {
    let wide = |net: &IpNet| match net {
        IpNet::V4(v4) => v4.prefix_len() < 24,
        IpNet::V6(v6) => v6.prefix_len() < 64,
    };
    if let Some(proxy) = &listen.ops_proxy
        && proxy.addrs.iter().any(wide)
    {
        return Err(ConfigError::insecure(
            "MINGUS_OPS_PROXY_ADDRS",
            "a range wider than /24 (IPv4) or /64 (IPv6): name the identity proxy's addresses",
        ));
    }
    Ok(())
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
