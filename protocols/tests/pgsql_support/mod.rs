//! Shared helpers of the PostgreSQL parser tests: message builders (PostgreSQL docs, section
//! 55.7), scripts of pushes run whole and re-cut at other chunk boundaries, and the record
//! fields the tests compare.

#![allow(dead_code)]

use wirelens_protocols::pgsql::{PgsqlParser, PgsqlRequest, PgsqlResponse};
use wirelens_protocols::{
    Chunk, ConnParser, Exchange, Outcome, ParseStats, Request, Response, Side,
};

// ---- frontend messages ---------------------------------------------------------------------

fn typed(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn cstr(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(s.as_bytes());
    v.push(0);
}

pub fn startup(user: &str, db: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", db), ("application_name", "t")] {
        cstr(&mut body, k);
        cstr(&mut body, v);
    }
    body.push(0);
    let mut v = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&body);
    v
}

pub fn ssl_request() -> Vec<u8> {
    [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f].to_vec()
}

pub fn gssenc_request() -> Vec<u8> {
    [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30].to_vec()
}

pub fn cancel_request(pid: u32, key: u32) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e];
    v.extend_from_slice(&pid.to_be_bytes());
    v.extend_from_slice(&key.to_be_bytes());
    v
}

pub fn password(p: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, p);
    typed(b'p', &b)
}

pub fn query(text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, text);
    typed(b'Q', &b)
}

pub fn parse(name: &str, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, name);
    cstr(&mut b, text);
    b.extend_from_slice(&[0, 0]);
    typed(b'P', &b)
}

pub fn bind(portal: &str, stmt: &str, params: &[&str]) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, portal);
    cstr(&mut b, stmt);
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&(params.len() as u16).to_be_bytes());
    for p in params {
        b.extend_from_slice(&(p.len() as u32).to_be_bytes());
        b.extend_from_slice(p.as_bytes());
    }
    b.extend_from_slice(&[0, 0]);
    typed(b'B', &b)
}

pub fn describe(what: u8, name: &str) -> Vec<u8> {
    let mut b = vec![what];
    cstr(&mut b, name);
    typed(b'D', &b)
}

pub fn close(what: u8, name: &str) -> Vec<u8> {
    let mut b = vec![what];
    cstr(&mut b, name);
    typed(b'C', &b)
}

pub fn execute(portal: &str, max_rows: u32) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, portal);
    b.extend_from_slice(&max_rows.to_be_bytes());
    typed(b'E', &b)
}

pub fn sync() -> Vec<u8> {
    typed(b'S', &[])
}

pub fn flush() -> Vec<u8> {
    typed(b'H', &[])
}

pub fn copy_data(data: &[u8]) -> Vec<u8> {
    typed(b'd', data)
}

pub fn copy_done() -> Vec<u8> {
    typed(b'c', &[])
}

pub fn copy_fail(msg: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, msg);
    typed(b'f', &b)
}

pub fn terminate() -> Vec<u8> {
    typed(b'X', &[])
}

/// P/B/D/E/S of one statement in the unnamed statement and portal, as libpq's
/// PQsendQueryParams writes it.
pub fn extended(text: &str, params: &[&str]) -> Vec<u8> {
    [
        parse("", text),
        bind("", "", params),
        describe(b'P', ""),
        execute("", 0),
        sync(),
    ]
    .concat()
}

// ---- backend messages ----------------------------------------------------------------------

pub fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(extra);
    typed(b'R', &b)
}

pub fn auth_ok() -> Vec<u8> {
    auth(0, &[])
}

pub fn param_status(k: &str, v: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, k);
    cstr(&mut b, v);
    typed(b'S', &b)
}

pub fn key_data(pid: u32, key: u32) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    b.extend_from_slice(&key.to_be_bytes());
    typed(b'K', &b)
}

pub fn ready(status: u8) -> Vec<u8> {
    typed(b'Z', &[status])
}

/// What a server sends after a trust StartupMessage.
pub fn startup_reply() -> Vec<u8> {
    [
        auth_ok(),
        param_status("server_version", "15.18"),
        param_status("client_encoding", "UTF8"),
        key_data(4242, 0x1234_5678),
        ready(b'I'),
    ]
    .concat()
}

