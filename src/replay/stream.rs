//! One direction of a TCP connection: sequence numbers to an ordered byte stream with gaps.
//!
//! Sequence numbers are turned into 64-bit stream offsets relative to the next byte to
//! deliver (a signed 32-bit distance, RFC 9293 section 3.4), so wraparound needs no special
//! case. Bytes are delivered once, in order:
//!
//! - a segment that starts at the next offset is delivered at once, followed by any held
//!   segments it makes contiguous;
//! - a segment that starts further on is held ("out of order") until the hole before it fills;
//! - bytes already delivered (retransmissions, overlaps) are dropped and counted;
//! - a hole is given up on, and delivered as a gap (`missing` after the bytes before it), when
//!   (a) the receiver has acknowledged data at or past the end of the hole: it got the bytes,
//!   the capture did not, and the sender will not send them again; (b) the held bytes or
//!   segments exceed [`Limits`]; or (c) the connection closes, is forgotten, or the file ends.
//! - a segment more than 1 GiB (the largest TCP window, RFC 7323) ahead of the stream is not
//!   part of it and is ignored.

use std::collections::BTreeMap;

use super::ReplayStats;

/// Bounds on what one direction holds while waiting for a hole to fill.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_bytes: usize,
    pub max_segments: usize,
}

/// How far ahead of the stream a segment or acknowledgment may be.
const MAX_AHEAD: i64 = 1 << 30;

/// Runs of delivered bytes, each followed by the number of bytes missing after it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Runs(pub Vec<(Vec<u8>, u64)>);

impl Runs {
    fn data(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some((data, 0)) => data.extend_from_slice(bytes),
            _ => self.0.push((bytes.to_vec(), 0)),
        }
    }

    fn gap(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        match self.0.last_mut() {
            Some((_, missing)) => *missing += n,
            None => self.0.push((Vec::new(), n)),
        }
    }
}

/// A segment held until the bytes before it arrive.
struct Held {
    data: Vec<u8>,
    /// Uncaptured bytes after `data` (snap length).
    cut: u64,
}

impl Held {
    fn len(&self) -> u64 {
        self.data.len() as u64 + self.cut
    }
}

#[derive(Default)]
pub(crate) struct Stream {
    /// The sequence number of stream offset 0: ISN + 1 after a SYN, else the first segment's.
    base: Option<u32>,
    /// Offset of the next byte to deliver.
    delivered: u64,
    /// Held segments by start offset (all beyond `delivered`).
    held: BTreeMap<u64, Held>,
    held_bytes: usize,
    /// Offset of the FIN.
    fin_at: Option<u64>,
    /// Highest offset the other side acknowledged.
    acked: u64,
    /// Any packet came from this side.
    pub seen: bool,
}

impl Stream {
    /// Nothing delivered, held or finished yet: a SYN may still (re)define the start.
    pub(crate) fn pristine(&self) -> bool {
        self.delivered == 0 && self.held.is_empty() && self.fin_at.is_none()
    }

    /// Starts the stream at the byte after a SYN.
    pub(crate) fn start_after_syn(&mut self, isn: u32) {
        let seen = self.seen;
        *self = Stream {
            base: Some(isn.wrapping_add(1)),
            seen,
            ..Stream::default()
        };
    }

    pub(crate) fn finished(&self) -> bool {
        self.fin_at.is_some_and(|f| self.delivered >= f)
    }

    /// Bytes held out of order (for tests and bounds).
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The stream offset of `seq`, as a signed distance from the next byte to deliver.
    fn offset(&self, base: u32, seq: u32) -> i64 {
        let next = base.wrapping_add(self.delivered as u32);
        self.delivered as i64 + i64::from(seq.wrapping_sub(next) as i32)
    }

