//! PostgreSQL protocol 3.0 messages (PostgreSQL docs, chapter 55 "Frontend/Backend
//! Protocol", section 55.7 "Message Formats"): header checks, the decoding of the bodies the
//! pairing needs, and the structure checks that make a position a plausible message boundary
//! when the stream must be resynchronised.
//!
//! Every message after the startup phase is `Byte1(type) Int32(length) body`, the length
//! counting itself but not the type. The startup-phase messages of the frontend
//! (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) have no type byte:
//! `Int32(length) Int32(code) body`.
//!
//! Bodies may be cut (a capture gap, or the bound on what is kept): decoders then return what
//! the prefix holds.

use nom::bytes::complete::{tag, take_till};
use nom::number::complete::{be_i16, be_i32, be_u8};
use nom::sequence::terminated;
use nom::{IResult, Parser};

/// Longest message accepted (PostgreSQL's `MaxAllocSize`, 1 GiB - 1, bounds every message).
pub(crate) const MAX_LEN: u32 = 0x3fff_ffff;
/// Longest startup-phase message (`MAX_STARTUP_PACKET_LENGTH` in the server).
pub(crate) const MAX_STARTUP_LEN: u32 = 10_000;
/// SSLRequest code (section 55.7, "SSLRequest").
pub(crate) const SSL_REQUEST: u32 = 80_877_103;
/// GSSENCRequest code.
pub(crate) const GSSENC_REQUEST: u32 = 80_877_104;
/// CancelRequest code.
pub(crate) const CANCEL_REQUEST: u32 = 80_877_102;
/// Columns of a row at most (`MaxTupleAttributeNumber`).
const MAX_COLUMNS: i16 = 1664;
/// Body bytes a structure check looks at, at most (bounds the cost of resynchronising).
const CHECK_BYTES: usize = 512;

/// Which end sends the messages of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    /// The client (section 55.7 marks these "(F)").
    Frontend,
    /// The server ("(B)").
    Backend,
}

/// A frontend message, decoded as far as the pairing needs (section 55.7).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frontend<'a> {
    /// StartupMessage of protocol 3.x.
    Startup,
    SslRequest,
    GssEncRequest,
    CancelRequest,
    /// `Q`: the query string (without its terminating NUL).
    Query(&'a [u8]),
    /// `P`: destination statement name, query string.
    Parse {
        name: &'a [u8],
        query: &'a [u8],
    },
    /// `B`: destination portal, source statement.
    Bind {
        portal: &'a [u8],
        statement: &'a [u8],
    },
    /// `D`: `S` (statement) or `P` (portal), and its name.
    Describe {
        what: u8,
        name: &'a [u8],
    },
    /// `E`: the portal to run.
    Execute {
        portal: &'a [u8],
    },
    /// `C`: `S` or `P`, and the name to close.
    Close {
        what: u8,
        name: &'a [u8],
    },
    /// `S`.
    Sync,
    /// `H`.
    Flush,
    /// `F`: FunctionCall (the fast-path interface).
    FunctionCall,
    /// `d` from the client (COPY FROM STDIN data).
    CopyData,
    /// `c`.
    CopyDone,
    /// `f`.
    CopyFail,
    /// `X`.
    Terminate,
    /// `p`: PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse.
    Auth,
    /// Any other type byte (kept, not interpreted).
    Other(u8),
}

/// A backend message, decoded as far as the pairing needs (section 55.7).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Backend<'a> {
    /// `R`: any Authentication* message.
    Authentication,
    /// `S`.
    ParameterStatus,
    /// `K`.
    KeyData,
    /// `Z`, with the transaction status byte.
    ReadyForQuery,
    /// `T`.
    RowDescription,
    /// `D`.
    DataRow,
    /// `C`: the command tag (without its NUL).
    CommandComplete(&'a [u8]),
    /// `E`.
    ErrorResponse(ErrorFields<'a>),
    /// `N`.
    NoticeResponse,
    /// `A`.
    NotificationResponse,
    /// `I`.
    EmptyQueryResponse,
    /// `1`.
    ParseComplete,
    /// `2`.
    BindComplete,
    /// `3`.
    CloseComplete,
    /// `n`.
    NoData,
    /// `s`.
    PortalSuspended,
    /// `t`.
    ParameterDescription,
    /// `G`.
    CopyInResponse,
    /// `H`.
    CopyOutResponse,
    /// `W`.
    CopyBothResponse,
    /// `d`.
    CopyData,
    /// `c`.
    CopyDone,
    /// `V`.
    FunctionCallResponse,
    /// `v`.
    NegotiateProtocolVersion,
    Other(u8),
}

/// The fields of an ErrorResponse the record uses (section 55.8 "Error and Notice Message
/// Fields").
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorFields<'a> {
    /// `C`: the SQLSTATE.
    pub code: Option<&'a [u8]>,
    /// `M`: the primary message.
    pub message: Option<&'a [u8]>,
    /// `P`: cursor position, 1-based, in characters of the query string.
    pub position: Option<u32>,
}

