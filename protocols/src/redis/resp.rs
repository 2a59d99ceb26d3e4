//! RESP building blocks: the header line of every RESP2/RESP3 type, and inline commands.
//!
//! References: the Redis serialization protocol specification
//! (<https://redis.io/docs/latest/develop/reference/protocol-spec/>, "RESP protocol
//! description" and its per-type sections; the RESP3 types are specified in
//! <https://github.com/redis/redis-specifications/blob/master/protocol/RESP3.md>), and
//! Redis's own request reader (`processMultibulkBuffer`, `processInlineBuffer` and
//! `sdssplitargs` in the Redis sources) for what a server accepts from a client.

/// Largest number of arguments of a multibulk request (Redis refuses more than `INT_MAX`).
pub(crate) const MAX_ARGS: u64 = i32::MAX as u64;
/// Largest blob length accepted (Redis's `proto-max-bulk-len` is 512 MiB by default and can
/// be raised; anything beyond 1 TiB is taken for garbage).
pub(crate) const MAX_BLOB: u64 = 1 << 40;
/// Largest aggregate length accepted in a response.
pub(crate) const MAX_AGGREGATE: u64 = 1 << 40;
/// Bytes kept of an argument or of an element that classification looks at.
pub(crate) const ELEM_CAP: usize = 64;

/// The header line of a RESP value, type byte included, CRLF excluded (protocol spec,
/// "RESP protocol description": the first byte of every value is its type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header<'a> {
    /// A value complete on its line: simple string `+`, simple error `-`, double `,`, big
    /// number `(`, boolean `#` (spec: "Simple strings", "Simple errors", "Doubles", "Big
    /// numbers", "Booleans"). `text` is what follows the type byte.
    Line { kind: u8, text: &'a [u8] },
    /// Integer `:` (spec: "Integers").
    Integer(i64),
    /// Null: `_` (RESP3 "Nulls"), or a RESP2 null bulk string `$-1` / null array `*-1`
    /// (spec: "Null bulk strings", "Null arrays"); `kind` is the type byte.
    Null { kind: u8 },
    /// A blob of `len` bytes followed by CRLF: bulk string `$`, bulk error `!`, verbatim
    /// string `=` (spec: "Bulk strings", "Bulk errors", "Verbatim strings").
    Blob { kind: u8, len: u64 },
    /// `$?`: a streamed string, sent as `;len` chunks up to `;0` (RESP3.md "Streamed strings").
    StreamedBlob,
    /// An aggregate of `len` values: array `*`, set `~`, push `>`, and map `%` and attribute
    /// `|`, whose `len` pairs are `2 * len` values (spec: "Arrays", "Maps", "Attributes",
    /// "Sets", "Pushes"). `count` is the declared length.
    Aggregate { kind: u8, count: u64, len: u64 },
    /// `*?`, `%?`, `~?`, `>?`, `|?`: an aggregate of unknown length ended by `.` (RESP3.md
    /// "Streamed aggregated data types").
    StreamedAggregate { kind: u8 },
    /// `.`: the end of a streamed aggregate.
    End,
    /// `;len`: one chunk of a streamed string.
    Chunk(u64),
}

/// Parses a header line (without its CRLF). `None`: not a valid RESP header; unknown type
/// bytes are invalid because their framing cannot be known.
pub(crate) fn header(line: &[u8]) -> Option<Header<'_>> {
    let (&kind, rest) = line.split_first()?;
    Some(match kind {
        b'+' | b'-' => Header::Line { kind, text: rest },
        b',' if is_double(rest) => Header::Line { kind, text: rest },
        b'(' if is_big_number(rest) => Header::Line { kind, text: rest },
        b'#' if rest == b"t" || rest == b"f" => Header::Line { kind, text: rest },
        b':' => Header::Integer(parse_int(rest)?),
        b'_' if rest.is_empty() => Header::Null { kind },
        b'$' if rest == b"?" => Header::StreamedBlob,
        b'$' | b'!' | b'=' => match parse_int(rest)? {
            -1 if kind == b'$' => Header::Null { kind },
            n if (0..=MAX_BLOB as i64).contains(&n) => Header::Blob {
                kind,
                len: n as u64,
            },
            _ => return None,
        },
        b'*' | b'%' | b'~' | b'>' | b'|' if rest == b"?" => Header::StreamedAggregate { kind },
        b'*' | b'%' | b'~' | b'>' | b'|' => match parse_int(rest)? {
            -1 if kind == b'*' => Header::Null { kind },
            n if (0..=MAX_AGGREGATE as i64).contains(&n) => {
                let count = n as u64;
                let len = if matches!(kind, b'%' | b'|') {
                    count * 2
                } else {
                    count
                };
                Header::Aggregate { kind, count, len }
            }
            _ => return None,
        },
        b'.' if rest.is_empty() => Header::End,
        b';' => match parse_int(rest)? {
            n if (0..=MAX_BLOB as i64).contains(&n) => Header::Chunk(n as u64),
            _ => return None,
        },
        _ => return None,
    })
}

