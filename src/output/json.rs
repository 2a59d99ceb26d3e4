//! A record's JSON line, written by hand for the common shapes: the same bytes serde_json
//! writes for [`Record`] (the tests below and the golden replays compare them), without its
//! per-byte escaping loop and per-fragment calls, which `perf` put at about a sixth of the
//! agent's CPU under load. The rarer parts (Kubernetes objects, the SQL and DNS halves) still
//! go through serde_json.

use std::io;

use serde::Serialize;
use wirelens_protocols::{Request, Response, Role, Status};

use super::{Endpoint, Record};

/// Appends `r` as one JSON object (no newline) to `out`.
pub(super) fn write_record(out: &mut Vec<u8>, r: &Record) -> io::Result<()> {
    out.extend_from_slice(b"{\"ts_ns\":");
    number(out, r.ts_ns);
    out.extend_from_slice(b",\"latency_ns\":");
    match r.latency_ns {
        Some(n) => number(out, n),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"protocol\":");
    string(out, r.protocol)?;
    out.extend_from_slice(match r.role {
        Role::Client => b",\"role\":\"client\"",
        Role::Server => b",\"role\":\"server\"",
        Role::Unknown => b",\"role\":\"unknown\"",
    });
    out.extend_from_slice(b",\"client\":");
    endpoint(out, &r.client)?;
    out.extend_from_slice(b",\"server\":");
    endpoint(out, &r.server)?;
    out.extend_from_slice(b",\"process\":");
    match &r.process {
        Some(p) => {
            out.extend_from_slice(b"{\"pid\":");
            number(out, u64::from(p.pid));
            out.extend_from_slice(b",\"comm\":");
            string(out, &p.comm)?;
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    if let Some(k) = &r.k8s {
        out.extend_from_slice(b",\"k8s\":");
        shared(out, k)?;
    }
    if let Some(p) = &r.peer_k8s {
        out.extend_from_slice(b",\"peer_k8s\":");
        shared(out, p)?;
    }
    out.extend_from_slice(b",\"request\":");
    request(out, &r.request)?;
    out.extend_from_slice(b",\"response\":");
    match &r.response {
        Some(resp) => response(out, resp)?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(match r.status {
        Status::Ok => b",\"status\":\"ok\"",
        Status::Error => b",\"status\":\"error\"",
        Status::Timeout => b",\"status\":\"timeout\"",
        Status::Reset => b",\"status\":\"reset\"",
    });
    out.extend_from_slice(if r.truncated {
        b",\"truncated\":true"
    } else {
        b",\"truncated\":false"
    });
    if let Some(t) = &r.trace {
        out.extend_from_slice(b",\"trace\":{\"trace_id\":");
        string(out, &t.trace_id)?;
        out.extend_from_slice(b",\"span_id\":");
        string(out, &t.span_id)?;
        out.push(b'}');
    }
    out.push(b'}');
    Ok(())
}

fn request(out: &mut Vec<u8>, req: &Request) -> io::Result<()> {
    match req {
        Request::Http(h) => {
            out.extend_from_slice(b"{\"method\":");
            string(out, &h.method)?;
            out.extend_from_slice(b",\"path\":");
            string(out, &h.path)?;
            if let Some(host) = &h.host {
                out.extend_from_slice(b",\"host\":");
                string(out, host)?;
            }
            if let Some(route) = &h.route {
                out.extend_from_slice(b",\"route\":");
                string(out, route)?;
            }
            out.push(b'}');
            Ok(())
        }
        Request::Redis(r) => {
            out.extend_from_slice(b"{\"command\":");
            string(out, &r.command)?;
            out.extend_from_slice(b",\"args\":");
            number(out, u64::from(r.args));
            out.push(b'}');
            Ok(())
        }
        other => serde(out, other),
    }
}

fn response(out: &mut Vec<u8>, resp: &Response) -> io::Result<()> {
    match resp {
        Response::Http(h) => {
            out.extend_from_slice(b"{\"status\":");
            number(out, u64::from(h.status));
            out.extend_from_slice(b",\"body_bytes\":");
            number(out, h.body_bytes);
            out.push(b'}');
            Ok(())
        }
        Response::Redis(r) => {
            out.extend_from_slice(if r.error {
                b"{\"error\":true"
            } else {
                b"{\"error\":false"
            });
            if let Some(m) = &r.message {
                out.extend_from_slice(b",\"message\":");
                string(out, m)?;
            }
            out.push(b'}');
            Ok(())
        }
        other => serde(out, other),
    }
}

fn endpoint(out: &mut Vec<u8>, e: &Endpoint) -> io::Result<()> {
    out.extend_from_slice(b"{\"ip\":");
    string(out, &e.ip)?;
    out.extend_from_slice(b",\"port\":");
    number(out, u64::from(e.port));
    out.push(b'}');
    Ok(())
}

fn serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(io::Error::other)
}

/// An object shared by many records: its JSON was written once, when it was made.
fn shared<T: Serialize>(out: &mut Vec<u8>, v: &crate::k8s::Shared<T>) -> io::Result<()> {
    match v.json() {
        Some(j) => {
            out.extend_from_slice(j.as_bytes());
            Ok(())
        }
        None => serde(out, v),
    }
}

/// A JSON string: copied as it is when no byte needs an escape (the usual case), else
/// escaped by serde_json, so that the escapes stay exactly its own.
fn string(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    // No early exit: the loop vectorizes, and record strings are short.
    let plain = s
        .bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde(out, s)
    }
}

/// "00" to "99": two digits per division.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// A decimal number, as serde_json writes integers.
fn number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::K8sRecord;
    use crate::output::ProcessRecord;
    use wirelens_protocols::dns::{DnsRequest, DnsResponse};
    use wirelens_protocols::http::{HttpRequest, HttpResponse};
    use wirelens_protocols::mysql::{MysqlRequest, MysqlResponse};
    use wirelens_protocols::pgsql::{PgsqlRequest, PgsqlResponse};
    use wirelens_protocols::redis::{RedisRequest, RedisResponse};
    use wirelens_protocols::{Exchange, Outcome, TraceContext};

    fn http(path: &str, host: Option<&str>, route: Option<&str>) -> Request {
        Request::Http(HttpRequest {
            method: "GET".into(),
            path: path.into(),
            host: host.map(Into::into),
            route: route.map(Into::into),
        })
    }

    fn record(request: Request, response: Option<Response>, role: Role) -> Record {
        let ex = Exchange {
            req_ts_ns: 1_763_800_000_123_456_789,
            resp_ts_ns: response.as_ref().map(|_| 1_763_800_000_123_999_999),
            request,
            response,
            outcome: Outcome::Complete,
            truncated: false,
            trace: None,
        };
        let a: std::net::SocketAddr = "[::1]:40000".parse().expect("literal");
        let b: std::net::SocketAddr = "127.0.0.1:80".parse().expect("literal");
        Record::new(ex, role, a, b, None)
    }

    /// Every shape a record takes, with strings that need escapes where a user's bytes go.
    fn shapes() -> Vec<Record> {
        let odd = "/q?a=\"x\"&b=\\y\n\t\u{1}\u{7f}é\u{2028}";
        let mut out = vec![
            record(http("/a", None, None), None, Role::Client),
            record(
                http(odd, Some("h\"ost"), Some("/q")),
                Some(Response::Http(HttpResponse {
                    status: 404,
                    body_bytes: u64::MAX,
                })),
                Role::Server,
            ),
            record(
                Request::Redis(RedisRequest {
                    command: "GET".into(),
                    args: 1,
                }),
                Some(Response::Redis(RedisResponse {
                    error: true,
                    message: Some("ERR \"bad\"\r\n".into()),
                })),
                Role::Unknown,
            ),
            record(
                Request::Redis(RedisRequest {
                    command: "PING".into(),
                    args: 0,
                }),
                Some(Response::Redis(RedisResponse {
                    error: false,
                    message: None,
                })),
                Role::Server,
            ),
            record(
                Request::Mysql(MysqlRequest {
                    command: "COM_QUERY".into(),
                    query: Some("SELECT ?".into()),
                    operation: Some("SELECT".into()),
                    table: None,
                    schema: None,
                }),
                Some(Response::Mysql(MysqlResponse {
                    error: false,
                    code: None,
                    message: None,
                    rows: Some(3),
                })),
                Role::Client,
            ),
            record(
                Request::Pgsql(PgsqlRequest {
                    query: "SELECT 1".into(),
                    kind: "simple".into(),
                    operation: None,
                    table: None,
                }),
                Some(Response::Pgsql(PgsqlResponse {
                    error: true,
                    code: Some("42P01".into()),
                    message: Some("relation \"t\" does not exist".into()),
                    rows: None,
                })),
                Role::Server,
            ),
            record(
                Request::Dns(DnsRequest {
                    name: "example.test".into(),
                    qtype: "A".into(),
                    id: 7,
                    class: None,
                    opcode: None,
                }),
                Some(Response::Dns(DnsResponse {
                    rcode: "NOERROR".into(),
                    answers: 1,
                    tc: false,
                })),
                Role::Client,
            ),
        ];
        let mut full = record(http("/", Some("h"), Some("/")), None, Role::Server);
        full.status = Status::Timeout;
        full.truncated = true;
        full.process = Some(ProcessRecord {
            pid: u32::MAX,
            comm: "tab\there".into(),
        });
        full.k8s = Some(std::sync::Arc::new(crate::k8s::Shared::new(K8sRecord {
            namespace: "ns".into(),
            pod: "p-1".into(),
            pod_uid: "uid".into(),
            container: Some("c".into()),
            workload: None,
            workload_kind: None,
            service: "svc".into(),
            node: Some("n".into()),
        })));
        full.peer_k8s = Some(std::sync::Arc::new(crate::k8s::Shared::new(
            crate::k8s::PeerRecord(wirelens_k8s::meta::Peer {
                namespace: "ns".into(),
                pod: Some("q\"-1".into()),
                service: None,
                workload: Some("w".into()),
            }),
        )));
        full.trace = Some(TraceContext {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
        });
        out.push(full);
        let mut reset = record(http("", None, None), None, Role::Client);
        reset.status = Status::Reset;
        reset.latency_ns = Some(0);
        reset.ts_ns = 0;
        out.push(reset);
        let mut error = reset_like(Status::Error);
        error.client.port = 0;
        out.push(error);
        out
    }

    fn reset_like(status: Status) -> Record {
        let mut r = record(http("/e", None, None), None, Role::Server);
        r.status = status;
        r
    }

    #[test]
    fn writes_the_bytes_serde_json_writes() {
        for r in shapes() {
            let mut ours = Vec::new();
            write_record(&mut ours, &r).expect("writing to a Vec");
            let theirs = serde_json::to_vec(&r).expect("serde_json");
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs)
            );
        }
    }

    #[test]
    fn numbers_are_plain_decimals() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            999,
            1_000,
            12_345,
            1_763_800_000_123_456_789,
            u64::from(u32::MAX),
            u64::MAX,
        ]
        .into_iter()
        .chain((0..100_000).map(|i| i * 7919))
        {
            let mut out = Vec::new();
            number(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
