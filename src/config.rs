//! The agent's configuration file (`run --config FILE`), YAML. Every key is documented in the
//! README's configuration reference; unknown keys are refused with their path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::aggregate::{AggregationConfig, AggregationSettings};
use crate::capture::{
    CaptureConfig, DEFAULT_RING_BUFFER_BYTES, MAX_CAPTURE_BYTES, MAX_RING_BUFFER_BYTES,
};
use crate::conntrack::ConntrackConfig;
use crate::export::otlp::{OtlpConfig, OtlpSettings};
use crate::export::MetricsEndpoint;
use crate::output::Format;

/// The whole file. Every field has a default, so an empty file is valid.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Payload prefix copied from each read/write, bytes (1..=8192).
    pub capture_bytes: u32,
    /// Capture only these process ids; empty: every process.
    pub pids: Vec<u32>,
    /// `jsonl` or `table`.
    pub format: Format,
    /// Write records to this file instead of stdout.
    pub output: Option<PathBuf>,
    /// Which processes, connections and protocols are captured (README, "Filters").
    pub filters: wirelens_filters::FilterConfig,
    /// A request with no response after this many ms is reported as `timeout`.
    pub request_timeout_ms: u64,
    /// A connection with no traffic for this many ms is forgotten.
    pub idle_timeout_ms: u64,
    /// Connections tracked at once in user space.
    pub max_connections: usize,
    /// Size of the kernel-to-user ring buffer, bytes: a power of two and a multiple of the
    /// page size.
    pub ring_buffer_bytes: u64,
    /// Ring buffer bytes queued before the kernel wakes the reader.
    pub wakeup_bytes: u64,
    /// The reader drains the ring buffer at least this often, ms.
    pub drain_interval_ms: u64,
    /// Seconds between counter summaries in the log (0: only at exit).
    pub stats_interval_s: u64,
    /// How records become metric series: period, expiry, budgets, routes (README, "Metrics").
    pub aggregation: AggregationConfig,
    /// Address of the HTTP endpoint (`/metrics`, `/healthz`, `/readyz`); absent:
    /// [`DEFAULT_METRICS_ADDR`].
    pub metrics_addr: Option<SocketAddr>,
    /// OpenTelemetry export (README, "OpenTelemetry export"); off without an endpoint here or
    /// in `OTEL_EXPORTER_OTLP_*`.
    pub otlp: OtlpConfig,
    /// Kubernetes metadata: pods, workloads, Services (README, "Kubernetes").
    pub kubernetes: wirelens_k8s::meta::KubernetesConfig,
}

/// Where `/metrics` listens when neither `--metrics-addr` nor `metrics_addr` says.
pub const DEFAULT_METRICS_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9464,
));

impl Default for Config {
    fn default() -> Self {
        Config {
            capture_bytes: 4096,
            pids: Vec::new(),
            format: Format::Jsonl,
            output: None,
            filters: wirelens_filters::FilterConfig::default(),
            request_timeout_ms: 30_000,
            idle_timeout_ms: 300_000,
            max_connections: 65_536,
            ring_buffer_bytes: DEFAULT_RING_BUFFER_BYTES,
            wakeup_bytes: 256 * 1024,
            drain_interval_ms: 100,
            stats_interval_s: 60,
            aggregation: AggregationConfig::default(),
            metrics_addr: None,
            otlp: OtlpConfig::default(),
            kubernetes: wirelens_k8s::meta::KubernetesConfig::default(),
        }
    }
}

/// A configuration that could not be used; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: at `{field}`: {message}")]
    Parse {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("`{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{message}")]
    Filters { message: String },
    #[error("{field}: {message}")]
    Aggregation { field: String, message: String },
    #[error("{field}: {message}")]
    Otlp { field: String, message: String },
    #[error("{field}: {message}")]
    Kubernetes { field: String, message: String },
}

