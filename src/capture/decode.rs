//! Ring-buffer records to [`SourceEvent`]s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use wirelens_protocols::Protocol;

use super::skel::types::{
    wl_close_event, wl_conn, wl_data_event, wl_data_flags, wl_direction, wl_event_type,
    wl_exec_event, wl_role,
};
use crate::event::{
    ClientHint, ConnKey, DataEvent, LostBefore, Observer, ProcessInfo, SourceEvent, Transport,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_DGRAM: u8 = 2;

/// Why a ring-buffer record could not be decoded (a kernel/user-space mismatch; counted).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error("record of type {kind} is {len} bytes, shorter than its header")]
    Short { kind: u8, len: usize },
    #[error("unknown record type {0}")]
    UnknownType(u8),
    #[error("unknown address family {0}")]
    Family(u16),
}

/// Converts kernel CLOCK_MONOTONIC times to Unix time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset_ns: i128,
}

impl Clock {
    /// Measures the offset between CLOCK_REALTIME and CLOCK_MONOTONIC now.
    pub fn now() -> Clock {
        let mono = clock_ns(libc::CLOCK_MONOTONIC);
        let real = clock_ns(libc::CLOCK_REALTIME);
        Clock {
            offset_ns: real as i128 - mono as i128,
        }
    }

    pub fn to_unix(self, mono_ns: u64) -> u64 {
        (mono_ns as i128 + self.offset_ns).max(0) as u64
    }
}

/// Reads a clock in ns.
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What a ring-buffer record is for: the pipeline, or the filter control.
// Data events are nearly all of them: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decoded {
    Event(SourceEvent),
    Exec(super::ExecEvent),
}

/// What [`decode_into`] found.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A data event, now in the slot.
    Data,
    /// A close event, now in the slot.
    Close,
    /// An exec event (the slot is untouched).
    Exec(super::ExecEvent),
}

/// Decodes one ring-buffer record into a new event.
pub fn decode(bytes: &[u8], clock: Clock) -> Result<Decoded, DecodeError> {
    let mut slot = SourceEvent::End { ts_ns: 0 };
    Ok(match decode_into(bytes, clock, &mut slot)? {
        Kind::Exec(ev) => Decoded::Exec(ev),
        Kind::Data | Kind::Close => Decoded::Event(slot),
    })
}

/// Decodes one ring-buffer record into `slot`, reusing the buffers of the data event it held
/// (payload, process name), so that decoding a steady stream of events into one slot
/// allocates nothing. On error the slot holds no meaningful event.
pub fn decode_into(
    bytes: &[u8],
    clock: Clock,
    slot: &mut SourceEvent,
) -> Result<Kind, DecodeError> {
    let kind = *bytes.first().ok_or(DecodeError::Empty)?;
    let short = || DecodeError::Short {
        kind,
        len: bytes.len(),
    };
    if kind as u32 == wl_event_type::WL_EV_DATA.0 {
        let mut hdr = wl_data_event::default();
        plain::copy_from_bytes(&mut hdr, bytes).map_err(|_| short())?;
        let start = std::mem::size_of::<wl_data_event>();
        let end = start.saturating_add(hdr.captured as usize).min(bytes.len());
        fill_data(&hdr, bytes.get(start..end).unwrap_or_default(), clock, slot)?;
        Ok(Kind::Data)
    } else if kind as u32 == wl_event_type::WL_EV_CLOSE.0 {
        let mut ev = wl_close_event::default();
        plain::copy_from_bytes(&mut ev, bytes).map_err(|_| short())?;
        *slot = SourceEvent::Close {
            conn: key(&ev.conn),
            ts_ns: clock.to_unix(ev.ts_ns),
            reset: false,
        };
        Ok(Kind::Close)
    } else if kind as u32 == wl_event_type::WL_EV_EXEC.0 {
        let mut ev = wl_exec_event::default();
        plain::copy_from_bytes(&mut ev, bytes).map_err(|_| short())?;
        Ok(Kind::Exec(super::ExecEvent {
            tgid: ev.tgid,
            ts_ns: clock.to_unix(ev.ts_ns),
        }))
    } else {
        Err(DecodeError::UnknownType(kind))
    }
}