/// Whether a type byte is a message the direction sends (section 55.7).
pub(crate) fn known_type(dir: Dir, ty: u8) -> bool {
    match dir {
        Dir::Frontend => b"QPBDECSHFdcfXp".contains(&ty),
        Dir::Backend => b"RSKZTDCENAI123nstGHWdcVv".contains(&ty),
    }
}

/// Whether a typed header is sane: `strict` (resynchronising) admits known types only, and
/// checks their fixed or minimal lengths; otherwise any alphanumeric type byte passes (an
/// unknown message is skipped by its length) and only the known types' lengths are checked.
pub(crate) fn header_ok(dir: Dir, ty: u8, len: u32, strict: bool) -> bool {
    if !(4..=MAX_LEN).contains(&len) {
        return false;
    }
    if !known_type(dir, ty) {
        return !strict && ty.is_ascii_alphanumeric();
    }
    let (min, max): (u32, u32) = match (dir, ty) {
        (Dir::Frontend, b'S' | b'H' | b'c' | b'X') => (4, 4),
        (Dir::Frontend, b'D' | b'C') => (6, 4 + 1 + 1024),
        (Dir::Frontend, b'E') => (9, 4 + 1024 + 4),
        (Dir::Frontend, b'P') => (8, MAX_LEN),
        (Dir::Frontend, b'B') => (12, MAX_LEN),
        (Dir::Frontend, b'Q' | b'f') => (5, MAX_LEN),
        (Dir::Frontend, b'F') => (14, MAX_LEN),
        (Dir::Backend, b'Z') => (5, 5),
        (Dir::Backend, b'1' | b'2' | b'3' | b'n' | b'I' | b'c' | b's') => (4, 4),
        (Dir::Backend, b'K') => (12, 12),
        (Dir::Backend, b'R') => (8, 65_536),
        (Dir::Backend, b'C') => (5, 4 + 1024),
        (Dir::Backend, b'S') => (6, 4 + 16_384),
        (Dir::Backend, b'E' | b'N') => (5, MAX_LEN),
        (Dir::Backend, b'T' | b'D' | b't') => (6, MAX_LEN),
        (Dir::Backend, b'G' | b'H' | b'W') => (7, 4 + 3 + 2 * 1664),
        (Dir::Backend, b'A') => (10, MAX_LEN),
        (Dir::Backend, b'V') => (8, MAX_LEN),
        (Dir::Backend, b'v') => (12, MAX_LEN),
        _ => (4, MAX_LEN),
    };
    (min..=max).contains(&len)
}

/// What an untyped (startup-phase) frontend header announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Untyped {
    Startup,
    Ssl,
    GssEnc,
    Cancel,
}

/// Checks `Int32(length) Int32(code)` of a startup-phase message (section 55.7,
/// "StartupMessage", "SSLRequest", "GSSENCRequest", "CancelRequest").
pub(crate) fn untyped_header(len: u32, code: u32) -> Option<Untyped> {
    match code {
        SSL_REQUEST if len == 8 => Some(Untyped::Ssl),
        GSSENC_REQUEST if len == 8 => Some(Untyped::GssEnc),
        CANCEL_REQUEST if len == 16 => Some(Untyped::Cancel),
        c if c >> 16 == 3 && (8..=MAX_STARTUP_LEN).contains(&len) => Some(Untyped::Startup),
        _ => None,
    }
}

// ---- decoding ----------------------------------------------------------------------------

