//! Protocol inference from the first bytes of a message: the user-space mirror of
//! `bpf/infer.h`. (The kernel also keeps a lone 1-4 byte read, a DNS-over-TCP length or a
//! MySQL packet header, to match it with the call that follows; replay sees whole segments
//! and needs no such step.) Both must give the same answer for the same bytes; the unit tests here run
//! the rules on fixture bytes, and every check is commented with why it holds.

use serde::Serialize;

use crate::Transport;

/// Application protocols wirelens understands. The discriminants equal `enum wl_protocol` in
/// `bpf/wirelens.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http = 1,
    Mysql = 2,
    Pgsql = 3,
    Redis = 4,
    Dns = 5,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::Http,
        Protocol::Mysql,
        Protocol::Pgsql,
        Protocol::Redis,
        Protocol::Dns,
    ];

    /// The name used in records and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Mysql => "mysql",
            Protocol::Pgsql => "pgsql",
            Protocol::Redis => "redis",
            Protocol::Dns => "dns",
        }
    }

    pub fn from_name(s: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == s)
    }

    /// From the kernel's numeric code.
    pub fn from_code(code: u8) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| *p as u8 == code)
    }
}

/// Whether the bytes open a request or a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Response,
}

/// How sure an inference is (a graded answer, not a bool).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    /// Plausible but could be another protocol's bytes.
    Likely,
    /// A signature no other supported protocol produces.
    Certain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inference {
    pub protocol: Protocol,
    pub kind: MessageKind,
    pub confidence: Confidence,
}

