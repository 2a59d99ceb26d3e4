//! Builders of MySQL protocol bytes for the tests (layouts as in the MySQL source
//! documentation, "Client/Server Protocol"), and a driver that pushes a conversation into a
//! [`MysqlParser`] and collects what comes out.
#![allow(dead_code)]

use wirelens_protocols::mysql::{MysqlParser, MysqlRequest, MysqlResponse};
use wirelens_protocols::{Chunk, ConnParser, Exchange, Outcome, Request, Response, Side};

pub const PROTOCOL_41: u32 = 0x200;
pub const SECURE_CONNECTION: u32 = 0x8000;
pub const PLUGIN_AUTH: u32 = 0x8_0000;
pub const COMPRESS: u32 = 0x20;
pub const SSL: u32 = 0x800;
pub const DEPRECATE_EOF: u32 = 0x0100_0000;
pub const MORE_RESULTS: u16 = 0x0008;
pub const CURSOR_EXISTS: u16 = 0x0040;
/// Capabilities of a MariaDB 10.11 server (greeting) without DEPRECATE_EOF.
pub const BASE_CAPS: u32 = 0x0008_f7fe & !COMPRESS;

/// One packet: 3-byte length, sequence id, payload.
pub fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    assert!(n < 0xff_ffff);
    let mut v = n.to_le_bytes()[..3].to_vec();
    v.push(seq);
    v.extend_from_slice(payload);
    v
}

/// A payload split into physical packets of at most 16 MiB - 1 bytes, from sequence `seq`.
pub fn big_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let mut s = seq;
    let mut rest = payload;
    loop {
        let n = rest.len().min(0xff_ffff);
        v.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        v.push(s);
        v.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        s = s.wrapping_add(1);
        if n < 0xff_ffff {
            return v;
        }
    }
}

pub fn lenenc(v: u64) -> Vec<u8> {
    match v {
        0..=0xfa => vec![v as u8],
        0xfb..=0xffff => {
            let mut b = vec![0xfc];
            b.extend_from_slice(&(v as u16).to_le_bytes());
            b
        }
        0x1_0000..=0xff_ffff => {
            let mut b = vec![0xfd];
            b.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
            b
        }
        _ => {
            let mut b = vec![0xfe];
            b.extend_from_slice(&v.to_le_bytes());
            b
        }
    }
}

pub fn lenenc_str(s: &[u8]) -> Vec<u8> {
    let mut b = lenenc(s.len() as u64);
    b.extend_from_slice(s);
    b
}

/// Protocol::HandshakeV10 of a MariaDB server.
pub fn greeting(caps: u32) -> Vec<u8> {
    let mut p = vec![0x0a];
    p.extend_from_slice(b"5.5.5-10.11.6-MariaDB\0");
    p.extend_from_slice(&42u32.to_le_bytes());
    p.extend_from_slice(b"abcdefgh\0");
    p.extend_from_slice(&(caps as u16).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&2u16.to_le_bytes());
    p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0");
    p.extend_from_slice(b"mysql_native_password\0");
    packet(0, &p)
}

/// HandshakeResponse41 (seq 1).
pub fn handshake_response(caps: u32) -> Vec<u8> {
    let mut p = caps.to_le_bytes().to_vec();
    p.extend_from_slice(&0x0100_0000u32.to_le_bytes());
    p.push(45);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(b"root\0");
    p.push(20);
    p.extend_from_slice(&[7; 20]);
    p.extend_from_slice(b"mysql_native_password\0");
    packet(1, &p)
}

/// SSLRequest (seq 1): the first 32 bytes of a HandshakeResponse41.
pub fn ssl_request(caps: u32) -> Vec<u8> {
    let mut p = (caps | SSL).to_le_bytes().to_vec();
    p.extend_from_slice(&0x0100_0000u32.to_le_bytes());
    p.push(45);
    p.extend_from_slice(&[0; 23]);
    packet(1, &p)
}

