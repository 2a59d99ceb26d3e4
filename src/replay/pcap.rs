//! Reading capture files record by record: pcap (both byte orders, micro- and nanosecond
//! timestamps) and pcapng (any number of sections and interfaces, each interface with its own
//! link type and `if_tsresol` / `if_tsoffset`), streaming through a bounded buffer.
//!
//! References: the pcap format (draft-ietf-opsawg-pcap) and pcapng (draft-ietf-opsawg-pcapng),
//! parsed by rusticata's pcap-parser; this module adds the timestamp arithmetic, the
//! interface table, and errors that name the file and the offset where reading stopped.

use std::cell::RefCell;
use std::io::{self, IsTerminal, Read};
use std::path::Path;
use std::rc::Rc;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError, PcapNGReader};

use super::{ReplayError, PROGRESS_MIN_BYTES};

/// The read buffer's first size (smaller for small inputs); it doubles when a record does not
/// fit, up to `MAX_RECORD`.
const INITIAL_BUFFER: usize = 1 << 20;
const SMALL_BUFFER: usize = 64 << 10;
/// The largest record or block accepted. Real captures stay far below (the usual snap length is
/// 256 KiB); a larger claim is a corrupt length field.
const MAX_RECORD: usize = 64 << 20;

/// One captured frame.
pub(crate) struct Packet<'a> {
    /// LINKTYPE_* value of the interface the frame came from.
    pub link_type: u32,
    /// Unix time, ns.
    pub ts_ns: u64,
    /// The captured bytes (possibly fewer than on the wire).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Pcap,
    PcapNg,
}

/// A pcapng interface, from its Interface Description Block.
struct Interface {
    link_type: u32,
    /// Timestamp units per second (`if_tsresol`), `None` when the option is out of range.
    units_per_sec: Option<u64>,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_s: i64,
}

/// The state of the record loop besides the reader itself.
struct Decoder {
    /// Legacy pcap: from the file header.
    link_type: u32,
    nanos: bool,
    /// pcapng: the current section's interfaces, by index.
    interfaces: Vec<Interface>,
    last_ts_ns: u64,
    unknown_interface: u64,
}