pub fn row_desc(cols: &[&str]) -> Vec<u8> {
    let mut b = (cols.len() as u16).to_be_bytes().to_vec();
    for c in cols {
        cstr(&mut b, c);
        b.extend_from_slice(&[0; 18]);
    }
    typed(b'T', &b)
}

pub fn data_row(vals: &[Option<&str>]) -> Vec<u8> {
    let mut b = (vals.len() as u16).to_be_bytes().to_vec();
    for v in vals {
        match v {
            Some(s) => {
                b.extend_from_slice(&(s.len() as u32).to_be_bytes());
                b.extend_from_slice(s.as_bytes());
            }
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    typed(b'D', &b)
}

/// RowDescription, `n` one-column rows, CommandComplete `SELECT n`.
pub fn rows(n: usize) -> Vec<u8> {
    let mut v = row_desc(&["x"]);
    for i in 0..n {
        v.extend(data_row(&[Some(&i.to_string())]));
    }
    v.extend(complete(&format!("SELECT {n}")));
    v
}

pub fn complete(tag: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, tag);
    typed(b'C', &b)
}

pub fn error(code: &str, msg: &str, position: Option<u32>) -> Vec<u8> {
    let mut b = Vec::new();
    for (f, v) in [('S', "ERROR"), ('V', "ERROR"), ('C', code), ('M', msg)] {
        b.push(f as u8);
        cstr(&mut b, v);
    }
    if let Some(p) = position {
        b.push(b'P');
        cstr(&mut b, &p.to_string());
    }
    b.push(b'F');
    cstr(&mut b, "parse.c");
    b.push(0);
    typed(b'E', &b)
}

pub fn notice(msg: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (f, v) in [('S', "NOTICE"), ('C', "00000"), ('M', msg)] {
        b.push(f as u8);
        cstr(&mut b, v);
    }
    b.push(0);
    typed(b'N', &b)
}

pub fn notification(channel: &str, payload: &str) -> Vec<u8> {
    let mut b = 77u32.to_be_bytes().to_vec();
    cstr(&mut b, channel);
    cstr(&mut b, payload);
    typed(b'A', &b)
}

pub fn empty_query() -> Vec<u8> {
    typed(b'I', &[])
}

pub fn parse_complete() -> Vec<u8> {
    typed(b'1', &[])
}

pub fn bind_complete() -> Vec<u8> {
    typed(b'2', &[])
}

pub fn close_complete() -> Vec<u8> {
    typed(b'3', &[])
}

pub fn no_data() -> Vec<u8> {
    typed(b'n', &[])
}

pub fn suspended() -> Vec<u8> {
    typed(b's', &[])
}

pub fn param_desc(n: u16) -> Vec<u8> {
    let mut b = n.to_be_bytes().to_vec();
    for _ in 0..n {
        b.extend_from_slice(&23u32.to_be_bytes());
    }
    typed(b't', &b)
}

pub fn copy_in_response(cols: u16) -> Vec<u8> {
    let mut b = vec![0];
    b.extend_from_slice(&cols.to_be_bytes());
    for _ in 0..cols {
        b.extend_from_slice(&[0, 0]);
    }
    typed(b'G', &b)
}

pub fn copy_out_response(cols: u16) -> Vec<u8> {
    let mut b = vec![0];
    b.extend_from_slice(&cols.to_be_bytes());
    for _ in 0..cols {
        b.extend_from_slice(&[0, 0]);
    }
    typed(b'H', &b)
}

/// The server's answer to [`extended`] of a statement returning `n` rows.
pub fn extended_rows(n: usize) -> Vec<u8> {
    let mut v = [parse_complete(), bind_complete(), row_desc(&["x"])].concat();
    for i in 0..n {
        v.extend(data_row(&[Some(&i.to_string())]));
    }
    v.extend(complete(&format!("SELECT {n}")));
    v.extend(ready(b'I'));
    v
}

/// The server's answer to [`extended`] of a statement without rows.
pub fn extended_tag(tag: &str) -> Vec<u8> {
    [
        parse_complete(),
        bind_complete(),
        no_data(),
        complete(tag),
        ready(b'I'),
    ]
    .concat()
}

// ---- scripts -------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub enum Ev {
    Push {
        side: Side,
        ts: u64,
        data: Vec<u8>,
        missing: u64,
    },
    Close {
        ts: u64,
    },
    Expire {
        now: u64,
        timeout: u64,
    },
}

