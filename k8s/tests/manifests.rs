//! The deploy manifests, as `kubectl kustomize` renders them: every object is a valid
//! Kubernetes object of its kind (k8s-openapi types, no unknown field), the agent holds no
//! more privilege than its manifest justifies, and the pieces point at each other (config
//! file, ConfigMap, ServiceAccount, collector Service).
//!
//! Needs `kubectl` (kustomize is built in). Without it these tests fail and say so;
//! `WIRELENS_SKIP_KUBECTL=1` skips them explicitly.

#[path = "manifests/render.rs"]
mod render;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use render::{agent_container, comments, env, flag, pod_spec, probe_path, probe_port, render};
use serde_yaml::Value;
// ---------------------------------------------------------------------------------------
// deploy/kubernetes

const AGENT_KINDS: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "ConfigMap",
    "DaemonSet",
];

/// Capabilities the DaemonSet may add, each for a reason its manifest must give.
const JUSTIFIABLE_CAPS: &[&str] = &[
    "BPF",
    "PERFMON",
    "DAC_READ_SEARCH",
    "SYS_PTRACE",
    "SYS_RESOURCE",
];

#[test]
fn agent_objects_are_valid_kubernetes_objects() {
    let Some(r) = render("kubernetes") else {
        return;
    };
    r.check_all_typed(AGENT_KINDS);
    let ns: Namespace = r.one("Namespace");
    let ds: DaemonSet = r.one("DaemonSet");
    assert_eq!(ds.metadata.namespace, ns.metadata.name);
}

#[test]
fn rbac_reads_only_what_the_agent_needs() {
    let Some(r) = render("kubernetes") else {
        return;
    };
    let role: ClusterRole = r.one("ClusterRole");
    let mut granted = BTreeSet::new();
    for rule in role.rules.as_deref().unwrap_or_default() {
        for verb in &rule.verbs {
            assert!(
                ["get", "list", "watch"].contains(&verb.as_str()),
                "verb {verb:?} in {rule:?}: the agent only reads"
            );
        }
        assert!(rule.non_resource_urls.is_none(), "{rule:?}");
        for group in rule.api_groups.as_deref().unwrap_or_default() {
            assert_ne!(group, "*", "{rule:?}");
            for res in rule.resources.as_deref().unwrap_or_default() {
                assert!(
                    res != "*" && !res.contains('/'),
                    "{res:?}: no wildcard, no subresource"
                );
                granted.insert((group.clone(), res.clone()));
            }
        }
    }
    let needed: BTreeSet<(String, String)> = [
        ("", "pods"),
        ("", "namespaces"),
        ("", "services"),
        ("", "nodes"),
        ("discovery.k8s.io", "endpointslices"),
        ("apps", "replicasets"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    ]
    .iter()
    .map(|(g, r)| (g.to_string(), r.to_string()))
    .collect();
    assert_eq!(granted, needed, "resources the agent reads");

    let binding: ClusterRoleBinding = r.one("ClusterRoleBinding");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let sa: ServiceAccount = r.one("ServiceAccount");
    let ds: DaemonSet = r.one("DaemonSet");
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(Some(&subjects[0].name), sa.metadata.name.as_ref());
    assert_eq!(subjects[0].namespace, sa.metadata.namespace);
    assert_eq!(sa.metadata.namespace, ds.metadata.namespace);
    assert_eq!(pod_spec(&ds).service_account_name, sa.metadata.name);
}

#[test]
fn daemonset_privileges_are_the_least_that_work() {
    let Some(r) = render("kubernetes") else {
        return;
    };
    let ds: DaemonSet = r.one("DaemonSet");
    let spec = pod_spec(&ds);
    assert_eq!(
        spec.host_pid,
        Some(true),
        "hostPID: the agent sees every process"
    );
    assert_ne!(spec.host_network, Some(true), "hostNetwork is not needed");
    assert_ne!(spec.host_ipc, Some(true), "hostIPC is not needed");

    let c = agent_container(&ds);
    let sc = c.security_context.as_ref().expect("securityContext");
    let notes = comments("kubernetes/daemonset.yaml");
    if sc.privileged == Some(true) {
        assert!(
            notes.iter().any(|n| n.contains("privileged: true because")),
            "privileged without a `# privileged: true because ...` comment in daemonset.yaml"
        );
    }
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));

    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    let added = caps.add.clone().unwrap_or_default();
    for needed in ["BPF", "PERFMON"] {
        assert!(added.iter().any(|a| a == needed), "{needed} is not added");
    }
    for cap in &added {
        assert!(
            JUSTIFIABLE_CAPS.contains(&cap.as_str()),
            "{cap} is added: not one the agent needs"
        );
        assert!(
            notes.iter().any(|n| n.starts_with(&format!("{cap}:"))),
            "{cap} is added without a `# {cap}: why` comment in daemonset.yaml"
        );
    }
}