/// HTTP/1.x methods recognised at the start of a request (RFC 9110 section 9, RFC 5789 PATCH).
const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// HTTP/1.x: a request starts with a method token and a space; a response with `HTTP/1.`
/// followed by a version digit and a space (RFC 9112 sections 3 and 4). Neither start is a
/// valid MySQL, PostgreSQL, Redis or DNS message start in practice (a MySQL packet would need a
/// 4.7 MB length, RESP starts with one of `+-:$*_,#!=(%~>|` or is an inline command in upper
/// case too, hence `Likely` for requests).
pub fn infer_http(data: &[u8]) -> Option<Inference> {
    for m in HTTP_METHODS {
        if data.len() >= m.len() && &data[..m.len()] == m {
            return Some(Inference {
                protocol: Protocol::Http,
                kind: MessageKind::Request,
                // An inline Redis command "GET key" looks the same for the first four bytes;
                // a request line needs " HTTP/1." later, which a prefix may not hold.
                confidence: if contains(data, b" HTTP/1.") {
                    Confidence::Certain
                } else {
                    Confidence::Likely
                },
            });
        }
    }
    if data.len() >= 9 && &data[..7] == b"HTTP/1." && data[7].is_ascii_digit() && data[8] == b' ' {
        return Some(Inference {
            protocol: Protocol::Http,
            kind: MessageKind::Response,
            confidence: Confidence::Certain,
        });
    }
    None
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn found(protocol: Protocol, kind: MessageKind, confidence: Confidence) -> Option<Inference> {
    Some(Inference {
        protocol,
        kind,
        confidence,
    })
}

/// PostgreSQL protocol 3.0 (PostgreSQL docs, "Message Formats"); mirrors `wl_infer_pgsql`.
/// StartupMessage (length, 196608), SSLRequest / GSSENCRequest (length 8, 80877103 /
/// 80877104) are certain; a Query whose length covers the call, a Parse or Bind whose length
/// fits in it, an Authentication
/// request or a ReadyForQuery are likely.
pub fn infer_pgsql(b: &[u8], total: u64) -> Option<Inference> {
    use Confidence::*;
    use MessageKind::*;
    if let (Some(len), Some(code)) = (be32(b, 0), be32(b, 4)) {
        if len == 8 && (code == 80_877_103 || code == 80_877_104) {
            return found(Protocol::Pgsql, Request, Certain);
        }
        if code == 196_608 && (8..=10_000).contains(&len) && u64::from(len) == total {
            return found(Protocol::Pgsql, Request, Certain);
        }
    }
    if b.len() < 6 {
        return None;
    }
    let mlen = be32(b, 1)?;
    if matches!(b[0], b'Q' | b'P' | b'B')
        && mlen >= 5
        && u64::from(mlen) < total
        && (b[0] != b'Q' || u64::from(mlen) + 1 == total)
    {
        return found(Protocol::Pgsql, Request, Likely);
    }
    if b[0] == b'R'
        && (8..65_536).contains(&mlen)
        && b.len() >= 9
        && b[5..8] == [0, 0, 0]
        && b[8] <= 12
    {
        return found(Protocol::Pgsql, Response, Likely);
    }
    if b[0] == b'Z' && mlen == 5 && matches!(b.get(5), Some(b'I' | b'T' | b'E')) {
        return found(Protocol::Pgsql, Response, Likely);
    }
    None
}

/// MySQL packets (MySQL internals, "MySQL Packets"); mirrors `wl_infer_mysql`. The server's
/// Handshake v10 is certain; a command whose packet length covers the call is likely.
pub fn infer_mysql(b: &[u8], total: u64) -> Option<Inference> {
    use Confidence::*;
    use MessageKind::*;
    if b.len() < 5 {
        return None;
    }
    let len = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
    if b[3] != 0 || len == 0 {
        return None;
    }
    let len = u64::from(len);
    if b[4] == 0x0a && b.len() >= 6 && b[5].is_ascii_digit() && len >= 20 && len + 4 <= total {
        return found(Protocol::Mysql, Response, Certain);
    }
    let cmd = b[4];
    if matches!(cmd, 0x03 | 0x16 | 0x02) && len >= 2 && len + 4 == total {
        return found(Protocol::Mysql, Request, Likely);
    }
    if cmd == 0x17 && len >= 10 && len + 4 == total && b.len() >= 14 && b[10..14] == [1, 0, 0, 0] {
        return found(Protocol::Mysql, Request, Likely);
    }
    if cmd == 0x0e && len == 1 && total == 5 {
        return found(Protocol::Mysql, Request, Likely);
    }
    None
}

/// Redis RESP (redis.io protocol specification); mirrors `wl_infer_redis`. A command array
/// (`*N\r\n$`) is certain; well-known replies are likely.
pub fn infer_redis(b: &[u8]) -> Option<Inference> {
    use Confidence::*;
    use MessageKind::*;
    if b.len() < 4 {
        return None;
    }
    if b[0] == b'*' && b[1].is_ascii_digit() {
        let mut i = 2;
        for _ in 0..3 {
            if b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if i + 2 < b.len() && b[i] == b'\r' && b[i + 1] == b'\n' && b[i + 2] == b'$' {
            return found(Protocol::Redis, Request, Certain);
        }
        return None;
    }
    const REPLIES: [&[u8]; 5] = [
        b"+OK\r\n",
        b"+PONG\r\n",
        b"-ERR ",
        b"-WRONGTYPE",
        b"-NOAUTH",
    ];
    if REPLIES.iter().any(|r| b.starts_with(r)) {
        return found(Protocol::Redis, Response, Likely);
    }
    if b[0] == b':' || b[0] == b'$' {
        let mut i = if b[1] == b'-' { 2 } else { 1 };
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        for _ in 0..10 {
            if b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if i + 1 < b.len() && b[i] == b'\r' && b[i + 1] == b'\n' {
            return found(Protocol::Redis, Response, Likely);
        }
    }
    None
}

/// DNS (RFC 1035 sections 4.1.1 and 4.2.2); mirrors `wl_infer_dns`. Over TCP the first
/// message's two-byte length must fit in the call.
pub fn infer_dns(b: &[u8], total: u64, transport: Transport) -> Option<Inference> {
    let o = match transport {
        Transport::Tcp => {
            if b.len() < 14 {
                return None;
            }
            let len = u64::from(u16::from_be_bytes([b[0], b[1]]));
            // Several messages may go in one call (pipelined queries): the first must fit.
            if len < 12 || len + 2 > total {
                return None;
            }
            2
        }
        Transport::Udp => 0,
    };
    let h = b.get(o..o + 13)?;
    let (f1, f2) = (h[2], h[3]);
    let (qr, opcode, z) = (f1 >> 7, (f1 >> 3) & 0xf, (f2 >> 6) & 1);
    let word = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let (qd, an, ns, ar) = (word(4), word(6), word(8), word(10));
    // QUERY, NOTIFY, UPDATE, DSO (RFC 6895 section 2.2); one question, or none in a
    // cookie-only query that carries an EDNS OPT record.
    if !matches!(opcode, 0 | 2 | 4 | 5) || z != 0 || qd > 1 || (qd == 0 && ar == 0) || h[12] > 63 {
        return None;
    }
    if qr == 0 {
        if an == 0 && ns == 0 && ar <= 2 {
            return found(Protocol::Dns, MessageKind::Request, Confidence::Likely);
        }
        return None;
    }
    found(Protocol::Dns, MessageKind::Response, Confidence::Likely)
}

/// Tries every protocol on the first bytes of a message, most specific first, as the kernel
/// does (`wl_infer`). `total` is the length of the whole call or segment the bytes start.
pub fn infer(data: &[u8], total: u64, transport: Transport) -> Option<Inference> {
    if transport == Transport::Tcp {
        if let Some(i) = infer_http(data)
            .or_else(|| infer_pgsql(data, total))
            .or_else(|| infer_mysql(data, total))
            .or_else(|| infer_redis(data))
        {
            return Some(i);
        }
    }
    infer_dns(data, total, transport)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_and_response() {
        let t = Transport::Tcp;
        let infer = |b: &[u8]| super::infer(b, b.len() as u64, t);
        let r = infer(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.protocol, Protocol::Http);
        assert_eq!(r.kind, MessageKind::Request);
        assert_eq!(r.confidence, Confidence::Certain);
        let r = infer(b"HTTP/1.1 200 OK\r\n").unwrap();
        assert_eq!(r.kind, MessageKind::Response);
        assert_eq!(infer(b"HTTP/2 200"), None);
        assert_eq!(infer(b"GE"), None);
        assert_eq!(infer(b"\x16\x03\x01\x02\x00"), None);
        assert_eq!(
            infer(b"GET key\r\n").map(|i| i.confidence),
            Some(Confidence::Likely)
        );
    }

    fn tcp(b: &[u8]) -> Option<(Protocol, MessageKind)> {
        infer(b, b.len() as u64, Transport::Tcp).map(|i| (i.protocol, i.kind))
    }

    #[test]
    fn pgsql_startup_ssl_query_and_replies() {
        use MessageKind::*;
        let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0postgres\0database\0db\0\0");
        let n = startup.len() as u32;
        startup[..4].copy_from_slice(&n.to_be_bytes());
        assert_eq!(tcp(&startup), Some((Protocol::Pgsql, Request)));
        assert_eq!(
            tcp(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]),
            Some((Protocol::Pgsql, Request))
        );
        let q = b"Q\0\0\0\x0eselect 1;\0";
        assert_eq!(tcp(q), Some((Protocol::Pgsql, Request)));
        // The same bytes inside a longer call whose length does not match are not taken.
        assert_eq!(infer(q, 100, Transport::Tcp), None);
        // Bind/Execute/Sync of a prepared statement, sent together (mid-connection).
        let bes = b"B\0\0\0\x1a\0by_key\0\0\0\0\x01\0\0\0\x012\0\0E\0\0\0\t\0\0\0\0\0S\0\0\0\x04";
        assert_eq!(tcp(bes), Some((Protocol::Pgsql, Request)));
        assert_eq!(tcp(b"Z\0\0\0\x05I"), Some((Protocol::Pgsql, Response)));
        assert_eq!(
            tcp(b"R\0\0\0\x08\0\0\0\0"),
            Some((Protocol::Pgsql, Response))
        );
    }

    #[test]
    fn mysql_greeting_and_commands() {
        use MessageKind::*;
        let mut greet = vec![0u8; 4];
        greet.push(0x0a);
        greet.extend_from_slice(b"5.5.5-10.11.6-MariaDB\0");
        greet.extend_from_slice(&[0; 40]);
        let n = (greet.len() - 4) as u32;
        greet[..3].copy_from_slice(&n.to_le_bytes()[..3]);
        assert_eq!(tcp(&greet), Some((Protocol::Mysql, Response)));
        let q = b"\x09\0\0\0\x03select 1";
        assert_eq!(tcp(q), Some((Protocol::Mysql, Request)));
        assert_eq!(tcp(b"\x01\0\0\0\x0e"), Some((Protocol::Mysql, Request)));
        // Sequence id 1 is not a command start.
        assert_eq!(tcp(b"\x09\0\0\x01\x03select 1"), None);
    }

    #[test]
    fn redis_arrays_and_replies() {
        use MessageKind::*;
        assert_eq!(
            tcp(b"*1\r\n$4\r\nPING\r\n"),
            Some((Protocol::Redis, Request))
        );
        assert_eq!(
            tcp(b"*12\r\n$3\r\nSET\r\n"),
            Some((Protocol::Redis, Request))
        );
        assert_eq!(tcp(b"+OK\r\n"), Some((Protocol::Redis, Response)));
        assert_eq!(tcp(b"$-1\r\n"), Some((Protocol::Redis, Response)));
        assert_eq!(tcp(b":1000\r\n"), Some((Protocol::Redis, Response)));
        assert_eq!(tcp(b"*1\r\nx"), None);
        assert_eq!(tcp(b"$abc\r\n"), None);
    }

    #[test]
    fn dns_over_udp_and_tcp() {
        use MessageKind::*;
        // id 0x1234, RD, one question "a.example" A IN, one EDNS additional.
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x01a\x07example\0\0\x01\0\x01");
        let got = infer(&q, q.len() as u64, Transport::Udp).map(|i| (i.protocol, i.kind));
        assert_eq!(got, Some((Protocol::Dns, Request)));
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        let got = infer(&r, r.len() as u64, Transport::Udp).map(|i| (i.protocol, i.kind));
        assert_eq!(got, Some((Protocol::Dns, Response)));
        let mut t = (q.len() as u16).to_be_bytes().to_vec();
        t.extend_from_slice(&q);
        assert_eq!(tcp(&t), Some((Protocol::Dns, Request)));
        // Two questions: not what resolvers send.
        let mut two = q.clone();
        two[5] = 2;
        assert_eq!(infer(&two, two.len() as u64, Transport::Udp), None);
    }
}