/// A signed decimal integer as RESP writes it (spec: "Integers": an optional sign, then
/// digits), within `i64`.
pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', d @ ..] => (true, d),
        [b'+', d @ ..] => (false, d),
        d => (false, d),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

/// RESP3 "Big numbers": an optional sign and any number of digits.
fn is_big_number(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"-").or(s.strip_prefix(b"+")).unwrap_or(s);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// RESP3 "Doubles": `[sign]digits[.digits][e[sign]digits]`, or `inf`, `-inf`, `nan`.
fn is_double(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|b| b.is_ascii_digit() || b"+-.eEinfa".contains(b))
}

/// Whether a line that follows a capture gap or invalid bytes plausibly starts a message, so
/// that parsing can resume there.
///
/// Requests: a multibulk header `*N` with `N >= 1` (what every client library sends); at the
/// very start of a stream (`fresh`) also an inline command whose first word is a known
/// command name. Inline lines are not accepted after a gap: any text line of a value would
/// pass. Responses: any valid header, simple strings and errors being printable text and an
/// error starting with its upper-case code (`-ERR`, `-WRONGTYPE`).
pub(crate) fn plausible_start(requests: bool, line: &[u8], fresh: bool) -> bool {
    if requests {
        if let [b'*', n @ ..] = line {
            return parse_int(n).is_some_and(|n| n >= 1 && n as u64 <= MAX_ARGS);
        }
        return fresh && looks_inline(line);
    }
    match header(line) {
        Some(Header::Line { kind: b'+', text }) => printable(text),
        Some(Header::Line { kind: b'-', text }) => {
            text.first().is_some_and(u8::is_ascii_uppercase) && printable(text)
        }
        Some(Header::End | Header::Chunk(_)) | None => false,
        Some(_) => true,
    }
}

fn printable(s: &[u8]) -> bool {
    s.iter().all(|&b| b >= 0x20 && b != 0x7f)
}

/// An inline command as a person or a simple tool types it: a known command name, then
/// printable text.
fn looks_inline(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let word_len = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    super::names::known(&line[..word_len]).is_some()
        && line.iter().all(|&b| b >= 0x20 || b == b'\t')
}

/// Splits an inline command line (`\r` already removed) as Redis's `sdssplitargs` does:
/// blanks separate arguments; `"..."` quotes with `\n`, `\r`, `\t`, `\b`, `\a`, `\\`, `\"`
/// and `\xHH` escapes, `'...'` quotes with `\'`; a closing quote must be followed by a blank
/// or the end of the line. `arg(i, byte)` receives the decoded bytes of each argument.
/// Returns the number of arguments, or `None` for unbalanced quotes (Redis answers
/// "Protocol error: unbalanced quotes in request" and closes the connection).
pub(crate) fn split_inline(line: &[u8], mut arg: impl FnMut(usize, u8)) -> Option<usize> {
    // `sdssplitargs` reads a C string: a NUL byte ends the line.
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let mut argc = 0;
    let mut p = 0;
    let n = line.len();
    loop {
        while p < n && is_blank(line[p]) {
            p += 1;
        }
        if p >= n {
            return Some(argc);
        }
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                match line.get(p) {
                    None => return None,
                    Some(b'\\')
                        if p + 3 < n
                            && line[p + 1] == b'x'
                            && line[p + 2].is_ascii_hexdigit()
                            && line[p + 3].is_ascii_hexdigit() =>
                    {
                        arg(argc, hex(line[p + 2]) * 16 + hex(line[p + 3]));
                        p += 3;
                    }
                    Some(b'\\') if p + 1 < n => {
                        p += 1;
                        arg(
                            argc,
                            match line[p] {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 8,
                                b'a' => 7,
                                c => c,
                            },
                        );
                    }
                    Some(b'"') => {
                        if line.get(p + 1).is_some_and(|&c| !is_blank(c)) {
                            return None;
                        }
                        p += 1;
                        break;
                    }
                    Some(&c) => arg(argc, c),
                }
            } else if insq {
                match line.get(p) {
                    None => return None,
                    Some(b'\\') if line.get(p + 1) == Some(&b'\'') => {
                        arg(argc, b'\'');
                        p += 1;
                    }
                    Some(b'\'') => {
                        if line.get(p + 1).is_some_and(|&c| !is_blank(c)) {
                            return None;
                        }
                        p += 1;
                        break;
                    }
                    Some(&c) => arg(argc, c),
                }
            } else {
                match line.get(p) {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t') => break,
                    Some(b'"') => inq = true,
                    Some(b'\'') => insq = true,
                    Some(&c) => arg(argc, c),
                }
            }
            p += 1;
        }
        argc += 1;
    }
}