#[test]
fn daemonset_mounts_env_probes_and_placement() {
    let Some(r) = render("kubernetes") else {
        return;
    };
    let ds: DaemonSet = r.one("DaemonSet");
    let spec = pod_spec(&ds);
    let c = agent_container(&ds);

    // Every node, whatever its taints.
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    assert!(
        tolerations
            .iter()
            .any(|t| t.operator.as_deref() == Some("Exists")
                && t.key.is_none()
                && t.effect.is_none()),
        "a toleration with operator Exists and no key or effect: {tolerations:?}"
    );

    // Host paths, read-only.
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let mut host_paths = BTreeMap::new();
    for v in volumes {
        if let Some(hp) = &v.host_path {
            let m = mounts
                .iter()
                .find(|m| m.name == v.name)
                .unwrap_or_else(|| panic!("volume {} is not mounted", v.name));
            assert_eq!(m.read_only, Some(true), "{} is mounted read-only", hp.path);
            host_paths.insert(hp.path.as_str(), m.mount_path.as_str());
        }
    }
    for path in ["/sys/kernel/tracing", "/sys/fs/cgroup", "/sys/kernel/btf"] {
        assert_eq!(
            host_paths.get(path),
            Some(&path),
            "host {path} at the same path"
        );
    }

    // Downward API and the collector.
    let node = env(c, "NODE_NAME").expect("NODE_NAME");
    let field = node
        .value_from
        .as_ref()
        .and_then(|f| f.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(field, Some("spec.nodeName"));
    let otlp = env(c, "OTEL_EXPORTER_OTLP_ENDPOINT")
        .and_then(|e| e.value.as_deref())
        .expect("OTEL_EXPORTER_OTLP_ENDPOINT");
    assert!(otlp.starts_with("http://"), "{otlp}");

    // Probes on the metrics listener.
    let metrics_addr = flag(c, "--metrics-addr").expect("--metrics-addr");
    let metrics_port: i32 = metrics_addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("--metrics-addr HOST:PORT");
    assert_eq!(metrics_port, 9464);
    assert_eq!(probe_path(&c.liveness_probe), Some("/healthz"));
    assert_eq!(probe_path(&c.readiness_probe), Some("/readyz"));
    for probe in [&c.liveness_probe, &c.readiness_probe, &c.startup_probe]
        .into_iter()
        .flatten()
    {
        assert_eq!(probe_port(c, probe), metrics_port);
    }

    // Requests and limits for CPU and memory.
    let res = c.resources.as_ref().expect("resources");
    for (what, map) in [("requests", &res.requests), ("limits", &res.limits)] {
        let map = map.as_ref().unwrap_or_else(|| panic!("no {what}"));
        for k in ["cpu", "memory"] {
            assert!(map.contains_key(k), "{what}.{k}");
        }
    }
}

#[test]
fn agent_config_is_mounted_and_valid() {
    let Some(r) = render("kubernetes") else {
        return;
    };
    let ds: DaemonSet = r.one("DaemonSet");
    let c = agent_container(&ds);
    let path = flag(c, "--config").expect("--config");
    let (dir, file) = path.rsplit_once('/').expect("an absolute path");
    assert_eq!(
        c.args
            .as_deref()
            .unwrap_or_default()
            .first()
            .map(String::as_str),
        Some("run")
    );

    let mount = c
        .volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|m| m.mount_path == dir)
        .unwrap_or_else(|| panic!("nothing mounted at {dir}"));
    assert!(
        mount.sub_path.is_none(),
        "a subPath mount never sees ConfigMap updates"
    );
    let volume = pod_spec(&ds)
        .volumes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|v| v.name == mount.name)
        .expect("the mounted volume");
    let cm_name = &volume.config_map.as_ref().expect("a ConfigMap volume").name;
    let cm: ConfigMap = r.one("ConfigMap");
    assert_eq!(cm.metadata.name.as_ref(), Some(cm_name));
    assert_eq!(cm.metadata.namespace, ds.metadata.namespace);
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(file))
        .unwrap_or_else(|| panic!("ConfigMap has no {file}"));

    let config: Value = serde_yaml::from_str(text).expect("wirelens.yaml is YAML");
    let map = config.as_mapping().expect("wirelens.yaml is a mapping");
    // The top-level keys the agent accepts (README.md, "Configuration"); it refuses others.
    let known = [
        "capture_bytes",
        "pids",
        "format",
        "output",
        "filters",
        "request_timeout_ms",
        "idle_timeout_ms",
        "max_connections",
        "wakeup_bytes",
        "drain_interval_ms",
        "stats_interval_s",
    ];
    for k in map.keys() {
        let k = k.as_str().expect("string keys");
        assert!(known.contains(&k), "unknown key {k} in wirelens.yaml");
    }
    let filters = map.get("filters").expect("wirelens.yaml has `filters`");
    let filters: wirelens_filters::FilterConfig =
        serde_yaml::from_value(filters.clone()).expect("filters has the agent's shape");
    let compiled =
        wirelens_filters::Filters::build(&filters, &|p| Err(format!("{p}: no netns here")))
            .expect("filters compile");

    // The defaults drop kube-system and the agent's namespace, and keep the rest.
    let in_ns = |ns: &str| wirelens_filters::Subject {
        namespace: Some(ns.into()),
        pod: Some("p".into()),
        ..Default::default()
    };
    use wirelens_filters::Decision::{Drop, Keep};
    assert_eq!(compiled.decide(&in_ns("kube-system")), Drop);
    assert_eq!(compiled.decide(&in_ns("wirelens")), Drop);
    assert_eq!(compiled.decide(&in_ns("shop")), Keep);
    assert_eq!(compiled.decide(&in_ns("kube-system-extras")), Keep);
}