/// What `run` needs, checked and built from a [`Config`].
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub capture: CaptureConfig,
    pub conntrack: ConntrackConfig,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub stats_interval_s: u64,
    pub policy: crate::filter_ctl::Policy,
    pub aggregation: AggregationSettings,
    pub metrics: MetricsEndpoint,
    /// None: no OTLP export.
    pub otlp: Option<OtlpSettings>,
    /// `None`: Kubernetes metadata is off.
    pub kubernetes: Option<wirelens_k8s::meta::MetaSettings>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|(field, message)| ConfigError::Parse {
            path: path.to_path_buf(),
            field,
            message,
        })
    }

    /// Parses YAML text; on error, the path of the offending field and the message.
    pub fn parse(text: &str) -> Result<Config, (String, String)> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            (field, e.into_inner().to_string())
        })
    }

    /// Checks every value and builds the runtime settings, reading the `OTEL_*` variables of
    /// this process.
    pub fn build(&self) -> Result<RunSettings, ConfigError> {
        self.build_with_env(&|name| std::env::var(name).ok())
    }

    /// [`Config::build`] with the environment given as a lookup.
    pub fn build_with_env(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RunSettings, ConfigError> {
        if self.capture_bytes == 0 || self.capture_bytes > MAX_CAPTURE_BYTES {
            return Err(ConfigError::Invalid {
                field: "capture_bytes",
                message: format!(
                    "{} is out of range 1..={MAX_CAPTURE_BYTES}",
                    self.capture_bytes
                ),
            });
        }
        let policy = crate::filter_ctl::Policy::build(&self.pids, &self.filters)
            .map_err(|message| ConfigError::Filters { message })?;
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid {
                field: "max_connections",
                message: "must be at least 1".into(),
            });
        }
        if self.drain_interval_ms == 0 {
            return Err(ConfigError::Invalid {
                field: "drain_interval_ms",
                message: "must be at least 1".into(),
            });
        }
        let ring_buffer_bytes = self.ring_buffer_bytes()?;
        let aggregation = self
            .aggregation
            .build()
            .map_err(|e| ConfigError::Aggregation {
                field: e.field,
                message: e.message,
            })?;
        let otlp = self.otlp.build(env).map_err(|e| ConfigError::Otlp {
            field: e.field,
            message: e.message,
        })?;
        let kubernetes = self
            .kubernetes
            .build(env)
            .map_err(|(field, message)| ConfigError::Kubernetes { field, message })?;
        let own_ports = otlp.as_ref().map(OtlpSettings::ports).unwrap_or_default();
        Ok(RunSettings {
            otlp,
            kubernetes,
            capture: CaptureConfig {
                capture_bytes: self.capture_bytes,
                ring_buffer_bytes,
                // A threshold the ring cannot reach would leave only the drain timer.
                wakeup_bytes: self.wakeup_bytes.min(u64::from(ring_buffer_bytes) / 2),
                drain_interval: std::time::Duration::from_millis(self.drain_interval_ms),
            },
            conntrack: ConntrackConfig {
                max_conns: self.max_connections,
                request_timeout_ns: self.request_timeout_ms.saturating_mul(1_000_000),
                idle_timeout_ns: self.idle_timeout_ms.saturating_mul(1_000_000),
                protocols: policy.protocols.clone(),
                own_ports,
            },
            format: self.format,
            output: self.output.clone(),
            stats_interval_s: self.stats_interval_s,
            policy,
            aggregation,
            metrics: MetricsEndpoint {
                addr: self.metrics_addr.unwrap_or(DEFAULT_METRICS_ADDR),
                explicit: self.metrics_addr.is_some(),
            },
        })
    }
}

