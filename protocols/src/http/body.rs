//! The chunked transfer coding (RFC 9112 section 7.1), decoded incrementally: any split of the
//! input gives the same result, and chunk data is skipped without being looked at.

/// Longest chunk-size line accepted, extensions included (RFC 9112 section 7.1.1 sets no
/// limit; servers commonly cap it near this).
pub(crate) const MAX_CHUNK_LINE: u32 = 4096;
/// Most trailer bytes accepted after the last chunk (RFC 9112 section 7.1.2).
pub(crate) const MAX_TRAILERS: u32 = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// chunk-size: hex digits.
    Size,
    /// After the digits: optional whitespace and chunk extensions up to the line end.
    Ext,
    /// Chunk data, `left` bytes to go.
    Data,
    /// The CRLF that ends chunk data (CR seen when `cr`).
    DataEnd,
    /// Trailer field lines after the last chunk, ended by an empty line.
    Trailer,
}

/// Result of feeding bytes to a [`Chunked`] decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Feed {
    /// All bytes consumed, the body goes on.
    More,
    /// The body ended after this many bytes.
    Done(usize),
    /// The byte at this offset breaks the coding.
    Invalid(usize),
}

/// Decoder state of a chunked body (RFC 9112 section 7.1).
#[derive(Clone, Debug)]
pub(crate) struct Chunked {
    phase: Phase,
    /// chunk-size being read, then data bytes left in the chunk.
    left: u64,
    /// Digits of the chunk-size read so far.
    digits: u32,
    /// Bytes of the current chunk-size line or trailer line.
    line: u32,
    /// Trailer bytes so far.
    trailer: u32,
    cr: bool,
    /// Sum of the chunk sizes so far: the decoded body length.
    total: u64,
}

impl Chunked {
    pub(crate) fn new() -> Chunked {
        Chunked {
            phase: Phase::Size,
            left: 0,
            digits: 0,
            line: 0,
            trailer: 0,
            cr: false,
            total: 0,
        }
    }

