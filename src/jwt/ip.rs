//! The `ipa` claim: the token names an IP address or CIDR, and the viewer must be inside it.
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are judged as the IPv4 address they carry, on
//! both sides, since a dual-stack listener reports IPv4 viewers that way.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// Parses an `ipa` value: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
pub fn parse_ipa(ipa: &str) -> Option<IpNet> {
    if let Ok(net) = ipa.parse::<IpNet>() {
        return Some(unmap_net(net));
    }
    ipa.parse::<IpAddr>().ok().map(|ip| IpNet::from(unmap(ip)))
}

/// Parses the viewer IP as MistServer sends it.
pub fn parse_viewer_ip(ip: &str) -> Option<IpAddr> {
    ip.trim().parse::<IpAddr>().ok().map(unmap)
}

/// Whether the viewer is inside the `ipa` value; anything unparsable is outside.
pub fn ipa_contains(ipa: &str, viewer_ip: &str) -> bool {
    match (parse_ipa(ipa), parse_viewer_ip(viewer_ip)) {
        (Some(net), Some(ip)) => net.contains(&ip),
        _ => false,
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn unmap_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .addr()
            .to_ipv4_mapped()
            .and_then(|v4| Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_address_and_cidr_match() {
        assert!(ipa_contains("10.0.0.0/8", "10.1.2.3"));
        assert!(!ipa_contains("10.0.0.0/8", "11.1.2.3"));
        assert!(ipa_contains("192.0.2.7", "192.0.2.7"));
        assert!(!ipa_contains("192.0.2.7", "192.0.2.8"));
        assert!(ipa_contains("2001:db8::/32", "2001:db8::1"));
        assert!(!ipa_contains("2001:db8::/32", "2001:db9::1"));
    }

    #[test]
    fn ipv4_mapped_viewer_is_judged_as_ipv4() {
        assert!(ipa_contains("10.0.0.0/8", "::ffff:10.1.2.3"));
        assert!(ipa_contains("::ffff:10.0.0.0/104", "10.1.2.3"));
        assert!(!ipa_contains("10.0.0.0/8", "::ffff:11.1.2.3"));
    }

    #[test]
    fn unparsable_values_never_match() {
        assert!(!ipa_contains("10.0.0.0/33", "10.0.0.1"));
        assert!(!ipa_contains("everyone", "10.0.0.1"));
        assert!(!ipa_contains("0.0.0.0/0", "not-an-ip"));
        assert!(!ipa_contains("0.0.0.0/0", ""));
    }
}
