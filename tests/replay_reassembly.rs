//! Replay through the public API: capture files built here byte by byte (pcap and pcapng
//! writers below, IP packets from etherparse's PacketBuilder), replayed with
//! `wirelens::replay`, and the events compared exactly.

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;

use etherparse::PacketBuilder;
use wirelens::event::{ClientHint, SourceEvent};
use wirelens::replay::{read_file, read_from, ReplayError, ReplayOptions, ReplayStats};

// ---------------------------------------------------------------------------------------------
// Building packets and files

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn client() -> SocketAddr {
    addr("10.0.0.1:40000")
}

fn server() -> SocketAddr {
    addr("10.0.0.2:80")
}

/// An IP packet carrying a TCP segment. `flags`: S(YN) A(CK) F(IN) R(ST) P(SH).
fn tcp(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let ip = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            PacketBuilder::ipv4(s.ip().octets(), d.ip().octets(), 64)
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            PacketBuilder::ipv6(s.ip().octets(), d.ip().octets(), 64)
        }
        _ => panic!("mixed address families"),
    };
    let mut b = ip.tcp(src.port(), dst.port(), seq, 65535);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(ack),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            _ => panic!("flag {f}"),
        };
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("build TCP");
    v
}

fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let ip = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            PacketBuilder::ipv4(s.ip().octets(), d.ip().octets(), 64)
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            PacketBuilder::ipv6(s.ip().octets(), d.ip().octets(), 64)
        }
        _ => panic!("mixed address families"),
    };
    let mut v = Vec::new();
    ip.udp(src.port(), dst.port())
        .write(&mut v, payload)
        .expect("build UDP");
    v
}

#[derive(Clone, Copy, Debug)]
enum Link {
    Ethernet,
    /// 802.1ad outer tag, 802.1Q inner tag
    DoubleVlan,
    Sll,
    Sll2,
    Raw,
    Null,
}

const LINKS: [Link; 6] = [
    Link::Ethernet,
    Link::DoubleVlan,
    Link::Sll,
    Link::Sll2,
    Link::Raw,
    Link::Null,
];

impl Link {
    fn link_type(self) -> u32 {
        match self {
            Link::Ethernet | Link::DoubleVlan => 1,
            Link::Sll => 113,
            Link::Sll2 => 276,
            Link::Raw => 101,
            Link::Null => 0,
        }
    }

    fn frame(self, ip: &[u8]) -> Vec<u8> {
        let v6 = ip[0] >> 4 == 6;
        let et: [u8; 2] = if v6 { [0x86, 0xdd] } else { [0x08, 0x00] };
        let macs = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        let mut f = Vec::new();
        match self {
            Link::Ethernet => {
                f.extend_from_slice(&macs);
                f.extend_from_slice(&et);
            }
            Link::DoubleVlan => {
                f.extend_from_slice(&macs);
                f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8]);
                f.extend_from_slice(&et);
            }
            Link::Sll => {
                f.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
                f.extend_from_slice(&et);
            }
            Link::Sll2 => {
                f.extend_from_slice(&et);
                f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            }
            Link::Raw => {}
            // little-endian host; AF_INET6 as on macOS
            Link::Null => f.extend_from_slice(if v6 { &[30, 0, 0, 0] } else { &[2, 0, 0, 0] }),
        }
        f.extend_from_slice(ip);
        if let Link::Ethernet = self {
            // Ethernet pads short frames to 60 bytes: the IP length must cut it off.
            f.resize(f.len().max(60), 0);
        }
        f
    }
}

#[derive(Clone, Copy)]
struct PcapFormat {
    nanos: bool,
    big_endian: bool,
}

const LE_MICROS: PcapFormat = PcapFormat {
    nanos: false,
    big_endian: false,
};