impl Config {
    /// The keys that differ between `self`, the file as the agent started with it, and
    /// `next`, the file as a reload reads it, among those a reload does not apply (all but
    /// `filters` and `pids`): they take effect at the next start, and the log says so.
    pub fn start_only_changes(&self, next: &Config) -> Vec<&'static str> {
        // Destructured so that a new key must be placed here, reloaded or not.
        let Config {
            capture_bytes,
            pids: _,
            format,
            output,
            filters: _,
            request_timeout_ms,
            idle_timeout_ms,
            max_connections,
            ring_buffer_bytes,
            wakeup_bytes,
            drain_interval_ms,
            stats_interval_s,
            aggregation,
            metrics_addr,
            otlp,
            kubernetes,
        } = self;
        [
            ("capture_bytes", *capture_bytes != next.capture_bytes),
            ("format", *format != next.format),
            ("output", *output != next.output),
            (
                "request_timeout_ms",
                *request_timeout_ms != next.request_timeout_ms,
            ),
            ("idle_timeout_ms", *idle_timeout_ms != next.idle_timeout_ms),
            ("max_connections", *max_connections != next.max_connections),
            (
                "ring_buffer_bytes",
                *ring_buffer_bytes != next.ring_buffer_bytes,
            ),
            ("wakeup_bytes", *wakeup_bytes != next.wakeup_bytes),
            (
                "drain_interval_ms",
                *drain_interval_ms != next.drain_interval_ms,
            ),
            (
                "stats_interval_s",
                *stats_interval_s != next.stats_interval_s,
            ),
            ("aggregation", *aggregation != next.aggregation),
            ("metrics_addr", *metrics_addr != next.metrics_addr),
            ("otlp", *otlp != next.otlp),
            ("kubernetes", *kubernetes != next.kubernetes),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
    }
}

