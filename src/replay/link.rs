//! Link layers: from a captured frame to the IP packet it carries.
//!
//! Link types are the LINKTYPE_* values of <https://www.tcpdump.org/linktypes.html>; the
//! header layouts are cited on each function.

/// What a frame carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Link<'a> {
    /// An IP packet (version not yet checked).
    Ip(&'a [u8]),
    /// Something else (ARP, LLDP, 802.2, ...).
    NotIp,
    /// A link type this reader does not decode.
    Unsupported,
    /// The link header is cut short.
    Malformed,
}

pub(crate) const LINKTYPE_NULL: u32 = 0;
pub(crate) const LINKTYPE_ETHERNET: u32 = 1;
pub(crate) const LINKTYPE_RAW: u32 = 101;
pub(crate) const LINKTYPE_LOOP: u32 = 108;
pub(crate) const LINKTYPE_LINUX_SLL: u32 = 113;
pub(crate) const LINKTYPE_IPV4: u32 = 228;
pub(crate) const LINKTYPE_IPV6: u32 = 229;
pub(crate) const LINKTYPE_LINUX_SLL2: u32 = 276;
/// DLT_RAW as some old BSD libpcaps wrote it into files instead of LINKTYPE_RAW.
const DLT_RAW_BSD: [u32; 2] = [12, 14];

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q, 802.1ad (QinQ outer tag) and the pre-standard 0x9100 QinQ tag: 4 bytes each
/// (TCI, then the next EtherType).
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

pub(crate) fn ip_payload(link_type: u32, frame: &[u8]) -> Link<'_> {
    match link_type {
        LINKTYPE_ETHERNET => ethernet(frame),
        LINKTYPE_LINUX_SLL => sll(frame),
        LINKTYPE_LINUX_SLL2 => sll2(frame),
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Link::Ip(frame),
        t if DLT_RAW_BSD.contains(&t) => Link::Ip(frame),
        LINKTYPE_NULL | LINKTYPE_LOOP => null(frame),
        _ => Link::Unsupported,
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let bytes = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// Ethernet II: destination (6), source (6), EtherType (2). A value below 0x0600 is an 802.3
/// length (LLC follows), which is not IP.
fn ethernet(frame: &[u8]) -> Link<'_> {
    match (be16(frame, 12), frame.get(14..)) {
        (Some(et), Some(rest)) => by_ethertype(et, rest),
        _ => Link::Malformed,
    }
}

/// Linux cooked capture v1: packet type (2), ARPHRD (2), address length (2), address (8),
/// protocol (2; an EtherType for the cases that matter here).
fn sll(frame: &[u8]) -> Link<'_> {
    match (be16(frame, 14), frame.get(16..)) {
        (Some(proto), Some(rest)) => by_ethertype(proto, rest),
        _ => Link::Malformed,
    }
}

/// Linux cooked capture v2: protocol (2), reserved (2), interface index (4), ARPHRD (2),
/// packet type (1), address length (1), address (8).
fn sll2(frame: &[u8]) -> Link<'_> {
    match (be16(frame, 0), frame.get(20..)) {
        (Some(proto), Some(rest)) => by_ethertype(proto, rest),
        _ => Link::Malformed,
    }
}

/// Follows VLAN tags to the IP packet. Each tag consumes 4 bytes, so the loop ends.
fn by_ethertype(mut ethertype: u16, mut rest: &[u8]) -> Link<'_> {
    loop {
        match ethertype {
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => return Link::Ip(rest),
            t if ETHERTYPE_VLAN.contains(&t) => match (be16(rest, 2), rest.get(4..)) {
                (Some(next), Some(after)) => {
                    ethertype = next;
                    rest = after;
                }
                _ => return Link::Malformed,
            },
            _ => return Link::NotIp,
        }
    }
}

/// BSD loopback: a 4-byte address family, in the capturing host's byte order for LINKTYPE_NULL
/// and in network order for LINKTYPE_LOOP. AF_INET is 2 everywhere; AF_INET6 is 10 (Linux),
/// 24 (NetBSD, OpenBSD), 28 (FreeBSD) or 30 (macOS). Both byte orders are tried: the values are
/// small, so a family read in the wrong order is never one of them.
fn null(frame: &[u8]) -> Link<'_> {
    let (Some(af), Some(rest)) = (frame.get(..4), frame.get(4..)) else {
        return Link::Malformed;
    };
    let af = [af[0], af[1], af[2], af[3]];
    let family = |v: u32| matches!(v, 2 | 10 | 24 | 28 | 30);
    if family(u32::from_le_bytes(af)) || family(u32::from_be_bytes(af)) {
        Link::Ip(rest)
    } else {
        Link::NotIp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_with_two_vlan_tags() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x86, 0xdd, 0x60]);
        assert_eq!(ip_payload(LINKTYPE_ETHERNET, &f), Link::Ip(&[0x60]));
        f.truncate(16);
        assert_eq!(ip_payload(LINKTYPE_ETHERNET, &f), Link::Malformed);
    }

    #[test]
    fn non_ip_and_short_frames() {
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 1, 2]);
        assert_eq!(ip_payload(LINKTYPE_ETHERNET, &arp), Link::NotIp);
        assert_eq!(ip_payload(LINKTYPE_ETHERNET, &arp[..13]), Link::Malformed);
        assert_eq!(ip_payload(LINKTYPE_LINUX_SLL, &arp[..15]), Link::Malformed);
        assert_eq!(ip_payload(LINKTYPE_LINUX_SLL, &arp), Link::NotIp);
        assert_eq!(ip_payload(LINKTYPE_LINUX_SLL2, &[]), Link::Malformed);
        assert_eq!(ip_payload(147, &arp), Link::Unsupported);
    }

    #[test]
    fn loopback_families_in_both_byte_orders() {
        assert_eq!(
            ip_payload(LINKTYPE_NULL, &[2, 0, 0, 0, 0x45]),
            Link::Ip(&[0x45])
        );
        assert_eq!(
            ip_payload(LINKTYPE_NULL, &[0, 0, 0, 30, 0x60]),
            Link::Ip(&[0x60])
        );
        assert_eq!(
            ip_payload(LINKTYPE_LOOP, &[0, 0, 0, 24, 0x60]),
            Link::Ip(&[0x60])
        );
        assert_eq!(ip_payload(LINKTYPE_NULL, &[7, 0, 0, 0, 0x45]), Link::NotIp);
        assert_eq!(ip_payload(LINKTYPE_NULL, &[2, 0]), Link::Malformed);
    }
}