/// A classic pcap file. Each packet: (timestamp ns, frame, length on the wire if longer).
fn pcap_file(fmt: PcapFormat, link_type: u32, packets: &[(u64, Vec<u8>, Option<u32>)]) -> Vec<u8> {
    let u32b = |v: u32| {
        if fmt.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if fmt.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut f = Vec::new();
    f.extend_from_slice(&u32b(if fmt.nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    f.extend_from_slice(&u16b(2));
    f.extend_from_slice(&u16b(4));
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&u32b(262_144));
    f.extend_from_slice(&u32b(link_type));
    for (ts, data, orig) in packets {
        let frac = if fmt.nanos {
            ts % 1_000_000_000
        } else {
            ts % 1_000_000_000 / 1000
        };
        f.extend_from_slice(&u32b((ts / 1_000_000_000) as u32));
        f.extend_from_slice(&u32b(frac as u32));
        f.extend_from_slice(&u32b(data.len() as u32));
        f.extend_from_slice(&u32b(orig.unwrap_or(data.len() as u32)));
        f.extend_from_slice(data);
    }
    f
}

/// A little-endian pcap, microseconds, whole frames.
fn pcap(link: Link, packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let framed: Vec<_> = packets
        .iter()
        .map(|(ts, ip)| (*ts, link.frame(ip), None))
        .collect();
    pcap_file(LE_MICROS, link.link_type(), &framed)
}

fn ng_block(block_type: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len().div_ceil(4) * 4) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&block_type.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(len as usize - 4, 0);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// A pcapng file: interfaces (link type, `if_tsresol` option), then packets
/// (interface id, timestamp in that interface's units, frame).
fn pcapng_file(interfaces: &[(u16, Option<u8>)], packets: &[(u32, u64, Vec<u8>)]) -> Vec<u8> {
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut f = ng_block(0x0a0d_0d0a, &shb);
    for (link_type, tsresol) in interfaces {
        let mut idb = Vec::new();
        idb.extend_from_slice(&link_type.to_le_bytes());
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&262_144u32.to_le_bytes());
        if let Some(r) = tsresol {
            idb.extend_from_slice(&[9, 0, 1, 0, *r, 0, 0, 0]); // if_tsresol
            idb.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        }
        f.extend(ng_block(1, &idb));
    }
    for (if_id, ts, data) in packets {
        let mut epb = Vec::new();
        epb.extend_from_slice(&if_id.to_le_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(*ts as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(data);
        f.extend(ng_block(6, &epb));
    }
    f
}

// ---------------------------------------------------------------------------------------------
// Replaying

fn opts() -> ReplayOptions {
    ReplayOptions {
        progress: false,
        ..ReplayOptions::default()
    }
}

fn replay_with(
    bytes: &[u8],
    o: &ReplayOptions,
) -> Result<(Vec<SourceEvent>, ReplayStats), ReplayError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("capture.pcap");
    std::fs::write(&path, bytes).expect("write capture");
    let mut events = Vec::new();
    let stats = read_file(&path, o, &mut |e| events.push(e))?;
    Ok((events, stats))
}

fn replay(bytes: &[u8]) -> (Vec<SourceEvent>, ReplayStats) {
    replay_with(bytes, &opts()).expect("replay")
}

fn replay_err(bytes: &[u8]) -> ReplayError {
    match replay_with(bytes, &opts()) {
        Ok(_) => panic!("replay succeeded"),
        Err(e) => e,
    }
}

/// One line per event: `fd src>dst "data"+missing`, `fd close[ rst]`, `end ts`.
fn show(events: &[SourceEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            SourceEvent::Data(d) => format!(
                "{} {}>{} {:?}+{}",
                d.conn.fd,
                d.src,
                d.dst,
                String::from_utf8_lossy(&d.data),
                d.missing
            ),
            SourceEvent::Close { conn, reset, .. } => {
                format!("{} close{}", conn.fd, if *reset { " rst" } else { "" })
            }
            SourceEvent::End { ts_ns } => format!("end {ts_ns}"),
        })
        .collect()
}

fn data_ts(events: &[SourceEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Data(d) => Some(d.ts_ns),
            _ => None,
        })
        .collect()
}

/// A whole HTTP exchange: handshake, request, response, FIN from each side, last ACK.
fn http_exchange(c: SocketAddr, s: SocketAddr) -> Vec<(u64, Vec<u8>)> {
    let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    let (ci, si) = (1000u32, 5000u32);
    let (c1, s1) = (ci + 1, si + 1);
    let c2 = c1 + req.len() as u32;
    let s2 = s1 + resp.len() as u32;
    vec![
        (T0, tcp(c, s, ci, 0, "S", b"")),
        (T0 + MS, tcp(s, c, si, c1, "SA", b"")),
        (T0 + 2 * MS, tcp(c, s, c1, s1, "A", b"")),
        (T0 + 3 * MS, tcp(c, s, c1, s1, "PA", req)),
        (T0 + 4 * MS, tcp(s, c, s1, c2, "PA", resp)),
        (T0 + 5 * MS, tcp(c, s, c2, s2, "FA", b"")),
        (T0 + 6 * MS, tcp(s, c, s2, c2 + 1, "FA", b"")),
        (T0 + 7 * MS, tcp(c, s, c2 + 1, s2 + 1, "A", b"")),
    ]
}

fn http_expected(c: SocketAddr, s: SocketAddr) -> Vec<String> {
    vec![
        format!("0 {c}>{s} \"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n\"+0"),
        format!("0 {s}>{c} \"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nhi\"+0"),
        "0 close".to_string(),
        format!("end {}", T0 + 7 * MS),
    ]
}

