//! The span export call: an `ExportTraceServiceRequest` already encoded ([`super::spans::request`])
//! sent as it is, over gRPC (`TraceService/Export`, through a codec that passes the bytes
//! through) or HTTP/protobuf (`POST` to `/v1/traces`). A failure the specification calls
//! transient (the collector unreachable, HTTP 429, 502, 503, 504, gRPC UNAVAILABLE and the
//! like) is tried again after 100, 200 and 400 ms; then, or for any other failure, the
//! batch is the caller's to count as dropped.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::config::{Protocol, SignalTarget};

pub enum TracesClient {
    Grpc {
        channel: tonic::transport::Channel,
        headers: tonic::metadata::MetadataMap,
        timeout: Duration,
    },
    Http {
        client: reqwest::Client,
        /// Parsed once: a URL given as text is parsed again by every request.
        url: reqwest::Url,
        headers: reqwest::header::HeaderMap,
    },
}

/// Request bytes out as they are; the response decoded by prost.
#[derive(Clone, Copy, Default)]
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = PassThrough;
    type Decoder = PassThrough;
    fn encoder(&mut self) -> PassThrough {
        PassThrough
    }
    fn decoder(&mut self) -> PassThrough {
        PassThrough
    }
}

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        let n = src.remaining();
        ExportTraceServiceResponse::decode(src.take(n))
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable response: {e}")))
    }
}

impl TracesClient {
    /// Connects lazily: a collector that is not there yet is not an error here.
    pub fn new(t: &SignalTarget) -> anyhow::Result<TracesClient> {
        match t.protocol {
            Protocol::Grpc => Ok(TracesClient::Grpc {
                channel: super::grpc_channel(t)?,
                headers: super::metadata(&t.headers)?,
                timeout: t.timeout,
            }),
            Protocol::HttpProtobuf => Ok(TracesClient::Http {
                client: super::http_client(t)?,
                url: super::http_url(t)?,
                headers: super::http_headers(&t.headers)?,
            }),
        }
    }

    /// Exports an encoded request, trying a transient failure again ([`RETRIES`] times):
    /// the spans the collector refused (a partial success), or why it failed.
    pub async fn export(&mut self, body: Vec<u8>) -> Result<u64, String> {
        let body = Bytes::from(body);
        let mut delay = Duration::from_millis(100);
        for _ in 0..RETRIES {
            match self.attempt(body.clone()).await {
                Err(Failure::Transient(_)) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other.map_err(Failure::into_message),
            }
        }
        self.attempt(body).await.map_err(Failure::into_message)
    }

    async fn attempt(&mut self, body: Bytes) -> Result<u64, Failure> {
        match self {
            TracesClient::Grpc {
                channel,
                headers,
                timeout,
            } => {
                let mut grpc = tonic::client::Grpc::new(channel.clone());
                grpc.ready()
                    .await
                    .map_err(|e| Failure::Transient(format!("gRPC: not ready: {e}")))?;
                let mut r = tonic::Request::new(body);
                *r.metadata_mut() = headers.clone();
                r.set_timeout(*timeout);
                let path = http::uri::PathAndQuery::from_static(
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                );
                match grpc.unary(r, path, PassThrough).await {
                    Ok(resp) => Ok(rejected(&resp.into_inner())),
                    Err(status) => {
                        use tonic::Code::*;
                        let why = format!("gRPC {:?}: {}", status.code(), status.message());
                        Err(match status.code() {
                            Unavailable | DeadlineExceeded | Aborted | OutOfRange | DataLoss
                            | Cancelled | ResourceExhausted => Failure::Transient(why),
                            _ => Failure::Final(why),
                        })
                    }
                }
            }
            TracesClient::Http {
                client,
                url,
                headers,
            } => {
                let resp = client
                    .post(url.clone())
                    .headers(headers.clone())
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| Failure::Transient(format!("HTTP: {e}")))?;
                let status = resp.status();
                if !status.is_success() {
                    let why = format!("HTTP status {status}");
                    return Err(match status.as_u16() {
                        429 | 502 | 503 | 504 => Failure::Transient(why),
                        _ => Failure::Final(why),
                    });
                }
                // A body, when there is one, may say some spans were refused.
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| Failure::Transient(format!("HTTP: {e}")))?;
                Ok(ExportTraceServiceResponse::decode(bytes.as_ref()).map_or(0, |r| rejected(&r)))
            }
        }
    }
}

/// Tries after the first when a failure is transient.
const RETRIES: usize = 3;

/// Why an attempt failed, and whether trying again may help.
enum Failure {
    Transient(String),
    Final(String),
}

impl Failure {
    fn into_message(self) -> String {
        match self {
            Failure::Transient(m) | Failure::Final(m) => m,
        }
    }
}

/// The spans a collector's partial success refused.
fn rejected(r: &ExportTraceServiceResponse) -> u64 {
    r.partial_success
        .as_ref()
        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
}
