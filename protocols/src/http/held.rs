//! Bytes of one direction kept across chunks (a head or a resynchronisation window that
//! continues in a later chunk), with the capture time of each chunk they came from, so that a
//! message's first and last bytes are timed by the chunks that held them.

/// Capacity kept for reuse when the held bytes are dropped.
const SHRINK_ABOVE: usize = 4096;

/// Bytes kept across chunks; `buf[pos..]` are not consumed yet.
#[derive(Debug, Default)]
pub(crate) struct Held {
    buf: Vec<u8>,
    pos: usize,
    /// `(offset in buf, ts)` where each appended chunk's bytes begin.
    marks: Vec<(usize, u64)>,
}

impl Held {
    /// The bytes not consumed yet.
    pub(crate) fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Capture times of `unread()`; `fallback` where no chunk is recorded.
    pub(crate) fn times(&self, fallback: u64) -> Times<'_> {
        Times {
            marks: &self.marks,
            base: self.pos,
            fixed: fallback,
        }
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    pub(crate) fn clear(&mut self) {
        // A connection rarely holds bytes for long: give a large buffer back.
        if self.buf.capacity() > SHRINK_ABOVE {
            *self = Held::default();
        }
        self.buf.clear();
        self.marks.clear();
        self.pos = 0;
    }

    /// Keep `bytes` (seen at `ts`) after the unread ones.
    pub(crate) fn append(&mut self, bytes: &[u8], ts: u64) {
        // Drop consumed bytes once they are at least half the buffer: amortised linear.
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            let pos = self.pos;
            self.buf.drain(..pos);
            let first = self.marks.partition_point(|m| m.0 <= pos).saturating_sub(1);
            self.marks.drain(..first);
            for m in &mut self.marks {
                m.0 = m.0.saturating_sub(pos);
            }
            self.pos = 0;
        }
        if self.marks.last().is_none_or(|m| m.1 != ts) {
            self.marks.push((self.buf.len(), ts));
        }
        self.buf.extend_from_slice(bytes);
    }
}

/// Capture time of the bytes a parsing step sees: one chunk's, or per chunk held.
pub(crate) struct Times<'a> {
    marks: &'a [(usize, u64)],
    base: usize,
    fixed: u64,
}

impl Times<'_> {
    /// All bytes seen at `ts`.
    pub(crate) fn fixed(ts: u64) -> Times<'static> {
        Times {
            marks: &[],
            base: 0,
            fixed: ts,
        }
    }

    /// Time of byte `i` of the view.
    pub(crate) fn at(&self, i: usize) -> u64 {
        let off = self.base + i;
        match self.marks.partition_point(|m| m.0 <= off) {
            0 => self.fixed,
            n => self.marks[n - 1].1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_follow_chunks_through_compaction() {
        let mut h = Held::default();
        h.append(b"abc", 1);
        h.append(b"de", 2);
        h.append(b"f", 2);
        assert_eq!(h.unread(), b"abcdef");
        let t = h.times(9);
        assert_eq!(
            (0..6).map(|i| t.at(i)).collect::<Vec<_>>(),
            [1, 1, 1, 2, 2, 2]
        );
        h.consume(4);
        h.append(b"g", 3);
        assert_eq!(h.unread(), b"efg");
        let t = h.times(9);
        assert_eq!((0..3).map(|i| t.at(i)).collect::<Vec<_>>(), [2, 2, 3]);
        h.consume(3);
        assert!(h.is_empty());
        assert_eq!(Times::fixed(7).at(100), 7);
    }
}