// ---------------------------------------------------------------------------------------------
// Reassembly

#[test]
fn in_order_exchange_with_handshake_and_fins() {
    let (events, stats) = replay(&pcap(Link::Ethernet, &http_exchange(client(), server())));
    assert_eq!(show(&events), http_expected(client(), server()));
    assert_eq!(data_ts(&events), vec![T0 + 3 * MS, T0 + 4 * MS]);
    let SourceEvent::Data(d) = &events[0] else {
        panic!("not data")
    };
    assert_eq!(d.client, ClientHint::Client(client()));
    assert_eq!((d.conn.tgid, d.conn.fd, d.conn.start_ns), (0, 0, T0));
    assert!(d.observer.is_none() && d.protocol.is_none());
    let SourceEvent::Close { ts_ns, .. } = &events[2] else {
        panic!("not close")
    };
    assert_eq!(*ts_ns, T0 + 6 * MS);
    assert_eq!(stats.packets, 8);
    assert_eq!(stats.tcp_segments, 8);
    assert_eq!(stats.tcp_connections, 1);
    assert_eq!(stats.tcp_payload_bytes, 27 + 40);
    assert_eq!((stats.data_events, stats.closes), (2, 1));
    // the last ACK arrives after the close
    assert_eq!(stats.tcp_ignored_segments, 1);
    assert_eq!(
        (
            stats.tcp_gaps,
            stats.tcp_retransmitted_bytes,
            stats.out_of_order_segments
        ),
        (0, 0, 0)
    );
}

#[test]
fn every_link_type_and_both_ip_versions_give_the_same_events() {
    let v6 = (addr("[2001:db8::1]:40000"), addr("[2001:db8::2]:443"));
    for link in LINKS {
        for (c, s) in [(client(), server()), v6] {
            let (events, stats) = replay(&pcap(link, &http_exchange(c, s)));
            assert_eq!(show(&events), http_expected(c, s), "{link:?} {c}");
            assert_eq!(
                stats.malformed + stats.non_ip + stats.unsupported_link,
                0,
                "{link:?}"
            );
        }
    }
}

/// Client-side segments with the given (seq offset from 1, payload), after a handshake with
/// ISN `isn`; then the file ends.
fn client_segments(isn: u32, segs: &[(u32, &[u8])]) -> Vec<(u64, Vec<u8>)> {
    let (c, s) = (client(), server());
    let mut pkts = vec![
        (T0, tcp(c, s, isn, 0, "S", b"")),
        (T0 + MS, tcp(s, c, 77, isn.wrapping_add(1), "SA", b"")),
    ];
    for (i, (off, data)) in segs.iter().enumerate() {
        let seq = isn.wrapping_add(1).wrapping_add(*off);
        pkts.push((T0 + (2 + i as u64) * MS, tcp(c, s, seq, 78, "PA", data)));
    }
    pkts
}

fn c2s(data: &str, missing: u64) -> String {
    format!("0 {}>{} {:?}+{missing}", client(), server(), data)
}

#[test]
fn out_of_order_segments_are_delivered_in_order() {
    let pkts = client_segments(1000, &[(6, b"world"), (11, b"!"), (0, b"hello ")]);
    let (events, stats) = replay(&pcap(Link::Ethernet, &pkts));
    assert_eq!(
        show(&events),
        vec![c2s("hello world!", 0), format!("end {}", T0 + 4 * MS)]
    );
    // delivered when the hole filled
    assert_eq!(data_ts(&events), vec![T0 + 4 * MS]);
    assert_eq!(stats.out_of_order_segments, 2);
    assert_eq!((stats.tcp_gaps, stats.tcp_retransmitted_bytes), (0, 0));
}

#[test]
fn retransmissions_are_delivered_once() {
    let pkts = client_segments(
        1000,
        &[
            (0, b"abc"),
            (3, b"def"),
            (0, b"abc"),
            (3, b"def"),
            (6, b"g"),
        ],
    );
    let (events, stats) = replay(&pcap(Link::Ethernet, &pkts));
    assert_eq!(
        show(&events)[..3],
        [c2s("abc", 0), c2s("def", 0), c2s("g", 0)]
    );
    assert_eq!(events.len(), 4);
    assert_eq!(stats.tcp_retransmitted_bytes, 6);
}

