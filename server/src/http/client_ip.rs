//! The client's IP address for IP rules: the peer address, or, when the peer is a trusted
//! proxy, the nearest untrusted address in `X-Forwarded-For` (read from the right, so a
//! client cannot forge its way past the proxies).

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The client IP of `req`, believing `X-Forwarded-For` only from `trusted` proxies.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok());
    Some(resolve(peer, forwarded, trusted))
}

/// The address limits count by: an IPv4 address as it is (IPv4-mapped IPv6 addresses too), an
/// IPv6 address by its /64 network, since one host commonly holds a whole /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

fn resolve<'a>(peer: IpAddr, forwarded: impl Iterator<Item = &'a str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = forwarded.flat_map(|v| v.split(',')).filter_map(|h| h.trim().parse().ok()).collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(resolve(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &trusted), ip("203.0.113.9"));
        assert_eq!(resolve(ip("10.0.0.1"), ["1.2.3.4"].into_iter(), &trusted), ip("1.2.3.4"));
        assert_eq!(resolve(ip("10.0.0.1"), ["6.6.6.6, 1.2.3.4, 10.0.0.2"].into_iter(), &trusted), ip("1.2.3.4"));
        assert_eq!(resolve(ip("10.0.0.1"), std::iter::empty(), &trusted), ip("10.0.0.1"));
        assert_eq!(resolve(ip("10.0.0.1"), ["garbage"].into_iter(), &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn limits_count_an_ipv6_host_by_its_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(address_key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(address_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(address_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("2001:db8:1:2:ffff::9")), address_key(ip("2001:db8:1:2::1")));
    }
}