// ---------------------------------------------------------------------------------------
// deploy/collector

#[test]
fn collector_objects_are_valid_and_wired() {
    let Some(r) = render("collector") else { return };
    r.check_all_typed(&["Namespace", "ConfigMap", "Deployment", "Service"]);
    let ns: Namespace = r.one("Namespace");
    let deploy: Deployment = r.one("Deployment");
    let svc: Service = r.one("Service");
    assert_eq!(deploy.metadata.namespace, ns.metadata.name);
    assert_eq!(svc.metadata.namespace, ns.metadata.name);

    let template = &deploy.spec.as_ref().expect("spec").template;
    let pod = template.spec.as_ref().expect("pod spec");
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let svc_spec = svc.spec.as_ref().expect("Service spec");
    let selector = svc_spec.selector.clone().unwrap_or_default();
    assert!(!selector.is_empty());
    for (k, v) in &selector {
        assert_eq!(
            labels.get(k),
            Some(v),
            "the Service selects the collector's pods"
        );
    }

    // The config file the collector is told to read is the ConfigMap's.
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().expect("securityContext");
    assert_ne!(sc.privileged, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let arg = c
        .args
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|a| a.strip_prefix("--config="))
        .expect("--config=PATH");
    let (dir, file) = arg.rsplit_once('/').expect("absolute path");
    let mount = c
        .volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|m| m.mount_path == dir)
        .expect("the config directory is mounted");
    let volume = pod
        .volumes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|v| v.name == mount.name)
        .expect("its volume");
    let cm_name = &volume.config_map.as_ref().expect("a ConfigMap volume").name;
    let cm: ConfigMap = r.one("ConfigMap");
    assert_eq!(cm.metadata.name.as_ref(), Some(cm_name));
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(file))
        .expect("config.yaml");
    let config: Value = serde_yaml::from_str(text).expect("collector config is YAML");

    // OTLP in, on both transports, on ports the Service exposes.
    let protocols = &config["receivers"]["otlp"]["protocols"];
    let svc_ports: Vec<i32> = svc_spec
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|p| p.port)
        .collect();
    for (proto, port) in [("grpc", 4317), ("http", 4318)] {
        let endpoint = protocols[proto]["endpoint"]
            .as_str()
            .unwrap_or_else(|| panic!("otlp {proto}"));
        assert!(endpoint.ends_with(&format!(":{port}")), "{endpoint}");
        assert!(svc_ports.contains(&port), "Service port {port}");
    }

    // Every pipeline names components that are defined, batches, and exports where said.
    let pipelines = config["service"]["pipelines"]
        .as_mapping()
        .expect("pipelines");
    for (name, p) in pipelines {
        for (section, list) in [
            ("receivers", "receivers"),
            ("processors", "processors"),
            ("exporters", "exporters"),
        ] {
            for c in p[list].as_sequence().unwrap_or(&Vec::new()) {
                let c = c.as_str().expect("component name");
                assert!(
                    config[section].get(c).is_some(),
                    "pipeline {name:?} uses {c}, not defined under {section}"
                );
            }
        }
        let processors: Vec<&str> = p["processors"]
            .as_sequence()
            .expect("processors")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(processors.contains(&"batch"), "pipeline {name:?} batches");
    }
    let exporters = |pipeline: &str| -> Vec<String> {
        config["service"]["pipelines"][pipeline]["exporters"]
            .as_sequence()
            .unwrap_or_else(|| panic!("a {pipeline} pipeline"))
            .iter()
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect()
    };
    assert!(exporters("metrics").iter().any(|e| e == "prometheus"));
    assert!(exporters("traces")
        .iter()
        .any(|e| e == "otlp" || e.starts_with("otlp/")));
}