#[test]
fn overlapping_segments_deliver_each_byte_once() {
    // "abcdef", then "defghi" (overlap 3), then held "mno" overlapped by "jklmn" (overlap 2)
    let pkts = client_segments(
        1000,
        &[(0, b"abcdef"), (3, b"defghi"), (12, b"mno"), (9, b"jklmn")],
    );
    let (events, stats) = replay(&pcap(Link::Ethernet, &pkts));
    assert_eq!(
        show(&events)[..3],
        [c2s("abcdef", 0), c2s("ghi", 0), c2s("jklmno", 0)]
    );
    assert_eq!(stats.tcp_retransmitted_bytes, 5);
    assert_eq!(stats.out_of_order_segments, 1);
}

#[test]
fn missing_segment_acknowledged_by_the_receiver_is_a_gap_of_its_length() {
    let (c, s) = (client(), server());
    let mut pkts = client_segments(1000, &[(0, b"aaaa"), (10, b"cccc")]);
    // 6 bytes at offset 4 were never captured; the server acknowledges all 14
    pkts.push((T0 + 10 * MS, tcp(s, c, 78, 1001 + 14, "A", b"")));
    pkts.push((T0 + 11 * MS, tcp(c, s, 1001 + 14, 78, "PA", b"dd")));
    let (events, stats) = replay(&pcap(Link::Ethernet, &pkts));
    assert_eq!(
        show(&events),
        vec![
            c2s("aaaa", 0),
            c2s("", 6),
            c2s("cccc", 0),
            c2s("dd", 0),
            format!("end {}", T0 + 11 * MS)
        ]
    );
    // the gap is known at the ACK
    assert_eq!(
        data_ts(&events),
        vec![T0 + 2 * MS, T0 + 10 * MS, T0 + 10 * MS, T0 + 11 * MS]
    );
    assert_eq!((stats.tcp_gaps, stats.tcp_gap_bytes), (1, 6));
}

#[test]
fn unfilled_hole_becomes_a_gap_at_the_end_of_the_file() {
    let pkts = client_segments(1000, &[(0, b"aaaa"), (10, b"cccc"), (20, b"eeee")]);
    let (events, stats) = replay(&pcap(Link::Ethernet, &pkts));
    assert_eq!(
        show(&events),
        vec![
            c2s("aaaa", 0),
            c2s("", 6),
            c2s("cccc", 6),
            c2s("eeee", 0),
            format!("end {}", T0 + 4 * MS)
        ]
    );
    assert_eq!(data_ts(&events)[1..], [T0 + 4 * MS; 3]);
    assert_eq!((stats.tcp_gaps, stats.tcp_gap_bytes), (2, 12));
}

#[test]
fn full_out_of_order_buffer_gives_up_on_the_hole() {
    let pkts = client_segments(
        1000,
        &[(0, b"a"), (5, b"bb"), (7, b"cc"), (9, b"dd"), (4, b"x")],
    );
    let o = ReplayOptions {
        max_out_of_order_bytes: 5,
        ..opts()
    };
    let (events, stats) = replay_with(&pcap(Link::Ethernet, &pkts), &o).expect("replay");
    // the third held segment overflows 5 bytes: the hole 1..5 is given up, "x" comes too late
    assert_eq!(
        show(&events),
        vec![
            c2s("a", 0),
            c2s("", 4),
            c2s("bbccdd", 0),
            format!("end {}", T0 + 6 * MS)
        ]
    );
    assert_eq!(
        (
            stats.tcp_gaps,
            stats.tcp_gap_bytes,
            stats.tcp_buffer_overflows
        ),
        (1, 4, 1)
    );
    assert_eq!(stats.tcp_retransmitted_bytes, 1);
}

#[test]
fn snap_length_cut_packets_leave_a_gap_of_the_uncaptured_bytes() {
    let pkts = client_segments(1000, &[(0, b"0123456789"), (10, b"abc")]);
    let mut framed: Vec<_> = pkts
        .iter()
        .map(|(ts, ip)| (*ts, Link::Raw.frame(ip), None))
        .collect();
    // capture only the first 4 payload bytes of the first data segment
    let (_, frame, orig) = &mut framed[2];
    *orig = Some(frame.len() as u32);
    frame.truncate(frame.len() - 6);
    let (events, stats) = replay(&pcap_file(LE_MICROS, 101, &framed));
    assert_eq!(show(&events)[..2], [c2s("0123", 6), c2s("abc", 0)]);
    assert_eq!(stats.truncated_packets, 1);
    assert_eq!(stats.tcp_gaps, 0);
}

