//! The agent's `kubernetes:` configuration section, and the settings it builds into.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `kubernetes.enabled`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Enabled {
    /// On when a node is named (`NODE_NAME`, which the DaemonSet sets, or
    /// `kubernetes.node_name`); off on a plain host and in other pods.
    #[default]
    Auto,
    On,
    Off,
}

impl<'de> Deserialize<'de> for Enabled {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Enabled, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Enabled::On),
            Raw::Bool(false) => Ok(Enabled::Off),
            Raw::Text(t) => match t.as_str() {
                "auto" => Ok(Enabled::Auto),
                "true" => Ok(Enabled::On),
                "false" => Ok(Enabled::Off),
                other => Err(serde::de::Error::custom(format!(
                    "`{other}` is not one of auto, true, false"
                ))),
            },
        }
    }
}

/// The `kubernetes:` section. Every key is optional.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// `auto`, `true` or `false`.
    pub enabled: Enabled,
    /// The node whose pods are watched; absent: the `NODE_NAME` environment variable.
    pub node_name: Option<String>,
    /// A kubeconfig file; absent: `KUBECONFIG`, `~/.kube/config`, then the in-cluster
    /// service account, in that order (`kube::Config::infer`).
    pub kubeconfig: Option<PathBuf>,
    /// Seconds a deleted object keeps naming records (their last requests are still being
    /// paired).
    pub grace_period_s: u64,
    /// Objects held per kind (pods, ReplicaSets, Jobs, namespaces, Services,
    /// EndpointSlices); more are refused and counted.
    pub max_objects: usize,
    /// Seconds the agent waits at start for the first list of every kind before it starts
    /// capturing (it captures anyway after that, and names pods once they are known).
    pub sync_timeout_s: u64,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            enabled: Enabled::Auto,
            node_name: None,
            kubeconfig: None,
            grace_period_s: 60,
            max_objects: 50_000,
            sync_timeout_s: 10,
        }
    }
}

/// What the metadata source runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaSettings {
    pub node_name: String,
    pub kubeconfig: Option<PathBuf>,
    pub grace: Duration,
    pub max_objects: usize,
    pub sync_timeout: Duration,
    /// First and longest wait before a failed watch is tried again (doubling in between).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl MetaSettings {
    /// Settings for `node`, with the defaults of [`KubernetesConfig`].
    pub fn for_node(node: &str) -> MetaSettings {
        let d = KubernetesConfig::default();
        MetaSettings {
            node_name: node.to_string(),
            kubeconfig: None,
            grace: Duration::from_secs(d.grace_period_s),
            max_objects: d.max_objects,
            sync_timeout: Duration::from_secs(d.sync_timeout_s),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
        }
    }
}

impl KubernetesConfig {
    /// `None` when disabled. `env` reads an environment variable. Errors name the field.
    pub fn build(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<MetaSettings>, (String, String)> {
        let set = |k: &str| env(k).filter(|v| !v.is_empty());
        let on = match self.enabled {
            Enabled::On => true,
            Enabled::Off => false,
            // The node is what the agent watches: without one (a pod that is not the
            // DaemonSet's, a CI job in a cluster) auto stays off rather than refusing to start.
            Enabled::Auto => {
                set("NODE_NAME").is_some()
                    || self.node_name.as_deref().is_some_and(|n| !n.is_empty())
            }
        };
        if !on {
            return Ok(None);
        }
        let node = match self.node_name.clone().filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => set("NODE_NAME").ok_or_else(|| {
                (
                    "kubernetes.node_name".to_string(),
                    "not set, and NODE_NAME is empty: the agent watches the pods of one node \
                     (the DaemonSet sets NODE_NAME from spec.nodeName)"
                        .to_string(),
                )
            })?,
        };
        if self.max_objects == 0 {
            return Err(("kubernetes.max_objects".into(), "must be at least 1".into()));
        }
        let mut s = MetaSettings::for_node(&node);
        s.kubeconfig = self.kubeconfig.clone();
        s.grace = Duration::from_secs(self.grace_period_s);
        s.max_objects = self.max_objects;
        s.sync_timeout = Duration::from_secs(self.sync_timeout_s);
        Ok(Some(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn auto_follows_the_environment() {
        let c = KubernetesConfig::default();
        assert_eq!(c.build(&env(&[])).unwrap(), None);
        let s = c.build(&env(&[("NODE_NAME", "n1")])).unwrap().unwrap();
        assert_eq!(s.node_name, "n1");
        assert_eq!(s.grace, Duration::from_secs(60));
        // In a pod without NODE_NAME, auto stays off; `true` says what is missing.
        assert_eq!(
            c.build(&env(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]))
                .unwrap(),
            None
        );
        let on = KubernetesConfig {
            enabled: Enabled::On,
            ..KubernetesConfig::default()
        };
        let e = on
            .build(&env(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]))
            .unwrap_err();
        assert_eq!(e.0, "kubernetes.node_name");
        let off = KubernetesConfig {
            enabled: Enabled::Off,
            ..KubernetesConfig::default()
        };
        assert_eq!(off.build(&env(&[("NODE_NAME", "n1")])).unwrap(), None);
    }

    #[test]
    fn parses_bool_or_word() {
        for (text, want) in [
            ("enabled: true", Enabled::On),
            ("enabled: \"false\"", Enabled::Off),
            ("enabled: auto", Enabled::Auto),
        ] {
            let c: KubernetesConfig = serde_yaml::from_str(text).unwrap();
            assert_eq!(c.enabled, want, "{text}");
        }
        assert!(serde_yaml::from_str::<KubernetesConfig>("enabled: maybe").is_err());
        assert!(serde_yaml::from_str::<KubernetesConfig>("grace: 1").is_err());
    }
}
