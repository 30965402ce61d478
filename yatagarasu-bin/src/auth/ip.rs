//! Client addresses and IP filters: who is asking, when proxies stand in between, and whether that
//! address may read a bucket.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// Allow and block lists of networks (IPv4 and IPv6). The blocklist wins; a non-empty allowlist
/// admits only its networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpFilter {
    allow: Vec<IpNet>,
    block: Vec<IpNet>,
}

impl IpFilter {
    /// A filter of `allow` and `block` lists.
    pub fn new(allow: Vec<IpNet>, block: Vec<IpNet>) -> Self {
        Self { allow, block }
    }

    /// Whether `ip` may pass (IPv4-mapped IPv6 addresses are taken as IPv4).
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.block.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// A network from `a.b.c.d/n`, `v6/n`, or a single address.
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The client's address: the socket's peer, unless that peer is one of `trusted` proxies; then the
/// nearest address in `Forwarded` (RFC 7239 `for=`) or else `X-Forwarded-For` that is not itself a
/// trusted proxy, read from the right (the entries a client wrote on the left are never believed
/// past a hop the proxies did not add).
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops = forwarded_for(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                client = ip.to_canonical();
                if !is_trusted(&client) {
                    return Some(client);
                }
            }
            // An entry we cannot read ends the chain: the last address we could is the answer.
            None => return Some(client),
        }
    }
    Some(client)
}

/// The `for=` addresses of `Forwarded`, else the `X-Forwarded-For` list, left to right; `None` for
/// an entry that is not an address (`unknown`, obfuscated names, garbage).
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let joined = |name: http::header::HeaderName| -> Option<String> {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    if let Some(f) = joined(http::header::FORWARDED) {
        return f
            .split(',')
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(v.trim()))
                })
            })
            .collect();
    }
    match joined(http::header::HeaderName::from_static("x-forwarded-for")) {
        Some(x) => x.split(',').map(|h| parse_node(h.trim())).collect(),
        None => Vec::new(),
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `"[2001:db8::1]:80"`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| parse_net(s).unwrap()).collect()
    }

    #[test]
    fn blocklist_wins_and_allowlist_admits() {
        let f = IpFilter::new(nets(&["10.0.0.0/8", "2001:db8::/32"]), nets(&["10.0.0.50"]));
        assert!(f.permits(ip("10.1.2.3")));
        assert!(!f.permits(ip("10.0.0.50")));
        assert!(!f.permits(ip("192.168.1.1")));
        assert!(f.permits(ip("2001:db8::1")));
        assert!(f.permits(ip("::ffff:10.9.9.9")), "IPv4-mapped is IPv4");
        assert!(IpFilter::new(vec![], nets(&["10.0.0.0/8"])).permits(ip("8.8.8.8")));
        assert!(parse_net("10.0.0.0/33").is_none() && parse_net("nope").is_none());
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let trusted = nets(&["127.0.0.1/32", "10.9.0.0/16"]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.9.1.1".parse().unwrap(),
        );
        // From a trusted proxy: the rightmost address that is not a trusted proxy.
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &trusted),
            Some(ip("203.0.113.7"))
        );
        // From anyone else: the header is ignored.
        assert_eq!(
            client_ip(Some(ip("198.51.100.1")), &h, &trusted),
            Some(ip("198.51.100.1"))
        );
        let mut f = HeaderMap::new();
        f.insert(
            "forwarded",
            r#"for=192.0.2.60;proto=http, for="[2001:db8::7]:4711""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &f, &trusted),
            Some(ip("2001:db8::7"))
        );
        let mut g = HeaderMap::new();
        g.insert("x-forwarded-for", "203.0.113.9, garbage".parse().unwrap());
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &g, &trusted),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(client_ip(None, &h, &trusted), None);
    }
}
