//! The aggregator's series as OTLP metrics, one `ResourceMetrics` per observed service, sent
//! once per aggregation period.
//!
//! Why not the SDK's `MeterProvider`: the SDK aggregates measurements itself and its
//! `ResourceMetrics` cannot be built from outside (0.33: `pub(crate)` fields), so the
//! aggregator's histograms, already bucketed with the same boundaries, budgeted and expired,
//! could only reach it by being measured twice. Instead the request is built from the
//! official protobuf messages (opentelemetry-proto) and sent with the same two transports
//! the span exporter uses: tonic for gRPC, reqwest for HTTP/protobuf.
//!
//! Names and attributes (semantic conventions 1.3x, "HTTP metrics", "Database metrics",
//! "DNS metrics"): `http.server.request.duration`, `http.client.request.duration`,
//! `db.client.operation.duration` (with `db.system.name`) and `dns.lookup.duration`, unit
//! `s`, cumulative explicit-bucket histograms. Series the conventions have no metric for (a
//! database or DNS server observed from its own side) are not sent over OTLP; Prometheus
//! has them. The peer of a server series is `client.address`: two clients are two series in
//! the aggregator and must stay two data points. A series' start time is the time of the
//! snapshot before the one that first saw it (or the agent's start). Snapshots are taken
//! right after each period closes, so a series the aggregator expired is missing from the
//! next one and, when it comes back from zero, gets a new start time, as cumulative
//! temporality requires.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, AggregationTemporality, Histogram, HistogramDataPoint, Metric, ResourceMetrics,
    ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::config::{Protocol, SignalTarget};
use crate::aggregate::histogram::BOUNDS_NS;
use crate::aggregate::{Aggregator, Family, Operation, SeriesKey};

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        key_strindex: 0,
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

/// The resource of one observed service, as protobuf.
pub fn resource(attrs: &[(String, String)]) -> Resource {
    Resource {
        attributes: attrs.iter().map(|(k, v)| s(k, v.clone())).collect(),
        dropped_attributes_count: 0,
        entity_refs: Vec::new(),
    }
}

/// The metric name of a family, none for those the conventions do not define.
pub fn metric_name(f: Family) -> Option<&'static str> {
    match f {
        Family::HttpServer => Some("http.server.request.duration"),
        Family::HttpClient => Some("http.client.request.duration"),
        Family::DbClient(_) => Some("db.client.operation.duration"),
        Family::DnsClient => Some("dns.lookup.duration"),
        Family::DbServer(_) | Family::DnsServer => None,
    }
}

fn description(name: &str) -> &'static str {
    match name {
        "http.server.request.duration" => "Duration of HTTP server requests.",
        "http.client.request.duration" => "Duration of HTTP client requests.",
        "db.client.operation.duration" => "Duration of database client operations.",
        _ => "The time taken to perform a DNS lookup.",
    }
}

/// The data point attributes of a series.
pub fn attributes(key: &SeriesKey) -> Vec<KeyValue> {
    let mut a = Vec::with_capacity(8);
    if let Family::DbClient(system) = key.family {
        a.push(s("db.system.name", system.name()));
    }
    match &key.operation {
        Operation::Http {
            method,
            route,
            status_code,
        } => {
            a.push(s("http.request.method", *method));
            // A client does not know the server's routes: the conventions call the template
            // of the path it asked for `url.template` (as the Prometheus labels do).
            let route_key = if key.family.is_client() {
                "url.template"
            } else {
                "http.route"
            };
            a.push(s(route_key, route.clone()));
            if let Some(code) = status_code {
                a.push(i("http.response.status_code", i64::from(*code)));
            }
        }
        Operation::Db {
            operation,
            collection,
        } => {
            if !operation.is_empty() {
                a.push(s("db.operation.name", operation.clone()));
            }
            if !collection.is_empty() {
                a.push(s("db.collection.name", collection.clone()));
            }
        }
        Operation::Dns { qtype } => {
            if !qtype.is_empty() {
                a.push(s("dns.question.type", qtype.clone()));
            }
        }
        Operation::Overflow => a.push(s("otel.metric.overflow", "true")),
    }
    if key.family.is_client() {
        if !key.peer_address.is_empty() {
            a.push(s("server.address", key.peer_address.clone()));
        }
        if let Some(p) = key.peer_port {
            a.push(i("server.port", i64::from(p)));
        }
    } else if !key.peer_address.is_empty() {
        a.push(s("client.address", key.peer_address.clone()));
    }
    if !key.error_type.is_empty() {
        a.push(s("error.type", key.error_type.clone()));
    }
    a
}

/// Start times of the series already exported, so cumulative points keep theirs.
#[derive(Debug, Default)]
pub struct StartTimes {
    /// (service, key) -> (start ns, requests at the last export).
    seen: HashMap<(String, SeriesKey), (u64, u64)>,
    /// End of the previous export (the agent's start before the first).
    last_ns: u64,
}