#[derive(Clone, Debug, Default)]
pub struct Script(pub Vec<Ev>);

#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub exchanges: Vec<Exchange>,
    pub stats: ParseStats,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }
    pub fn client(self, ts: u64, data: &[u8]) -> Script {
        self.push(Side::Client, ts, data, 0)
    }
    pub fn server(self, ts: u64, data: &[u8]) -> Script {
        self.push(Side::Server, ts, data, 0)
    }
    pub fn push(mut self, side: Side, ts: u64, data: &[u8], missing: u64) -> Script {
        self.0.push(Ev::Push {
            side,
            ts,
            data: data.to_vec(),
            missing,
        });
        self
    }
    pub fn close(mut self, ts: u64) -> Script {
        self.0.push(Ev::Close { ts });
        self
    }
    pub fn expire(mut self, now: u64, timeout: u64) -> Script {
        self.0.push(Ev::Expire { now, timeout });
        self
    }

    /// Runs the script, each push cut into pieces of at most `piece` bytes (the missing
    /// bytes stay after the last piece).
    pub fn run_cut(&self, piece: usize) -> Run {
        let mut p = PgsqlParser::new();
        let mut out = Vec::new();
        for ev in &self.0 {
            match ev {
                Ev::Push {
                    side,
                    ts,
                    data,
                    missing,
                } => {
                    let pieces: Vec<&[u8]> = if data.is_empty() {
                        vec![&data[..]]
                    } else {
                        data.chunks(piece.max(1)).collect()
                    };
                    let last = pieces.len() - 1;
                    for (i, d) in pieces.into_iter().enumerate() {
                        p.push(
                            Chunk {
                                side: *side,
                                ts_ns: *ts,
                                data: d,
                                missing: if i == last { *missing } else { 0 },
                            },
                            &mut out,
                        );
                    }
                }
                Ev::Close { ts } => p.close(*ts, false, &mut out),
                Ev::Expire { now, timeout } => p.expire(*now, *timeout, &mut out),
            }
        }
        Run {
            exchanges: out,
            stats: p.stats().clone(),
        }
    }

    /// Runs whole, then byte by byte and in 7-byte pieces; all three must agree.
    pub fn run(&self) -> Run {
        let whole = self.run_cut(usize::MAX);
        for piece in [1, 7] {
            let cut = self.run_cut(piece);
            assert_eq!(
                whole, cut,
                "cutting into {piece}-byte pieces changed the result"
            );
        }
        whole
    }
}

// ---- views of exchanges --------------------------------------------------------------------

pub fn req(e: &Exchange) -> &PgsqlRequest {
    match &e.request {
        Request::Pgsql(r) => r,
        other => panic!("not pgsql: {other:?}"),
    }
}

pub fn resp(e: &Exchange) -> Option<&PgsqlResponse> {
    match &e.response {
        Some(Response::Pgsql(r)) => Some(r),
        None => None,
        other => panic!("not pgsql: {other:?}"),
    }
}

/// A compact line per exchange: `kind query -> rows|error code` (or the outcome).
pub fn line(e: &Exchange) -> String {
    let r = req(e);
    let tail = match (resp(e), e.outcome) {
        (Some(p), _) if p.error => format!("E {}", p.code.as_deref().unwrap_or("?")),
        (Some(p), _) => match p.rows {
            Some(n) => format!("{n}"),
            None => "-".into(),
        },
        (None, Outcome::Timeout) => "timeout".into(),
        (None, Outcome::Reset) => "reset".into(),
        (None, Outcome::Complete) => "?".into(),
    };
    let t = if e.truncated { " (truncated)" } else { "" };
    format!("{} {} -> {tail}{t}", r.kind, r.query)
}

pub fn lines(r: &Run) -> Vec<String> {
    r.exchanges.iter().map(line).collect()
}
