//! Compiled selectors and the decision for one process.

use std::collections::BTreeMap;

use regex::{Regex, RegexSet};

use crate::config::{FilterConfig, NsRef, SelectorConfig};
use crate::FilterError;

/// What is known about one process when it is decided. Kubernetes fields are `None` (and
/// maps empty) for a process outside any pod.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    pub pid: u32,
    pub cmdline: String,
    pub exe: String,
    pub cgroup: String,
    pub container: Option<String>,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The labels of the pod's namespace.
    pub namespace_labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub netns: Option<u64>,
    pub pidns: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Drop,
}

/// A compiled selector. A key with no entries places no condition.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    cmdline: Option<RegexSet>,
    exe: Option<RegexSet>,
    cgroup: Option<RegexSet>,
    container: Option<RegexSet>,
    pod: Option<RegexSet>,
    namespace: Option<RegexSet>,
    labels: Vec<(String, Regex)>,
    namespace_labels: Vec<(String, Regex)>,
    annotations: Vec<(String, Regex)>,
    env: Vec<(String, Regex)>,
    netns: Vec<u64>,
    pidns: Vec<u64>,
}

/// The compiled filters.
#[derive(Clone, Debug)]
pub struct Filters {
    pub include: Selector,
    pub exclude: Selector,
}

fn set(field: &str, patterns: &[String]) -> Result<Option<RegexSet>, FilterError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    // Compile each alone first so that an error names the entry.
    for (i, p) in patterns.iter().enumerate() {
        Regex::new(p).map_err(|e| FilterError::Regex {
            field: format!("{field}[{i}]"),
            message: e.to_string(),
        })?;
    }
    RegexSet::new(patterns)
        .map(Some)
        .map_err(|e| FilterError::Regex {
            field: field.to_string(),
            message: e.to_string(),
        })
}

fn map(field: &str, m: &BTreeMap<String, String>) -> Result<Vec<(String, Regex)>, FilterError> {
    m.iter()
        .map(|(k, v)| {
            Regex::new(v)
                .map(|r| (k.clone(), r))
                .map_err(|e| FilterError::Regex {
                    field: format!("{field}.{k}"),
                    message: e.to_string(),
                })
        })
        .collect()
}

fn ns(
    field: &str,
    refs: &[NsRef],
    resolve: &dyn Fn(&str) -> Result<u64, String>,
) -> Result<Vec<u64>, FilterError> {
    refs.iter()
        .enumerate()
        .map(|(i, r)| match r {
            NsRef::Inode(n) => Ok(*n),
            NsRef::Path(p) => resolve(p).map_err(|message| FilterError::Invalid {
                field: format!("{field}[{i}]"),
                message,
            }),
        })
        .collect()
}

impl Selector {
    /// Compiles one selector; `field` prefixes error paths (`filters.include`).
    pub fn build(
        field: &str,
        c: &SelectorConfig,
        resolve: &dyn Fn(&str) -> Result<u64, String>,
    ) -> Result<Selector, FilterError> {
        Ok(Selector {
            cmdline: set(&format!("{field}.cmdline"), &c.cmdline)?,
            exe: set(&format!("{field}.exe"), &c.exe)?,
            cgroup: set(&format!("{field}.cgroup"), &c.cgroup)?,
            container: set(&format!("{field}.container"), &c.container)?,
            pod: set(&format!("{field}.pod"), &c.pod)?,
            namespace: set(&format!("{field}.namespace"), &c.namespace)?,
            labels: map(&format!("{field}.labels"), &c.labels)?,
            namespace_labels: map(&format!("{field}.namespace_labels"), &c.namespace_labels)?,
            annotations: map(&format!("{field}.annotations"), &c.annotations)?,
            env: map(&format!("{field}.env"), &c.env)?,
            netns: ns(&format!("{field}.netns"), &c.netns, resolve)?,
            pidns: ns(&format!("{field}.pidns"), &c.pidns, resolve)?,
        })
    }

    /// True when no key places a condition.
    pub fn is_empty(&self) -> bool {
        self.cmdline.is_none()
            && self.exe.is_none()
            && self.cgroup.is_none()
            && self.container.is_none()
            && self.pod.is_none()
            && self.namespace.is_none()
            && self.labels.is_empty()
            && self.namespace_labels.is_empty()
            && self.annotations.is_empty()
            && self.env.is_empty()
            && self.netns.is_empty()
            && self.pidns.is_empty()
    }