impl Config {
    /// `ring_buffer_bytes`, checked: what the kernel accepts for a ring buffer (a power of two
    /// and a multiple of the page size), no larger than [`MAX_RING_BUFFER_BYTES`], and room for
    /// at least two events of the largest size `capture_bytes` allows.
    fn ring_buffer_bytes(&self) -> Result<u32, ConfigError> {
        let n = self.ring_buffer_bytes;
        let invalid = |message: String| ConfigError::Invalid {
            field: "ring_buffer_bytes",
            message,
        };
        // SAFETY: sysconf has no preconditions.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|p| *p > 0)
            .unwrap_or(4096);
        if !n.is_power_of_two() || !n.is_multiple_of(page) {
            return Err(invalid(format!(
                "{n} is not a power of two and a multiple of the page size ({page} bytes), \
                 e.g. 65536 or 16777216"
            )));
        }
        if n > MAX_RING_BUFFER_BYTES {
            return Err(invalid(format!(
                "{n} is larger than the {MAX_RING_BUFFER_BYTES} bytes allowed"
            )));
        }
        let need = 2 * crate::capture::record_bytes(self.capture_bytes);
        if n < need {
            return Err(invalid(format!(
                "{n} bytes cannot hold two events of capture_bytes {} ({need} bytes): \
                 raise it or lower capture_bytes",
                self.capture_bytes
            )));
        }
        u32::try_from(n).map_err(|_| invalid(format!("{n} does not fit in 32 bits")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DaemonSet's configuration (deploy/kubernetes/wirelens.yaml, the ConfigMap's file)
    /// is one the agent accepts, and keeps records out of the container log.
    #[test]
    fn the_daemonsets_config_is_accepted() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/wirelens.yaml");
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => {
                Some("http://otel-collector.observability:4317".into())
            }
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".into()),
            _ => None,
        };
        let s = c.build_with_env(&env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.format, Format::None);
        assert!(s.otlp.is_some(), "spans and metrics go to the collector");

        // The pods of deploy/collector's namespace are left alone (their side of the agents'
        // exports would be exported in turn); the applications' pods are kept.
        let ns = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/collector/namespace.yaml"),
        )
        .expect("deploy/collector/namespace.yaml");
        let collector_ns = ns
            .lines()
            .find_map(|l| l.trim().strip_prefix("name:"))
            .map(str::trim)
            .expect("the collector's namespace");
        let filters = wirelens_filters::Filters::build(&c.filters, &|p: &str| {
            Err(format!("no namespace path expected, got {p}"))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let pod_in = |namespace: &str| wirelens_filters::Subject {
            pid: 4242,
            cmdline: "otelcol-contrib --config /conf/config.yaml".into(),
            pod: Some("otel-collector-6d4cf56db6-x7k2p".into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        };
        use wirelens_filters::Decision;
        assert_eq!(filters.decide(&pod_in(collector_ns)), Decision::Drop);
        assert_eq!(filters.decide(&pod_in("kube-system")), Decision::Drop);
        assert_eq!(filters.decide(&pod_in("default")), Decision::Keep);
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert!(Config::default().build().is_ok());
    }

    #[test]
    fn reads_fields() {
        let c = Config::parse("capture_bytes: 512\npids: [1, 2]\nformat: table\n").unwrap();
        assert_eq!(c.capture_bytes, 512);
        assert_eq!(c.pids, vec![1, 2]);
        assert_eq!(c.format, Format::Table);
    }

    #[test]
    fn unknown_field_is_refused_with_its_path() {
        let (field, msg) = Config::parse("capture_bytes: 10\nbogus: 1\n").unwrap_err();
        assert_eq!(field, "bogus");
        assert!(msg.contains("unknown field `bogus`"), "{msg}");
        let (field, msg) = Config::parse("capture_bytes: lots\n").unwrap_err();
        assert_eq!(field, "capture_bytes");
        assert!(msg.contains("invalid"), "{msg}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let c = Config::parse("capture_bytes: 100000\n").unwrap();
        let e = c.build().unwrap_err().to_string();
        assert!(e.contains("capture_bytes") && e.contains("8192"), "{e}");
        let c = Config::parse("filters:\n  protocols: [http, smtp]\n").unwrap();
        let e = c.build().unwrap_err().to_string();
        assert_eq!(
            e,
            "filters.protocols[1]: unknown protocol `smtp` (known: http, mysql, pgsql, redis, dns)"
        );
        let c = Config::parse("filters:\n  exclude:\n    cmdline: [\"(\"]\n").unwrap();
        let e = c.build().unwrap_err().to_string();
        assert!(
            e.starts_with("filters.exclude.cmdline[0]: invalid regular expression"),
            "{e}"
        );
    }

    #[test]
    fn aggregation_and_metrics_addr() {
        let s = Config::default().build().unwrap();
        assert_eq!(s.aggregation.period.as_secs(), 15);
        assert_eq!(s.aggregation.expiry_periods, 20);
        assert_eq!(s.aggregation.series_per_service, 1000);
        assert_eq!(s.aggregation.segment_values, 50);
        assert_eq!(s.metrics.addr.to_string(), "127.0.0.1:9464");
        assert!(!s.metrics.explicit);
        let c = Config::parse(
            "metrics_addr: 0.0.0.0:9464\naggregation:\n  period_s: 5\n  expiry_periods: 3\n  \
             series_per_service: 10\n  segment_values: 7\n  routes: [\"/users/{id}/orders\"]\n",
        )
        .unwrap();
        let s = c.build().unwrap();
        assert_eq!(s.metrics.addr.to_string(), "0.0.0.0:9464");
        assert!(s.metrics.explicit);
        assert_eq!(s.aggregation.period.as_secs(), 5);
        assert_eq!(s.aggregation.expiry_periods, 3);
        assert_eq!(s.aggregation.series_per_service, 10);
        assert_eq!(s.aggregation.segment_values, 7);
        assert_eq!(
            s.aggregation.routes.matching("/users/{id}/orders"),
            Some("/users/{id}/orders")
        );
        let (field, _) = Config::parse("aggregation:\n  period: 5\n").unwrap_err();
        assert_eq!(field, "aggregation.period");
        let (field, msg) = Config::parse("metrics_addr: localhost\n").unwrap_err();
        assert_eq!(field, "metrics_addr");
        assert!(msg.contains("invalid socket address"), "{msg}");
        let c = Config::parse("aggregation:\n  period_s: 0\n").unwrap();
        let e = c.build().unwrap_err().to_string();
        assert_eq!(e, "aggregation.period_s: must be at least 1");
        let c = Config::parse("aggregation:\n  routes: [\"/a\", \"b/{c}\"]\n").unwrap();
        let e = c.build().unwrap_err().to_string();
        assert_eq!(e, "aggregation.routes[1]: `b/{c}` does not start with `/`");
    }

    #[test]
    fn ring_buffer_bytes_is_checked() {
        let s = Config::default().build().unwrap();
        assert_eq!(s.capture.ring_buffer_bytes, 16 * 1024 * 1024);
        assert_eq!(s.capture.wakeup_bytes, 256 * 1024);
        assert_eq!(
            s.capture.drain_interval,
            std::time::Duration::from_millis(100)
        );
        let c = Config::parse("ring_buffer_bytes: 65536\ncapture_bytes: 1024\n").unwrap();
        let s = c.build().unwrap();
        assert_eq!(s.capture.ring_buffer_bytes, 65536);
        // The wake-up threshold is lowered to half a ring it could never reach.
        assert_eq!(s.capture.wakeup_bytes, 32768);
        for bad in ["100000", "65537", "2048", "0"] {
            let c = Config::parse(&format!("ring_buffer_bytes: {bad}\n")).unwrap();
            let e = c.build().unwrap_err().to_string();
            assert!(
                e.starts_with("`ring_buffer_bytes`: ") && e.contains("power of two"),
                "{bad}: {e}"
            );
        }
        let c = Config::parse("ring_buffer_bytes: 2147483648\n").unwrap();
        let e = c.build().unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        // 8 KiB cannot hold two events of 4 KiB, with their headers.
        let c = Config::parse("ring_buffer_bytes: 8192\n").unwrap();
        let e = c.build().unwrap_err().to_string();
        assert!(e.contains("cannot hold two events"), "{e}");
        let c = Config::parse("ring_buffer_bytes: 8192\ncapture_bytes: 256\n").unwrap();
        assert_eq!(c.build().unwrap().capture.ring_buffer_bytes, 8192);
        let (field, _) = Config::parse("ring_buffer_bytes: -1\n").unwrap_err();
        assert_eq!(field, "ring_buffer_bytes");
    }

    /// A reload names the keys it leaves for the next start; `filters` and `pids` are its own.
    #[test]
    fn start_only_changes_are_named() {
        let at_start =
            Config::parse("capture_bytes: 1024\notlp:\n  sampling_ratio: 0.5\n").unwrap();
        let same = at_start.clone();
        assert!(at_start.start_only_changes(&same).is_empty());
        let next = Config::parse(
            "capture_bytes: 2048\npids: [1]\nfilters:\n  drop_loopback: true\n\
             aggregation:\n  period_s: 30\notlp:\n  sampling_ratio: 0.5\n",
        )
        .unwrap();
        assert_eq!(
            at_start.start_only_changes(&next),
            vec!["capture_bytes", "aggregation"]
        );
        let next = Config::parse("capture_bytes: 1024\n").unwrap();
        assert_eq!(at_start.start_only_changes(&next), vec!["otlp"]);
    }

    /// The shape issue #4 documents, as users write it.
    #[test]
    fn the_documented_filter_shape_parses() {
        let text = r#"
filters:
  include:
    cmdline: ["^nginx", "java .*-jar orders"]
    exe: []
    container: []
    pod: []
    namespace: []
    labels: {app: "^(cart|orders)$"}
    namespace_labels: {}
    annotations: {}
    env: {DEPLOY_ENV: "^prod$"}
    netns: []
    pidns: []
  exclude:
    cmdline: ["^wirelens"]
  drop_unix: true
  drop_loopback: false
  protocols: [http, mysql, pgsql, redis, dns]
  ports: {include: [], exclude: []}
  undecided: capture
"#;
        let c = Config::parse(text).unwrap();
        assert_eq!(c.filters.include.cmdline.len(), 2);
        assert_eq!(c.filters.exclude.cmdline, vec!["^wirelens".to_string()]);
        assert_eq!(c.filters.undecided, wirelens_filters::Undecided::Capture);
        let s = c.build().unwrap();
        assert!(matches!(s.policy.mode, crate::filter_ctl::Mode::Select(_)));
        let (field, _) = Config::parse("filters:\n  include:\n    cmdlin: [x]\n").unwrap_err();
        assert_eq!(field, "filters.include.cmdlin");
    }
}