impl StartTimes {
    pub fn new(now_ns: u64) -> StartTimes {
        StartTimes {
            seen: HashMap::new(),
            last_ns: now_ns,
        }
    }
}

/// Builds the request of one period: every exportable series of `agg`, per service.
/// `resource_of` gives a service's resource attributes. Returns the request and its points.
pub fn snapshot(
    agg: &Aggregator,
    starts: &mut StartTimes,
    now_ns: u64,
    resource_of: &dyn Fn(&str) -> Vec<(String, String)>,
) -> (ExportMetricsServiceRequest, usize) {
    // service -> metric name -> points
    let mut by_service: HashMap<&str, HashMap<&'static str, Vec<HistogramDataPoint>>> =
        HashMap::new();
    let mut seen = HashMap::with_capacity(starts.seen.len());
    let bounds: Vec<f64> = BOUNDS_NS.iter().map(|b| *b as f64 / 1e9).collect();
    let mut points = 0;
    for sr in agg.series() {
        let Some(name) = metric_name(sr.key.family) else {
            continue;
        };
        let id = (sr.service.to_string(), sr.key.clone());
        let requests = sr.series.requests;
        let start = match starts.seen.get(&id) {
            Some(&(start, last)) if requests >= last => start,
            _ => starts.last_ns,
        };
        seen.insert(id, (start, requests));
        let h = &sr.series.latency;
        by_service
            .entry(sr.service)
            .or_default()
            .entry(name)
            .or_default()
            .push(HistogramDataPoint {
                attributes: attributes(sr.key),
                start_time_unix_nano: start,
                time_unix_nano: now_ns,
                count: h.count(),
                sum: Some(h.sum_seconds()),
                bucket_counts: h.buckets().to_vec(),
                explicit_bounds: bounds.clone(),
                exemplars: Vec::new(),
                flags: 0,
                min: None,
                max: None,
            });
        points += 1;
    }
    starts.seen = seen;
    starts.last_ns = now_ns;
    let mut services: Vec<_> = by_service.into_iter().collect();
    services.sort_by(|a, b| a.0.cmp(b.0));
    let resource_metrics = services
        .into_iter()
        .map(|(service, metrics)| {
            let mut metrics: Vec<_> = metrics.into_iter().collect();
            metrics.sort_by(|a, b| a.0.cmp(b.0));
            ResourceMetrics {
                resource: Some(resource(&resource_of(service))),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics: metrics
                        .into_iter()
                        .map(|(name, data_points)| Metric {
                            name: name.to_string(),
                            description: description(name).to_string(),
                            unit: "s".to_string(),
                            metadata: Vec::new(),
                            data: Some(metric::Data::Histogram(Histogram {
                                data_points,
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            })),
                        })
                        .collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }
        })
        .collect();
    (ExportMetricsServiceRequest { resource_metrics }, points)
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "wirelens".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

/// Sends metric requests over gRPC or HTTP/protobuf.
pub enum MetricsClient {
    Grpc {
        client: MetricsServiceClient<tonic::transport::Channel>,
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

impl MetricsClient {
    /// Connects lazily: a collector that is not there yet is not an error here.
    pub fn new(t: &SignalTarget) -> anyhow::Result<MetricsClient> {
        match t.protocol {
            Protocol::Grpc => Ok(MetricsClient::Grpc {
                client: MetricsServiceClient::new(super::grpc_channel(t)?),
                headers: super::metadata(&t.headers)?,
                timeout: t.timeout,
            }),
            Protocol::HttpProtobuf => Ok(MetricsClient::Http {
                client: super::http_client(t)?,
                url: super::http_url(t)?,
                headers: super::http_headers(&t.headers)?,
            }),
        }
    }

    /// One export call; the error says why it failed.
    pub async fn export(&mut self, req: ExportMetricsServiceRequest) -> Result<(), String> {
        match self {
            MetricsClient::Grpc {
                client,
                headers,
                timeout,
            } => {
                let mut r = tonic::Request::new(req);
                *r.metadata_mut() = headers.clone();
                r.set_timeout(*timeout);
                match client.export(r).await {
                    Ok(resp) => match resp.into_inner().partial_success {
                        Some(p) if p.rejected_data_points > 0 => Err(format!(
                            "collector rejected {} data points: {}",
                            p.rejected_data_points, p.error_message
                        )),
                        _ => Ok(()),
                    },
                    Err(status) => Err(format!("gRPC {:?}: {}", status.code(), status.message())),
                }
            }
            MetricsClient::Http {
                client,
                url,
                headers,
            } => {
                let resp = client
                    .post(url.clone())
                    .headers(headers.clone())
                    .header("content-type", "application/x-protobuf")
                    .body(req.encode_to_vec())
                    .send()
                    .await
                    .map_err(|e| format!("HTTP: {e}"))?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP status {}", resp.status()))
                }
            }
        }
    }
}