    /// True when every key given matches the subject (and at least one key is given).
    pub fn matches(&self, s: &Subject) -> bool {
        if self.is_empty() {
            return false;
        }
        fn one(set: &Option<RegexSet>, v: Option<&str>) -> bool {
            match set {
                None => true,
                Some(set) => v.is_some_and(|v| set.is_match(v)),
            }
        }
        fn each(conds: &[(String, Regex)], have: &BTreeMap<String, String>) -> bool {
            conds
                .iter()
                .all(|(k, r)| have.get(k).is_some_and(|v| r.is_match(v)))
        }
        fn inode(list: &[u64], v: Option<u64>) -> bool {
            list.is_empty() || v.is_some_and(|v| list.contains(&v))
        }
        one(&self.cmdline, Some(&s.cmdline))
            && one(&self.exe, Some(&s.exe))
            && one(&self.cgroup, Some(&s.cgroup))
            && one(&self.container, s.container.as_deref())
            && one(&self.pod, s.pod.as_deref())
            && one(&self.namespace, s.namespace.as_deref())
            && each(&self.labels, &s.labels)
            && each(&self.namespace_labels, &s.namespace_labels)
            && each(&self.annotations, &s.annotations)
            && each(&self.env, &s.env)
            && inode(&self.netns, s.netns)
            && inode(&self.pidns, s.pidns)
    }

    /// Whether deciding needs the process's environment (reading it costs a file read).
    pub fn needs_env(&self) -> bool {
        !self.env.is_empty()
    }

    /// True when only properties shared by every process of a cgroup are used (cgroup,
    /// container, pod, namespace, labels, namespace labels, annotations): then a cgroup can
    /// be decided as a whole.
    pub fn per_cgroup(&self) -> bool {
        self.cmdline.is_none()
            && self.exe.is_none()
            && self.env.is_empty()
            && self.netns.is_empty()
            && self.pidns.is_empty()
    }
}

impl Filters {
    /// Compiles the configuration; namespace paths are turned into inode numbers by
    /// `resolve`. Errors name the field, e.g. `filters.exclude.cmdline[0]`.
    pub fn build(
        c: &FilterConfig,
        resolve: &dyn Fn(&str) -> Result<u64, String>,
    ) -> Result<Filters, FilterError> {
        if !c.drop_unix {
            return Err(FilterError::Invalid {
                field: "filters.drop_unix".into(),
                message: "unix sockets are not captured yet; only `true` is supported".into(),
            });
        }
        let overlap: Vec<u16> = c
            .ports
            .include
            .iter()
            .filter(|p| c.ports.exclude.contains(p))
            .copied()
            .collect();
        if !overlap.is_empty() {
            return Err(FilterError::Invalid {
                field: "filters.ports".into(),
                message: format!("ports {overlap:?} are both included and excluded"),
            });
        }
        Ok(Filters {
            include: Selector::build("filters.include", &c.include, resolve)?,
            exclude: Selector::build("filters.exclude", &c.exclude, resolve)?,
        })
    }

    /// True when no selector places a condition: every process is kept.
    pub fn keeps_everything(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Exclude wins over include; an empty include keeps everything.
    pub fn decide(&self, s: &Subject) -> Decision {
        if self.exclude.matches(s) {
            return Decision::Drop;
        }
        if self.include.is_empty() || self.include.matches(s) {
            Decision::Keep
        } else {
            Decision::Drop
        }
    }

    pub fn needs_env(&self) -> bool {
        self.include.needs_env() || self.exclude.needs_env()
    }

    /// True when every process of a cgroup gets the same decision (see
    /// [`Selector::per_cgroup`]), so the kernel can decide new processes by their cgroup.
    pub fn per_cgroup(&self) -> bool {
        self.include.per_cgroup() && self.exclude.per_cgroup()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_paths(p: &str) -> Result<u64, String> {
        Err(format!("cannot resolve {p}"))
    }

    fn filters(yaml_include: SelectorConfig, yaml_exclude: SelectorConfig) -> Filters {
        let c = FilterConfig {
            include: yaml_include,
            exclude: yaml_exclude,
            ..FilterConfig::default()
        };
        Filters::build(&c, &no_paths).unwrap()
    }

    fn proc(cmdline: &str) -> Subject {
        Subject {
            cmdline: cmdline.into(),
            exe: "/usr/sbin/nginx".into(),
            ..Subject::default()
        }
    }

    #[test]
    fn empty_keeps_everything() {
        let f = filters(SelectorConfig::default(), SelectorConfig::default());
        assert!(f.keeps_everything());
        assert_eq!(f.decide(&proc("anything")), Decision::Keep);
    }

    #[test]
    fn exclude_wins_over_include() {
        let f = filters(
            SelectorConfig {
                cmdline: vec!["^nginx".into()],
                ..Default::default()
            },
            SelectorConfig {
                cmdline: vec!["worker".into()],
                ..Default::default()
            },
        );
        assert_eq!(f.decide(&proc("nginx: master")), Decision::Keep);
        assert_eq!(f.decide(&proc("nginx: worker process")), Decision::Drop);
        assert_eq!(f.decide(&proc("redis-server")), Decision::Drop);
    }

    #[test]
    fn any_entry_within_a_list_all_keys_across() {
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), "^(cart|orders)$".to_string());
        let f = filters(
            SelectorConfig {
                cmdline: vec!["^nginx".into(), "java .*-jar orders".into()],
                labels,
                ..Default::default()
            },
            SelectorConfig::default(),
        );
        let mut s = proc("java -Xmx1g -jar orders.jar");
        assert_eq!(f.decide(&s), Decision::Drop, "no label: one key fails");
        s.labels.insert("app".into(), "orders".into());
        assert_eq!(f.decide(&s), Decision::Keep);
        s.labels.insert("app".into(), "ordersx".into());
        assert_eq!(f.decide(&s), Decision::Drop, "anchored label regex");
        let mut s = proc("nginx -g daemon off;");
        s.labels.insert("app".into(), "cart".into());
        assert_eq!(f.decide(&s), Decision::Keep);
    }

