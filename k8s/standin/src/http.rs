//! HTTP/1.1 for the stand-in: one request per connection (`Connection: close`), lists as
//! one JSON body, watches as a chunked stream of JSON lines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::broadcast::error::RecvError;

use crate::selector::Selector;
use crate::{Change, Kind, Shared};

/// Longest request head read.
const MAX_HEAD: usize = 64 * 1024;
/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Back up on the same port right after going down.
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(128)
}

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                conns.spawn(async move {
                    let _ = handle(stream, shared).await;
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
        // Reap finished connections; the set aborts the rest when this task is aborted.
        while conns.try_join_next().is_some() {}
    }
}

struct Query {
    watch: bool,
    resource_version: Option<u64>,
    bookmarks: bool,
    fields: Selector,
    labels: Selector,
    timeout: Option<Duration>,
}

async fn handle(mut stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let target = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                if req.method != Some("GET") {
                    return respond(
                        &mut stream,
                        405,
                        &status(405, "MethodNotAllowed", "only GET"),
                    )
                    .await;
                }
                break req.path.unwrap_or("/").to_string();
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            _ => return respond(&mut stream, 400, &status(400, "BadRequest", "bad request")).await,
        }
    };
    shared.lock().requests.push(format!("GET {target}"));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let Some((kind, namespace)) = route(path) else {
        return respond(&mut stream, 404, &status(404, "NotFound", "not served")).await;
    };
    let q = match parse_query(query) {
        Ok(q) => q,
        Err(m) => return respond(&mut stream, 400, &status(400, "BadRequest", &m)).await,
    };
    let matches = move |c: &Change| {
        c.kind == kind
            && namespace
                .as_deref()
                .is_none_or(|ns| c.object["metadata"]["namespace"] == ns)
            && q.fields.matches_fields(&c.object)
            && q.labels.matches_labels(&c.object)
    };
    if !q.watch {
        let (items, rv) = {
            let st = shared.lock();
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|((k, _, _), obj)| {
                    matches(&Change {
                        rv: 0,
                        kind: *k,
                        typ: "",
                        object: (*obj).clone(),
                    })
                })
                .map(|(_, o)| o.clone())
                .collect();
            (items, st.rv)
        };
        let list = json!({
            "kind": format!("{}List", kind.name()),
            "apiVersion": kind.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        });
        return respond(&mut stream, 200, &list).await;
    }

    // Watch: the backlog after the client's version and a subscription, under one lock so
    // that nothing falls between them.
    let mut epoch = shared.epoch.subscribe();
    let (backlog, mut rx, mut last_rv, gone) = {
        let st = shared.lock();
        let rx = st.tx.subscribe();
        match q.resource_version {
            Some(rv) if rv < st.oldest => (Vec::new(), rx, st.rv, Some(rv)),
            Some(rv) => {
                let backlog: Vec<Change> = st
                    .history
                    .iter()
                    .filter(|c| c.rv > rv && matches(c))
                    .cloned()
                    .collect();
                (backlog, rx, st.rv, None)
            }
            // No version: the current state as ADDED events, then changes.
            None => {
                let backlog = st
                    .objects
                    .iter()
                    .map(|((k, _, _), o)| Change {
                        rv: st.rv,
                        kind: *k,
                        typ: "ADDED",
                        object: o.clone(),
                    })
                    .filter(&matches)
                    .collect();
                (backlog, rx, st.rv, None)
            }
        }
    };
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .await?;
    if let Some(rv) = gone {
        let err = json!({"type": "ERROR", "object": status(410, "Expired",
            &format!("too old resource version: {rv} ({last_rv})"))});
        chunk(&mut stream, &err).await?;
        return stream.write_all(b"0\r\n\r\n").await;
    }
    for c in &backlog {
        chunk(&mut stream, &event(c)).await?;
    }
    let deadline = tokio::time::sleep(q.timeout.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(deadline);
    let mut bookmark = tokio::time::interval(BOOKMARK_EVERY);
    bookmark.tick().await;
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Ok(c) => {
                    last_rv = last_rv.max(c.rv);
                    if matches(&c) {
                        chunk(&mut stream, &event(&c)).await?;
                    }
                }
                // Fell behind or closed: end the watch; the client resumes from its version.
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => break,
            },
            _ = bookmark.tick(), if q.bookmarks => {
                let b = json!({"type": "BOOKMARK", "object": {
                    "kind": kind.name(), "apiVersion": kind.api_version(),
                    "metadata": {"resourceVersion": last_rv.to_string(),
                                 "annotations": {"k8s.io/initial-events-end": "true"}}}});
                chunk(&mut stream, &b).await?;
            }
            _ = epoch.changed() => return Ok(()),
            _ = &mut deadline => break,
        }
    }
    stream.write_all(b"0\r\n\r\n").await
}

fn event(c: &Change) -> Value {
    json!({"type": c.typ, "object": c.object})
}

async fn chunk(stream: &mut TcpStream, v: &Value) -> std::io::Result<()> {
    let mut line = v.to_string();
    line.push('\n');
    let mut out = format!("{:x}\r\n", line.len()).into_bytes();
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
    stream.write_all(&out).await?;
    stream.flush().await
}

async fn respond(stream: &mut TcpStream, code: u16, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// A meta/v1 Status.
fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// `/api/v1/pods`, `/api/v1/namespaces/NS/pods`, `/apis/G/V/replicasets`,
/// `/apis/G/V/namespaces/NS/replicasets` -> (kind, namespace).
fn route(path: &str) -> Option<(Kind, Option<String>)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (ns, plural) = match rest {
        [plural] => (None, *plural),
        ["namespaces", ns, plural] => (Some(ns.to_string()), *plural),
        _ => return None,
    };
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.plural() == plural && k.api_version() == gv)?;
    if ns.is_some() && !kind.namespaced() {
        return None;
    }
    Some((kind, ns))
}

fn parse_query(q: &str) -> Result<Query, String> {
    let mut out = Query {
        watch: false,
        resource_version: None,
        bookmarks: false,
        fields: Selector::default(),
        labels: Selector::default(),
        timeout: None,
    };
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v);
        match k {
            "watch" => out.watch = v == "true" || v == "1",
            "resourceVersion" if v.is_empty() || v == "0" => {}
            "resourceVersion" => {
                out.resource_version = Some(
                    v.parse()
                        .map_err(|_| format!("invalid resourceVersion `{v}`"))?,
                )
            }
            "allowWatchBookmarks" => out.bookmarks = v == "true",
            "fieldSelector" => out.fields = Selector::parse(&v, false)?,
            "labelSelector" => out.labels = Selector::parse(&v, true)?,
            "timeoutSeconds" => {
                out.timeout = v.parse().ok().map(Duration::from_secs);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Percent-decoding of a query value (`+` is a space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/api/v1/pods"), Some((Kind::Pod, None)));
        assert_eq!(
            route("/apis/apps/v1/namespaces/shop/replicasets"),
            Some((Kind::ReplicaSet, Some("shop".into())))
        );
        assert_eq!(route("/api/v1/namespaces"), Some((Kind::Namespace, None)));
        assert_eq!(
            route("/apis/discovery.k8s.io/v1/endpointslices"),
            Some((Kind::EndpointSlice, None))
        );
        assert_eq!(route("/apis/apps/v2/replicasets"), None);
        assert_eq!(route("/version"), None);
    }

    #[test]
    fn decodes() {
        assert_eq!(decode("spec.nodeName%3Dnode-1"), "spec.nodeName=node-1");
        assert_eq!(decode("a+b%2"), "a b%2");
    }
}