/// Writes a data event into `slot`, in place when it already holds one.
fn fill_data(
    hdr: &wl_data_event,
    payload: &[u8],
    clock: Clock,
    slot: &mut SourceEvent,
) -> Result<(), DecodeError> {
    let (local, remote) = endpoints(&hdr.conn)?;
    let egress = hdr.dir as u32 == wl_direction::WL_DIR_EGRESS.0;
    let (src, dst) = if egress {
        (local, remote)
    } else {
        (remote, local)
    };
    let client = match hdr.conn.role as u32 {
        r if r == wl_role::WL_ROLE_CLIENT.0 => ClientHint::Client(local),
        r if r == wl_role::WL_ROLE_SERVER.0 => ClientHint::Client(remote),
        _ => ClientHint::Unknown,
    };
    let failed = hdr.flags as u32 & wl_data_flags::WL_DATA_READ_FAILED.0 != 0;
    let payload = if failed { &[][..] } else { payload };
    let (raw_comm, comm_len) = comm_bytes(&hdr.comm);
    let raw_comm = &raw_comm[..comm_len];
    let conn = key(&hdr.conn);
    let ts_ns = clock.to_unix(hdr.ts_ns);
    let protocol = Protocol::from_code(hdr.conn.protocol);
    let transport = if hdr.conn.sock_type == SOCK_DGRAM {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let missing = hdr.total.saturating_sub(payload.len() as u64);
    let pid = hdr.conn.tgid;
    let lost_before = LostBefore {
        sent: u64::from(hdr.conn.lost_out),
        received: u64::from(hdr.conn.lost_in),
    };
    if let SourceEvent::Data(d) = slot {
        d.lost_before = lost_before;
        d.conn = conn;
        d.ts_ns = ts_ns;
        d.src = src;
        d.dst = dst;
        d.client = client;
        d.protocol = protocol;
        d.transport = transport;
        d.missing = missing;
        d.data.clear();
        d.data.extend_from_slice(payload);
        match &mut d.observer {
            Some(o) => {
                o.process.pid = pid;
                o.local = local;
                // The same process as the last event, most of the time: no conversion then.
                if !crate::text::same_bytes(o.process.comm.as_bytes(), raw_comm) {
                    o.process.comm.clear();
                    // Valid UTF-8 (nearly always) is checked faster than a lossy conversion.
                    match std::str::from_utf8(raw_comm) {
                        Ok(s) => o.process.comm.push_str(s),
                        Err(_) => o.process.comm.push_str(&String::from_utf8_lossy(raw_comm)),
                    }
                }
            }
            None => {
                d.observer = Some(Observer {
                    process: ProcessInfo {
                        pid,
                        comm: String::from_utf8_lossy(raw_comm).into_owned(),
                    },
                    local,
                })
            }
        }
    } else {
        *slot = SourceEvent::Data(DataEvent {
            conn,
            ts_ns,
            src,
            dst,
            client,
            observer: Some(Observer {
                process: ProcessInfo {
                    pid,
                    comm: String::from_utf8_lossy(raw_comm).into_owned(),
                },
                local,
            }),
            protocol,
            transport,
            data: payload.to_vec(),
            missing,
            lost_before,
        });
    }
    Ok(())
}

fn key(c: &wl_conn) -> ConnKey {
    ConnKey {
        tgid: c.tgid,
        fd: c.fd,
        start_ns: c.start_ns,
    }
}

/// The process name's bytes up to its NUL, without allocating.
fn comm_bytes(raw: &[i8; 16]) -> ([u8; 16], usize) {
    let mut out = [0u8; 16];
    let mut len = 0;
    for (o, c) in out.iter_mut().zip(raw.iter().take_while(|c| **c != 0)) {
        *o = *c as u8;
        len += 1;
    }
    (out, len)
}

fn ip(family: u16, raw: &[u8; 16]) -> Result<IpAddr, DecodeError> {
    match family {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => {
            let v6 = Ipv6Addr::from(*raw);
            Ok(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        other => Err(DecodeError::Family(other)),
    }
}

fn endpoints(c: &wl_conn) -> Result<(SocketAddr, SocketAddr), DecodeError> {
    Ok((
        SocketAddr::new(ip(c.family, &c.laddr)?, c.lport),
        SocketAddr::new(ip(c.family, &c.raddr)?, c.rport),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_record(payload: &[u8], total: u64, dir: u8, role: u8) -> Vec<u8> {
        let mut hdr = wl_data_event {
            r#type: wl_event_type::WL_EV_DATA.0 as u8,
            dir,
            captured: payload.len() as u32,
            ts_ns: 1_000,
            total,
            ..Default::default()
        };
        hdr.conn.tgid = 42;
        hdr.conn.fd = 7;
        hdr.conn.family = AF_INET;
        hdr.conn.laddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        hdr.conn.raddr[..4].copy_from_slice(&[127, 0, 0, 2]);
        hdr.conn.lport = 8080;
        hdr.conn.rport = 50000;
        hdr.conn.role = role;
        hdr.conn.protocol = 1;
        for (i, b) in b"nginx".iter().enumerate() {
            hdr.comm[i] = *b as i8;
        }
        // SAFETY: wl_data_event is Plain (fixed-width fields, explicit padding).
        let mut out = unsafe { plain::as_bytes(&hdr) }.to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_server_read() {
        let clock = Clock { offset_ns: 5 };
        let rec = data_record(b"GET / HTTP/1.1\r\n", 100, 1, 2);
        let Decoded::Event(SourceEvent::Data(d)) = decode(&rec, clock).unwrap() else {
            panic!("not data")
        };
        assert_eq!(d.src, "127.0.0.2:50000".parse().unwrap());
        assert_eq!(d.dst, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            d.client,
            ClientHint::Client("127.0.0.2:50000".parse().unwrap())
        );
        assert_eq!(d.ts_ns, 1_005);
        assert_eq!(d.data, b"GET / HTTP/1.1\r\n");
        assert_eq!(d.missing, 100 - 16);
        assert_eq!(d.protocol, Some(Protocol::Http));
        let obs = d.observer.unwrap();
        assert_eq!(obs.process.comm, "nginx");
        assert_eq!(obs.process.pid, 42);
    }

    /// Decoding into a slot that held an event: a data event reuses the payload buffer and
    /// process name already there, and nothing of the old event survives.
    #[test]
    fn decodes_in_place_reusing_buffers() {
        let clock = Clock { offset_ns: 0 };
        let mut slot = SourceEvent::End { ts_ns: 0 };
        let long = vec![b'x'; 300];
        let rec = data_record(&long, 300, 0, 1);
        assert!(matches!(
            decode_into(&rec, clock, &mut slot),
            Ok(Kind::Data)
        ));
        let SourceEvent::Data(d) = &slot else {
            panic!("not data")
        };
        let buf = d.data.as_ptr();
        let rec = data_record(b"+OK\r\n", 5, 1, 1);
        assert!(matches!(
            decode_into(&rec, clock, &mut slot),
            Ok(Kind::Data)
        ));
        let SourceEvent::Data(d) = &slot else {
            panic!("not data")
        };
        assert_eq!(d.data, b"+OK\r\n");
        assert_eq!(d.data.as_ptr(), buf, "the payload buffer was not reused");
        assert_eq!(d.missing, 0);
        assert_eq!(d.src, "127.0.0.2:50000".parse().unwrap());
        assert_eq!(d.observer.as_ref().unwrap().process.comm, "nginx");
        // Another process in the same slot.
        let mut rec = data_record(b"GET", 3, 0, 1);
        let comm_at = std::mem::offset_of!(wl_data_event, comm);
        rec[comm_at..comm_at + 16].copy_from_slice(b"redis-server\0\0\0\0");
        decode_into(&rec, clock, &mut slot).unwrap();
        let SourceEvent::Data(d) = &slot else {
            panic!("not data")
        };
        assert_eq!(d.observer.as_ref().unwrap().process.comm, "redis-server");
        // A name that is not UTF-8 has U+FFFD for its bad bytes, event after event; a shorter
        // name that is a prefix of the last one is not mistaken for it.
        for (raw, want) in [
            (&b"py\xffthon\0\0\0\0\0\0\0\0\0"[..], "py\u{fffd}thon"),
            (&b"py\xffthon\0\0\0\0\0\0\0\0\0"[..], "py\u{fffd}thon"),
            (&b"redis\0\0\0\0\0\0\0\0\0\0\0"[..], "redis"),
            (&b"redis-server\0\0\0\0"[..], "redis-server"),
        ] {
            rec[comm_at..comm_at + 16].copy_from_slice(raw);
            decode_into(&rec, clock, &mut slot).unwrap();
            let SourceEvent::Data(d) = &slot else {
                panic!("not data")
            };
            assert_eq!(d.observer.as_ref().unwrap().process.comm, want);
        }
        // A close replaces a data event; an exec leaves the slot alone.
        let close = wl_close_event {
            r#type: wl_event_type::WL_EV_CLOSE.0 as u8,
            ts_ns: 9,
            ..Default::default()
        };
        // SAFETY: wl_close_event is Plain.
        let rec = unsafe { plain::as_bytes(&close) }.to_vec();
        assert!(matches!(
            decode_into(&rec, clock, &mut slot),
            Ok(Kind::Close)
        ));
        assert!(matches!(slot, SourceEvent::Close { ts_ns: 9, .. }));
        let exec = wl_exec_event {
            r#type: wl_event_type::WL_EV_EXEC.0 as u8,
            tgid: 77,
            ..Default::default()
        };
        // SAFETY: wl_exec_event is Plain.
        let rec = unsafe { plain::as_bytes(&exec) }.to_vec();
        assert!(matches!(
            decode_into(&rec, clock, &mut slot),
            Ok(Kind::Exec(crate::capture::ExecEvent { tgid: 77, .. }))
        ));
        assert!(matches!(slot, SourceEvent::Close { ts_ns: 9, .. }));
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        let clock = Clock::now();
        assert_eq!(decode(&[], clock).unwrap_err(), DecodeError::Empty);
        assert!(matches!(
            decode(&[1, 0, 0], clock),
            Err(DecodeError::Short { kind: 1, len: 3 })
        ));
        assert_eq!(
            decode(&[9; 200], clock).unwrap_err(),
            DecodeError::UnknownType(9)
        );
        // A header claiming more payload than the record holds keeps what is there.
        let mut rec = data_record(b"GET /", 5, 0, 1);
        rec.truncate(rec.len() - 2);
        let Decoded::Event(SourceEvent::Data(d)) = decode(&rec, clock).unwrap() else {
            panic!("not data")
        };
        assert_eq!(d.data, b"GET");
        assert_eq!(d.missing, 2);
    }
}
