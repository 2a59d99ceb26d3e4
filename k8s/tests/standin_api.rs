//! The API stand-in itself, at the HTTP level, as a client other than kube sees it: list
//! versions, watch events after a version, bookmarks, 410 Gone after expiry, selectors,
//! and objects that deserialize into their k8s-openapi types.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use wirelens_k8s_standin::{objects as o, Kind, StandIn};

/// One GET: (status, body lines with the chunk framing removed).
fn get(api: &StandIn, target: &str, read_for: Duration) -> (u16, Vec<Value>) {
    let mut s = TcpStream::connect(api.addr()).expect("connect");
    s.set_read_timeout(Some(read_for)).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code = status
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    let mut chunked = false;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        chunked |= h
            .to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked");
    }
    // A watch stays open: read what came within `read_for`.
    let end = std::time::Instant::now() + read_for;
    r.get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < end {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
    }
    let body = String::from_utf8_lossy(&raw);
    let values = if chunked {
        body.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("event JSON"))
            .collect()
    } else {
        vec![serde_json::from_str(&body).expect("JSON")]
    };
    (code, values)
}

fn pod(name: &str, node: &str, app: &str) -> Value {
    o::pod(
        "shop",
        name,
        "",
        node,
        &[("app", app)],
        None,
        "10.0.0.1",
        &[],
    )
}

#[test]
fn list_then_watch_from_its_version_with_selectors() {
    let api = StandIn::start().unwrap();
    api.apply(pod("a", "n1", "web")).unwrap();
    api.apply(pod("b", "n2", "web")).unwrap();
    let (code, list) = get(
        &api,
        "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1",
        Duration::from_secs(2),
    );
    assert_eq!(code, 200);
    assert_eq!(list[0]["kind"], "PodList");
    let items = list[0]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["name"], "a");
    let rv = list[0]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Changes after the list: one on n1 (seen), one on n2 (not), a label change, a delete.
    api.apply(pod("c", "n1", "web")).unwrap();
    api.apply(pod("d", "n2", "web")).unwrap();
    api.apply(pod("a", "n1", "api")).unwrap();
    assert!(api.delete(Kind::Pod, "shop", "c"));
    let (code, events) = get(
        &api,
        &format!("/api/v1/namespaces/shop/pods?watch=true&resourceVersion={rv}&fieldSelector=spec.nodeName%3Dn1"),
        Duration::from_millis(500),
    );
    assert_eq!(code, 200);
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["object"]["metadata"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ADDED".into(), "c".into()),
            ("MODIFIED".into(), "a".into()),
            ("DELETED".into(), "c".into())
        ]
    );
    // Versions only grow.
    let rvs: Vec<u64> = events
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");
    // Label selector.
    let (_, list) = get(
        &api,
        "/api/v1/pods?labelSelector=app%3Dweb",
        Duration::from_secs(2),
    );
    let names: Vec<&str> = list[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["b", "d"]);
    let (code, _) = get(
        &api,
        "/api/v1/pods?labelSelector=app+in+(web)",
        Duration::from_secs(2),
    );
    assert_eq!(code, 400);
}

#[test]
fn bookmarks_and_410_gone() {
    let api = StandIn::start().unwrap();
    api.apply(pod("a", "n1", "web")).unwrap();
    let rv = api.resource_version();
    let (_, events) = get(
        &api,
        &format!("/api/v1/pods?watch=true&resourceVersion={rv}&allowWatchBookmarks=true"),
        Duration::from_millis(1500),
    );
    let bookmark = events
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .expect("a bookmark");
    assert_eq!(bookmark["object"]["kind"], "Pod");
    assert_eq!(
        bookmark["object"]["metadata"]["resourceVersion"],
        rv.to_string()
    );
    api.expire_history();
    let (code, events) = get(
        &api,
        &format!("/api/v1/pods?watch=true&resourceVersion={rv}"),
        Duration::from_secs(2),
    );
    assert_eq!(code, 200, "the API answers 410 inside the watch stream");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[test]
fn down_and_up_on_the_same_port() {
    let api = StandIn::start().unwrap();
    let addr = api.addr();
    api.down();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
    api.up().unwrap();
    assert_eq!(api.addr(), addr);
    let (code, _) = get(&api, "/api/v1/namespaces", Duration::from_secs(2));
    assert_eq!(code, 200);
}

#[test]
fn objects_are_real_shaped() {
    use k8s_openapi::api::{
        apps::v1 as apps, batch::v1 as batch, core::v1 as core, discovery::v1 as disc,
    };
    let api = StandIn::start().unwrap();
    let cid = "ab".repeat(32);
    let stored = |v: Value| api.apply(v).unwrap();
    let p: core::Pod = serde_json::from_value(stored(o::pod(
        "shop",
        "p",
        "",
        "n1",
        &[("app", "x")],
        Some(o::owner("apps/v1", "ReplicaSet", "rs", "u")),
        "10.0.0.1",
        &[("c", &cid)],
    )))
    .unwrap();
    assert_eq!(
        p.status.unwrap().container_statuses.unwrap()[0]
            .container_id
            .as_deref(),
        Some(&*format!("containerd://{cid}"))
    );
    let _: apps::ReplicaSet =
        serde_json::from_value(stored(o::replicaset("shop", "rs", Some(("d", "u"))))).unwrap();
    let _: apps::Deployment =
        serde_json::from_value(stored(o::deployment("shop", "d", "u"))).unwrap();
    let _: batch::Job =
        serde_json::from_value(stored(o::job("shop", "j", Some(("cj", "u"))))).unwrap();
    let _: core::Namespace = serde_json::from_value(stored(o::namespace("shop", &[]))).unwrap();
    let _: core::Service =
        serde_json::from_value(stored(o::service("shop", "s", "10.96.0.1", 80))).unwrap();
    let s: disc::EndpointSlice = serde_json::from_value(stored(o::endpointslice(
        "shop",
        "s-1",
        "s",
        &[("10.0.0.1", "p", "n1")],
    )))
    .unwrap();
    assert_eq!(s.endpoints[0].addresses, vec!["10.0.0.1".to_string()]);
}