#[test]
fn capture_starting_mid_connection_starts_at_the_first_payload() {
    let (c, s) = (client(), server());
    let pkts = vec![
        (T0, tcp(s, c, 9000, 500, "A", b"")), // pure ACK: no connection yet
        (T0 + MS, tcp(c, s, 500, 9000, "PA", b"GET /a")),
        (T0 + 2 * MS, tcp(s, c, 9000, 506, "PA", b"200")),
        (T0 + 3 * MS, tcp(c, s, 490, 9003, "PA", b"0123456789")), // bytes from before the capture
    ];
    let (events, stats) = replay(&pcap(Link::Ethernet, &pkts));
    assert_eq!(
        show(&events),
        vec![
            c2s("GET /a", 0),
            format!("0 {s}>{c} \"200\"+0"),
            format!("end {}", T0 + 3 * MS)
        ]
    );
    let SourceEvent::Data(d) = &events[0] else {
        panic!("not data")
    };
    assert_eq!(d.client, ClientHint::Unknown);
    assert_eq!(d.conn.start_ns, T0 + MS);
    assert_eq!(stats.tcp_ignored_segments, 1);
    assert_eq!(stats.tcp_retransmitted_bytes, 10);
}

#[test]
fn sequence_numbers_wrap_around() {
    // data starts at 0xffff_fffa: 6 bytes before the wrap, the rest after
    let isn = 0xffff_fff9;
    let pkts = client_segments(
        isn,
        &[(0, b"abcd"), (8, b"ijkl"), (4, b"efgh"), (12, b"mn")],
    );
    let (events, stats) = replay(&pcap(Link::Ethernet, &pkts));
    assert_eq!(
        show(&events)[..3],
        [c2s("abcd", 0), c2s("efghijkl", 0), c2s("mn", 0)]
    );
    assert_eq!(stats.out_of_order_segments, 1);
    assert_eq!((stats.tcp_gaps, stats.tcp_retransmitted_bytes), (0, 0));
}

#[test]
fn fin_closes_after_both_sides_and_rst_at_once_then_a_new_syn_is_a_new_connection() {
    let (c, s) = (client(), server());
    let pkts = vec![
        (T0, tcp(c, s, 100, 0, "S", b"")),
        (T0 + MS, tcp(s, c, 700, 101, "SA", b"")),
        (T0 + 2 * MS, tcp(c, s, 101, 701, "PFA", b"bye")), // client half-closes
        (T0 + 3 * MS, tcp(s, c, 701, 105, "PA", b"late")), // the server may still send
        (T0 + 4 * MS, tcp(s, c, 705, 105, "FA", b"")),
        (T0 + 5 * MS, tcp(c, s, 105, 706, "A", b"")), // after the close: ignored
        // same addresses, new connection, ends with RST; the bytes after it are not delivered
        (T0 + 6 * MS, tcp(c, s, 9000, 0, "S", b"")),
        (T0 + 7 * MS, tcp(s, c, 3000, 9001, "SA", b"")),
        (T0 + 8 * MS, tcp(c, s, 9001, 3001, "PA", b"x")),
        (T0 + 9 * MS, tcp(s, c, 3001, 9002, "RA", b"")),
        (T0 + 10 * MS, tcp(c, s, 9002, 3001, "PA", b"y")),
    ];
    let (events, stats) = replay(&pcap(Link::Ethernet, &pkts));
    assert_eq!(
        show(&events),
        vec![
            c2s("bye", 0),
            format!("0 {s}>{c} \"late\"+0"),
            "0 close".to_string(),
            format!("1 {c}>{s} \"x\"+0"),
            "1 close rst".to_string(),
            format!("end {}", T0 + 10 * MS)
        ]
    );
    let SourceEvent::Data(d) = &events[3] else {
        panic!("not data")
    };
    assert_eq!(
        (d.conn.start_ns, d.client),
        (T0 + 6 * MS, ClientHint::Client(c))
    );
    assert_eq!(
        (
            stats.tcp_connections,
            stats.closes,
            stats.tcp_ignored_segments
        ),
        (2, 2, 2)
    );
}

#[test]
fn rst_delivers_held_data_with_its_gap_before_closing() {
    let (c, s) = (client(), server());
    let mut pkts = client_segments(1000, &[(0, b"ab"), (4, b"ef")]);
    pkts.push((T0 + 9 * MS, tcp(s, c, 78, 1003, "R", b"")));
    let (events, _) = replay(&pcap(Link::Ethernet, &pkts));
    assert_eq!(
        show(&events),
        vec![
            c2s("ab", 0),
            c2s("", 2),
            c2s("ef", 0),
            "0 close rst".to_string(),
            format!("end {}", T0 + 9 * MS)
        ]
    );
}

#[test]
fn connection_without_close_gets_no_close_event() {
    let (events, stats) = replay(&pcap(Link::Ethernet, &client_segments(1, &[(0, b"q")])));
    assert_eq!(
        show(&events),
        vec![c2s("q", 0), format!("end {}", T0 + 2 * MS)]
    );
    assert_eq!(stats.closes, 0);
}

