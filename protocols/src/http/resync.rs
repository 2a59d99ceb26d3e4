//! Finding the next plausible message start after invalid bytes or a capture gap.
//!
//! A request starts with a request-line, `method SP request-target SP HTTP/1.x CRLF` (RFC 9112
//! section 3); a response with a status-line, `HTTP/1.x SP 3DIGIT` (RFC 9112 section 4). The
//! search looks for the fixed part (the anchor: ` HTTP/1.x` + line end, or `HTTP/1.x DDD`) and,
//! for requests, walks back over the target and the method. Every check looks only at bytes
//! before the anchor's end and at most [`REQUEST_KEEP`] bytes before its start, so the answer
//! does not depend on how the stream was cut into chunks.
//!
//! Confusions: a body that quotes an HTTP message is taken for one; the walk-back accepts only
//! upper-case method names (`[A-Z_-]`, which covers the registered methods), so text such as
//! `see HTTP/1.1` in a lower-case sentence is not a request.

use super::parse::is_target_byte;

/// Longest request-target found by resynchronisation (longer ones are skipped).
const MAX_TARGET: usize = 4096;
/// Longest method name found by resynchronisation.
const MAX_METHOD: usize = 24;
/// ` HTTP/1.1\r`
const REQUEST_ANCHOR: usize = 10;
/// `HTTP/1.1 200`
const RESPONSE_ANCHOR: usize = 12;
/// Bytes before an anchor that a request start may lie in.
pub(crate) const REQUEST_KEEP: usize = MAX_TARGET + 1 + MAX_METHOD + REQUEST_ANCHOR;

/// Which kind of message a direction carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Requests,
    Responses,
}

/// A plausible message start found in a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Start {
    /// Offset of the first byte of the message.
    pub at: usize,
    /// Offset just past the anchor that vouched for it.
    pub anchor_end: usize,
}

impl Dir {
    fn anchor_len(self) -> usize {
        match self {
            Dir::Requests => REQUEST_ANCHOR,
            Dir::Responses => RESPONSE_ANCHOR,
        }
    }

    /// The first message start whose anchor begins at or after `from`.
    pub(crate) fn find_start(self, buf: &[u8], from: usize) -> Option<Start> {
        let n = self.anchor_len();
        // Every anchor holds "HTTP/1." at a fixed offset: look for its 'H'.
        let h = usize::from(self == Dir::Requests);
        let mut i = from;
        while i + n <= buf.len() {
            let off = buf[i + h..buf.len() - n + 1 + h]
                .iter()
                .position(|b| *b == b'H')?;
            let a = i + off;
            let start = match self {
                Dir::Requests if request_anchor(&buf[a..a + n]) => walk_back(buf, a),
                Dir::Responses if response_anchor(&buf[a..a + n]) => Some(a),
                _ => None,
            };
            if let Some(at) = start {
                return Some(Start {
                    at,
                    anchor_end: a + n,
                });
            }
            i = a + 1;
        }
        None
    }

    /// After a search of all of `buf` found nothing: how many bytes at its end may still begin
    /// a message (to keep for the next search), and the anchor positions already searched in
    /// them.
    pub(crate) fn keep(self, buf: &[u8]) -> (usize, usize) {
        let keep = match self {
            Dir::Responses => buf.len().min(RESPONSE_ANCHOR - 1),
            Dir::Requests => {
                let window = &buf[buf.len().saturating_sub(REQUEST_KEEP)..];
                // A request-line holds no control byte before its anchor's CR.
                match window.iter().rposition(|b| !is_line_byte(*b)) {
                    Some(c) => window.len() - c - 1,
                    None => window.len(),
                }
            }
        };
        (keep, keep.saturating_sub(self.anchor_len() - 1))
    }
}

/// ` HTTP/1.0` or ` HTTP/1.1`, then CR or LF.
fn request_anchor(a: &[u8]) -> bool {
    matches!(
        a,
        [
            b' ',
            b'H',
            b'T',
            b'T',
            b'P',
            b'/',
            b'1',
            b'.',
            b'0' | b'1',
            b'\r' | b'\n'
        ]
    )
}

/// `HTTP/1.0` or `HTTP/1.1`, SP, three digits.
fn response_anchor(a: &[u8]) -> bool {
    matches!(a, [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0' | b'1', b' ', d1, d2, d3]
        if d1.is_ascii_digit() && d2.is_ascii_digit() && d3.is_ascii_digit())
}

/// From the space before `HTTP/1.` back over `request-target SP method` to the method's first
/// byte.
fn walk_back(buf: &[u8], anchor: usize) -> Option<usize> {
    let lowest = anchor.saturating_sub(MAX_TARGET);
    let mut t = anchor;
    while t > lowest && is_target_byte(buf[t - 1]) {
        t -= 1;
    }
    if t == anchor || t == 0 || buf[t - 1] != b' ' {
        return None;
    }
    let method_end = t - 1;
    let lowest = method_end.saturating_sub(MAX_METHOD);
    let mut m = method_end;
    while m > lowest && is_method_byte(buf[m - 1]) {
        m -= 1;
    }
    (m < method_end).then_some(m)
}

fn is_method_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b == b'-' || b == b'_'
}

/// Bytes that may appear in a request-line before its anchor's line end.
fn is_line_byte(b: u8) -> bool {
    b == b' ' || is_target_byte(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_request_starts() {
        let d = Dir::Requests;
        let s = |b: &[u8]| d.find_start(b, 0).map(|s| (s.at, s.anchor_end));
        assert_eq!(s(b"GET / HTTP/1.1\r\n"), Some((0, 15)));
        assert_eq!(s(b"\x00\x01xPOST /a?b=c HTTP/1.0\n"), Some((3, 24)));
        assert_eq!(s(b"see / HTTP/1.1\r\n"), None);
        assert_eq!(s(b"GET / HTTP/1.2\r\nGET /x HTTP/1.1\r\n"), Some((16, 32)));
        assert_eq!(s(b"GET  HTTP/1.1\r\n"), None);
        assert_eq!(s(b"GET / HTTP/1.1"), None);
    }

    #[test]
    fn finds_response_starts() {
        let d = Dir::Responses;
        let s = |b: &[u8]| d.find_start(b, 0).map(|s| s.at);
        assert_eq!(s(b"HTTP/1.1 200 OK\r\n"), Some(0));
        assert_eq!(s(b"xxHTTP/1.0 404"), Some(2));
        assert_eq!(s(b"HTTP/1.1 2x0 HTTP/2 200 HTTP/1.1 204"), Some(24));
        assert_eq!(s(b"HTTP/1.1 20"), None);
    }

    #[test]
    fn keeps_what_may_start_a_message() {
        assert_eq!(Dir::Responses.keep(b"abcdefghijklmnopHTTP/1.1 2"), (11, 0));
        assert_eq!(Dir::Requests.keep(b"junk\r\nGET /abc HTT"), (12, 3));
        assert_eq!(Dir::Requests.keep(b"x\n"), (0, 0));
    }
}