type Res<'a, T> = IResult<&'a [u8], T>;

/// A NUL-terminated string.
fn cstring(i: &[u8]) -> Res<'_, &[u8]> {
    terminated(take_till(|c| c == 0), tag(&b"\0"[..])).parse(i)
}

/// A NUL-terminated string, or, in a cut body, everything left.
fn cstring_or_rest(i: &[u8]) -> (&[u8], &[u8]) {
    match cstring(i) {
        Ok((rest, s)) => (s, rest),
        Err(_) => (i, &[]),
    }
}

/// Decodes a typed frontend message from its (possibly cut) body.
pub(crate) fn frontend(ty: u8, body: &[u8]) -> Frontend<'_> {
    match ty {
        b'Q' => Frontend::Query(cstring_or_rest(body).0),
        b'P' => {
            let (name, rest) = cstring_or_rest(body);
            Frontend::Parse {
                name,
                query: cstring_or_rest(rest).0,
            }
        }
        b'B' => {
            let (portal, rest) = cstring_or_rest(body);
            Frontend::Bind {
                portal,
                statement: cstring_or_rest(rest).0,
            }
        }
        b'D' | b'C' => {
            let (what, name) = match body.split_first() {
                Some((w, rest)) => (*w, cstring_or_rest(rest).0),
                None => (0, &[][..]),
            };
            if ty == b'D' {
                Frontend::Describe { what, name }
            } else {
                Frontend::Close { what, name }
            }
        }
        b'E' => Frontend::Execute {
            portal: cstring_or_rest(body).0,
        },
        b'S' => Frontend::Sync,
        b'H' => Frontend::Flush,
        b'F' => Frontend::FunctionCall,
        b'd' => Frontend::CopyData,
        b'c' => Frontend::CopyDone,
        b'f' => Frontend::CopyFail,
        b'X' => Frontend::Terminate,
        b'p' => Frontend::Auth,
        other => Frontend::Other(other),
    }
}

/// Decodes a backend message from its (possibly cut) body.
pub(crate) fn backend(ty: u8, body: &[u8]) -> Backend<'_> {
    match ty {
        b'R' => Backend::Authentication,
        b'S' => Backend::ParameterStatus,
        b'K' => Backend::KeyData,
        b'Z' => Backend::ReadyForQuery,
        b'T' => Backend::RowDescription,
        b'D' => Backend::DataRow,
        b'C' => Backend::CommandComplete(cstring_or_rest(body).0),
        b'E' => Backend::ErrorResponse(error_fields(body)),
        b'N' => Backend::NoticeResponse,
        b'A' => Backend::NotificationResponse,
        b'I' => Backend::EmptyQueryResponse,
        b'1' => Backend::ParseComplete,
        b'2' => Backend::BindComplete,
        b'3' => Backend::CloseComplete,
        b'n' => Backend::NoData,
        b's' => Backend::PortalSuspended,
        b't' => Backend::ParameterDescription,
        b'G' => Backend::CopyInResponse,
        b'H' => Backend::CopyOutResponse,
        b'W' => Backend::CopyBothResponse,
        b'd' => Backend::CopyData,
        b'c' => Backend::CopyDone,
        b'V' => Backend::FunctionCallResponse,
        b'v' => Backend::NegotiateProtocolVersion,
        other => Backend::Other(other),
    }
}

/// The fields of an ErrorResponse body: `(Byte1 code, String value)*` then a NUL (section
/// 55.8). Unknown field codes are skipped; a cut body yields the fields it holds (the last
/// one possibly cut).
pub(crate) fn error_fields(mut body: &[u8]) -> ErrorFields<'_> {
    let mut f = ErrorFields::default();
    // Each pass consumes at least the code byte.
    while let Some((&code, rest)) = body.split_first() {
        if code == 0 {
            break;
        }
        let (value, rest) = cstring_or_rest(rest);
        match code {
            b'C' => f.code = Some(value),
            b'M' => f.message = Some(value),
            b'P' => f.position = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()),
            _ => {}
        }
        body = rest;
    }
    f
}