/// Reads every record of a capture and hands each frame to `on_packet`. Records that are not
/// frames (interface descriptions, statistics, name resolution...) are used or skipped here.
/// Returns the number of frames whose pcapng interface was not described (not passed on).
pub(crate) fn read_records<R: Read>(
    name: &Path,
    reader: R,
    len: Option<u64>,
    progress: bool,
    on_packet: &mut dyn FnMut(Packet<'_>),
) -> Result<u64, ReplayError> {
    let path = || name.to_owned();
    let error = Rc::new(RefCell::new(None));
    let mut source = Source {
        inner: reader,
        head: Vec::new(),
        head_pos: 0,
        error: Rc::clone(&error),
    };
    let read_error = |offset: u64| {
        let source = error
            .borrow_mut()
            .take()
            .unwrap_or_else(|| io::Error::other("read failed"));
        ReplayError::Read {
            path: path(),
            offset,
            source,
        }
    };

    let magic = source.peek(4).map_err(|source| ReplayError::Read {
        path: path(),
        offset: 0,
        source,
    })?;
    let format = match magic {
        [] => return Err(ReplayError::Empty { path: path() }),
        [0x0a, 0x0d, 0x0d, 0x0a] => Format::PcapNg,
        [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] => Format::Pcap,
        [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] | [0x34, 0xcd, 0xb2, 0xa1] => {
            Format::Pcap
        }
        other => {
            return Err(ReplayError::NotACapture {
                path: path(),
                magic: other.to_vec(),
            })
        }
    };
    let header_error = |e: PcapError<&'static [u8]>| {
        let what = match format {
            Format::Pcap => "file header",
            Format::PcapNg => "section header block",
        };
        match e {
            PcapError::Incomplete(_) | PcapError::UnexpectedEof | PcapError::Eof => {
                ReplayError::Truncated {
                    path: path(),
                    what,
                    offset: 0,
                }
            }
            PcapError::ReadError => read_error(0),
            _ => ReplayError::Corrupt {
                path: path(),
                what,
                offset: 0,
            },
        }
    };
    let mut capacity = match len {
        Some(len) if len <= INITIAL_BUFFER as u64 => SMALL_BUFFER,
        _ => INITIAL_BUFFER,
    };
    let mut reader: Box<dyn PcapReaderIterator + '_> = match format {
        Format::Pcap => Box::new(LegacyPcapReader::new(capacity, source).map_err(header_error)?),
        Format::PcapNg => Box::new(PcapNGReader::new(capacity, source).map_err(header_error)?),
    };
    let record = match format {
        Format::Pcap => "packet record",
        Format::PcapNg => "block",
    };

    let bar = progress_bar(progress, len);
    let mut dec = Decoder {
        link_type: 0,
        nanos: false,
        interfaces: Vec::new(),
        last_ts_ns: 0,
        unknown_interface: 0,
    };
    let mut records: u64 = 0;
    loop {
        let offset = reader.consumed() as u64;
        let step = match reader.next() {
            // Every record has a header, so a parse that consumes nothing would loop forever.
            Ok((0, _)) => Step::Fail(ReplayError::Corrupt {
                path: path(),
                what: record,
                offset,
            }),
            Ok((size, block)) => {
                dec.block(block, on_packet);
                Step::Consume(size)
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => Step::Refill,
            Err(PcapError::BufferTooSmall) => Step::Grow,
            Err(PcapError::UnexpectedEof) => Step::Fail(ReplayError::Truncated {
                path: path(),
                what: record,
                offset,
            }),
            Err(PcapError::ReadError) => Step::Fail(read_error(offset)),
            Err(_) => Step::Fail(ReplayError::Corrupt {
                path: path(),
                what: record,
                offset,
            }),
        };
        match step {
            Step::Consume(size) => {
                reader.consume(size);
                records += 1;
                if let Some(bar) = &bar {
                    if records.is_multiple_of(1024) {
                        bar.set_position(reader.consumed() as u64);
                    }
                }
            }
            Step::Refill if reader.data().len() < capacity => {
                reader.refill().map_err(|_| read_error(offset))?
            }
            // A buffer full of one unfinished record must grow before more can be read.
            Step::Refill | Step::Grow => {
                capacity = capacity.saturating_mul(2);
                if capacity > MAX_RECORD || !reader.grow(capacity) {
                    return Err(ReplayError::TooLarge {
                        path: path(),
                        what: record,
                        offset,
                        max: MAX_RECORD,
                    });
                }
                reader.refill().map_err(|_| read_error(offset))?;
            }
            Step::Fail(e) => return Err(e),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(dec.unknown_interface)
}

enum Step {
    Consume(usize),
    Refill,
    Grow,
    Fail(ReplayError),
}

impl Decoder {
    fn block(&mut self, block: PcapBlockOwned<'_>, on_packet: &mut dyn FnMut(Packet<'_>)) {
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                // The upper bits of the pcap link-type field carry FCS information.
                self.link_type = (h.network.0 as u32) & 0xffff;
                self.nanos = h.is_nanosecond_precision();
            }
            PcapBlockOwned::Legacy(b) => {
                let frac = u64::from(b.ts_usec) * if self.nanos { 1 } else { 1_000 };
                let ts_ns = u64::from(b.ts_sec) * 1_000_000_000 + frac;
                self.last_ts_ns = ts_ns;
                on_packet(Packet {
                    link_type: self.link_type,
                    ts_ns,
                    data: b.data,
                    orig_len: b.origlen,
                });
            }
            PcapBlockOwned::NG(Block::SectionHeader(_)) => self.interfaces.clear(),
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                self.interfaces.push(Interface {
                    link_type: u32::from(idb.linktype.0 as u16),
                    units_per_sec: pcap_parser::pcapng::build_ts_resolution(idb.if_tsresol),
                    offset_s: idb.if_tsoffset,
                });
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let Some(iface) = self.interfaces.get(epb.if_id as usize) else {
                    self.unknown_interface += 1;
                    return;
                };
                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let ts_ns = ng_timestamp(units, iface.units_per_sec, iface.offset_s);
                self.last_ts_ns = ts_ns;
                on_packet(Packet {
                    link_type: iface.link_type,
                    ts_ns,
                    data: epb.packet_data(),
                    orig_len: epb.origlen,
                });
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                // A Simple Packet Block belongs to interface 0 and has no timestamp: it is
                // placed at the previous packet's time.
                let Some(iface) = self.interfaces.first() else {
                    self.unknown_interface += 1;
                    return;
                };
                on_packet(Packet {
                    link_type: iface.link_type,
                    ts_ns: self.last_ts_ns,
                    data: spb.packet_data(),
                    orig_len: spb.origlen,
                });
            }
            PcapBlockOwned::NG(_) => {}
        }
    }
}

