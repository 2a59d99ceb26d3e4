//! The values of a message: one method per kind of line (a command's header, argument or
//! inline line; a reply's header of each RESP type), blob payloads, and the end of values,
//! aggregates and messages.

use std::mem;

use super::{Cap, Dir, Framer, Open, State, MAX_DEPTH, MAX_TEXT};
use crate::redis::resp::{self, Header, MAX_ARGS, MAX_BLOB};
use crate::redis::stitch::Stitcher;
use crate::Exchange;

impl Framer {
    /// A line of a command: its multibulk header, an argument's `$len`, or an inline command
    /// (Redis `processMultibulkBuffer` and `processInlineBuffer`).
    pub(super) fn request_line(
        &mut self,
        c: &[u8],
        ts: u64,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) {
        if !self.stack.is_empty() {
            return match c {
                [b'$', n @ ..] => match resp::parse_int(n) {
                    Some(len) if (0..=MAX_BLOB as i64).contains(&len) => {
                        self.begin_blob(b'$', len as u64)
                    }
                    _ => self.invalid(true, ts, st, out),
                },
                _ => self.invalid(true, ts, st, out),
            };
        }
        if let [b'*', n @ ..] = c {
            match resp::parse_int(n) {
                // An empty multibulk: Redis skips it without a reply.
                Some(n) if n <= 0 => self.skip_message(),
                Some(n) if n as u64 <= MAX_ARGS => {
                    self.msg.kind = b'*';
                    self.msg.count = n as u64;
                    self.stack.push(Open {
                        len: n as u64,
                        done: 0,
                        streamed: false,
                        attribute: false,
                    });
                }
                _ => self.invalid(true, ts, st, out),
            }
            return;
        }
        let elems = &mut self.msg.elems;
        let argc = resp::split_inline(c, |i, b| {
            if let Some(e) = elems.get_mut(i) {
                e.len += 1;
                e.push(&[b]);
            }
        });
        match argc {
            None => self.invalid(true, ts, st, out),
            // A blank line: Redis skips it without a reply.
            Some(0) => self.skip_message(),
            Some(argc) => {
                for e in self.msg.elems.iter_mut().take(argc) {
                    e.kind = b'$';
                    e.done = true;
                }
                self.msg.kind = b'*';
                self.msg.inline = true;
                self.msg.count = argc as u64;
                self.finish(ts, st, out);
            }
        }
    }

    /// A header line of a reply (protocol spec, one arm per type).
    pub(super) fn reply_line(
        &mut self,
        c: &[u8],
        ts: u64,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) {
        let Some(h) = resp::header(c) else {
            return self.invalid(true, ts, st, out);
        };
        if self.streamed_blob {
            return match h {
                Header::Chunk(0) => {
                    self.streamed_blob = false;
                    if let Cap::Elem(i) = self.cap {
                        self.msg.elems[i].done = true;
                    }
                    self.value_done(false, ts, st, out);
                }
                Header::Chunk(n) => self.state = State::Body { left: n },
                _ => self.invalid(true, ts, st, out),
            };
        }
        match h {
            Header::Chunk(_) => self.invalid(true, ts, st, out),
            Header::End => match self.stack.last() {
                Some(o) if o.streamed => {
                    let attribute = o.attribute;
                    self.stack.pop();
                    self.value_done(attribute, ts, st, out);
                }
                _ => self.invalid(true, ts, st, out),
            },
            Header::Line { kind, text } => {
                if let Some(i) = self.value_start(kind) {
                    let e = &mut self.msg.elems[i];
                    e.push(text);
                    e.len = text.len() as u64;
                    e.done = true;
                } else if self.stack.is_empty() && kind == b'-' {
                    self.text(text);
                }
                self.value_done(false, ts, st, out);
            }
            Header::Integer(v) => {
                if let Some(i) = self.value_start(b':') {
                    self.msg.elems[i].int = v;
                    self.msg.elems[i].done = true;
                }
                self.value_done(false, ts, st, out);
            }
            Header::Null { kind } => {
                if let Some(i) = self.value_start(kind) {
                    self.msg.elems[i].done = true;
                }
                self.value_done(false, ts, st, out);
            }
            Header::Blob { kind, len } => self.begin_blob(kind, len),
            Header::StreamedBlob => {
                self.cap = match self.value_start(b'$') {
                    Some(i) => Cap::Elem(i),
                    None => Cap::None,
                };
                self.streamed_blob = true;
            }
            Header::Aggregate { kind, count, len } => {
                if self.stack.len() >= MAX_DEPTH {
                    return self.invalid(true, ts, st, out);
                }
                if let Some(i) = self.value_start(kind) {
                    self.msg.elems[i].len = count;
                    self.msg.elems[i].done = len == 0;
                }
                if self.stack.is_empty() && kind != b'|' {
                    self.msg.count = count;
                }
                if len == 0 {
                    self.value_done(kind == b'|', ts, st, out);
                } else {
                    self.stack.push(Open {
                        len,
                        done: 0,
                        streamed: false,
                        attribute: kind == b'|',
                    });
                }
            }
            Header::StreamedAggregate { kind } => {
                if self.stack.len() >= MAX_DEPTH {
                    return self.invalid(true, ts, st, out);
                }
                self.value_start(kind);
                self.stack.push(Open {
                    len: 0,
                    done: 0,
                    streamed: true,
                    attribute: kind == b'|',
                });
            }
        }
    }

