//! IPv4 (RFC 791), IPv6 (RFC 8200) and the TCP (RFC 9293) and UDP (RFC 768) headers: from an IP
//! packet to a segment or datagram with its addresses.
//!
//! Lengths come from the headers, not from the capture: Ethernet padding after a short packet
//! is cut off, and a packet the capture cut short (snap length) keeps its real payload length,
//! the uncaptured tail being reported as `cut` so that the stream gets a gap of exactly that
//! size. A length field of 0 (IPv4 total length left unset by segmentation offload, IPv6
//! jumbograms) means "what was captured".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a packet gives no segment or datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    /// The version nibble is neither 4 nor 6.
    NotIp,
    /// An IP fragment other than the first: fragments are not reassembled.
    Fragment,
    /// Neither TCP nor UDP.
    OtherProtocol,
    /// A header cut short or with inconsistent lengths.
    Malformed,
}

pub(crate) struct IpPacket<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport<'a>,
}

pub(crate) enum Transport<'a> {
    Tcp(Segment<'a>),
    Udp(Datagram<'a>),
}

/// A TCP segment's header fields that reassembly uses, and its payload.
#[derive(Debug)]
pub(crate) struct Segment<'a> {
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub ack_flag: bool,
    pub fin: bool,
    pub rst: bool,
    /// The captured payload.
    pub payload: &'a [u8],
    /// Payload bytes that followed on the wire but are not in the capture.
    pub cut: u64,
}

#[derive(Debug)]
pub(crate) struct Datagram<'a> {
    pub payload: &'a [u8],
    pub cut: u64,
}

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// The part of an IP packet after its headers.
struct Payload<'a> {
    proto: u8,
    /// Captured bytes, never more than `len`.
    bytes: &'a [u8],
    /// Length according to the headers.
    len: usize,
    /// The first fragment of a fragmented datagram: the transport header's own length
    /// (UDP) describes more than this packet.
    first_fragment: bool,
}

pub(crate) fn parse(packet: &[u8]) -> Result<IpPacket<'_>, Skip> {
    let (src, dst, payload) = match packet.first().map(|b| b >> 4) {
        Some(4) => ipv4(packet)?,
        Some(6) => ipv6(packet)?,
        Some(_) => return Err(Skip::NotIp),
        None => return Err(Skip::Malformed),
    };
    let (sport, dport, transport) = match payload.proto {
        PROTO_TCP => tcp(&payload)?,
        PROTO_UDP => udp(&payload)?,
        _ => return Err(Skip::OtherProtocol),
    };
    Ok(IpPacket {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        transport,
    })
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Splits `after_header` (captured bytes) given the payload length the header claims.
fn bounded(after_header: &[u8], len: usize) -> &[u8] {
    &after_header[..after_header.len().min(len)]
}

fn ipv4(p: &[u8]) -> Result<(IpAddr, IpAddr, Payload<'_>), Skip> {
    if p.len() < 20 {
        return Err(Skip::Malformed);
    }
    let header_len = usize::from(p[0] & 0x0f) * 4;
    if header_len < 20 || p.len() < header_len {
        return Err(Skip::Malformed);
    }
    let total = match usize::from(be16(p, 2)) {
        0 => p.len(),
        t if t < header_len => return Err(Skip::Malformed),
        t => t,
    };
    let frag = be16(p, 6);
    let more_fragments = frag & 0x2000 != 0;
    if frag & 0x1fff != 0 {
        return Err(Skip::Fragment);
    }
    let src = Ipv4Addr::from([p[12], p[13], p[14], p[15]]);
    let dst = Ipv4Addr::from([p[16], p[17], p[18], p[19]]);
    let len = total - header_len;
    let payload = Payload {
        proto: p[9],
        bytes: bounded(&p[header_len..], len),
        len,
        first_fragment: more_fragments,
    };
    Ok((src.into(), dst.into(), payload))
}

/// IPv6 extension headers that are skipped to reach the transport header: hop-by-hop (0),
/// routing (43), destination options (60), mobility (135), HIP (139), shim6 (140), each with
/// a length in 8-octet units not counting the first; AH (51) counts 4-octet units not counting
/// the first two; fragment (44) is 8 octets.
fn ipv6(p: &[u8]) -> Result<(IpAddr, IpAddr, Payload<'_>), Skip> {
    if p.len() < 40 {
        return Err(Skip::Malformed);
    }
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&p[8..24]);
    let src = Ipv6Addr::from(addr);
    addr.copy_from_slice(&p[24..40]);
    let dst = Ipv6Addr::from(addr);
    let mut len = match usize::from(be16(p, 4)) {
        0 => p.len() - 40,
        l => l,
    };
    let mut bytes = bounded(&p[40..], len);
    let mut next = p[6];
    let mut first_fragment = false;
    // Each header consumes at least 8 bytes of `bytes`, so the loop ends.
    loop {
        let ext_len = match next {
            0 | 43 | 60 | 135 | 139 | 140 => bytes.get(1).map(|l| (usize::from(*l) + 1) * 8),
            51 => bytes.get(1).map(|l| (usize::from(*l) + 2) * 4),
            44 => {
                if bytes.len() < 8 {
                    return Err(Skip::Malformed);
                }
                if be16(bytes, 2) >> 3 != 0 {
                    return Err(Skip::Fragment);
                }
                first_fragment |= bytes[3] & 1 != 0;
                Some(8)
            }
            _ => break,
        };
        let Some(ext_len) = ext_len.filter(|l| *l <= bytes.len() && *l <= len) else {
            return Err(Skip::Malformed);
        };
        next = bytes[0];
        bytes = &bytes[ext_len..];
        len -= ext_len;
    }
    let payload = Payload {
        proto: next,
        bytes,
        len,
        first_fragment,
    };
    Ok((src.into(), dst.into(), payload))
}

