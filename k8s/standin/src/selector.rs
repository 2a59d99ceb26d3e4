//! Field and label selectors, as the API reads them from `fieldSelector` and `labelSelector`.
//! Supported: `a=b`, `a==b`, `a!=b` for both, and `key` / `!key` for labels; set-based label
//! requirements (`in`, `notin`) are refused.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    Absent(String),
}

/// A parsed selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    reqs: Vec<Req>,
}

impl Selector {
    /// `labels`: whether `key` / `!key` are allowed (label selectors only).
    pub fn parse(text: &str, labels: bool) -> Result<Selector, String> {
        let mut reqs = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if term.contains('(') || term.contains(' ') {
                return Err(format!("unsupported selector term `{term}`"));
            }
            let req = if let Some((k, v)) = term.split_once("!=") {
                Req::Ne(k.into(), v.into())
            } else if let Some((k, v)) = term.split_once("==") {
                Req::Eq(k.into(), v.into())
            } else if let Some((k, v)) = term.split_once('=') {
                Req::Eq(k.into(), v.into())
            } else if labels {
                match term.strip_prefix('!') {
                    Some(k) => Req::Absent(k.into()),
                    None => Req::Exists(term.into()),
                }
            } else {
                return Err(format!("invalid field selector term `{term}`"));
            };
            reqs.push(req);
        }
        Ok(Selector { reqs })
    }

    /// Field selector: each key is a dotted path into the object (`spec.nodeName`).
    pub fn matches_fields(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => field(obj, k) == *v,
            Req::Ne(k, v) => field(obj, k) != *v,
            Req::Exists(_) | Req::Absent(_) => false,
        })
    }

    /// Label selector over `metadata.labels`.
    pub fn matches_labels(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::Ne(k, v) => get(k) != Some(v.as_str()),
            Req::Exists(k) => get(k).is_some(),
            Req::Absent(k) => get(k).is_none(),
        })
    }
}

fn field(obj: &Value, path: &str) -> String {
    let mut v = obj;
    for part in path.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_and_labels() {
        let pod = json!({"metadata": {"name": "a", "labels": {"app": "web"}},
                         "spec": {"nodeName": "n1"}});
        assert!(Selector::parse("spec.nodeName=n1", false)
            .unwrap()
            .matches_fields(&pod));
        assert!(!Selector::parse("spec.nodeName=n2", false)
            .unwrap()
            .matches_fields(&pod));
        assert!(Selector::parse("metadata.name!=b", false)
            .unwrap()
            .matches_fields(&pod));
        assert!(Selector::parse("app=web,!tier", true)
            .unwrap()
            .matches_labels(&pod));
        assert!(!Selector::parse("app", true)
            .unwrap()
            .matches_labels(&json!({})));
        assert!(Selector::parse("app in (web)", true).is_err());
        assert!(Selector::parse("app", false).is_err());
    }
}
