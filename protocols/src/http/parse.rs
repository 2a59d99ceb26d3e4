//! HTTP/1.x message heads (RFC 9112 sections 2-5): the start line and header section, parsed
//! by httparse without copying, the few fields wirelens reads, and the body framing they imply
//! (RFC 9112 section 6.3).

use std::mem::MaybeUninit;

use httparse::{Header, ParserConfig, Status};

/// Header fields accepted in one head; a head with more is invalid.
pub(crate) const MAX_HEADERS: usize = 64;

/// How the body of a message is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: requests without Content-Length or Transfer-Encoding, responses to HEAD,
    /// 204 and 304 (items 1, 6 and 7).
    Empty,
    /// Content-Length (item 6).
    Length(u64),
    /// Transfer-Encoding with `chunked` last (item 4).
    Chunked,
    /// A response body that runs to the close of the connection (items 4 and 8).
    UntilClose,
    /// An interim 1xx response other than 101: the final response follows (RFC 9110 15.2).
    Interim,
    /// 101 Switching Protocols or a 2xx answer to CONNECT: the connection leaves HTTP/1
    /// (item 2; RFC 9110 sections 9.3.6 and 15.2.2).
    Tunnel,
    /// Framing headers that cannot be trusted: a request with a Transfer-Encoding not ending
    /// in chunked (item 4), or an invalid Content-Length (item 5).
    Invalid,
}

/// What response framing needs to know of the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MethodKind {
    Head,
    Connect,
    Other,
}

impl MethodKind {
    pub(crate) fn of(method: &str) -> MethodKind {
        match method {
            "HEAD" => MethodKind::Head,
            "CONNECT" => MethodKind::Connect,
            _ => MethodKind::Other,
        }
    }
}

/// A request head, borrowed from the bytes it was parsed from.
#[derive(Debug)]
pub(crate) struct RequestHead<'a> {
    pub method: &'a str,
    /// The request-target as sent (RFC 9112 section 3.2).
    pub target: &'a str,
    pub host: Option<&'a [u8]>,
    /// The single `traceparent` field; `None` when absent or repeated (W3C Trace Context
    /// section 3.2: several fields are invalid).
    pub traceparent: Option<&'a [u8]>,
    pub framing: Framing,
}

/// The parts of a response head that framing and the record need.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub status: u16,
    length: Length,
    /// `Some(chunked is the final coding)` when Transfer-Encoding is present.
    chunked: Option<bool>,
}

impl ResponseHead {
    /// Framing of this response to a request of `method` (`None`: no request known).
    pub(crate) fn framing(&self, method: Option<MethodKind>) -> Framing {
        let status = self.status;
        if status == 101 {
            return Framing::Tunnel;
        }
        if (100..200).contains(&status) {
            return Framing::Interim;
        }
        if method == Some(MethodKind::Head) || status == 204 || status == 304 {
            return Framing::Empty;
        }
        if method == Some(MethodKind::Connect) && (200..300).contains(&status) {
            return Framing::Tunnel;
        }
        match (self.chunked, self.length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Length::Invalid) => Framing::Invalid,
            (None, Length::Value(0)) => Framing::Empty,
            (None, Length::Value(n)) => Framing::Length(n),
            (None, Length::Absent) => Framing::UntilClose,
        }
    }
}

/// Outcome of parsing a head: a frame and its length, need more data, or invalid.
#[derive(Debug)]
pub(crate) enum Parsed<T> {
    Complete(T, usize),
    Partial,
    Invalid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Length {
    Absent,
    Value(u64),
    Invalid,
}

/// The header fields wirelens reads, found in one pass. Host and traceparent are read in
/// requests only (`REQUEST`): a response's are thrown away.
#[derive(Debug)]
struct Fields<'a> {
    host: Option<&'a [u8]>,
    traceparent: Option<&'a [u8]>,
    traceparents: u32,
    length: Length,
    /// `Some(chunked is the final coding)` when Transfer-Encoding is present.
    chunked: Option<bool>,
}

