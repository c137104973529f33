//! The metrics listener: `GET /metrics` (Prometheus text format),
//! `GET /ready` (200, or 503 with the reasons) and `GET /live` (200 while
//! the process runs).
//!
//! A deliberately small HTTP/1.1 responder: one request per connection,
//! request head capped at 8 KiB and 5 s, `Connection: close`. That is all a
//! Prometheus scrape or a Kubernetes probe needs, without a web framework in
//! the build.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::health::Readiness;

const MAX_REQUEST_HEAD: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoints read.
#[derive(Clone)]
pub struct Endpoints {
    pub registry: Arc<prometheus::Registry>,
    pub readiness: Arc<Readiness>,
}

/// Binds the listener (port 0 picks a free one); the address is logged.
pub async fn bind(address: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    tracing::info!("metrics on http://{local}/metrics, readiness on /ready, liveness on /live");
    Ok((listener, local))
}

/// Answers requests until the task is aborted.
pub async fn serve(listener: TcpListener, endpoints: Endpoints) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let endpoints = endpoints.clone();
                tokio::spawn(async move {
                    if let Err(error) = answer(stream, &endpoints).await {
                        tracing::debug!(%error, "metrics request failed");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "metrics listener cannot accept; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, endpoints: &Endpoints) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let response = respond(&head, endpoints);
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// Reads up to the blank line that ends the request head.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(head)
}

/// The whole HTTP response to a request head.
fn respond(head: &[u8], endpoints: &Endpoints) -> Vec<u8> {
    let line = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    if method != "GET" && method != "HEAD" {
        return http(
            405,
            "Method Not Allowed",
            "text/plain",
            "only GET\n",
            method == "HEAD",
        );
    }
    let head_only = method == "HEAD";
    match path {
        "/metrics" => {
            let body = super::render(&endpoints.registry);
            http(200, "OK", prometheus::TEXT_FORMAT, &body, head_only)
        }
        "/ready" => match endpoints.readiness.check() {
            Ok(()) => http(200, "OK", "text/plain", "ready\n", head_only),
            Err(reasons) => {
                let body = format!("not ready\n{}\n", reasons.join("\n"));
                http(503, "Service Unavailable", "text/plain", &body, head_only)
            }
        },
        "/live" => http(200, "OK", "text/plain", "live\n", head_only),
        _ => http(
            404,
            "Not Found",
            "text/plain",
            "try /metrics, /ready or /live\n",
            head_only,
        ),
    }
}

fn http(status: u16, reason: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::NodeState;

    fn endpoints() -> Endpoints {
        Endpoints {
            registry: Arc::new(prometheus::Registry::new()),
            readiness: Arc::new(Readiness::default()),
        }
    }

    fn text(response: Vec<u8>) -> String {
        String::from_utf8(response).expect("utf-8")
    }

    #[test]
    fn ready_reports_503_with_reasons_until_every_node_is_ready() {
        let endpoints = endpoints();
        let flag = endpoints.readiness.register("in");
        let response = text(respond(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", &endpoints));
        assert!(
            response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{response}"
        );
        assert!(response.ends_with("not ready\nnode 'in': starting: waiting for its brokers\n"));
        flag.set(NodeState::Ready);
        let response = text(respond(b"GET /ready HTTP/1.1\r\n\r\n", &endpoints));
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("\r\n\r\nready\n"));
    }

    #[test]
    fn other_paths_and_methods() {
        let endpoints = endpoints();
        let live = text(respond(b"GET /live?x=1 HTTP/1.0\r\n\r\n", &endpoints));
        assert!(live.starts_with("HTTP/1.1 200 OK") && live.contains("Content-Length: 5\r\n"));
        assert!(text(respond(b"GET /nope HTTP/1.1\r\n\r\n", &endpoints)).starts_with("HTTP/1.1 404"));
        assert!(text(respond(b"POST /metrics HTTP/1.1\r\n\r\n", &endpoints)).starts_with("HTTP/1.1 405"));
        assert!(text(respond(b"\xff\xfe garbage", &endpoints)).starts_with("HTTP/1.1 405"));
        let head = text(respond(b"HEAD /live HTTP/1.1\r\n\r\n", &endpoints));
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
        let metrics = text(respond(b"GET /metrics HTTP/1.1\r\n\r\n", &endpoints));
        assert!(
            metrics.contains("Content-Type: text/plain; version=0.0.4"),
            "{metrics}"
        );
    }
}
