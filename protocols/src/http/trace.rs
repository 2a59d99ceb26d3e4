//! W3C Trace Context (Level 1): the `traceparent` request header that carries the caller's
//! trace and span ids.

use super::parse::{owned_lossy, trim};
use crate::TraceContext;

/// A W3C `traceparent` value (Trace Context Level 1, section 3.2.2):
/// `version "-" trace-id "-" parent-id "-" trace-flags`, lower-case hex. Version `00` is exactly
/// 55 characters; a later version may carry more after a `-` (section 3.2.4); `ff` and
/// all-zero ids are invalid (sections 3.2.2.1, 3.2.2.3, 3.2.2.4).
pub fn parse_traceparent(value: &[u8]) -> Option<TraceContext> {
    let v = trim(value);
    if v.len() < 55 {
        return None;
    }
    let hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let (version, trace, span, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    let dashes = v[2] == b'-' && v[35] == b'-' && v[52] == b'-';
    let tail_ok = match version {
        b"00" => v.len() == 55,
        b"ff" => false,
        _ => v.len() == 55 || v[55] == b'-',
    };
    let nonzero = |s: &[u8]| s.iter().any(|b| *b != b'0');
    if !(dashes && tail_ok && hex(version) && hex(trace) && hex(span) && hex(flags)) {
        return None;
    }
    if !nonzero(trace) || !nonzero(span) {
        return None;
    }
    // All checked to be ASCII hex above.
    Some(TraceContext {
        trace_id: owned_lossy(trace),
        span_id: owned_lossy(span),
    })
}