#[test]
fn udp_datagrams_are_one_event_each_keyed_by_address_pair() {
    let (c, dns) = (addr("10.0.0.1:5353"), addr("10.0.0.53:53"));
    let c2 = addr("10.0.0.1:5354");
    let pkts = vec![
        (T0, udp(c, dns, b"query1")),
        (T0 + MS, udp(c2, dns, b"query2")),
        (T0 + 2 * MS, udp(dns, c, b"answer1")),
        (T0 + 3 * MS, udp(dns, c2, b"")),
    ];
    let (events, stats) = replay(&pcap(Link::Ethernet, &pkts));
    assert_eq!(
        show(&events),
        vec![
            format!("0 {c}>{dns} \"query1\"+0"),
            format!("1 {c2}>{dns} \"query2\"+0"),
            format!("0 {dns}>{c} \"answer1\"+0"),
            format!("end {}", T0 + 3 * MS)
        ]
    );
    let SourceEvent::Data(d) = &events[2] else {
        panic!("not data")
    };
    assert_eq!(
        (d.client, d.conn.start_ns, d.ts_ns),
        (ClientHint::Unknown, T0, T0 + 2 * MS)
    );
    assert_eq!(
        (stats.udp_datagrams, stats.udp_flows, stats.flows),
        (4, 2, 2)
    );
}

#[test]
fn non_ip_and_non_tcp_udp_packets_are_counted() {
    let mut arp = vec![0xff; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.resize(60, 0);
    let mut icmp = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut icmp, b"ping")
        .expect("icmp");
    let mut bad = tcp(client(), server(), 1, 0, "S", b"");
    bad[32] = 0x30; // TCP data offset 3 words
    let framed = vec![
        (T0, arp, None),
        (T0 + 1, Link::Ethernet.frame(&icmp), None),
        (T0 + 2, Link::Ethernet.frame(&bad), None),
    ];
    let (events, stats) = replay(&pcap_file(LE_MICROS, 1, &framed));
    assert_eq!(show(&events), vec![format!("end {T0}")]);
    assert_eq!(
        (
            stats.packets,
            stats.non_ip,
            stats.non_tcp_udp,
            stats.malformed
        ),
        (3, 1, 1, 1)
    );
}

// ---------------------------------------------------------------------------------------------
// File formats

#[test]
fn pcap_big_endian_nanoseconds() {
    let fmt = PcapFormat {
        nanos: true,
        big_endian: true,
    };
    let pkts = client_segments(5, &[(0, b"x")]);
    let ts = T0 + 123_456_789;
    let framed: Vec<_> = pkts
        .iter()
        .map(|(_, ip)| (ts, Link::Raw.frame(ip), None))
        .collect();
    let (events, _) = replay(&pcap_file(fmt, 101, &framed));
    assert_eq!(data_ts(&events), vec![ts]);
    assert_eq!(show(&events).last(), Some(&format!("end {ts}")));
}

#[test]
fn pcap_microseconds_keep_microsecond_precision() {
    let pkts = client_segments(5, &[(0, b"x")]);
    let framed: Vec<_> = pkts
        .iter()
        .map(|(_, ip)| (T0 + 123_456_789, Link::Raw.frame(ip), None))
        .collect();
    for big_endian in [false, true] {
        let fmt = PcapFormat {
            nanos: false,
            big_endian,
        };
        let (events, _) = replay(&pcap_file(fmt, 101, &framed));
        assert_eq!(data_ts(&events), vec![T0 + 123_456_000]);
    }
}

#[test]
fn pcapng_with_two_interfaces_and_their_own_resolution() {
    let (c, s) = (client(), server());
    let secs = T0 / 1_000_000_000;
    // interface 0: Ethernet, microseconds (default); interface 1: raw IP, nanoseconds
    let pkts = vec![
        (
            0,
            secs * 1_000_000,
            Link::Ethernet.frame(&tcp(c, s, 10, 0, "S", b"")),
        ),
        (
            1,
            T0 + 1_000_001,
            Link::Raw.frame(&tcp(s, c, 20, 11, "SA", b"")),
        ),
        (
            0,
            secs * 1_000_000 + 2_000,
            Link::Ethernet.frame(&tcp(c, s, 11, 21, "PA", b"req")),
        ),
        (
            1,
            T0 + 3_000_003,
            Link::Raw.frame(&tcp(s, c, 21, 14, "PA", b"resp")),
        ),
        (7, T0, vec![1, 2, 3]), // no such interface
    ];
    let file = pcapng_file(&[(1, None), (101, Some(9))], &pkts);
    let (events, stats) = replay(&file);
    assert_eq!(
        show(&events),
        vec![
            format!("0 {c}>{s} \"req\"+0"),
            format!("0 {s}>{c} \"resp\"+0"),
            format!("end {}", T0 + 3_000_003)
        ]
    );
    assert_eq!(data_ts(&events), vec![T0 + 2_000_000, T0 + 3_000_003]);
    let SourceEvent::Data(d) = &events[0] else {
        panic!("not data")
    };
    assert_eq!(d.client, ClientHint::Client(c));
    assert_eq!((stats.packets, stats.unknown_interface), (4, 1));
}