    /// Decoded body length so far (sum of chunk sizes, RFC 9112 section 7.1.3).
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Feed the next bytes of the body.
    pub(crate) fn feed(&mut self, buf: &[u8]) -> Feed {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            match self.phase {
                Phase::Data => {
                    let n = self.left.min((buf.len() - i) as u64);
                    self.left -= n;
                    i += n as usize;
                    if self.left == 0 {
                        self.phase = Phase::DataEnd;
                        self.cr = false;
                    }
                    continue;
                }
                Phase::Size => match hex_value(b) {
                    // 16 hex digits fill a u64; more would overflow.
                    Some(v) if self.digits < 16 => {
                        self.left = self.left << 4 | u64::from(v);
                        self.digits += 1;
                        self.line += 1;
                    }
                    Some(_) => return Feed::Invalid(i),
                    None if self.digits == 0 => return Feed::Invalid(i),
                    None => {
                        self.phase = Phase::Ext;
                        continue;
                    }
                },
                Phase::Ext => match b {
                    b'\n' => self.end_size_line(),
                    b'\r' => {}
                    b'\t' | b' '..=b'~' | 0x80.. if self.line < MAX_CHUNK_LINE => self.line += 1,
                    _ => return Feed::Invalid(i),
                },
                Phase::DataEnd => match b {
                    b'\r' if !self.cr => self.cr = true,
                    b'\n' => self.next_size_line(),
                    _ => return Feed::Invalid(i),
                },
                Phase::Trailer => match b {
                    b'\n' if self.line == 0 => return Feed::Done(i + 1),
                    b'\n' => self.line = 0,
                    b'\r' => {}
                    _ if self.trailer < MAX_TRAILERS => {
                        self.line += 1;
                        self.trailer += 1;
                    }
                    _ => return Feed::Invalid(i),
                },
            }
            i += 1;
        }
        Feed::More
    }

    /// Chunk data and its CRLF are over: a chunk-size line comes next.
    fn next_size_line(&mut self) {
        self.phase = Phase::Size;
        self.left = 0;
        self.digits = 0;
        self.line = 0;
    }

    fn end_size_line(&mut self) {
        self.line = 0;
        if self.left == 0 {
            self.phase = Phase::Trailer;
        } else {
            self.total = self.total.saturating_add(self.left);
            self.phase = Phase::Data;
        }
    }

    /// `missing` bytes of the body were not captured. Chunk data absorbs them, and so does the
    /// CRLF that ends it (a sender writing each chunk in one call, longer than the capture,
    /// leaves a gap that ends there); returns how many fell past that, in a chunk-size or
    /// trailer line, where the framing is lost.
    ///
    /// The CRLF is taken as two bytes: a sender ending data with a bare LF (which `feed`
    /// accepts) would put the next size line one byte off, and its first byte then breaks the
    /// coding, a loss counted like any other.
    pub(crate) fn gap(&mut self, mut missing: u64) -> u64 {
        if self.phase == Phase::Data {
            let n = self.left.min(missing);
            self.left -= n;
            missing -= n;
            if self.left == 0 {
                self.phase = Phase::DataEnd;
                self.cr = false;
            }
        }
        if self.phase == Phase::DataEnd && missing > 0 {
            let end = if self.cr { 1 } else { 2 };
            if missing >= end {
                missing -= end;
                self.next_size_line();
            } else {
                self.cr = true;
                missing = 0;
            }
        }
        missing
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &[u8]) -> (Feed, u64) {
        let mut c = Chunked::new();
        let f = c.feed(body);
        (f, c.total())
    }

    #[test]
    fn decodes_sizes_extensions_and_trailers() {
        let body = b"5;name=v\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n";
        assert_eq!(decode(body), (Feed::Done(body.len()), 15));
        assert_eq!(decode(b"0\r\n\r\nGET"), (Feed::Done(5), 0));
        assert_eq!(decode(b"3\nabc\n0\n\n"), (Feed::Done(9), 3));
    }

    #[test]
    fn byte_by_byte_matches_whole() {
        let body = b"5;name=v\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n";
        let mut c = Chunked::new();
        for (i, b) in body.iter().enumerate() {
            let f = c.feed(std::slice::from_ref(b));
            let expect = if i + 1 == body.len() {
                Feed::Done(1)
            } else {
                Feed::More
            };
            assert_eq!(f, expect, "byte {i}");
        }
        assert_eq!(c.total(), 15);
    }

    #[test]
    fn rejects_broken_coding() {
        assert_eq!(decode(b"x\r\n").0, Feed::Invalid(0));
        assert_eq!(decode(b"3\r\nabcX").0, Feed::Invalid(6));
        assert_eq!(decode(b"11111111111111111\r\n").0, Feed::Invalid(16));
        assert_eq!(decode(b"1;\x00").0, Feed::Invalid(2));
    }

    #[test]
    fn gaps_inside_data_are_absorbed() {
        let mut c = Chunked::new();
        assert_eq!(c.feed(b"10\r\nabc"), Feed::More);
        assert_eq!(c.gap(13), 0);
        assert_eq!(c.feed(b"\r\n0\r\n\r\n"), Feed::Done(7));
        assert_eq!(c.total(), 16);
        let mut c = Chunked::new();
        assert_eq!(c.feed(b"4\r\nab"), Feed::More);
        assert_eq!(c.gap(5), 1);
    }

    #[test]
    fn gaps_take_the_crlf_after_data() {
        // Data and its CRLF in the gap: the next size line is read in place.
        let mut c = Chunked::new();
        assert_eq!(c.feed(b"4\r\nab"), Feed::More);
        assert_eq!(c.gap(4), 0);
        assert_eq!(c.feed(b"0\r\n\r\n"), Feed::Done(5));
        // The CR captured, the LF in the gap; or the CR in one gap and the LF in the next.
        let mut c = Chunked::new();
        assert_eq!(c.feed(b"2\r\nab\r"), Feed::More);
        assert_eq!(c.gap(1), 0);
        assert_eq!(c.feed(b"0\r\n\r\n"), Feed::Done(5));
        let mut c = Chunked::new();
        assert_eq!(c.feed(b"2\r\na"), Feed::More);
        assert_eq!(c.gap(2), 0);
        assert_eq!(c.gap(1), 0);
        assert_eq!(c.feed(b"1\r\nz\r\n0\r\n\r\n"), Feed::Done(11));
        assert_eq!(c.total(), 3);
        // Past the CRLF: the bytes in the next size line are lost.
        let mut c = Chunked::new();
        assert_eq!(c.feed(b"2\r\na"), Feed::More);
        assert_eq!(c.gap(6), 3);
    }
}
