//! An OTLP receiver for the tests, built from the official protobuf service definitions
//! (opentelemetry-proto): a tonic gRPC server (TraceService, MetricsService) or a small
//! HTTP/1.1 server decoding the same messages from `POST /v1/traces` and `/v1/metrics`
//! (OTLP specification, "OTLP/HTTP", binary protobuf encoding).
//!
//! It runs on its own tokio runtime: [`Receiver::stop`] drops that runtime, which closes the
//! listener and every connection, as a collector that went away would; [`Receiver::start_again`]
//! listens on the same port again with the same store.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, HistogramDataPoint};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Grpc,
    Http,
}

impl Wire {
    /// The value of `otlp.protocol`.
    pub fn protocol(self) -> &'static str {
        match self {
            Wire::Grpc => "grpc",
            Wire::Http => "http/protobuf",
        }
    }
}

/// Everything received, in arrival order.
#[derive(Debug, Default)]
pub struct Store {
    pub traces: Mutex<Vec<ExportTraceServiceRequest>>,
    pub metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
    /// Header (metadata) values of every request, by lower-case name.
    pub headers: Mutex<Vec<BTreeMap<String, String>>>,
}

struct Grpc(Arc<Store>);

fn headers_of(m: &tonic::metadata::MetadataMap) -> BTreeMap<String, String> {
    m.clone()
        .into_headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0
            .headers
            .lock()
            .unwrap()
            .push(headers_of(req.metadata()));
        self.0.traces.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0
            .headers
            .lock()
            .unwrap()
            .push(headers_of(req.metadata()));
        self.0.metrics.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

pub struct Receiver {
    pub wire: Wire,
    pub port: u16,
    pub store: Arc<Store>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Receiver {
    pub fn start(wire: Wire) -> Receiver {
        let mut r = Receiver {
            wire,
            port: 0,
            store: Arc::new(Store::default()),
            rt: None,
        };
        r.listen();
        r
    }

    /// `otlp.endpoint` for this receiver.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn listen(&mut self) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("receiver runtime");
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        // Rebinding right after a stop can meet the old socket for a moment.
        let start = Instant::now();
        let listener = loop {
            match rt.block_on(tokio::net::TcpListener::bind(addr)) {
                Ok(l) => break l,
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("receiver cannot listen on {addr}: {e}"),
            }
        };
        self.port = listener.local_addr().expect("local addr").port();
        let store = self.store.clone();
        match self.wire {
            Wire::Grpc => {
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                let traces = TraceServiceServer::new(Grpc(store.clone()));
                let metrics = MetricsServiceServer::new(Grpc(store));
                rt.spawn(async move {
                    let _ = tonic::transport::Server::builder()
                        .add_service(traces)
                        .add_service(metrics)
                        .serve_with_incoming(incoming)
                        .await;
                });
            }
            Wire::Http => {
                rt.spawn(async move {
                    while let Ok((conn, _)) = listener.accept().await {
                        tokio::spawn(serve_http(conn, store.clone()));
                    }
                });
            }
        }
        self.rt = Some(rt);
    }

    /// The collector goes away: listener and connections closed.
    pub fn stop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }

    /// The collector comes back on the same port.
    pub fn start_again(&mut self) {
        assert!(self.rt.is_none(), "receiver still running");
        self.listen();
    }

    /// Every span received, with its resource's attributes.
    pub fn spans(&self) -> Vec<(Attrs, Span)> {
        let mut out = Vec::new();
        for req in self.store.traces.lock().unwrap().iter() {
            for rs in &req.resource_spans {
                let res = attrs(
                    rs.resource
                        .as_ref()
                        .map(|r| r.attributes.as_slice())
                        .unwrap_or_default(),
                );
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        out.push((res.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }

    /// The histogram points of the last request that held `metric`, with their resource's
    /// attributes (cumulative: the last request has the totals).
    pub fn last_points(&self, metric: &str) -> Vec<(Attrs, HistogramDataPoint)> {
        let reqs = self.store.metrics.lock().unwrap();
        for req in reqs.iter().rev() {
            let mut out = Vec::new();
            for rm in &req.resource_metrics {
                let res = attrs(
                    rm.resource
                        .as_ref()
                        .map(|r| r.attributes.as_slice())
                        .unwrap_or_default(),
                );
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        if m.name != metric {
                            continue;
                        }
                        assert_eq!(m.unit, "s", "{metric}");
                        if let Some(metric::Data::Histogram(h)) = &m.data {
                            for p in &h.data_points {
                                out.push((res.clone(), p.clone()));
                            }
                        } else {
                            panic!("{metric} is not a histogram");
                        }
                    }
                }
            }
            if !out.is_empty() {
                return out;
            }
        }
        Vec::new()
    }

    pub fn metric_requests(&self) -> usize {
        self.store.metrics.lock().unwrap().len()
    }

    pub fn trace_requests(&self) -> usize {
        self.store.traces.lock().unwrap().len()
    }

    /// Waits up to `limit` for `cond` to hold.
    pub fn wait(&self, limit: Duration, what: &str, cond: impl Fn(&Receiver) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            assert!(
                start.elapsed() < limit,
                "receiver: {what} not within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Attributes as text: strings as they are, numbers and booleans formatted.
pub type Attrs = BTreeMap<String, String>;

pub fn attrs(kvs: &[KeyValue]) -> Attrs {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

/// One HTTP/1.1 keep-alive connection: `POST /v1/traces` or `/v1/metrics` with a
/// Content-Length protobuf body, answered 200 with the empty response message.
async fn serve_http(mut conn: tokio::net::TcpStream, store: Arc<Store>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_string();
        let mut headers = BTreeMap::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 65536];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
        let path = request_line.split_whitespace().nth(1).unwrap_or_default();
        let ok_type =
            headers.get("content-type").map(String::as_str) == Some("application/x-protobuf");
        let (status, reply) = match path {
            "/v1/traces" if ok_type => match ExportTraceServiceRequest::decode(body.as_slice()) {
                Ok(req) => {
                    store.headers.lock().unwrap().push(headers);
                    store.traces.lock().unwrap().push(req);
                    (
                        "200 OK",
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
                Err(_) => ("400 Bad Request", Vec::new()),
            },
            "/v1/metrics" if ok_type => {
                match ExportMetricsServiceRequest::decode(body.as_slice()) {
                    Ok(req) => {
                        store.headers.lock().unwrap().push(headers);
                        store.metrics.lock().unwrap().push(req);
                        (
                            "200 OK",
                            ExportMetricsServiceResponse::default().encode_to_vec(),
                        )
                    }
                    Err(_) => ("400 Bad Request", Vec::new()),
                }
            }
            _ if !ok_type => ("415 Unsupported Media Type", Vec::new()),
            _ => ("404 Not Found", Vec::new()),
        };
        let mut out = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        )
        .into_bytes();
        out.extend_from_slice(&reply);
        if conn.write_all(&out).await.is_err() {
            return;
        }
    }
}