/// Rows from a CommandComplete tag (section 55.7, "CommandComplete"): the last word of
/// `INSERT oid rows`, `SELECT rows`, `UPDATE rows`, `DELETE rows`, `MERGE rows`,
/// `FETCH rows`, `MOVE rows`, `COPY rows`; none for tags without a count (`BEGIN`,
/// `CREATE TABLE`).
pub(crate) fn tag_rows(tag: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(tag).ok()?;
    let mut words = s.split_ascii_whitespace();
    let first = words.next()?;
    let last = words.last()?;
    if !first.bytes().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    last.parse().ok()
}

/// The command word of a tag (`INSERT 0 5` -> `INSERT`).
pub(crate) fn tag_command(tag: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(tag).ok()?;
    s.split_ascii_whitespace().next().map(str::to_owned)
}

// ---- structure checks (resynchronisation) ---------------------------------------------

/// How a message body fares against its type's structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plausible {
    /// Not this message.
    Invalid,
    /// The bytes there are consistent, but the body goes on past them.
    Partial,
    /// The whole body was checked against a structure specific enough to tell a real message
    /// from chance bytes (a command tag, error fields, a row with its column lengths...).
    Verified,
    /// Whole, consistent, but the type has little structure (fixed short messages, copy
    /// data): weak evidence of a boundary on its own.
    Weak,
}

/// Checks a message body (`body`, possibly a prefix; `len` the length the header declared)
/// against its type's structure. At most [`CHECK_BYTES`] are examined: longer bodies are at
/// most `Weak`.
pub(crate) fn body_plausible(dir: Dir, ty: u8, body: &[u8], len: usize) -> Plausible {
    let whole = body.len() >= len;
    let b = &body[..body.len().min(len).min(CHECK_BYTES)];
    let complete = whole && len <= CHECK_BYTES;
    // `Some(ok)`: a structure check; `None`: the type has none worth the name.
    let check = match (dir, ty) {
        (Dir::Backend, b'Z') => Some(b.first().is_none_or(|s| b"IET".contains(s))),
        (Dir::Backend, b'C') => Some(text_cstring(b, complete, true)),
        (Dir::Backend, b'E' | b'N') => Some(fields_plausible(b, len, complete)),
        (Dir::Backend, b'D') => Some(data_row_plausible(b, len, complete)),
        (Dir::Backend, b'T') => Some(row_description_plausible(b, complete)),
        (Dir::Backend, b'S') => Some(cstrings(b, 2, complete)),
        (Dir::Backend, b't') => Some(
            be_i16::<_, ()>(b)
                .map(|(_, n)| n >= 0 && len == 2 + 4 * n as usize)
                .unwrap_or(!complete),
        ),
        (Dir::Backend, b'R') => Some(b.get(..4).is_none_or(|c| {
            let code = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            matches!(code, 0..=3 | 5..=12)
        })),
        (Dir::Backend, b'G' | b'H' | b'W') => Some(match (be_u8::<_, ()>(b), b.get(1..3)) {
            (Ok((_, fmt)), Some(n)) => {
                let n = i16::from_be_bytes([n[0], n[1]]);
                fmt <= 1 && n >= 0 && len == 3 + 2 * n as usize
            }
            (Ok((_, fmt)), None) => fmt <= 1,
            _ => true,
        }),
        // NegotiateProtocolVersion: Int32 newest minor version, Int32 n, n option names.
        (Dir::Backend, b'v') => Some(match (b.get(..4), b.get(4..8)) {
            (Some(v), n) => {
                let minor = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                let n = n.map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]));
                minor <= 0xffff
                    && n.is_none_or(|n| n as usize <= len.saturating_sub(8))
                    && n.is_none_or(|n| cstrings(&b[8..], n as usize, complete))
            }
            (None, _) => true,
        }),
        // NotificationResponse: Int32 pid, channel and payload strings.
        (Dir::Backend, b'A') => Some(cstrings(b.get(4..).unwrap_or_default(), 2, complete)),
        // FunctionCallResponse: Int32 length (-1: NULL), then that many bytes.
        (Dir::Backend, b'V') => Some(b.get(..4).is_none_or(|v| {
            let n = i32::from_be_bytes([v[0], v[1], v[2], v[3]]);
            (n == -1 && len == 4) || (n >= 0 && len == 4 + n as usize)
        })),
        (Dir::Frontend, b'Q') => Some(text_cstring(b, complete, false)),
        (Dir::Frontend, b'P') => Some(parse_plausible(b, len, complete)),
        (Dir::Frontend, b'B') => Some(cstrings(b, 2, false)),
        (Dir::Frontend, b'D' | b'C') => Some(
            b.first().is_none_or(|w| *w == b'S' || *w == b'P')
                && cstrings(&b[1.min(b.len())..], 1, complete),
        ),
        (Dir::Frontend, b'E') => Some(match cstring(b) {
            Ok((rest, _)) => !complete || rest.len() == 4,
            Err(_) => !complete,
        }),
        _ => None,
    };
    match check {
        Some(false) => Plausible::Invalid,
        _ if !whole => Plausible::Partial,
        // Short or unstructured bodies say little; a Bind is checked only in part.
        Some(true) if complete && (len >= 4 || ty == b'Z') && ty != b'B' => Plausible::Verified,
        _ => Plausible::Weak,
    }
}

