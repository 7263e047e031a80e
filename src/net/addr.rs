//! Which IP addresses a webhook may be dialed at (SPEC §4): pure classification, no I/O, so the
//! policy-time check, the per-dial resolver filter and the literal check all share one answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// IPv4 ranges that are never dialed (SPEC §4).
const REFUSED_V4: [(Ipv4Addr, u8); 15] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// IPv6 ranges that are never dialed (SPEC §4), plus IPv4-compatible `::/96` (see [`AddressPolicy`]).
const REFUSED_V6: [(Ipv6Addr, u8); 10] = [
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    // IPv4-compatible addresses (RFC 4291 §2.5.5.1, deprecated): refused outright.
    (Ipv6Addr::UNSPECIFIED, 96),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];

/// Decides whether an address may be dialed: globally routable unicast only, unless an
/// operator-configured CIDR (`[outbound] allow_cidrs`) allows it.
///
/// IPv6 forms that carry an IPv4 address are judged by that IPv4 address: IPv4-mapped
/// `::ffff:0:0/96`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48` (low 32 bits), 6to4 `2002::/16`
/// (bits 16..48). The deprecated IPv4-compatible block `::/96` is refused whatever it carries:
/// no public service uses it, and some stacks still route it to the embedded IPv4 address.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    extra_allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// A policy that additionally allows the given CIDRs (lab use).
    pub fn new(extra_allowed: Vec<IpNet>) -> AddressPolicy {
        AddressPolicy { extra_allowed }
    }

    /// Whether `ip` may be dialed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.explicitly_allowed(ip) {
            return true;
        }
        match ip {
            IpAddr::V4(v4) => !refused_v4(v4),
            IpAddr::V6(v6) => match embedded_ipv4(v6) {
                Some(v4) => self.explicitly_allowed(IpAddr::V4(v4)) || !refused_v4(v4),
                None => !refused_v6(v6),
            },
        }
    }

    fn explicitly_allowed(&self, ip: IpAddr) -> bool {
        self.extra_allowed.iter().any(|net| net.contains(&ip))
    }
}

fn refused_v4(ip: Ipv4Addr) -> bool {
    REFUSED_V4.iter().any(|&(net, len)| {
        Ipv4Net::new(net, len)
            .map(|n| n.contains(&ip))
            .unwrap_or(true)
    })
}

fn refused_v6(ip: Ipv6Addr) -> bool {
    REFUSED_V6.iter().any(|&(net, len)| {
        Ipv6Net::new(net, len)
            .map(|n| n.contains(&ip))
            .unwrap_or(true)
    })
}