/// `isspace` in the C locale, which `sdssplitargs` skips between arguments.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Option<Vec<String>> {
        let mut args: Vec<Vec<u8>> = Vec::new();
        let n = split_inline(line.as_bytes(), |i, b| {
            if args.len() <= i {
                args.resize(i + 1, Vec::new());
            }
            args[i].push(b);
        })?;
        args.resize(n, Vec::new());
        Some(
            args.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect(),
        )
    }

    #[test]
    fn headers_of_every_type() {
        use Header::*;
        assert_eq!(
            header(b"+OK"),
            Some(Line {
                kind: b'+',
                text: b"OK"
            })
        );
        assert_eq!(
            header(b"-ERR x"),
            Some(Line {
                kind: b'-',
                text: b"ERR x"
            })
        );
        assert_eq!(header(b":-42"), Some(Integer(-42)));
        assert_eq!(header(b":+7"), Some(Integer(7)));
        assert_eq!(header(b"$5"), Some(Blob { kind: b'$', len: 5 }));
        assert_eq!(header(b"$-1"), Some(Null { kind: b'$' }));
        assert_eq!(header(b"*-1"), Some(Null { kind: b'*' }));
        assert_eq!(header(b"_"), Some(Null { kind: b'_' }));
        assert_eq!(
            header(b"#t"),
            Some(Line {
                kind: b'#',
                text: b"t"
            })
        );
        assert_eq!(
            header(b",-1.5e10"),
            Some(Line {
                kind: b',',
                text: b"-1.5e10"
            })
        );
        assert_eq!(
            header(b",inf"),
            Some(Line {
                kind: b',',
                text: b"inf"
            })
        );
        assert_eq!(
            header(b"(3492890328409238509324850943850943825024385"),
            Some(Line {
                kind: b'(',
                text: b"3492890328409238509324850943850943825024385"
            })
        );
        assert_eq!(
            header(b"!21"),
            Some(Blob {
                kind: b'!',
                len: 21
            })
        );
        assert_eq!(
            header(b"=15"),
            Some(Blob {
                kind: b'=',
                len: 15
            })
        );
        assert_eq!(
            header(b"%2"),
            Some(Aggregate {
                kind: b'%',
                count: 2,
                len: 4
            })
        );
        assert_eq!(
            header(b"|1"),
            Some(Aggregate {
                kind: b'|',
                count: 1,
                len: 2
            })
        );
        assert_eq!(
            header(b"~3"),
            Some(Aggregate {
                kind: b'~',
                count: 3,
                len: 3
            })
        );
        assert_eq!(
            header(b">3"),
            Some(Aggregate {
                kind: b'>',
                count: 3,
                len: 3
            })
        );
        assert_eq!(
            header(b"*0"),
            Some(Aggregate {
                kind: b'*',
                count: 0,
                len: 0
            })
        );
        assert_eq!(header(b"$?"), Some(StreamedBlob));
        assert_eq!(header(b"*?"), Some(StreamedAggregate { kind: b'*' }));
        assert_eq!(header(b"."), Some(End));
        assert_eq!(header(b";4"), Some(Chunk(4)));
        for bad in [
            &b""[..],
            b"?",
            b":",
            b":1x",
            b"$-2",
            b"!-1",
            b"*-2",
            b"#x",
            b"_x",
            b",",
            b"(",
            b"(1a",
            b"$99999999999999999999",
            b"@1",
        ] {
            assert_eq!(header(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn integers_stay_in_range() {
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b"-9223372036854775807"), Some(-i64::MAX));
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b"1 "), None);
    }

    #[test]
    fn inline_commands_split_like_redis() {
        let v = |a: &[&str]| Some(a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(split("PING"), v(&["PING"]));
        assert_eq!(split("  set  k   v "), v(&["set", "k", "v"]));
        assert_eq!(split("SET k \"a b\\x41\\n\""), v(&["SET", "k", "a bA\n"]));
        assert_eq!(split("SET k 'it\\'s'"), v(&["SET", "k", "it's"]));
        assert_eq!(split("SET k \"\""), v(&["SET", "k", ""]));
        assert_eq!(split(""), v(&[]));
        assert_eq!(split(" \t "), v(&[]));
        assert_eq!(split("SET k \"open"), None);
        assert_eq!(split("SET k 'open"), None);
        assert_eq!(split("SET k \"a\"b"), None);
        assert_eq!(split("SET k v\0w x"), v(&["SET", "k", "v"]));
    }

    #[test]
    fn plausible_starts() {
        assert!(plausible_start(true, b"*3", false));
        assert!(!plausible_start(true, b"*0", false));
        assert!(!plausible_start(true, b"PING", false));
        assert!(plausible_start(true, b"PING", true));
        assert!(plausible_start(true, b"set k v\r", true));
        assert!(!plausible_start(true, b"\x01\x02", true));
        assert!(plausible_start(false, b"+OK", false));
        assert!(plausible_start(false, b"-WRONGTYPE Operation", false));
        assert!(!plausible_start(false, b"-err", false));
        assert!(!plausible_start(false, b"+a\x01", false));
        assert!(plausible_start(false, b"$-1", false));
        assert!(plausible_start(false, b"%2", false));
        assert!(!plausible_start(false, b".", false));
        assert!(!plausible_start(false, b"hello", false));
    }
}