    /// A value of type `kind` begins: it is the message's own value at the top level (unless
    /// an attribute), and one of the first elements kept one level down.
    pub(super) fn value_start(&mut self, kind: u8) -> Option<usize> {
        match self.stack.as_slice() {
            [] => {
                if kind != b'|' {
                    self.msg.kind = kind;
                }
                None
            }
            [top] if !top.attribute && kind != b'|' && top.done < 3 => {
                let i = top.done as usize;
                self.msg.elems[i].reset(kind);
                Some(i)
            }
            _ => None,
        }
    }

    pub(super) fn begin_blob(&mut self, kind: u8, len: u64) {
        let top = self.stack.is_empty();
        self.cap = match self.value_start(kind) {
            Some(i) => {
                self.msg.elems[i].len = len;
                Cap::Elem(i)
            }
            None if top && kind == b'!' => Cap::Text,
            None => Cap::None,
        };
        self.state = if len == 0 {
            State::Crlf { seen: 0 }
        } else {
            State::Body { left: len }
        };
    }

    pub(super) fn payload(&mut self, bytes: &[u8]) {
        match self.cap {
            Cap::Elem(i) => self.msg.elems[i].push(bytes),
            Cap::Text => self.text(bytes),
            Cap::None => {}
        }
    }

    pub(super) fn text(&mut self, bytes: &[u8]) {
        let room = MAX_TEXT.saturating_sub(self.msg.text.len());
        self.msg
            .text
            .extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    /// A blob's payload and CRLF were read.
    pub(super) fn blob_done(&mut self, ts: u64, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        self.state = State::Line;
        if self.streamed_blob {
            return;
        }
        if let Cap::Elem(i) = self.cap {
            self.msg.elems[i].done = true;
        }
        self.cap = Cap::None;
        self.value_done(false, ts, st, out);
    }

    /// A value ended (its last byte seen at `ts`): it counts in the aggregate holding it, and
    /// the aggregates it fills end too. An attribute is not a value of its own.
    pub(super) fn value_done(
        &mut self,
        attribute: bool,
        ts: u64,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) {
        if attribute {
            return;
        }
        loop {
            let Some(top) = self.stack.last_mut() else {
                return self.finish(ts, st, out);
            };
            top.done += 1;
            if top.streamed || top.done < top.len {
                return;
            }
            let attribute = top.attribute;
            self.stack.pop();
            if attribute {
                return;
            }
        }
    }

    /// The message is whole.
    pub(super) fn finish(&mut self, ts: u64, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        self.msg.last_ts = ts;
        self.deliver(st, out);
        self.started = false;
        self.tentative = false;
    }

    pub(super) fn deliver(&mut self, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        match self.dir {
            Dir::Requests => st.request(&self.msg, out),
            Dir::Responses => st.response(&self.msg, out),
        }
    }

    /// A message with nothing to report (an empty multibulk, a blank inline line).
    pub(super) fn skip_message(&mut self) {
        self.started = false;
        self.tentative = false;
    }

    /// Report what is known of a message that ends early (its last byte seen at `ts`): a
    /// command whose name was read, a reply whose type was read.
    pub(super) fn partial(&mut self, ts: u64, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        self.msg.truncated = true;
        self.msg.last_ts = ts;
        let known = match self.dir {
            Dir::Requests => self.msg.kind == b'*' && self.msg.elems[0].known(),
            Dir::Responses => self.msg.kind != 0,
        };
        if self.started && known {
            self.deliver(st, out);
        }
    }

    /// What a held partial line tells of a message whose end was lost: a reply's type, and
    /// an error's first words.
    pub(super) fn cut_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        if !self.started {
            self.begin(self.held_ts);
        }
        if self.dir == Dir::Responses && self.stack.is_empty() && self.msg.kind == 0 {
            let held = mem::take(&mut self.held);
            if b"+-:$*_,#!=(%~>".contains(&held[0]) {
                self.msg.kind = held[0];
                if held[0] == b'-' {
                    self.text(held[1..].strip_suffix(b"\r").unwrap_or(&held[1..]));
                }
            }
            self.held = held;
        }
        self.held.clear();
    }
}
