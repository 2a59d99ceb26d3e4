//! What the framer keeps of a message: its type, length, first elements and error text.

use super::resp::ELEM_CAP;

/// One of the first elements of a message: its type, and its first bytes or its value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Elem {
    /// Type byte; 0: absent.
    pub(crate) kind: u8,
    /// Declared length of a blob or aggregate.
    pub(crate) len: u64,
    /// Value of an integer.
    pub(crate) int: i64,
    /// Read to its end.
    pub(crate) done: bool,
    /// Some of its bytes were not captured.
    pub(crate) gap: bool,
    n: u8,
    buf: [u8; ELEM_CAP],
}

impl Elem {
    pub(super) const EMPTY: Elem = Elem {
        kind: 0,
        len: 0,
        int: 0,
        done: false,
        gap: false,
        n: 0,
        buf: [0; ELEM_CAP],
    };

    /// Makes it a new element of type `kind` (0: absent), its bytes left where they are:
    /// only the first `n` count, and rewriting the whole buffer took a `memset` per element.
    pub(super) fn reset(&mut self, kind: u8) {
        self.kind = kind;
        self.len = 0;
        self.int = 0;
        self.done = false;
        self.gap = false;
        self.n = 0;
    }

    /// Its first bytes (at most [`ELEM_CAP`]).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.n)]
    }

    /// A string element read whole: its bytes are what was sent (up to [`ELEM_CAP`]).
    pub(crate) fn known(&self) -> bool {
        matches!(self.kind, b'$' | b'+') && self.done && !self.gap
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        let at = usize::from(self.n);
        let k = (ELEM_CAP - at).min(bytes.len());
        self.buf[at..at + k].copy_from_slice(&bytes[..k]);
        self.n += k as u8;
    }
}

/// A top-level message: a command, or a reply (after any attributes).
#[derive(Debug)]
pub(crate) struct Message {
    /// Type byte of the top-level value (`*` for every command); 0: not known.
    pub(crate) kind: u8,
    /// A command sent inline rather than as a multibulk.
    pub(crate) inline: bool,
    /// Declared length of a top-level aggregate; a command's arguments plus one.
    pub(crate) count: u64,
    /// The first three elements (of a command: its name and first two arguments).
    pub(crate) elems: [Elem; 3],
    /// The text of a top-level error (`-` line or `!` blob), first [`MAX_TEXT`] bytes.
    pub(crate) text: Vec<u8>,
    /// Capture time of the chunk that held its first byte.
    pub(crate) first_ts: u64,
    /// Capture time of the chunk that held (or missed) its last byte.
    pub(crate) last_ts: u64,
    /// Some of it was not captured, or it was cut short.
    pub(crate) truncated: bool,
}

impl Message {
    pub(super) fn new() -> Message {
        Message {
            kind: 0,
            inline: false,
            count: 0,
            elems: [Elem::EMPTY; 3],
            text: Vec::new(),
            first_ts: 0,
            last_ts: 0,
            truncated: false,
        }
    }
}
