//! What kind of address a hop is: private and other non-public addresses are labelled,
//! never given a guessed location.

use std::net::IpAddr;

/// The `scope` label of an address: `public`, `private`, `loopback`, `link_local`,
/// `shared` (RFC 6598 carrier-grade NAT), `documentation`, `multicast` or `unspecified`.
pub fn scope(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(a) => {
            let [o1, o2, ..] = a.octets();
            if a.is_unspecified() {
                "unspecified"
            } else if a.is_loopback() {
                "loopback"
            } else if a.is_private() {
                "private"
            } else if a.is_link_local() {
                "link_local"
            } else if o1 == 100 && (64..128).contains(&o2) {
                "shared"
            } else if a.is_documentation() {
                "documentation"
            } else if a.is_multicast() || a.is_broadcast() {
                "multicast"
            } else {
                "public"
            }
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            if let Some(v4) = a.to_ipv4_mapped() {
                scope(IpAddr::V4(v4))
            } else if a.is_unspecified() {
                "unspecified"
            } else if a.is_loopback() {
                "loopback"
            } else if a.is_unique_local() {
                "private"
            } else if a.is_unicast_link_local() {
                "link_local"
            } else if first == 0x2001 && a.segments()[1] == 0x0db8 {
                "documentation"
            } else if a.is_multicast() {
                "multicast"
            } else {
                "public"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_their_scope() {
        let s = |a: &str| scope(a.parse().unwrap());
        assert_eq!(s("10.201.1.1"), "private");
        assert_eq!(s("172.16.0.1"), "private");
        assert_eq!(s("192.168.1.1"), "private");
        assert_eq!(s("100.64.0.1"), "shared");
        assert_eq!(s("100.128.0.1"), "public");
        assert_eq!(s("127.0.0.1"), "loopback");
        assert_eq!(s("169.254.0.1"), "link_local");
        assert_eq!(s("192.0.2.1"), "documentation");
        assert_eq!(s("8.8.8.8"), "public");
        assert_eq!(s("fd00::1"), "private");
        assert_eq!(s("fe80::1"), "link_local");
        assert_eq!(s("2001:db8::1"), "documentation");
        assert_eq!(s("2606:4700::1111"), "public");
        assert_eq!(s("::ffff:10.0.0.1"), "private");
    }
}