    /// Namespace labels are the namespace's, not the pod's: a pod label of the same key
    /// does not stand in for one. Per cgroup, like the other Kubernetes keys.
    #[test]
    fn namespace_labels_are_the_namespaces_own() {
        let mut ns_labels = BTreeMap::new();
        ns_labels.insert("team".to_string(), "^payments$".to_string());
        let f = filters(
            SelectorConfig::default(),
            SelectorConfig {
                namespace_labels: ns_labels,
                ..Default::default()
            },
        );
        assert!(f.per_cgroup());
        let mut s = proc("api");
        assert_eq!(
            f.decide(&s),
            Decision::Keep,
            "outside a pod: no namespace labels"
        );
        s.labels.insert("team".into(), "payments".into());
        assert_eq!(
            f.decide(&s),
            Decision::Keep,
            "a pod label is not the namespace's"
        );
        s.namespace_labels.insert("team".into(), "payments".into());
        assert_eq!(f.decide(&s), Decision::Drop);
        s.namespace_labels
            .insert("team".into(), "payments-eu".into());
        assert_eq!(f.decide(&s), Decision::Keep, "anchored");
    }

    #[test]
    fn env_and_namespaces() {
        let mut env = BTreeMap::new();
        env.insert("DEPLOY_ENV".to_string(), "^prod$".to_string());
        let f = filters(
            SelectorConfig {
                env,
                netns: vec![NsRef::Inode(4026531840)],
                ..Default::default()
            },
            SelectorConfig::default(),
        );
        let mut s = proc("app");
        s.env.insert("DEPLOY_ENV".into(), "prod".into());
        s.netns = Some(4026531840);
        assert_eq!(f.decide(&s), Decision::Keep);
        s.netns = Some(1);
        assert_eq!(f.decide(&s), Decision::Drop);
        s.netns = Some(4026531840);
        s.env.insert("DEPLOY_ENV".into(), "staging".into());
        assert_eq!(f.decide(&s), Decision::Drop);
        assert!(f.needs_env());
    }

    #[test]
    fn bad_regex_names_the_field_and_entry() {
        let c = FilterConfig {
            exclude: SelectorConfig {
                cmdline: vec!["ok".into(), "([unclosed".into()],
                ..Default::default()
            },
            ..FilterConfig::default()
        };
        let e = Filters::build(&c, &no_paths).unwrap_err();
        let FilterError::Regex { field, message } = &e else {
            panic!("{e}")
        };
        assert_eq!(field, "filters.exclude.cmdline[1]");
        assert!(message.contains("unclosed"), "{message}");
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), "*".to_string());
        let c = FilterConfig {
            include: SelectorConfig {
                labels,
                ..Default::default()
            },
            ..FilterConfig::default()
        };
        let e = Filters::build(&c, &no_paths).unwrap_err().to_string();
        assert!(
            e.starts_with("filters.include.labels.app: invalid regular expression"),
            "{e}"
        );
    }

    #[test]
    fn namespace_paths_resolve_or_fail_with_the_field() {
        let c = FilterConfig {
            include: SelectorConfig {
                netns: vec![NsRef::Path("/var/run/netns/blue".into())],
                ..Default::default()
            },
            ..FilterConfig::default()
        };
        let e = Filters::build(&c, &no_paths).unwrap_err().to_string();
        assert_eq!(
            e,
            "filters.include.netns[0]: cannot resolve /var/run/netns/blue"
        );
        let f = Filters::build(&c, &|_| Ok(77)).unwrap();
        let mut s = proc("x");
        s.netns = Some(77);
        assert_eq!(f.decide(&s), Decision::Keep);
    }

    #[test]
    fn kubernetes_keys_do_not_match_host_processes() {
        let f = filters(
            SelectorConfig::default(),
            SelectorConfig {
                namespace: vec!["^kube-system$".into()],
                ..Default::default()
            },
        );
        assert_eq!(f.decide(&proc("kubelet")), Decision::Keep);
        let mut s = proc("coredns");
        s.namespace = Some("kube-system".into());
        assert_eq!(f.decide(&s), Decision::Drop);
    }

    #[test]
    fn unsupported_and_contradictory_settings_are_refused() {
        let c = FilterConfig {
            drop_unix: false,
            ..FilterConfig::default()
        };
        assert!(Filters::build(&c, &no_paths)
            .unwrap_err()
            .to_string()
            .starts_with("filters.drop_unix"));
        let mut c = FilterConfig::default();
        c.ports.include = vec![80, 443];
        c.ports.exclude = vec![443];
        assert!(Filters::build(&c, &no_paths)
            .unwrap_err()
            .to_string()
            .contains("[443]"));
    }
}