    /// A segment (its payload, or its FIN) from this side.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        cut: u64,
        fin: bool,
        limits: Limits,
        runs: &mut Runs,
        stats: &mut ReplayStats,
    ) {
        let total = payload.len() as u64 + cut;
        if total == 0 && !fin {
            return;
        }
        let base = *self.base.get_or_insert(seq);
        let start = self.offset(base, seq);
        if start > self.delivered as i64 + MAX_AHEAD {
            stats.tcp_ignored_segments += 1;
            return;
        }
        let end = start + total as i64;
        if fin && self.fin_at.is_none() {
            self.fin_at = Some(end.max(self.delivered as i64) as u64);
        }
        // Nothing is delivered past the FIN.
        let (mut payload, mut cut) = (payload, cut);
        let mut end = end;
        if let Some(fin_at) = self.fin_at {
            let fin_at = fin_at as i64;
            if end > fin_at {
                if start >= fin_at {
                    stats.tcp_ignored_segments += 1;
                    return;
                }
                let keep = (fin_at - start) as u64;
                if keep <= payload.len() as u64 {
                    payload = &payload[..keep as usize];
                    cut = 0;
                } else {
                    cut = keep - payload.len() as u64;
                }
                end = fin_at;
            }
        }
        if end <= self.delivered as i64 {
            stats.tcp_retransmitted_bytes += (end - start).max(0) as u64;
            return;
        }
        if start > self.delivered as i64 {
            self.hold(start as u64, payload, cut, limits, runs, stats);
            return;
        }
        // start <= delivered < end; start may be negative (bytes from before the stream start)
        let overlap = (self.delivered as i64 - start) as u64;
        stats.tcp_retransmitted_bytes += overlap;
        let skip = overlap.min(payload.len() as u64) as usize;
        let cut = cut - (overlap - skip as u64);
        runs.data(&payload[skip..]);
        runs.gap(cut);
        self.delivered = end as u64;
        self.drain(runs, stats);
    }

    fn hold(
        &mut self,
        start: u64,
        payload: &[u8],
        cut: u64,
        limits: Limits,
        runs: &mut Runs,
        stats: &mut ReplayStats,
    ) {
        stats.out_of_order_segments += 1;
        let new = Held {
            data: payload.to_vec(),
            cut,
        };
        match self.held.get_mut(&start) {
            Some(old) if old.len() >= new.len() => stats.tcp_retransmitted_bytes += new.len(),
            Some(old) => {
                stats.tcp_retransmitted_bytes += old.len();
                self.held_bytes = self.held_bytes - old.data.len() + new.data.len();
                *old = new;
            }
            None => {
                self.held_bytes += new.data.len();
                self.held.insert(start, new);
            }
        }
        while self.held_bytes > limits.max_bytes || self.held.len() > limits.max_segments {
            stats.tcp_buffer_overflows += 1;
            if !self.skip_hole(runs, stats) {
                break;
            }
        }
    }

    /// Delivers the held segments that have become contiguous.
    fn drain(&mut self, runs: &mut Runs, stats: &mut ReplayStats) {
        while let Some(entry) = self.held.first_entry() {
            let start = *entry.key();
            if start > self.delivered {
                break;
            }
            let seg = entry.remove();
            self.held_bytes -= seg.data.len();
            let end = start + seg.len();
            if end <= self.delivered {
                stats.tcp_retransmitted_bytes += seg.len();
                continue;
            }
            let overlap = self.delivered - start;
            stats.tcp_retransmitted_bytes += overlap;
            let skip = overlap.min(seg.data.len() as u64) as usize;
            runs.data(&seg.data[skip..]);
            runs.gap(seg.cut - (overlap - skip as u64));
            self.delivered = end;
        }
    }

    /// Gives up on the hole before the first held segment (or before the FIN): delivers it as
    /// a gap, then what follows. Returns false when there is no such hole.
    fn skip_hole(&mut self, runs: &mut Runs, stats: &mut ReplayStats) -> bool {
        let next = self.held.keys().next().copied().or(self.fin_at);
        let Some(next) = next.filter(|n| *n > self.delivered) else {
            return false;
        };
        let gap = next - self.delivered;
        stats.tcp_gaps += 1;
        stats.tcp_gap_bytes += gap;
        runs.gap(gap);
        self.delivered = next;
        self.drain(runs, stats);
        true
    }

    /// The other side acknowledged up to `ack`: holes it acknowledged will not be filled.
    pub(crate) fn acked(&mut self, ack: u32, runs: &mut Runs, stats: &mut ReplayStats) {
        let Some(base) = self.base else {
            return;
        };
        let at = self.offset(base, ack);
        if at <= self.acked as i64 || at > self.delivered as i64 + MAX_AHEAD {
            return;
        }
        self.acked = at as u64;
        loop {
            let next = self.held.keys().next().copied().or(self.fin_at);
            match next {
                Some(n) if n > self.delivered && self.acked >= n => {
                    self.skip_hole(runs, stats);
                }
                _ => break,
            }
        }
    }

    /// The connection ends: every hole becomes a gap and everything held is delivered.
    pub(crate) fn flush(&mut self, runs: &mut Runs, stats: &mut ReplayStats) {
        while self.skip_hole(runs, stats) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bytes: 1000,
        max_segments: 10,
    };

    fn feed(s: &mut Stream, seq: u32, data: &[u8], st: &mut ReplayStats) -> Runs {
        let mut runs = Runs::default();
        s.segment(seq, data, 0, false, LIMITS, &mut runs, st);
        runs
    }

    fn run(data: &[u8], missing: u64) -> (Vec<u8>, u64) {
        (data.to_vec(), missing)
    }

    #[test]
    fn wraparound_out_of_order_and_overlap() {
        let mut st = ReplayStats::default();
        let mut s = Stream::default();
        s.start_after_syn(u32::MAX - 3); // data starts at u32::MAX - 2
        assert_eq!(feed(&mut s, 2, b"fgh", &mut st), Runs(vec![]));
        assert_eq!(
            feed(&mut s, u32::MAX - 2, b"abc", &mut st).0,
            vec![run(b"abc", 0)]
        );
        // "cde" overlaps "c", and makes "fgh" contiguous
        assert_eq!(
            feed(&mut s, u32::MAX, b"cde", &mut st).0,
            vec![run(b"defgh", 0)]
        );
        assert_eq!(feed(&mut s, 1, b"ef", &mut st), Runs(vec![]));
        assert_eq!(st.tcp_retransmitted_bytes, 3);
        assert_eq!(st.out_of_order_segments, 1);
    }

    #[test]
    fn acknowledged_hole_becomes_a_gap() {
        let mut st = ReplayStats::default();
        let mut s = Stream::default();
        assert_eq!(feed(&mut s, 100, b"ab", &mut st).0, vec![run(b"ab", 0)]);
        assert_eq!(feed(&mut s, 110, b"xyz", &mut st), Runs(vec![]));
        let mut runs = Runs::default();
        s.acked(105, &mut runs, &mut st); // part of the hole: may still come
        assert_eq!(runs, Runs(vec![]));
        s.acked(113, &mut runs, &mut st);
        assert_eq!(runs.0, vec![run(b"", 8), run(b"xyz", 0)]);
        assert_eq!((st.tcp_gaps, st.tcp_gap_bytes), (1, 8));
    }

    #[test]
    fn overflow_gives_up_on_the_first_hole() {
        let mut st = ReplayStats::default();
        let mut s = Stream::default();
        feed(&mut s, 0, b"a", &mut st);
        for i in 0..10 {
            assert_eq!(feed(&mut s, 10 + i * 2, b"x", &mut st), Runs(vec![]));
        }
        // the 11th held segment overflows: the hole at 1..10 is skipped, which is enough
        let runs = feed(&mut s, 40, b"y", &mut st);
        assert_eq!(runs.0, vec![run(b"", 9), run(b"x", 0)]);
        assert_eq!(st.tcp_buffer_overflows, 1);
        assert_eq!(s.held.len(), 10);
    }

    #[test]
    fn fin_bounds_the_stream_and_flush_reports_the_missing_tail() {
        let mut st = ReplayStats::default();
        let mut s = Stream::default();
        let mut runs = Runs::default();
        s.segment(0, b"ab", 0, false, LIMITS, &mut runs, &mut st);
        s.segment(5, b"fg", 0, true, LIMITS, &mut runs, &mut st);
        s.segment(7, b"zz", 0, false, LIMITS, &mut runs, &mut st); // past the FIN
        assert!(!s.finished());
        s.flush(&mut runs, &mut st);
        assert_eq!(runs.0, vec![run(b"ab", 3), run(b"fg", 0)]);
        assert!(s.finished());
        assert_eq!(st.tcp_ignored_segments, 1);
    }

    #[test]
    fn snap_length_cut_is_a_gap_of_its_size() {
        let mut st = ReplayStats::default();
        let mut s = Stream::default();
        let mut runs = Runs::default();
        s.segment(0, b"abc", 97, false, LIMITS, &mut runs, &mut st);
        s.segment(100, b"d", 0, false, LIMITS, &mut runs, &mut st);
        assert_eq!(runs.0, vec![run(b"abc", 97), run(b"d", 0)]);
        assert_eq!(st.tcp_gaps, 0);
    }

    /// A stream whose first segment never arrives holds at most `max_bytes` however long it is.
    #[test]
    fn hundred_thousand_segments_in_bounded_memory() {
        let mut st = ReplayStats::default();
        let mut s = Stream::default();
        let limits = Limits {
            max_bytes: 64 << 10,
            max_segments: 1024,
        };
        let seg = [7u8; 100];
        let mut runs = Runs::default();
        let mut peak = 0;
        let mut delivered = 0u64;
        let mut missing = 0u64;
        s.segment(1_000_000, &seg, 0, false, limits, &mut runs, &mut st); // starts the stream
        for i in 0..100_000u32 {
            // segments 2k+1 before 2k, and segment 1 (the second) never comes
            let n = if i % 2 == 0 { i + 3 } else { i + 1 };
            let seq = 1_000_000u32.wrapping_add(n * 100);
            let mut runs = Runs::default();
            s.segment(seq, &seg, 0, false, limits, &mut runs, &mut st);
            peak = peak.max(s.held_bytes());
            for (d, m) in runs.0 {
                delivered += d.len() as u64;
                missing += m;
            }
        }
        s.flush(&mut runs, &mut st);
        for (d, m) in runs.0 {
            delivered += d.len() as u64;
            missing += m;
        }
        assert!(peak <= limits.max_bytes, "peak {peak}");
        assert_eq!(missing, 100);
        assert_eq!(delivered, 100_001 * 100);
        assert_eq!(st.tcp_gaps, 1);
    }
}