/// Parse: statement name, query string, then `Int16 n` and n `Int32` type OIDs filling the
/// body exactly.
fn parse_plausible(b: &[u8], len: usize, complete: bool) -> bool {
    let Ok((rest, name)) = cstring(b) else {
        return !complete && b.len() < 1024;
    };
    if name.len() >= 1024 {
        return false;
    }
    let Some(n) = rest.iter().position(|&c| c == 0) else {
        return !complete && text_cstring(rest, false, false);
    };
    if !text_cstring(&rest[..=n], true, false) {
        return false;
    }
    let used = b.len() - rest.len() + n + 1;
    match be_i16::<_, ()>(&rest[n + 1..]) {
        Ok((_, k)) => k >= 0 && len == used + 2 + 4 * k as usize,
        Err(_) => !complete,
    }
}

/// Printable text (or any UTF-8 byte) ending in one NUL, at the end when `complete`.
/// `short` asks for a command tag: no line breaks.
fn text_cstring(b: &[u8], complete: bool, short: bool) -> bool {
    let printable = |c: u8| c >= 0x20 || (!short && matches!(c, b'\t' | b'\n' | b'\r'));
    match b.iter().position(|&c| c == 0) {
        Some(n) => b[..n].iter().all(|&c| printable(c)) && (!complete || n + 1 == b.len()),
        None => !complete && b.iter().all(|&c| printable(c)),
    }
}

/// `count` NUL-terminated strings (exactly filling the body when `complete`).
fn cstrings(mut b: &[u8], count: usize, complete: bool) -> bool {
    for _ in 0..count {
        match cstring(b) {
            Ok((rest, _)) => b = rest,
            Err(_) => return !complete,
        }
    }
    !complete || b.is_empty()
}

/// `(Byte1 code, String)*` then NUL; codes are letters.
/// The NUL that ends the fields ends the body too (`len` bytes), cut or not.
fn fields_plausible(b: &[u8], len: usize, complete: bool) -> bool {
    let mut at = 0;
    while let Some(&code) = b.get(at) {
        if code == 0 {
            return at + 1 == len;
        }
        if !code.is_ascii_alphabetic() {
            return false;
        }
        match cstring(&b[at + 1..]) {
            Ok((rest, _)) => at = b.len() - rest.len(),
            Err(_) => return !complete,
        }
    }
    !complete
}

/// `Int16 n` then n times `Int32 len (-1 or more) bytes`, filling the body exactly.
fn data_row_plausible(b: &[u8], len: usize, complete: bool) -> bool {
    let Ok((mut rest, n)) = be_i16::<_, ()>(b) else {
        return !complete;
    };
    if !(0..=MAX_COLUMNS).contains(&n) {
        return false;
    }
    let mut used = 2usize;
    for _ in 0..n {
        let Ok((r, l)) = be_i32::<_, ()>(rest) else {
            return !complete;
        };
        used += 4;
        let l = if l == -1 {
            0
        } else if l >= 0 {
            l as usize
        } else {
            return false;
        };
        used = used.saturating_add(l);
        if used > len {
            return false;
        }
        if r.len() < l {
            return !complete;
        }
        rest = &r[l..];
    }
    // Every column was walked: nothing may follow.
    used == len
}