// ---------------------------------------------------------------------------------------------
// Broken files

fn small_pcap() -> Vec<u8> {
    pcap(Link::Ethernet, &http_exchange(client(), server()))
}

#[test]
fn truncated_pcap_names_the_file_and_the_record_offset() {
    let file = small_pcap();
    let first_record_end = 24
        + 16
        + Link::Ethernet
            .frame(&http_exchange(client(), server())[0].1)
            .len();
    let cut = &file[..first_record_end + 20]; // inside the second record
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.pcap");
    std::fs::write(&path, cut).expect("write");
    let mut events = Vec::new();
    let err = read_file(&path, &opts(), &mut |e| events.push(e)).expect_err("truncated");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: truncated packet record at offset {first_record_end}",
            path.display()
        )
    );
    assert!(
        matches!(err, ReplayError::Truncated { offset, .. } if offset == first_record_end as u64)
    );
    assert!(events.is_empty()); // the SYN alone produced nothing, and no End after an error
}

#[test]
fn truncated_pcapng_block_and_headers() {
    let file = pcapng_file(
        &[(101, None)],
        &[(0, 5, tcp(client(), server(), 1, 0, "PA", b"abc"))],
    );
    let shb_idb = 28 + 20;
    let err = replay_err(&file[..file.len() - 3]);
    assert!(
        matches!(err, ReplayError::Truncated { what: "block", offset, .. } if offset == shb_idb),
        "{err}"
    );
    let err = replay_err(&file[..10]);
    assert!(
        matches!(err, ReplayError::Truncated { offset: 0, .. }),
        "{err}"
    );
    let err = replay_err(&small_pcap()[..20]);
    assert!(
        matches!(
            err,
            ReplayError::Truncated {
                what: "file header",
                offset: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn corrupt_pcapng_block_length_is_an_error_at_its_offset() {
    let mut file = pcapng_file(
        &[(101, None)],
        &[(0, 5, tcp(client(), server(), 1, 0, "PA", b"abc"))],
    );
    let epb = 28 + 20;
    file[epb + 4] = 9; // block length not matching the trailer
    let err = replay_err(&file);
    assert_eq!(err.offset(), Some(epb as u64), "{err}");
    assert!(
        matches!(
            err,
            ReplayError::Corrupt { .. } | ReplayError::Truncated { .. }
        ),
        "{err}"
    );
}

#[test]
fn absurd_record_length_is_refused() {
    let mut file = small_pcap();
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&0x7fff_0000u32.to_le_bytes());
    file.extend_from_slice(&0x7fff_0000u32.to_le_bytes());
    file.resize(file.len() + (300 << 10), 0);
    let err = replay_err(&file);
    assert_eq!(err.offset(), Some(small_pcap().len() as u64), "{err}");
    assert!(
        matches!(
            err,
            ReplayError::Truncated { .. } | ReplayError::TooLarge { .. }
        ),
        "{err}"
    );
}

#[test]
fn corrupt_magic_empty_file_and_random_bytes() {
    let mut file = small_pcap();
    file[0] = 0xd5;
    let err = replay_err(&file);
    assert!(
        matches!(&err, ReplayError::NotACapture { magic, .. } if magic == &[0xd5, 0xc3, 0xb2, 0xa1]),
        "{err}"
    );
    assert!(
        err.to_string().ends_with(
            "capture.pcap: not a pcap or pcapng file: unknown magic [d5, c3, b2, a1] at offset 0"
        ),
        "{err}"
    );
    assert!(matches!(replay_err(&[]), ReplayError::Empty { .. }));
    let mut rng = Rng(42);
    let random: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
    assert!(matches!(
        replay_err(&random),
        ReplayError::NotACapture { .. }
    ));
    // random bytes behind a valid header: an error or nothing, never a panic
    let mut file = small_pcap()[..24].to_vec();
    file.extend_from_slice(&random);
    let _ = replay_with(&file, &opts());
}

#[test]
fn missing_file_is_an_open_error() {
    let err =
        read_file(Path::new("/nonexistent/x.pcap"), &opts(), &mut |_| {}).expect_err("missing");
    assert!(matches!(err, ReplayError::Open { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/x.pcap: cannot open"),
        "{err}"
    );
}

/// xorshift64: deterministic, no crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut f = valid.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 => {
                let i = rng.below(f.len());
                f[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(f.len());
                f[i] = rng.next() as u8;
            }
            2 if f.len() >= 4 => {
                // overwrite a 32-bit field, likely a length, sequence number or timestamp
                let i = rng.below(f.len().saturating_sub(4));
                let v = [0, 1, 0xffff_ffff, 0x7fff_ffff, rng.next() as u32][rng.below(5)];
                f[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            3 => f.truncate(rng.below(f.len() + 1)),
            _ => {
                let i = rng.below(f.len() + 1);
                let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                f.splice(i..i, junk);
            }
        }
        if f.is_empty() {
            break;
        }
    }
    f
}

#[test]
fn random_mutations_of_valid_files_never_panic() {
    let (c, s) = (client(), server());
    let v6 = (addr("[::1]:1"), addr("[::2]:2"));
    let mut exchange = http_exchange(c, s);
    exchange.extend(client_segments(7, &[(3, b"later"), (0, b"abc")]));
    exchange.push((T0, udp(c, s, b"dgram")));
    let valid = [
        pcap(Link::Ethernet, &exchange),
        pcap(Link::DoubleVlan, &http_exchange(v6.0, v6.1)),
        pcap(Link::Sll2, &exchange),
        pcapng_file(
            &[(1, None), (101, Some(9))],
            &exchange
                .iter()
                .enumerate()
                .map(|(i, (ts, ip))| {
                    if i % 2 == 0 {
                        (0, ts / 1000, Link::Ethernet.frame(ip))
                    } else {
                        (1, *ts, ip.clone())
                    }
                })
                .collect::<Vec<_>>(),
        ),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let o = ReplayOptions {
        max_out_of_order_bytes: 64,
        max_out_of_order_segments: 2,
        ..opts()
    };
    let (mut ok, mut failed) = (0, 0);
    for i in 0..4000 {
        let file = mutate(&mut rng, &valid[i % valid.len()]);
        let mut events = 0usize;
        let len = Some(file.len() as u64);
        match read_from(Path::new("fuzz"), Cursor::new(file), len, &o, &mut |_| {
            events += 1
        }) {
            Ok(stats) => {
                ok += 1;
                assert_eq!(stats.data_events + stats.closes + 1, events as u64);
            }
            Err(e) => {
                failed += 1;
                assert!(e.to_string().starts_with("fuzz: "), "{e}");
            }
        }
    }
    // both outcomes are exercised
    assert!(ok > 100 && failed > 100, "ok {ok} failed {failed}");
}

#[test]
fn idle_connections_are_flushed_and_forgotten() {
    let (c, s) = (client(), server());
    let sec = 1_000_000_000;
    let mut pkts = client_segments(1000, &[(0, b"ab"), (4, b"ef")]);
    // 30 s later (idle timeout 20 s): the same addresses again, seen as a new connection
    pkts.push((T0 + 30 * sec, tcp(c, s, 1001 + 6, 78, "PA", b"gh")));
    let o = ReplayOptions {
        idle_timeout_ns: 20 * sec,
        first_flow_index: 10,
        ..opts()
    };
    let (events, stats) = replay_with(&pcap(Link::Ethernet, &pkts), &o).expect("replay");
    assert_eq!(
        show(&events),
        vec![
            format!("10 {c}>{s} \"ab\"+0"),
            format!("10 {c}>{s} \"\"+2"),
            format!("10 {c}>{s} \"ef\"+0"),
            format!("11 {c}>{s} \"gh\"+0"),
            format!("end {}", T0 + 30 * sec)
        ]
    );
    assert_eq!(data_ts(&events)[1..], [T0 + 30 * sec; 3]);
    let SourceEvent::Data(d) = &events[3] else {
        panic!("not data")
    };
    assert_eq!(
        (d.client, d.conn.start_ns),
        (ClientHint::Unknown, T0 + 30 * sec)
    );
    assert_eq!((stats.idle_evictions, stats.flows, stats.closes), (1, 2, 0));
}

#[test]
fn capture_without_packets_ends_at_zero() {
    for file in [pcap(Link::Ethernet, &[]), pcapng_file(&[(1, None)], &[])] {
        let (events, stats) = replay(&file);
        assert_eq!(show(&events), vec!["end 0".to_string()]);
        assert_eq!(stats, ReplayStats::default());
    }
}