/// A pcapng timestamp (`units` since the epoch, minus `offset_s` seconds) in Unix ns.
/// Saturates instead of wrapping on absurd values; an invalid resolution counts microseconds
/// (the default).
pub(crate) fn ng_timestamp(units: u64, units_per_sec: Option<u64>, offset_s: i64) -> u64 {
    let per_sec = u128::from(units_per_sec.unwrap_or(1_000_000).max(1));
    let ns = u128::from(units) * 1_000_000_000 / per_sec;
    let ns = i128::try_from(ns).unwrap_or(i128::MAX) + i128::from(offset_s) * 1_000_000_000;
    u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
}

fn progress_bar(enabled: bool, len: Option<u64>) -> Option<indicatif::ProgressBar> {
    let len = len?;
    if !enabled || len < PROGRESS_MIN_BYTES || !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "replay {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// The file as pcap-parser reads it: every `read` fills the buffer unless the file ends (so
/// the first read holds a whole file header), the first bytes can be peeked at, and the
/// `io::Error` behind a failed read is kept (pcap-parser only reports that one happened).
struct Source<R> {
    inner: R,
    head: Vec<u8>,
    head_pos: usize,
    error: Rc<RefCell<Option<io::Error>>>,
}

impl<R: Read> Source<R> {
    /// The first `n` bytes of the input (fewer if it is shorter), without consuming them.
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let mut buf = vec![0; n];
        let got = read_full(&mut self.inner, &mut buf)?;
        buf.truncate(got);
        self.head = buf;
        Ok(&self.head)
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        if self.head_pos < self.head.len() {
            let head = &self.head[self.head_pos..];
            n = head.len().min(buf.len());
            buf[..n].copy_from_slice(&head[..n]);
            self.head_pos += n;
        }
        match read_full(&mut self.inner, &mut buf[n..]) {
            Ok(m) => Ok(n + m),
            Err(e) => {
                let kind = e.kind();
                *self.error.borrow_mut() = Some(e);
                Err(io::Error::from(kind))
            }
        }
    }
}

/// Reads until `buf` is full or the input ends.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(m) => n += m,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::ng_timestamp;

    #[test]
    fn pcapng_timestamps_follow_the_interface_resolution() {
        assert_eq!(ng_timestamp(1_500_000, Some(1_000_000), 0), 1_500_000_000);
        assert_eq!(
            ng_timestamp(1_500_000_123, Some(1_000_000_000), 0),
            1_500_000_123
        );
        // 2^-10 s units
        assert_eq!(ng_timestamp(1024 + 512, Some(1024), 0), 1_500_000_000);
        assert_eq!(ng_timestamp(5, Some(1), 100), 105_000_000_000);
        assert_eq!(ng_timestamp(u64::MAX, Some(1), 0), u64::MAX);
        assert_eq!(ng_timestamp(1, Some(1), -10), 0);
        assert_eq!(ng_timestamp(7, None, 0), 7_000);
    }
}