#[test]
fn agents_export_to_the_collector_service() {
    let (Some(agent), Some(collector)) = (render("kubernetes"), render("collector")) else {
        return;
    };
    let ds: DaemonSet = agent.one("DaemonSet");
    let endpoint = env(agent_container(&ds), "OTEL_EXPORTER_OTLP_ENDPOINT")
        .and_then(|e| e.value.clone())
        .expect("OTEL_EXPORTER_OTLP_ENDPOINT");
    let host_port = endpoint.strip_prefix("http://").expect("http://HOST:PORT");
    let (host, port) = host_port.rsplit_once(':').expect("HOST:PORT");
    let port: i32 = port.parse().expect("port");
    let svc: Service = collector.one("Service");
    let want_host = format!(
        "{}.{}",
        svc.metadata.name.as_deref().unwrap_or_default(),
        svc.metadata.namespace.as_deref().unwrap_or_default()
    );
    assert!(
        host == want_host || host.starts_with(&format!("{want_host}.svc")),
        "{host} is not the collector Service {want_host}"
    );
    let ports = svc.spec.and_then(|s| s.ports).unwrap_or_default();
    let p = ports
        .iter()
        .find(|p| p.port == port)
        .expect("the Service exposes the port");
    assert_eq!(p.app_protocol.as_deref(), Some("grpc"), "4317 is OTLP/gRPC");
}
