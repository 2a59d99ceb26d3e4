//! The `otlp:` section of the configuration file and the standard `OTEL_*` environment
//! variables it overrides (OpenTelemetry specification, "OTLP Exporter Configuration" and
//! "Resource SDK": `OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}{ENDPOINT,PROTOCOL,HEADERS,TIMEOUT}`,
//! `OTEL_RESOURCE_ATTRIBUTES`).
//!
//! Precedence, per value: the config file, then the per-signal variable, then the general one,
//! then the default. Without any endpoint the export is off.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// The `otlp:` section. Every field is optional; unset fields come from the environment.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Base endpoint of the collector (`OTEL_EXPORTER_OTLP_ENDPOINT`), e.g.
    /// `http://127.0.0.1:4317` for gRPC or `http://127.0.0.1:4318` for HTTP, where
    /// `/v1/traces` and `/v1/metrics` are appended.
    pub endpoint: Option<String>,
    /// Full URL for spans (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), used as is.
    pub traces_endpoint: Option<String>,
    /// Full URL for metrics (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`), used as is.
    pub metrics_endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (`OTEL_EXPORTER_OTLP_PROTOCOL`); default `http/protobuf`.
    pub protocol: Option<String>,
    /// Headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`), e.g. an API key.
    pub headers: Option<BTreeMap<String, String>>,
    /// Time limit of one export call, ms (`OTEL_EXPORTER_OTLP_TIMEOUT`); default 10000.
    pub timeout_ms: Option<u64>,
    /// Attributes added to every observed service's resource (`OTEL_RESOURCE_ATTRIBUTES`).
    /// `service.name` is always the observed service's own.
    pub resource_attributes: Option<BTreeMap<String, String>>,
    /// Export one span per exchange (default true).
    pub traces: Option<bool>,
    /// Export the aggregated metrics once per aggregation period (default true).
    pub metrics: Option<bool>,
    /// Share of traces exported, 0.0..=1.0, decided per trace id (default 1.0).
    pub sampling_ratio: Option<f64>,
    /// Spans waiting for export at most; more are dropped and counted (default 4096).
    pub queue_size: Option<usize>,
    /// Spans in one export call at most (default 512).
    pub batch_size: Option<usize>,
    /// Longest wait, ms, for a batch to fill before it is sent part full
    /// (`OTEL_BSP_SCHEDULE_DELAY`); default 1000, 0 sends whatever is queued at once.
    pub batch_delay_ms: Option<u64>,
}

/// Wire protocol of an exporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Where and how one signal goes.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalTarget {
    /// The URL the exporter sends to (for HTTP, the signal path included).
    pub url: String,
    pub protocol: Protocol,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

/// Checked OTLP settings ([`OtlpConfig::build`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpSettings {
    /// None: spans are not exported.
    pub traces: Option<SignalTarget>,
    /// None: metrics are not exported.
    pub metrics: Option<SignalTarget>,
    pub resource_attributes: Vec<(String, String)>,
    pub sampling_ratio: f64,
    pub queue_size: usize,
    pub batch_size: usize,
    /// How long a part-full batch waits for more spans.
    pub batch_delay: Duration,
}

impl OtlpSettings {
    /// The ports the exporters send to (the URL's, or the scheme's: 80, 443).
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = [&self.traces, &self.metrics]
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let uri: http::Uri = t.url.parse().ok()?;
                uri.port_u16().or_else(|| {
                    Some(if uri.scheme_str() == Some("https") {
                        443
                    } else {
                        80
                    })
                })
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

/// A bad `otlp` value or variable: the key (or variable) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOtlp {
    pub field: String,
    pub message: String,
}

/// Longest `otlp.batch_delay_ms` taken: spans held longer would look lost to whoever waits
/// for them.
const MAX_BATCH_DELAY_MS: u64 = 60_000;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidOtlp {
    InvalidOtlp {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Clone, Copy)]
enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn env(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "v1/traces",
            Signal::Metrics => "v1/metrics",
        }
    }
}

impl OtlpConfig {
    /// Checks the section against the environment `env` (a lookup, `std::env::var` live) and
    /// builds the settings; `Ok(None)` when no endpoint is configured anywhere.
    pub fn build(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpSettings>, InvalidOtlp> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let ratio = self.sampling_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&ratio) {
            return Err(invalid(
                "otlp.sampling_ratio",
                format!("{ratio} is out of range 0.0..=1.0"),
            ));
        }
        let queue_size = self.queue_size.unwrap_or(4096);
        if queue_size == 0 {
            return Err(invalid("otlp.queue_size", "must be at least 1"));
        }
        let batch_size = self.batch_size.unwrap_or(512);
        if batch_size == 0 {
            return Err(invalid("otlp.batch_size", "must be at least 1"));
        }
        let (delay_field, batch_delay_ms) = match self.batch_delay_ms {
            Some(ms) => ("otlp.batch_delay_ms", ms),
            None => match var("OTEL_BSP_SCHEDULE_DELAY") {
                Some(v) => (
                    "OTEL_BSP_SCHEDULE_DELAY",
                    v.trim().parse::<u64>().map_err(|_| {
                        invalid(
                            "OTEL_BSP_SCHEDULE_DELAY",
                            format!("`{v}` is not a number of milliseconds"),
                        )
                    })?,
                ),
                None => ("otlp.batch_delay_ms", 1000),
            },
        };
        if batch_delay_ms > MAX_BATCH_DELAY_MS {
            return Err(invalid(
                delay_field,
                format!("{batch_delay_ms} is more than {MAX_BATCH_DELAY_MS} (a minute)"),
            ));
        }
        let mut resource_attributes = match var("OTEL_RESOURCE_ATTRIBUTES") {
            Some(text) => parse_pairs(&text)
                .map_err(|m| invalid("OTEL_RESOURCE_ATTRIBUTES", m))?
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            None => BTreeMap::new(),
        };
        if let Some(attrs) = &self.resource_attributes {
            resource_attributes.extend(attrs.clone());
        }
        resource_attributes.remove("service.name");
        let traces = if self.traces.unwrap_or(true) {
            self.target(Signal::Traces, &var)?
        } else {
            None
        };
        let metrics = if self.metrics.unwrap_or(true) {
            self.target(Signal::Metrics, &var)?
        } else {
            None
        };
        if traces.is_none() && metrics.is_none() {
            return Ok(None);
        }
        Ok(Some(OtlpSettings {
            traces,
            metrics,
            resource_attributes: resource_attributes.into_iter().collect(),
            sampling_ratio: ratio,
            queue_size,
            batch_size,
            batch_delay: Duration::from_millis(batch_delay_ms),
        }))
    }

    fn target(
        &self,
        signal: Signal,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<SignalTarget>, InvalidOtlp> {
        let s = signal.env();
        let signal_var = |name: &str| {
            let specific = format!("OTEL_EXPORTER_OTLP_{s}_{name}");
            var(&specific)
                .map(|v| (specific, v))
                .or_else(|| var(&format!("OTEL_EXPORTER_OTLP_{name}")).map(|v| (name.into(), v)))
        };
        let (proto_field, proto_text) = match &self.protocol {
            Some(p) => ("otlp.protocol".to_string(), Some(p.clone())),
            None => match signal_var("PROTOCOL") {
                Some((n, v)) if n == "PROTOCOL" => ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), Some(v)),
                Some((n, v)) => (n, Some(v)),
                None => (String::new(), None),
            },
        };
        let protocol = match proto_text.as_deref().map(str::trim) {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(other) => {
                return Err(invalid(
                    proto_field,
                    format!("unsupported protocol `{other}` (known: grpc, http/protobuf)"),
                ))
            }
        };
        let own = match signal {
            Signal::Traces => &self.traces_endpoint,
            Signal::Metrics => &self.metrics_endpoint,
        };
        let specific = format!("OTEL_EXPORTER_OTLP_{s}_ENDPOINT");
        // A signal URL is used as is; a base endpoint gets the signal path over HTTP.
        let (field, url, full) = if let Some(u) = own {
            (
                format!("otlp.{}_endpoint", s.to_lowercase()),
                u.clone(),
                true,
            )
        } else if let Some(u) = &self.endpoint {
            ("otlp.endpoint".to_string(), u.clone(), false)
        } else if let Some(u) = var(&specific) {
            (specific, u, true)
        } else if let Some(u) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), u, false)
        } else {
            return Ok(None);
        };
        let url = url.trim().to_string();
        let parsed: http::Uri = url
            .parse()
            .map_err(|e| invalid(&field, format!("invalid URL `{url}`: {e}")))?;
        if !matches!(parsed.scheme_str(), Some("http") | Some("https")) || parsed.host().is_none() {
            return Err(invalid(
                &field,
                format!("`{url}` is not an http:// or https:// URL with a host"),
            ));
        }
        let url = if full || protocol == Protocol::Grpc {
            url
        } else {
            format!("{}/{}", url.trim_end_matches('/'), signal.path())
        };
        let headers = match &self.headers {
            Some(h) => h.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            None => match signal_var("HEADERS") {
                Some((n, text)) => parse_pairs(&text).map_err(|m| {
                    invalid(
                        if n == "HEADERS" {
                            "OTEL_EXPORTER_OTLP_HEADERS".to_string()
                        } else {
                            n
                        },
                        m,
                    )
                })?,
                None => Vec::new(),
            },
        };
        for (k, v) in &headers {
            if http::HeaderName::try_from(k.as_str()).is_err()
                || http::HeaderValue::try_from(v.as_str()).is_err()
            {
                return Err(invalid(
                    "otlp.headers",
                    format!("`{k}` is not a valid header"),
                ));
            }
        }
        let timeout_ms = match self.timeout_ms {
            Some(t) => t,
            None => match signal_var("TIMEOUT") {
                Some((n, v)) => v.trim().parse::<u64>().map_err(|_| {
                    invalid(
                        if n == "TIMEOUT" {
                            "OTEL_EXPORTER_OTLP_TIMEOUT".to_string()
                        } else {
                            n
                        },
                        format!("`{v}` is not a number of milliseconds"),
                    )
                })?,
                None => 10_000,
            },
        };
        if timeout_ms == 0 {
            return Err(invalid("otlp.timeout_ms", "must be at least 1"));
        }
        Ok(Some(SignalTarget {
            url,
            protocol,
            headers,
            timeout: Duration::from_millis(timeout_ms),
        }))
    }
}