impl<'a> Fields<'a> {
    fn scan<const REQUEST: bool>(headers: &[Header<'a>]) -> Fields<'a> {
        let mut f = Fields {
            host: None,
            traceparent: None,
            traceparents: 0,
            length: Length::Absent,
            chunked: None,
        };
        for h in headers {
            let name = h.name.as_bytes();
            // Dispatch on length first: most fields are none of these.
            match name.len() {
                4 if REQUEST && name.eq_ignore_ascii_case(b"host") => {
                    f.host.get_or_insert(trim(h.value));
                }
                11 if REQUEST && name.eq_ignore_ascii_case(b"traceparent") => {
                    f.traceparents += 1;
                    f.traceparent = Some(h.value);
                }
                14 if name.eq_ignore_ascii_case(b"content-length") => {
                    f.length = match (f.length, content_length(h.value)) {
                        (Length::Absent, Some(n)) => Length::Value(n),
                        (Length::Value(a), Some(b)) if a == b => Length::Value(a),
                        _ => Length::Invalid,
                    };
                }
                17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                    // Several fields form one list (RFC 9110 5.3): the last coding counts.
                    if let Some(last) = h
                        .value
                        .rsplit(|b| *b == b',')
                        .map(trim)
                        .find(|t| !t.is_empty())
                    {
                        f.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
                    } else if f.chunked.is_none() {
                        f.chunked = Some(false);
                    }
                }
                _ => {}
            }
        }
        if f.traceparents != 1 {
            f.traceparent = None;
        }
        f
    }
}

/// Content-Length (RFC 9110 section 8.6): decimal digits; a list of identical values is
/// accepted as one value.
fn content_length(value: &[u8]) -> Option<u64> {
    let mut result = None;
    for part in value.split(|b| *b == b',') {
        let part = trim(part);
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        match result {
            Some(m) if m != n => return None,
            _ => result = Some(n),
        }
    }
    result
}

/// Field bytes as an owned string, invalid UTF-8 replaced by U+FFFD. Field values are ASCII
/// nearly always: checked at word speed, copied once with exact capacity.
pub(crate) fn owned_lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Strip optional whitespace (RFC 9110 section 5.6.3).
pub(crate) fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Parse a request head (RFC 9112 section 3: request-line, field lines, empty line).
pub(crate) fn parse_request(buf: &[u8]) -> Parsed<RequestHead<'_>> {
    let mut headers = [MaybeUninit::<Header<'_>>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(Status::Complete(len)) => {
            let (Some(method), Some(target)) = (req.method, req.path) else {
                return Parsed::Invalid;
            };
            let f = Fields::scan::<true>(req.headers);
            let framing = match (f.chunked, f.length) {
                (Some(true), _) => Framing::Chunked,
                (Some(false), _) | (None, Length::Invalid) => Framing::Invalid,
                (None, Length::Value(n)) if n > 0 => Framing::Length(n),
                (None, _) => Framing::Empty,
            };
            let head = RequestHead {
                method,
                target,
                host: f.host,
                traceparent: f.traceparent,
                framing,
            };
            Parsed::Complete(head, len)
        }
        Ok(Status::Partial) => Parsed::Partial,
        Err(_) => Parsed::Invalid,
    }
}

/// Parse a response head (RFC 9112 section 4: status-line, field lines, empty line). Lenient
/// where servers in the wild are (RFC 9112 section 5.2 obs-fold, spaces before a colon).
pub(crate) fn parse_response(buf: &[u8]) -> Parsed<ResponseHead> {
    let mut headers = [MaybeUninit::<Header<'_>>::uninit(); MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let mut config = ParserConfig::default();
    config
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true);
    match config.parse_response_with_uninit_headers(&mut resp, buf, &mut headers) {
        Ok(Status::Complete(len)) => {
            let Some(status) = resp.code else {
                return Parsed::Invalid;
            };
            let f = Fields::scan::<false>(resp.headers);
            let head = ResponseHead {
                status,
                length: f.length,
                chunked: f.chunked,
            };
            Parsed::Complete(head, len)
        }
        Ok(Status::Partial) => Parsed::Partial,
        Err(_) => Parsed::Invalid,
    }
}