/// The IPv4 address carried by an IPv4-mapped, NAT64 or 6to4 address.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let seg = ip.segments();
    let mapped = bits >> 32 == 0xffff;
    let nat64 = bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000;
    let nat64_local = seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1;
    if mapped || nat64 || nat64_local {
        return Some(low32);
    }
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    /// (address, allowed) for the first and last address of every refused range and the
    /// neighbours on both sides. A neighbour may itself fall into an adjacent refused range.
    const TABLE: &[(&str, bool)] = &[
        ("0.0.0.0", false),
        ("0.255.255.255", false),
        ("1.0.0.0", true),
        ("9.255.255.255", true),
        ("10.0.0.0", false),
        ("10.255.255.255", false),
        ("11.0.0.0", true),
        ("100.63.255.255", true),
        ("100.64.0.0", false),
        ("100.127.255.255", false),
        ("100.128.0.0", true),
        ("126.255.255.255", true),
        ("127.0.0.0", false),
        ("127.255.255.255", false),
        ("128.0.0.0", true),
        ("169.253.255.255", true),
        ("169.254.0.0", false),
        ("169.254.255.255", false),
        ("169.255.0.0", true),
        ("172.15.255.255", true),
        ("172.16.0.0", false),
        ("172.31.255.255", false),
        ("172.32.0.0", true),
        ("191.255.255.255", true),
        ("192.0.0.0", false),
        ("192.0.0.255", false),
        ("192.0.1.0", true),
        ("192.0.1.255", true),
        ("192.0.2.0", false),
        ("192.0.2.255", false),
        ("192.0.3.0", true),
        ("192.88.98.255", true),
        ("192.88.99.0", false),
        ("192.88.99.255", false),
        ("192.88.100.0", true),
        ("192.167.255.255", true),
        ("192.168.0.0", false),
        ("192.168.255.255", false),
        ("192.169.0.0", true),
        ("198.17.255.255", true),
        ("198.18.0.0", false),
        ("198.19.255.255", false),
        ("198.20.0.0", true),
        ("198.51.99.255", true),
        ("198.51.100.0", false),
        ("198.51.100.255", false),
        ("198.51.101.0", true),
        ("203.0.112.255", true),
        ("203.0.113.0", false),
        ("203.0.113.255", false),
        ("203.0.114.0", true),
        ("223.255.255.255", true),
        ("224.0.0.0", false),
        ("239.255.255.255", false),
        ("240.0.0.0", false),
        ("255.255.255.255", false),
        // IPv6
        ("::", false),
        ("::1", false),
        ("::2", false),
        ("::ffff:ffff", false),
        ("::1:0:0", true),
        ("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("100::", false),
        ("100::ffff:ffff:ffff:ffff", false),
        ("100:0:0:1::", true),
        ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("2001::", false),
        ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("2001:200::", true),
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("2001:db8::", false),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("2001:db9::", true),
        ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("fc00::", false),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("fe00::", true),
        ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("fe80::", false),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("fec0::", false),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("ff00::", false),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("2606:4700::1111", true),
        ("8.8.8.8", true),
        // IPv4-mapped ::ffff:0:0/96, judged by the IPv4 address.
        ("::ffff:127.0.0.1", false),
        ("::ffff:10.1.2.3", false),
        ("::ffff:8.8.8.8", true),
        ("::ffff:0.0.0.0", false),
        ("::fffe:ffff:ffff", true),
        ("::1:0:0:0", true),
        // NAT64 64:ff9b::/96 and 64:ff9b:1::/48.
        ("64:ff9b::7f00:1", false),
        ("64:ff9b::a9fe:a9fe", false),
        ("64:ff9b::808:808", true),
        ("64:ff9b:1::c0a8:1", false),
        ("64:ff9b:1:ffff:ffff:ffff:c0a8:1", false),
        ("64:ff9b:1::808:808", true),
        // 6to4 2002::/16, IPv4 in bits 16..48.
        ("2002:7f00:1::", false),
        ("2002:a00:1::1", false),
        ("2002:c0a8:101::", false),
        ("2002:808:808::1", true),
    ];

    #[test]
    fn every_spec_range_and_its_edges_are_classified() {
        let policy = AddressPolicy::default();
        for &(addr, allowed) in TABLE {
            assert_eq!(policy.allows(ip(addr)), allowed, "{addr}");
        }
    }

    #[test]
    fn allow_cidrs_open_an_otherwise_refused_range() {
        let policy = AddressPolicy::new(vec!["127.0.0.2/32".parse().expect("cidr")]);
        assert!(policy.allows(ip("127.0.0.2")));
        assert!(!policy.allows(ip("127.0.0.1")));
        assert!(!policy.allows(ip("127.0.0.3")));
    }

    #[test]
    fn allow_cidrs_apply_to_the_embedded_ipv4_form() {
        let policy = AddressPolicy::new(vec!["127.0.0.2/32".parse().expect("cidr")]);
        assert!(policy.allows(ip("::ffff:127.0.0.2")));
        assert!(policy.allows(ip("64:ff9b::7f00:2")));
        assert!(policy.allows(ip("2002:7f00:2::")));
        assert!(!policy.allows(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn ipv6_allow_cidrs_are_honoured() {
        let policy = AddressPolicy::new(vec!["::1/128".parse().expect("cidr")]);
        assert!(policy.allows(ip("::1")));
        assert!(!policy.allows(ip("::2")));
    }
}
