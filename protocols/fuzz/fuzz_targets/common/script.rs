//! The chunk script shared by the stream-parser fuzz targets.
//!
//! The input is a script of chunks: a control byte (bit 0: side; bit 7: the chunk has a gap
//! of `((ctl >> 1) & 0x3f) * gap_scale` missing bytes after it; bit 6: expire requests older
//! than that value after it), a length byte, then that many data bytes; the connection closes
//! at the end.

use wirelens_protocols::{Chunk, ConnParser, Exchange, ParseStats, Side};

pub struct Push<'a> {
    pub side: Side,
    pub data: &'a [u8],
    pub missing: u64,
    pub expire: Option<u64>,
}

pub fn script(mut input: &[u8], gap_scale: u64) -> Vec<Push<'_>> {
    let mut pushes = Vec::new();
    while let [ctl, len, rest @ ..] = input {
        let n = usize::from(*len).min(rest.len());
        let arg = u64::from((ctl >> 1) & 0x3f);
        pushes.push(Push {
            side: if ctl & 1 == 0 {
                Side::Client
            } else {
                Side::Server
            },
            data: &rest[..n],
            missing: if ctl & 0x80 != 0 { arg * gap_scale } else { 0 },
            expire: (ctl & 0x40 != 0).then_some(arg),
        });
        input = &rest[n..];
    }
    pushes
}

/// Runs the script through `parser`, each push cut into pieces of at most `piece` bytes.
pub fn run(
    mut parser: impl ConnParser,
    pushes: &[Push<'_>],
    piece: usize,
) -> (Vec<Exchange>, ParseStats) {
    let mut out = Vec::new();
    for (ts, p) in pushes.iter().enumerate() {
        let ts = ts as u64;
        let pieces: Vec<&[u8]> = if p.data.is_empty() {
            vec![p.data]
        } else {
            p.data.chunks(piece).collect()
        };
        let last = pieces.len() - 1;
        for (i, data) in pieces.into_iter().enumerate() {
            let missing = if i == last { p.missing } else { 0 };
            parser.push(
                Chunk {
                    side: p.side,
                    ts_ns: ts,
                    data,
                    missing,
                },
                &mut out,
            );
        }
        if let Some(timeout) = p.expire {
            parser.expire(ts, timeout, &mut out);
        }
    }
    parser.close(pushes.len() as u64, false, &mut out);
    (out, parser.stats().clone())
}