fn tcp<'a>(p: &Payload<'a>) -> Result<(u16, u16, Transport<'a>), Skip> {
    let b = p.bytes;
    if b.len() < 20 {
        return Err(Skip::Malformed);
    }
    let header_len = usize::from(b[12] >> 4) * 4;
    if header_len < 20 || b.len() < header_len || p.len < header_len {
        return Err(Skip::Malformed);
    }
    let flags = b[13];
    let payload = &b[header_len..];
    let seg = Segment {
        seq: be32(b, 4),
        ack: be32(b, 8),
        fin: flags & 0x01 != 0,
        syn: flags & 0x02 != 0,
        rst: flags & 0x04 != 0,
        ack_flag: flags & 0x10 != 0,
        payload,
        // `bytes` never exceeds `len`, see `bounded`.
        cut: (p.len - header_len - payload.len()) as u64,
    };
    Ok((be16(b, 0), be16(b, 2), Transport::Tcp(seg)))
}

fn udp<'a>(p: &Payload<'a>) -> Result<(u16, u16, Transport<'a>), Skip> {
    let b = p.bytes;
    if b.len() < 8 {
        return Err(Skip::Malformed);
    }
    let len = match usize::from(be16(b, 4)) {
        0 => p.len,
        l if l < 8 => return Err(Skip::Malformed),
        // A first fragment holds only the start of the datagram the UDP header describes.
        l if p.first_fragment => l,
        l if l > p.len => return Err(Skip::Malformed),
        l => l,
    };
    let payload = bounded(&b[8..], len - 8);
    let dg = Datagram {
        payload,
        cut: (len - 8 - payload.len()) as u64,
    };
    Ok((be16(b, 0), be16(b, 2), Transport::Udp(dg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(total_len: u16, frag: u16, tcp_payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, PROTO_TCP, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p[2..4].copy_from_slice(&total_len.to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&7u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        p.extend_from_slice(&tcp);
        p.extend_from_slice(tcp_payload);
        p
    }

    #[test]
    fn padding_is_cut_and_snap_length_becomes_cut() {
        let mut p = ipv4_tcp(43, 0, b"abc");
        p.extend_from_slice(&[0, 0, 0]); // Ethernet padding
        let Ok(IpPacket {
            transport: Transport::Tcp(seg),
            src,
            ..
        }) = parse(&p)
        else {
            panic!("not a TCP segment");
        };
        assert_eq!((seg.payload, seg.cut, seg.seq), (&b"abc"[..], 0, 7));
        assert_eq!(src, "10.0.0.1:1234".parse().unwrap());

        let p = ipv4_tcp(1040, 0, b"abc");
        let Ok(IpPacket {
            transport: Transport::Tcp(seg),
            ..
        }) = parse(&p)
        else {
            panic!("not a TCP segment");
        };
        assert_eq!((seg.payload.len(), seg.cut), (3, 997));
    }

    #[test]
    fn fragments_and_bad_headers() {
        assert_eq!(
            parse(&ipv4_tcp(43, 0x0010, b"abc")).err(),
            Some(Skip::Fragment)
        );
        assert_eq!(parse(&ipv4_tcp(30, 0, b"abc")).err(), Some(Skip::Malformed));
        let mut p = ipv4_tcp(43, 0, b"abc");
        p[0] = 0x44;
        assert_eq!(parse(&p).err(), Some(Skip::Malformed));
        p[0] = 0x15;
        assert_eq!(parse(&p).err(), Some(Skip::NotIp));
        assert_eq!(parse(&p[..10]).err(), Some(Skip::NotIp));
        assert_eq!(parse(&[]).err(), Some(Skip::Malformed));
        let mut p = ipv4_tcp(43, 0, b"abc");
        p[9] = 1;
        assert_eq!(parse(&p).err(), Some(Skip::OtherProtocol));
        let mut p = ipv4_tcp(43, 0, b"abc");
        p[20 + 12] = 4 << 4;
        assert_eq!(parse(&p).err(), Some(Skip::Malformed));
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 0 /* hop-by-hop */, 64];
        p.extend_from_slice(&[0; 15]);
        p.push(1);
        p.extend_from_slice(&[0; 15]);
        p.push(2);
        // hop-by-hop (8) -> fragment, first (8) -> UDP
        p.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&[PROTO_UDP, 0, 0, 1, 0, 0, 0, 9]);
        p.extend_from_slice(&[0, 53, 0x30, 0x39, 0, 20, 0, 0, b'x', b'y']);
        let plen = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        let Ok(IpPacket {
            transport: Transport::Udp(dg),
            dst,
            ..
        }) = parse(&p)
        else {
            panic!("not a UDP datagram");
        };
        // The UDP header of a first fragment describes the whole datagram.
        assert_eq!((dg.payload, dg.cut), (&b"xy"[..], 10));
        assert_eq!(dst, "[::2]:12345".parse().unwrap());
        // A non-first fragment
        p[40 + 8 + 2] = 0x01;
        assert_eq!(parse(&p).err(), Some(Skip::Fragment));
        // An extension header longer than the packet
        p[41] = 9;
        assert_eq!(parse(&p).err(), Some(Skip::Malformed));
    }
}
