//! Protocol inference from the first bytes of a message: the user-space mirror of
//! `bpf/infer.h`. Both must give the same answer for the same bytes; the unit tests here run
//! the rules on fixture bytes, and every check is commented with why it holds.

use serde::Serialize;

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

/// Try every protocol on the first bytes of a message. The order matters where signatures
/// overlap: the more specific rules run first.
pub fn infer(data: &[u8]) -> Option<Inference> {
    infer_http(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_and_response() {
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
}