/// `Int16 n` then n fields of `String name` and 18 bytes.
fn row_description_plausible(b: &[u8], complete: bool) -> bool {
    let Ok((mut rest, n)) = be_i16::<_, ()>(b) else {
        return !complete;
    };
    if !(0..=MAX_COLUMNS).contains(&n) {
        return false;
    }
    for _ in 0..n {
        match cstring(rest) {
            Ok((r, name)) if name.len() < 1024 => {
                if r.len() < 18 {
                    return !complete;
                }
                rest = &r[18..];
            }
            Ok(_) => return false,
            Err(_) => return !complete && rest.len() < 1024,
        }
    }
    !complete || rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_frontend_bodies() {
        assert_eq!(frontend(b'Q', b"select 1\0"), Frontend::Query(b"select 1"));
        assert_eq!(frontend(b'Q', b"select 1"), Frontend::Query(b"select 1"));
        assert_eq!(
            frontend(b'P', b"s1\0select $1\0\0\x01\0\0\0\x17"),
            Frontend::Parse {
                name: b"s1",
                query: b"select $1"
            }
        );
        assert_eq!(
            frontend(b'P', b"\0select 1 from some_tab"),
            Frontend::Parse {
                name: b"",
                query: b"select 1 from some_tab"
            }
        );
        assert_eq!(
            frontend(b'B', b"p\0s1\0\0\0\0\0\0\0"),
            Frontend::Bind {
                portal: b"p",
                statement: b"s1"
            }
        );
        assert_eq!(
            frontend(b'D', b"Ps\0"),
            Frontend::Describe {
                what: b'P',
                name: b"s"
            }
        );
        assert_eq!(
            frontend(b'D', b""),
            Frontend::Describe { what: 0, name: b"" }
        );
        assert_eq!(
            frontend(b'E', b"\0\0\0\0\0"),
            Frontend::Execute { portal: b"" }
        );
        assert_eq!(frontend(b'x', b""), Frontend::Other(b'x'));
    }

    #[test]
    fn decodes_errors_and_tags() {
        let body = b"SERROR\0VERROR\0C42P01\0Mrelation \"nope\" does not exist\0P15\0Fparse_relation.c\0\0";
        let f = error_fields(body);
        assert_eq!(f.code, Some(&b"42P01"[..]));
        assert_eq!(f.message, Some(&b"relation \"nope\" does not exist"[..]));
        assert_eq!(f.position, Some(15));
        // Cut inside the message.
        let f = error_fields(&body[..30]);
        assert_eq!(f.code, Some(&b"42P01"[..]));
        assert_eq!(f.message, Some(&b"relation"[..]));
        assert_eq!(tag_rows(b"INSERT 0 5"), Some(5));
        assert_eq!(tag_rows(b"SELECT 3"), Some(3));
        assert_eq!(tag_rows(b"UPDATE 2"), Some(2));
        assert_eq!(tag_rows(b"DELETE 1"), Some(1));
        assert_eq!(tag_rows(b"COPY 10"), Some(10));
        assert_eq!(tag_rows(b"BEGIN"), None);
        assert_eq!(tag_rows(b"COMMIT"), None);
        assert_eq!(tag_rows(b"CREATE TABLE"), None);
        assert_eq!(tag_command(b"INSERT 0 5").as_deref(), Some("INSERT"));
    }

    #[test]
    fn headers() {
        use Dir::*;
        assert!(header_ok(Backend, b'Z', 5, true));
        assert!(!header_ok(Backend, b'Z', 6, true));
        assert!(header_ok(Frontend, b'S', 4, true));
        assert!(!header_ok(Frontend, b'S', 5, false));
        assert!(!header_ok(Backend, b'x', 10, true));
        assert!(header_ok(Backend, b'x', 10, false));
        assert!(!header_ok(Backend, 0x17, 10, false));
        assert!(!header_ok(Backend, b'D', 3, false));
        assert!(!header_ok(Backend, b'D', MAX_LEN + 1, false));
        assert_eq!(untyped_header(8, SSL_REQUEST), Some(Untyped::Ssl));
        assert_eq!(untyped_header(9, SSL_REQUEST), None);
        assert_eq!(untyped_header(40, 196_608), Some(Untyped::Startup));
        assert_eq!(untyped_header(40, 0x0002_0000), None);
        assert_eq!(untyped_header(16, CANCEL_REQUEST), Some(Untyped::Cancel));
    }

    #[test]
    fn structure_checks() {
        use Dir::*;
        use Plausible::*;
        let row = b"\0\x02\0\0\0\x01a\xff\xff\xff\xff";
        assert_eq!(body_plausible(Backend, b'D', row, row.len()), Verified);
        assert_eq!(body_plausible(Backend, b'D', &row[..5], row.len()), Partial);
        assert_eq!(body_plausible(Backend, b'D', row, row.len() + 1), Invalid);
        assert_eq!(body_plausible(Backend, b'C', b"SELECT 1\0", 9), Verified);
        assert_eq!(body_plausible(Backend, b'C', b"SELECT\n1\0", 9), Invalid);
        assert_eq!(body_plausible(Backend, b'C', b"SELECT 1\0x", 10), Invalid);
        assert_eq!(body_plausible(Backend, b'Z', b"I", 1), Verified);
        assert_eq!(body_plausible(Backend, b'Z', b"X", 1), Invalid);
        assert_eq!(body_plausible(Backend, b'1', b"", 0), Weak);
        assert_eq!(body_plausible(Backend, b'd', b"abc", 3), Weak);
        let e = b"SERROR\0C23505\0Mdup\0\0";
        assert_eq!(body_plausible(Backend, b'E', e, e.len()), Verified);
        assert_eq!(body_plausible(Backend, b'E', b"1x\0\0", 4), Invalid);
        let t = b"\0\x01abalance\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
        assert_eq!(body_plausible(Backend, b'T', t, t.len()), Verified);
        assert_eq!(body_plausible(Frontend, b'Q', b"select 1\0", 9), Verified);
        assert_eq!(body_plausible(Frontend, b'Q', b"sel\0ect\0", 8), Invalid);
        assert_eq!(body_plausible(Frontend, b'E', b"\0\0\0\0\0", 5), Verified);
        let p = b"s1\0select $1\0\0\x01\0\0\0\x17";
        assert_eq!(body_plausible(Frontend, b'P', p, p.len()), Verified);
        assert_eq!(body_plausible(Frontend, b'P', p, p.len() + 1), Invalid);
        assert_eq!(body_plausible(Frontend, b'P', &p[..6], p.len()), Partial);
    }

    #[test]
    fn structure_checks_of_cut_bodies_read_from_anywhere() {
        use Dir::*;
        use Plausible::*;
        // A notice whose fields end (the NUL) long before its declared length: not a notice,
        // cut or not (a row's bytes read from a length's last byte, 'N' = 78).
        let row_tail = b"\0\x04\x001234\0\0\0<xxxx";
        assert_eq!(body_plausible(Backend, b'N', row_tail, 0x20000), Invalid);
        let n = b"SNOTICE\0Mhi\0\0";
        assert_eq!(body_plausible(Backend, b'N', &n[..5], n.len()), Partial);
        assert_eq!(body_plausible(Backend, b'N', n, n.len()), Verified);
        // NegotiateProtocolVersion: a minor version and a count of option names.
        let v = b"\0\0\0\x02\0\0\0\x01_pq_.x\0";
        assert_eq!(body_plausible(Backend, b'v', v, v.len()), Verified);
        assert_eq!(
            body_plausible(Backend, b'v', b"\0\x04\x001234", 0x20000),
            Invalid
        );
        assert_eq!(
            body_plausible(Backend, b'v', b"\0\0\0\x02\0\0\0\x0d", 20),
            Invalid
        );
        // NotificationResponse: pid, channel, payload.
        assert_eq!(
            body_plausible(Backend, b'A', b"\0\0\0\x07ch\0hi\0", 10),
            Verified
        );
        assert_eq!(
            body_plausible(Backend, b'A', b"\0\0\0\x07ch\0hi\0x", 11),
            Invalid
        );
        // FunctionCallResponse: a length that fills the body, or -1.
        assert_eq!(body_plausible(Backend, b'V', b"\0\0\0\x02ok", 6), Verified);
        assert_eq!(
            body_plausible(Backend, b'V', b"\xff\xff\xff\xff", 4),
            Verified
        );
        assert_eq!(body_plausible(Backend, b'V', b"\0\0\0\x09ok", 6), Invalid);
    }
}
