//! Records (shared/record-schema.md) and their writers: JSON Lines and a table.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use wirelens_protocols::{Exchange, Request, Response, Role, Status, TraceContext};

mod json;

/// One reconstructed exchange, exactly as record-schema.md defines it.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub ts_ns: u64,
    pub latency_ns: Option<u64>,
    pub protocol: &'static str,
    pub role: Role,
    pub client: Endpoint,
    pub server: Endpoint,
    pub process: Option<ProcessRecord>,
    /// The observed process's pod, when it runs in one (crate::k8s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s: Option<crate::k8s::SharedK8s>,
    /// What the other end is in the cluster, when its address is a known pod or Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_k8s: Option<crate::k8s::SharedPeer>,
    pub request: Request,
    pub response: Option<Response>,
    pub status: Status,
    pub truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
}

/// One end of a connection as records write it. The text is shared (`Arc`): every record of
/// a connection carries the same ends and process, and cloning them per record was a fifth
/// of the agent's allocations under load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Arc<str>,
    pub port: u16,
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Self {
        Endpoint {
            ip: a.ip().to_string().into(),
            port: a.port(),
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Endpoint", 2)?;
        st.serialize_field("ip", &*self.ip)?;
        st.serialize_field("port", &self.port)?;
        st.end()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessRecord {
    pub pid: u32,
    pub comm: Arc<str>,
}

impl Serialize for ProcessRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ProcessRecord", 2)?;
        st.serialize_field("pid", &self.pid)?;
        st.serialize_field("comm", &*self.comm)?;
        st.end()
    }
}

impl Record {
    /// Builds the record of one exchange on a connection whose ends and observer are known.
    pub fn new(
        ex: Exchange,
        role: Role,
        client: SocketAddr,
        server: SocketAddr,
        process: Option<ProcessRecord>,
    ) -> Record {
        Record::from_parts(ex, role, client.into(), server.into(), process)
    }

    /// [`Record::new`] with the endpoints already in their record form.
    pub fn from_parts(
        ex: Exchange,
        role: Role,
        client: Endpoint,
        server: Endpoint,
        process: Option<ProcessRecord>,
    ) -> Record {
        Record {
            ts_ns: ex.req_ts_ns,
            latency_ns: ex.latency_ns(),
            protocol: ex.protocol().name(),
            role,
            client,
            server,
            process,
            k8s: None,
            peer_k8s: None,
            status: ex.status(role),
            truncated: ex.truncated,
            request: ex.request,
            response: ex.response,
            trace: ex.trace,
        }
    }
}

/// A GET of `/` answered 200 at 2 ns (or at `resp_ts_ns`) for a request sent at 1 ns, between
/// `client` and `server`, seen as `role` by `process`: the record the unit tests start from.
#[cfg(test)]
pub(crate) fn served_get(
    client: &str,
    server: &str,
    role: Role,
    process: Option<ProcessRecord>,
    resp_ts_ns: Option<u64>,
) -> Record {
    use wirelens_protocols::http::{HttpRequest, HttpResponse};
    use wirelens_protocols::Outcome;
    let ex = Exchange {
        req_ts_ns: 1,
        resp_ts_ns: Some(resp_ts_ns.unwrap_or(2)),
        request: Request::Http(HttpRequest {
            method: "GET".into(),
            route: None,
            path: "/".into(),
            host: None,
        }),
        response: Some(Response::Http(HttpResponse {
            status: 200,
            body_bytes: 0,
        })),
        outcome: Outcome::Complete,
        truncated: false,
        trace: None,
    };
    let (c, s): (SocketAddr, SocketAddr) = match (client.parse(), server.parse()) {
        (Ok(c), Ok(s)) => (c, s),
        _ => panic!("test addresses {client} {server}"),
    };
    Record::new(ex, role, c, s, process)
}

/// Output formats of `run` and `replay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line (record-schema.md).
    Jsonl,
    /// A human-readable table.
    Table,
    /// No records: metrics and OpenTelemetry export only (the records are still counted).
    None,
}