/// What an incomplete or invalid request head still tells: method and request-target
/// (possibly cut short), and, with `fields`, Host and traceparent from the whole, valid field
/// lines before the first invalid one. `None` unless the bytes start like a request-line (RFC
/// 9112 section 3).
pub(crate) fn salvage_request(buf: &[u8], fields: bool) -> Option<RequestHead<'_>> {
    let start = buf.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    let buf = &buf[start..];
    let sp = buf.iter().position(|b| *b == b' ')?;
    let method = &buf[..sp];
    if method.is_empty() || method.len() > 32 || !method.iter().all(|b| is_tchar(*b)) {
        return None;
    }
    let rest = &buf[sp + 1..];
    let target_len = rest
        .iter()
        .position(|b| !is_target_byte(*b))
        .unwrap_or(rest.len());
    let target = match std::str::from_utf8(&rest[..target_len]) {
        Ok(t) => t,
        // Cut inside a UTF-8 sequence: keep the whole characters.
        Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).ok()?,
    };
    if target.is_empty() {
        return None;
    }
    let mut head = RequestHead {
        method: std::str::from_utf8(method).ok()?,
        target,
        host: None,
        traceparent: None,
        framing: Framing::Invalid,
    };
    let mut traceparents = 0;
    // Whole field lines only (each ends with LF), after the request-line.
    let mut lines = match rest.iter().position(|b| *b == b'\n') {
        Some(nl) if fields => &rest[nl + 1..],
        _ => &[][..],
    };
    // Up to the first line httparse would reject, so that the answer does not depend on how
    // much of the head came after it.
    for _ in 0..MAX_HEADERS {
        let Some(nl) = lines.iter().position(|b| *b == b'\n') else {
            break;
        };
        let line = &lines[..nl];
        lines = &lines[nl + 1..];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            break;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty()
            || !name.iter().all(|b| is_tchar(*b))
            || !value.iter().all(|b| is_value_byte(*b))
        {
            break;
        }
        let value = trim(value);
        if name.eq_ignore_ascii_case(b"host") && head.host.is_none() {
            head.host = Some(value);
        } else if name.eq_ignore_ascii_case(b"traceparent") {
            traceparents += 1;
            head.traceparent = Some(value);
        }
    }
    if traceparents != 1 {
        head.traceparent = None;
    }
    Some(head)
}

/// The status code of a response head cut by a capture gap, when its status-line got as far
/// (RFC 9112 section 4: `HTTP/1.x SP 3DIGIT`).
pub(crate) fn salvage_status(buf: &[u8]) -> Option<u16> {
    let start = buf.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    match buf.get(start..start + 12)? {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0' | b'1', b' ', d @ ..]
            if d.iter().all(u8::is_ascii_digit) =>
        {
            Some(d.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
        }
        _ => None,
    }
}

/// tchar (RFC 9110 section 5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte httparse accepts in a field value (RFC 9110 section 5.5, obs-text included).
fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
}

/// A byte httparse accepts in a request-target: visible ASCII or non-ASCII.
pub(crate) fn is_target_byte(b: u8) -> bool {
    (0x21..0x7f).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::owned_lossy;

    #[test]
    fn owned_lossy_is_the_lossy_conversion_with_exact_capacity() {
        let cases: [&[u8]; 5] = [
            b"",
            b"localhost:8080",
            "h\u{f6}st".as_bytes(),
            b"a\xffb",
            b"\xe2\x82",
        ];
        for bytes in cases {
            let s = owned_lossy(bytes);
            assert_eq!(s, String::from_utf8_lossy(bytes), "{bytes:?}");
            if std::str::from_utf8(bytes).is_ok() {
                assert_eq!(s.capacity(), bytes.len(), "{bytes:?}");
            }
        }
    }
}