pub fn ok_payload(affected: u64, status: u16) -> Vec<u8> {
    let mut p = vec![0x00];
    p.extend(lenenc(affected));
    p.extend(lenenc(0));
    p.extend_from_slice(&status.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p
}

pub fn ok(seq: u8, affected: u64, status: u16) -> Vec<u8> {
    packet(seq, &ok_payload(affected, status))
}

pub fn err(seq: u8, code: u16, state: &str, msg: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    p.extend_from_slice(state.as_bytes());
    p.extend_from_slice(msg.as_bytes());
    packet(seq, &p)
}

pub fn eof(seq: u8, status: u16) -> Vec<u8> {
    let mut p = vec![0xfe, 0, 0];
    p.extend_from_slice(&status.to_le_bytes());
    packet(seq, &p)
}

/// The OK packet with header 0xFE that ends a result set under CLIENT_DEPRECATE_EOF.
pub fn ok_eof(seq: u8, status: u16) -> Vec<u8> {
    let mut p = ok_payload(0, status);
    p[0] = 0xfe;
    packet(seq, &p)
}

pub fn column_def(seq: u8, name: &str) -> Vec<u8> {
    let mut p = Vec::new();
    for s in [
        &b"def"[..],
        b"w",
        b"t",
        b"t",
        name.as_bytes(),
        name.as_bytes(),
    ] {
        p.extend(lenenc_str(s));
    }
    p.push(0x0c);
    p.extend_from_slice(&[0x21, 0, 0x50, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
    packet(seq, &p)
}

pub fn command(cmd: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![cmd];
    p.extend_from_slice(body);
    packet(0, &p)
}

pub fn query(text: &str) -> Vec<u8> {
    command(0x03, text.as_bytes())
}

pub fn prepare(text: &str) -> Vec<u8> {
    command(0x16, text.as_bytes())
}

pub fn execute(id: u32, flags: u8, params: &[i64]) -> Vec<u8> {
    let mut b = id.to_le_bytes().to_vec();
    b.push(flags);
    b.extend_from_slice(&1u32.to_le_bytes());
    if !params.is_empty() {
        b.extend(std::iter::repeat_n(0u8, params.len().div_ceil(8)));
        b.push(1);
        for _ in params {
            b.extend_from_slice(&[0x08, 0]);
        }
        for v in params {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    command(0x17, &b)
}

pub fn stmt_close(id: u32) -> Vec<u8> {
    command(0x19, &id.to_le_bytes())
}

/// Whether result sets carry EOF packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Eof,
    Deprecate,
}

/// A text result set with `cols` columns and `rows` rows, from sequence id 1; `status` goes
/// into its terminator. Returns the bytes and the next sequence id.
pub fn result_set(
    mode: Mode,
    first_seq: u8,
    cols: usize,
    rows: usize,
    status: u16,
) -> (Vec<u8>, u8) {
    let mut seq = first_seq;
    let mut next = || {
        let s = seq;
        seq = seq.wrapping_add(1);
        s
    };
    let mut v = packet(next(), &lenenc(cols as u64));
    for c in 0..cols {
        v.extend(column_def(next(), &format!("c{c}")));
    }
    if mode == Mode::Eof {
        v.extend(eof(next(), 0));
    }
    for r in 0..rows {
        let mut p = Vec::new();
        for c in 0..cols {
            if (r + c) % 5 == 4 {
                p.push(0xfb);
            } else {
                p.extend(lenenc_str(format!("r{r}c{c}").as_bytes()));
            }
        }
        v.extend(packet(next(), &p));
    }
    v.extend(match mode {
        Mode::Eof => eof(next(), status),
        Mode::Deprecate => ok_eof(next(), status),
    });
    (v, seq)
}

/// A binary result set as COM_STMT_EXECUTE returns it; `cached`: MariaDB's cache-metadata
/// flag byte says no definitions follow.
pub fn binary_result_set(mode: Mode, cols: usize, rows: usize, cached: bool) -> Vec<u8> {
    let mut seq = 1u8;
    let mut next = || {
        let s = seq;
        seq = seq.wrapping_add(1);
        s
    };
    let mut count = lenenc(cols as u64);
    if cached {
        count.push(0);
    }
    let mut v = packet(next(), &count);
    if !cached {
        for c in 0..cols {
            v.extend(column_def(next(), &format!("c{c}")));
        }
    }
    if mode == Mode::Eof {
        v.extend(eof(next(), 0));
    }
    for r in 0..rows {
        let mut p = vec![0x00];
        p.extend(std::iter::repeat_n(0u8, (cols + 7 + 2) / 8));
        for _ in 0..cols {
            p.extend_from_slice(&(r as i64).to_le_bytes());
        }
        v.extend(packet(next(), &p));
    }
    v.extend(match mode {
        Mode::Eof => eof(next(), 0),
        Mode::Deprecate => ok_eof(next(), 0),
    });
    v
}

/// COM_STMT_PREPARE_OK with its definitions.
pub fn prepare_ok(mode: Mode, id: u32, cols: u16, params: u16) -> Vec<u8> {
    let mut p = vec![0x00];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&cols.to_le_bytes());
    p.extend_from_slice(&params.to_le_bytes());
    p.push(0);
    p.extend_from_slice(&0u16.to_le_bytes());
    let mut v = packet(1, &p);
    let mut seq = 2u8;
    for (n, prefix) in [(params, "?"), (cols, "c")] {
        if n == 0 {
            continue;
        }
        for i in 0..n {
            v.extend(column_def(seq, &format!("{prefix}{i}")));
            seq += 1;
        }
        if mode == Mode::Eof {
            v.extend(eof(seq, 0));
            seq += 1;
        }
    }
    v
}

/// Pushes chunks into a parser and collects the exchanges.
pub struct Conv {
    pub parser: MysqlParser,
    pub out: Vec<Exchange>,
    pub ts: u64,
}

impl Default for Conv {
    fn default() -> Self {
        Self::new()
    }
}

impl Conv {
    pub fn new() -> Conv {
        Conv {
            parser: MysqlParser::new(),
            out: Vec::new(),
            ts: 1_000,
        }
    }

    /// Pushes `data` as one chunk from `side`, one tick after the previous chunk.
    pub fn push(&mut self, side: Side, data: &[u8]) -> &mut Self {
        self.push_missing(side, data, 0)
    }

    pub fn push_missing(&mut self, side: Side, data: &[u8], missing: u64) -> &mut Self {
        self.ts += 10;
        self.parser.push(
            Chunk {
                side,
                ts_ns: self.ts,
                data,
                missing,
            },
            &mut self.out,
        );
        self
    }

    pub fn client(&mut self, data: &[u8]) -> &mut Self {
        self.push(Side::Client, data)
    }

    pub fn server(&mut self, data: &[u8]) -> &mut Self {
        self.push(Side::Server, data)
    }

    /// The greeting, a HandshakeResponse41 and the auth OK, with `caps` on both ends.
    pub fn handshake(&mut self, caps: u32) -> &mut Self {
        self.server(&greeting(caps));
        self.client(&handshake_response(caps));
        self.server(&ok(2, 0, 2))
    }

    pub fn close(&mut self) -> &mut Self {
        self.ts += 10;
        self.parser.close(self.ts, false, &mut self.out);
        self
    }

    pub fn take(&mut self) -> Vec<Exchange> {
        std::mem::take(&mut self.out)
    }
}

/// The request and response of an exchange (panics for another protocol or no response).
pub fn parts(e: &Exchange) -> (&MysqlRequest, Option<&MysqlResponse>) {
    let Request::Mysql(req) = &e.request else {
        panic!("not a mysql request: {e:?}");
    };
    let resp = match &e.response {
        Some(Response::Mysql(r)) => Some(r),
        None => None,
        Some(other) => panic!("not a mysql response: {other:?}"),
    };
    (req, resp)
}

/// (command, query, error code, rows, outcome) of each exchange: what the tests compare.
pub type Summary = (String, Option<String>, Option<u16>, Option<u64>, Outcome);

pub fn summary(ex: &[Exchange]) -> Vec<Summary> {
    ex.iter()
        .map(|e| {
            let (req, resp) = parts(e);
            (
                req.command.clone(),
                req.query.clone(),
                resp.and_then(|r| r.code),
                resp.and_then(|r| r.rows),
                e.outcome,
            )
        })
        .collect()
}

pub fn s(cmd: &str, q: Option<&str>, code: Option<u16>, rows: Option<u64>) -> Summary {
    (
        cmd.to_string(),
        q.map(str::to_string),
        code,
        rows,
        Outcome::Complete,
    )
}
