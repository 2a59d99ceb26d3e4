//! Rendering the kustomize bases and reading the objects back as Kubernetes types.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, Namespace, PodSpec, Probe, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The objects `kubectl kustomize deploy/<dir>` renders; `None` when kubectl is absent and
/// the caller asked to skip.
pub fn render(dir: &str) -> Option<Rendered> {
    let path = repo().join("deploy").join(dir);
    let out = match Command::new("kubectl").arg("kustomize").arg(&path).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("WIRELENS_SKIP_KUBECTL").as_deref() == Ok("1") {
                eprintln!("SKIPPED: kubectl not found and WIRELENS_SKIP_KUBECTL=1");
                return None;
            }
            panic!(
                "kubectl is not installed: these tests render deploy/{dir} with \
                 `kubectl kustomize`. Install kubectl (any release since 1.14 has kustomize \
                 built in), or set WIRELENS_SKIP_KUBECTL=1 to skip them explicitly"
            );
        }
        Err(e) => panic!("running kubectl: {e}"),
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("kustomize output is UTF-8");
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).expect("kustomize output is YAML");
        if value.is_null() {
            continue;
        }
        let field = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("object without {k}: {value:?}"))
                .to_string()
        };
        let kind = field("kind");
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{kind} without metadata.name"))
            .to_string();
        objects.push((kind, name, value));
    }
    Some(Rendered {
        dir: dir.into(),
        objects,
    })
}

pub struct Rendered {
    pub dir: String,
    pub objects: Vec<(String, String, Value)>,
}

impl Rendered {
    pub fn kinds(&self) -> BTreeSet<&str> {
        self.objects.iter().map(|(k, _, _)| k.as_str()).collect()
    }

    /// Every object of `kind`, as its Kubernetes type.
    pub fn all<T: DeserializeOwned + Serialize>(&self, kind: &str) -> Vec<T> {
        self.objects
            .iter()
            .filter(|(k, _, _)| k == kind)
            .map(|(k, name, v)| typed(&format!("{}: {k}/{name}", self.dir), v))
            .collect()
    }

    /// The only object of `kind`.
    pub fn one<T: DeserializeOwned + Serialize>(&self, kind: &str) -> T {
        let mut all = self.all(kind);
        assert_eq!(all.len(), 1, "{}: one {kind} expected", self.dir);
        all.remove(0)
    }

    /// Every object deserializes into the type of its kind, and no kind is unexpected.
    pub fn check_all_typed(&self, expected: &[&str]) {
        let kinds = self.kinds();
        let want: BTreeSet<&str> = expected.iter().copied().collect();
        assert_eq!(kinds, want, "{}: kinds rendered", self.dir);
        for kind in kinds {
            match kind {
                "Namespace" => drop(self.all::<Namespace>(kind)),
                "ServiceAccount" => drop(self.all::<ServiceAccount>(kind)),
                "ClusterRole" => drop(self.all::<ClusterRole>(kind)),
                "ClusterRoleBinding" => drop(self.all::<ClusterRoleBinding>(kind)),
                "ConfigMap" => drop(self.all::<ConfigMap>(kind)),
                "DaemonSet" => drop(self.all::<DaemonSet>(kind)),
                "Deployment" => drop(self.all::<Deployment>(kind)),
                "Service" => drop(self.all::<Service>(kind)),
                other => panic!("{}: no type checked for kind {other}", self.dir),
            }
        }
    }
}

/// `value` as a `T`, and nothing lost on the way: k8s-openapi ignores fields it does not
/// know, so a misspelt or misplaced field would pass unnoticed without the round trip.
fn typed<T: DeserializeOwned + Serialize>(what: &str, value: &Value) -> T {
    let t: T = serde_yaml::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what} does not deserialize: {e}"));
    let back = serde_yaml::to_value(&t).expect("serializes");
    if let Some(diff) = difference(value, &back, String::new()) {
        panic!("{what}: field not in the Kubernetes schema, or misplaced: {diff}");
    }
    t
}

/// The first path where `a` and `b` differ.
fn difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Mapping(x), Value::Mapping(y)) => {
            for (k, va) in x {
                let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_string);
                let p = format!("{path}.{key}");
                match y.get(k) {
                    Some(vb) => {
                        if let Some(d) = difference(va, vb, p) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{p} is dropped")),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}.{k:?} appears"))
        }
        (Value::Sequence(x), Value::Sequence(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| difference(va, vb, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a:?} became {b:?}")),
    }
}

/// Comment lines of a source manifest, without the `#`.
pub fn comments(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("deploy").join(file)).expect(file);
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(|c| c.trim().to_string())
        .collect()
}

pub fn pod_spec(ds: &DaemonSet) -> &PodSpec {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("DaemonSet has a pod spec")
}

pub fn agent_container(ds: &DaemonSet) -> &Container {
    let spec = pod_spec(ds);
    assert_eq!(spec.containers.len(), 1, "one container in the agent's pod");
    &spec.containers[0]
}

/// The value following `flag` in `args`.
pub fn flag<'a>(c: &'a Container, flag: &str) -> Option<&'a str> {
    let args = c.args.as_deref().unwrap_or_default();
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// The container port a probe targets.
pub fn probe_port(c: &Container, probe: &Probe) -> i32 {
    let port = &probe.http_get.as_ref().expect("an HTTP probe").port;
    match port {
        IntOrString::Int(p) => *p,
        IntOrString::String(name) => {
            c.ports
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("probe port {name} is not a container port"))
                .container_port
        }
    }
}

pub fn probe_path(probe: &Option<Probe>) -> Option<&str> {
    probe.as_ref()?.http_get.as_ref()?.path.as_deref()
}

pub fn env<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
    c.env
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|e| e.name == name)
}
