//! Ring-buffer records to [`SourceEvent`]s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use wirelens_protocols::Protocol;

use super::skel::types::{
    wl_close_event, wl_conn, wl_data_event, wl_data_flags, wl_direction, wl_event_type,
    wl_exec_event, wl_role,
};
use crate::event::{ClientHint, ConnKey, DataEvent, Observer, ProcessInfo, SourceEvent, Transport};

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

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8], clock: Clock) -> Result<Decoded, DecodeError> {
    let kind = *bytes.first().ok_or(DecodeError::Empty)?;
    if kind as u32 == wl_event_type::WL_EV_EXEC.0 {
        let mut ev = wl_exec_event::default();
        plain::copy_from_bytes(&mut ev, bytes).map_err(|_| DecodeError::Short {
            kind,
            len: bytes.len(),
        })?;
        return Ok(Decoded::Exec(super::ExecEvent {
            tgid: ev.tgid,
            ts_ns: clock.to_unix(ev.ts_ns),
        }));
    }
    decode_event(bytes, kind, clock).map(Decoded::Event)
}

fn decode_event(bytes: &[u8], kind: u8, clock: Clock) -> Result<SourceEvent, DecodeError> {
    if kind as u32 == wl_event_type::WL_EV_DATA.0 {
        let mut hdr = wl_data_event::default();
        plain::copy_from_bytes(&mut hdr, bytes).map_err(|_| DecodeError::Short {
            kind,
            len: bytes.len(),
        })?;
        let start = std::mem::size_of::<wl_data_event>();
        let end = start.saturating_add(hdr.captured as usize).min(bytes.len());
        let data = bytes[start..end].to_vec();
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
        let captured = data.len() as u64;
        let failed = hdr.flags as u32 & wl_data_flags::WL_DATA_READ_FAILED.0 != 0;
        Ok(SourceEvent::Data(DataEvent {
            conn: key(&hdr.conn),
            ts_ns: clock.to_unix(hdr.ts_ns),
            src,
            dst,
            client,
            observer: Some(Observer {
                process: ProcessInfo {
                    pid: hdr.conn.tgid,
                    comm: comm(&hdr.comm),
                },
                local,
            }),
            protocol: Protocol::from_code(hdr.conn.protocol),
            transport: if hdr.conn.sock_type == SOCK_DGRAM {
                Transport::Udp
            } else {
                Transport::Tcp
            },
            data: if failed { Vec::new() } else { data },
            missing: hdr.total.saturating_sub(if failed { 0 } else { captured }),
        }))
    } else if kind as u32 == wl_event_type::WL_EV_CLOSE.0 {
        let mut ev = wl_close_event::default();
        plain::copy_from_bytes(&mut ev, bytes).map_err(|_| DecodeError::Short {
            kind,
            len: bytes.len(),
        })?;
        Ok(SourceEvent::Close {
            conn: key(&ev.conn),
            ts_ns: clock.to_unix(ev.ts_ns),
            reset: false,
        })
    } else {
        Err(DecodeError::UnknownType(kind))
    }
}

fn key(c: &wl_conn) -> ConnKey {
    ConnKey {
        tgid: c.tgid,
        fd: c.fd,
        start_ns: c.start_ns,
    }
}

fn comm(raw: &[i8; 16]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
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
