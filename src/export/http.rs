//! The agent's HTTP endpoint: a deliberately small HTTP/1.1 server on tokio's TcpListener.
//!
//! - `GET /metrics`: the Prometheus text exposition ([`super::prometheus`]);
//! - `GET /healthz`: 200 while the process runs;
//! - `GET /readyz`: 200 once the capture is attached, 503 before (and while stopping).
//!
//! `HEAD` is answered like `GET` without the body; other methods get 405, other paths 404.
//! One request per connection (`Connection: close`), a request head of at most
//! [`MAX_HEAD`] bytes read within [`TIMEOUT`], at most [`MAX_CONNS`] connections served at
//! once (more are closed at once and counted in the log): a scraper or a probe needs no more,
//! and nothing a peer sends can make the agent hold more.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::{prometheus, Metrics};

/// Largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a connection may take to send its request and read the answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNS: usize = 16;

/// A bound, not yet serving, endpoint.
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    /// Listens on `addr` (port 0: any free port, see [`MetricsServer::local_addr`]).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<MetricsServer> {
        Ok(MetricsServer {
            listener: TcpListener::bind(addr).await?,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves on the current tokio runtime until the task is aborted or the runtime ends.
    pub fn spawn(self, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.serve(metrics))
    }

    async fn serve(self, metrics: Arc<Metrics>) {
        let permits = Arc::new(Semaphore::new(MAX_CONNS));
        let mut refused: u64 = 0;
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of fds and the like: wait instead of spinning.
                    tracing::warn!(reason = %e.kind(), "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                refused += 1;
                tracing::warn!(%peer, refused, "metrics endpoint: too many connections");
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                if tokio::time::timeout(TIMEOUT, answer(stream, &metrics))
                    .await
                    .is_err()
                {
                    tracing::debug!(%peer, "metrics endpoint: connection timed out");
                }
                drop(permit);
            });
        }
    }
}

/// Reads one request head and writes the answer.
async fn answer(mut stream: TcpStream, metrics: &Metrics) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(end) = find_head_end(&buf) {
            break Some(end);
        }
        if buf.len() >= MAX_HEAD {
            break None;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let reply = match head_end {
        Some(end) => route(&buf[..end], metrics),
        None => Reply::text(431, "request head too large\n"),
    };
    let sent = stream.write_all(&reply.encode()).await;
    if reply.scrape && sent.is_err() {
        metrics.count_export_failure("prometheus");
        tracing::debug!("metrics endpoint: a scrape answer could not be sent");
    }
    let _ = stream.shutdown().await;
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    head_only: bool,
    allow: bool,
    /// An answer to `/metrics`: failing to send it is an export failure.
    scrape: bool,
}

impl Reply {
    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
            head_only: false,
            allow: false,
            scrape: false,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Connection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// The answer to a request head (request-line and headers, without the blank line).
fn route(head: &[u8], metrics: &Metrics) -> Reply {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Reply::text(400, "bad request line\n");
    };
    if !version.starts_with("HTTP/1.") {
        return Reply::text(400, "HTTP/1.x only\n");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut r = Reply::text(405, "GET or HEAD\n");
            r.allow = true;
            return r;
        }
    };
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let mut reply = match path {
        "/metrics" => Reply {
            content_type: prometheus::CONTENT_TYPE,
            scrape: true,
            ..Reply::text(200, &metrics.render_prometheus())
        },
        "/healthz" => Reply::text(200, "ok\n"),
        "/readyz" if metrics.is_ready() => Reply::text(200, "ready\n"),
        "/readyz" => Reply::text(503, "not ready: capture not attached\n"),
        _ => Reply::text(404, "not found: /metrics, /healthz, /readyz\n"),
    };
    reply.head_only = head_only;
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(head: &str, m: &Metrics) -> u16 {
        route(head.as_bytes(), m).status
    }

    #[test]
    fn routes_and_methods() {
        let m = Metrics::new(Default::default());
        assert_eq!(status("GET /healthz HTTP/1.1", &m), 200);
        assert_eq!(status("GET /readyz HTTP/1.1", &m), 503);
        m.set_ready(true);
        assert_eq!(status("GET /readyz HTTP/1.0", &m), 200);
        assert_eq!(status("GET /metrics?x=1 HTTP/1.1\r\nHost: a", &m), 200);
        assert_eq!(status("HEAD /metrics HTTP/1.1", &m), 200);
        assert_eq!(status("POST /metrics HTTP/1.1", &m), 405);
        assert_eq!(status("GET /other HTTP/1.1", &m), 404);
        assert_eq!(status("GET /metrics", &m), 400);
        assert_eq!(status("GET /metrics HTTP/2", &m), 400);
        let head = route(b"HEAD /healthz HTTP/1.1", &m).encode();
        assert!(String::from_utf8_lossy(&head)
            .ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"));
    }
}