/// `key1=value1,key2=value2` with percent-encoded values (W3C Baggage-like, as the
/// specification defines `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`).
pub fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in text.split(',') {
        if item.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!("`{}` is not key=value", item.trim()));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("`{}` has an empty key", item.trim()));
        }
        let v = percent_decode(v.trim()).ok_or_else(|| format!("`{k}`: bad percent-encoding"))?;
        out.push((k.to_string(), v));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn off_without_an_endpoint() {
        assert_eq!(OtlpConfig::default().build(&env(&[])).unwrap(), None);
    }

    #[test]
    fn ports_are_those_of_both_signals_urls() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "https://collector/v1/metrics",
            ),
        ]);
        let s = OtlpConfig::default().build(&e).unwrap().unwrap();
        assert_eq!(s.ports(), vec![443, 4318]);
        let e = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector")]);
        let s = OtlpConfig::default().build(&e).unwrap().unwrap();
        assert_eq!(s.ports(), vec![80], "both signals, one port");
    }

    #[test]
    fn environment_variables_are_read() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, x-team=obs"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://10.0.0.1:9/m"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=x",
            ),
        ]);
        let s = OtlpConfig::default().build(&e).unwrap().unwrap();
        let t = s.traces.unwrap();
        assert_eq!(t.url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(t.protocol, Protocol::HttpProtobuf);
        assert_eq!(
            t.headers,
            vec![
                ("api-key".to_string(), "a b".to_string()),
                ("x-team".to_string(), "obs".to_string())
            ]
        );
        assert_eq!(t.timeout, Duration::from_millis(2500));
        assert_eq!(s.metrics.unwrap().url, "http://10.0.0.1:9/m");
        assert_eq!(
            s.resource_attributes,
            vec![("deployment.environment".to_string(), "prod".to_string())]
        );
        assert_eq!(s.sampling_ratio, 1.0);
        assert_eq!(s.batch_delay, Duration::from_millis(1000));
    }

    #[test]
    fn batch_delay_from_the_file_or_the_environment() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_BSP_SCHEDULE_DELAY", " 250 "),
        ]);
        let s = OtlpConfig::default().build(&e).unwrap().unwrap();
        assert_eq!(s.batch_delay, Duration::from_millis(250));
        let c = OtlpConfig {
            batch_delay_ms: Some(0),
            ..OtlpConfig::default()
        };
        assert_eq!(c.build(&e).unwrap().unwrap().batch_delay, Duration::ZERO);
        let bad = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_BSP_SCHEDULE_DELAY", "5s"),
        ]);
        let err = OtlpConfig::default().build(&bad).unwrap_err();
        assert_eq!(err.field, "OTEL_BSP_SCHEDULE_DELAY");
        assert!(err.message.contains("`5s`"), "{}", err.message);
        let c = OtlpConfig {
            batch_delay_ms: Some(60_001),
            ..OtlpConfig::default()
        };
        assert_eq!(c.build(&e).unwrap_err().field, "otlp.batch_delay_ms");
        let long = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_BSP_SCHEDULE_DELAY", "70000"),
        ]);
        let err = OtlpConfig::default().build(&long).unwrap_err();
        assert_eq!(err.field, "OTEL_BSP_SCHEDULE_DELAY");
    }

    #[test]
    fn the_file_overrides_the_environment() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ]);
        let c = OtlpConfig {
            endpoint: Some("http://127.0.0.1:4317".into()),
            protocol: Some("grpc".into()),
            metrics: Some(false),
            sampling_ratio: Some(0.25),
            ..OtlpConfig::default()
        };
        let s = c.build(&e).unwrap().unwrap();
        let t = s.traces.unwrap();
        assert_eq!(t.url, "http://127.0.0.1:4317");
        assert_eq!(t.protocol, Protocol::Grpc);
        assert_eq!(s.metrics, None);
        assert_eq!(s.sampling_ratio, 0.25);
    }

    #[test]
    fn bad_values_name_their_source() {
        let e = env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        let c = OtlpConfig {
            endpoint: Some("http://h:1".into()),
            ..OtlpConfig::default()
        };
        let err = c.build(&e).unwrap_err();
        assert_eq!(err.field, "OTEL_EXPORTER_OTLP_PROTOCOL");
        let c = OtlpConfig {
            endpoint: Some("collector:4317".into()),
            ..OtlpConfig::default()
        };
        assert_eq!(c.build(&env(&[])).unwrap_err().field, "otlp.endpoint");
        let c = OtlpConfig {
            sampling_ratio: Some(1.5),
            ..OtlpConfig::default()
        };
        assert_eq!(c.build(&env(&[])).unwrap_err().field, "otlp.sampling_ratio");
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:1"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon"),
        ]);
        let err = OtlpConfig::default().build(&e).unwrap_err();
        assert_eq!(err.field, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT");
        assert!(parse_pairs("a=b,c").is_err());
        assert!(parse_pairs("a=%zz").is_err());
    }
}
