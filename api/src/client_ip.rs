//! The client's address. Behind nginx every connection comes from the proxy, so rate limits and logs
//! need the address the proxy saw; but `X-Forwarded-For` is a header anyone can send, so it is believed
//! only from a peer listed in `MINGUS_TRUSTED_PROXIES`. Walking the header from the right and skipping
//! trusted hops gives the first address no trusted proxy vouches for: the client (or whoever is lying,
//! which is then their own address anyway).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address, as a request extension (absent when the server runs without connect info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

fn trusted(proxies: &[IpNet], ip: IpAddr) -> bool {
    proxies.iter().any(|net| net.contains(&ip))
}

/// The client address given the socket's peer and the headers.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    if !trusted(proxies, peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // An unparsable hop ends the walk: nothing left of it can be trusted.
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !trusted(proxies, ip) {
            break;
        }
    }
    client
}

/// Inserts [`ClientIp`] into the request, for the log span and handlers.
pub fn tag(proxies: &Arc<Vec<IpNet>>, mut request: Request) -> Request {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let ip = resolve(peer.ip(), request.headers(), proxies);
        request.extensions_mut().insert(ClientIp(ip));
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in xff {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_the_header_says() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let got = resolve(peer, &headers(&["1.2.3.4"]), &nets(&["127.0.0.1/32"]));
        assert_eq!(got, peer);
    }

    #[test]
    fn a_trusted_proxy_hands_over_the_rightmost_untrusted_hop() {
        let proxies = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let got = resolve(
            "127.0.0.1".parse().unwrap(),
            &headers(&["6.6.6.6, 198.51.100.7", "10.1.2.3"]),
            &proxies,
        );
        // 6.6.6.6 was written by the client itself; 198.51.100.7 is who connected to our edge proxy.
        assert_eq!(got, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbage_or_no_header_leaves_the_last_believable_address() {
        let proxies = nets(&["127.0.0.1/32"]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(resolve(peer, &headers(&[]), &proxies), peer);
        assert_eq!(resolve(peer, &headers(&["not-an-ip"]), &proxies), peer);
        assert_eq!(
            resolve(peer, &headers(&["9.9.9.9, nonsense, 192.0.2.1"]), &proxies),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