/// Writes records in one format to a sink.
pub struct RecordWriter {
    format: Format,
    out: Box<dyn Write + Send>,
    header_done: bool,
    /// One JSON line is built here, then written at once: serializing straight into the
    /// boxed sink would cost a dynamic call per fragment.
    line: Vec<u8>,
    pub written: u64,
}

impl RecordWriter {
    pub fn new(format: Format, out: Box<dyn Write + Send>) -> RecordWriter {
        RecordWriter {
            format,
            out,
            header_done: false,
            line: Vec::with_capacity(1024),
            written: 0,
        }
    }

    /// Stdout, or the file at `path` (created or truncated).
    pub fn open(format: Format, path: Option<&std::path::Path>) -> io::Result<RecordWriter> {
        let out: Box<dyn Write + Send> = match path {
            Some(p) => Box::new(io::BufWriter::new(
                std::fs::File::create(p)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?,
            )),
            None => Box::new(io::BufWriter::new(io::stdout())),
        };
        Ok(RecordWriter::new(format, out))
    }

    pub fn write(&mut self, r: &Record) -> io::Result<()> {
        match self.format {
            Format::Jsonl => {
                self.line.clear();
                json::write_record(&mut self.line, r)?;
                self.line.push(b'\n');
                self.out.write_all(&self.line)?;
            }
            Format::Table => {
                if !self.header_done {
                    writeln!(
                        self.out,
                        "{:<8} {:<6} {:<7} {:<22} {:<22} {:<16} {:<9} {:>10}  REQUEST",
                        "TIME", "PROTO", "ROLE", "CLIENT", "SERVER", "PROCESS", "STATUS", "LATENCY"
                    )?;
                    self.header_done = true;
                }
                writeln!(self.out, "{}", table_row(r))?;
            }
            Format::None => {}
        }
        self.written += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn table_row(r: &Record) -> String {
    let secs = r.ts_ns / 1_000_000_000;
    let time = format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    );
    let role = match r.role {
        Role::Client => "client",
        Role::Server => "server",
        Role::Unknown => "unknown",
    };
    let status = match r.status {
        Status::Ok => "ok",
        Status::Error => "error",
        Status::Timeout => "timeout",
        Status::Reset => "reset",
    };
    let latency = match r.latency_ns {
        Some(ns) if ns >= 1_000_000 => format!("{:.2}ms", ns as f64 / 1e6),
        Some(ns) => format!("{:.1}us", ns as f64 / 1e3),
        None => "-".into(),
    };
    let process = r
        .process
        .as_ref()
        .map(|p| format!("{}/{}", p.comm, p.pid))
        .unwrap_or_else(|| "-".into());
    let summary = match (&r.request, &r.response) {
        (Request::Http(q), Some(Response::Http(s))) => {
            format!("{} {} -> {}", q.method, q.path, s.status)
        }
        (Request::Http(q), _) => format!("{} {}", q.method, q.path),
        (req, _) => serde_json::to_string(req).unwrap_or_default(),
    };
    format!(
        "{time:<8} {:<6} {role:<7} {:<22} {:<22} {process:<16} {status:<9} {latency:>10}  {summary}",
        r.protocol,
        format!("{}:{}", r.client.ip, r.client.port),
        format!("{}:{}", r.server.ip, r.server.port),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink whose bytes the test can read after the writer took it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn record() -> Record {
        served_get(
            "127.0.0.1:4000",
            "127.0.0.1:80",
            Role::Server,
            None,
            Some(5),
        )
    }

    #[test]
    fn each_format_writes_what_it_says() {
        for (format, lines) in [(Format::Jsonl, 3), (Format::Table, 4), (Format::None, 0)] {
            let sink = Shared::default();
            let mut w = RecordWriter::new(format, Box::new(sink.clone()));
            for _ in 0..3 {
                w.write(&record()).unwrap();
            }
            w.flush().unwrap();
            let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
            assert_eq!(text.lines().count(), lines, "{format:?}: {text}");
            assert_eq!(w.written, 3, "{format:?} counts every record");
            if format == Format::Jsonl {
                let v: serde_json::Value =
                    serde_json::from_str(text.lines().next().unwrap()).unwrap();
                assert_eq!(v["client"]["ip"], "127.0.0.1");
                assert_eq!(v["latency_ns"], 4);
            }
        }
    }
}
