//! The Indexer's monitoring endpoints over plain HTTP (`tiny_http`, one
//! thread): `/metrics` (Prometheus/OpenMetrics text), `/healthz`, `/readyz`.
//! What they say is decided in `spk_messaging_kafka::metrics`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use spk_messaging_kafka::metrics::IndexerMetrics;
use tiny_http::{Header, Method, Response, Server};

/// `--metrics-addr HOST:PORT` as one socket address.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let mut addrs = text.to_socket_addrs().map_err(|e| {
        format!("{text:?} is not HOST:PORT ({e}); write e.g. 127.0.0.1:9464, 0.0.0.0:9464 or [::1]:9464")
    })?;
    addrs
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address; write e.g. 127.0.0.1:9464"))
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn text_response(
    code: u16,
    body: String,
    content_type: &str,
) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut r = Response::from_string(body).with_status_code(code);
    if let Ok(h) = Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes()) {
        r.add_header(h);
    }
    r
}

/// Binds `addr` and answers until the returned server is dropped.
pub fn start(addr: SocketAddr, metrics: &'static IndexerMetrics) -> anyhow::Result<MetricsServer> {
    let server = Server::http(addr)
        .map_err(|e| anyhow!("--metrics-addr {addr}: cannot listen there: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| anyhow!("--metrics-addr {addr}: not an IP socket"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("spk-metrics-http".into())
        .spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let req = match server.recv_timeout(Duration::from_millis(200)) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!("metrics server: {e}");
                        continue;
                    }
                };
                let path = req.url().split('?').next().unwrap_or_default().to_string();
                let resp = match (req.method(), path.as_str()) {
                    (Method::Get | Method::Head, "/metrics") => text_response(
                        200,
                        metrics.encode(),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                    (Method::Get | Method::Head, "/healthz") => match metrics.healthz() {
                        Ok(()) => text_response(200, "ok\n".into(), "text/plain; charset=utf-8"),
                        Err(why) => text_response(
                            503,
                            format!("unhealthy: {why}\n"),
                            "text/plain; charset=utf-8",
                        ),
                    },
                    (Method::Get | Method::Head, "/readyz") => match metrics.readyz() {
                        Ok(()) => text_response(200, "ready\n".into(), "text/plain; charset=utf-8"),
                        Err(why) => text_response(
                            503,
                            format!("not ready: {why}\n"),
                            "text/plain; charset=utf-8",
                        ),
                    },
                    (_, "/metrics" | "/healthz" | "/readyz") => {
                        text_response(405, "use GET\n".into(), "text/plain; charset=utf-8")
                    }
                    _ => text_response(
                        404,
                        "not found; try /metrics, /healthz or /readyz\n".into(),
                        "text/plain; charset=utf-8",
                    ),
                };
                if let Err(e) = req.respond(resp) {
                    tracing::debug!("metrics server: cannot answer: {e}");
                }
            }
        })
        .context("cannot start the metrics server thread")?;
    Ok(MetricsServer {
        addr: bound,
        stop,
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_addresses_say_what_would_be_right() {
        assert!(parse_addr("127.0.0.1:9464").is_ok());
        assert!(parse_addr("[::1]:0").is_ok());
        for bad in ["9464", "localhost", "127.0.0.1:port", ""] {
            let e = parse_addr(bad).unwrap_err();
            assert!(e.contains("127.0.0.1:9464"), "{bad}: {e}");
        }
    }

    #[test]
    fn serves_metrics_health_and_readiness() {
        let m: &'static IndexerMetrics = Box::leak(Box::new(IndexerMetrics::new()));
        m.tick();
        let s = start(parse_addr("127.0.0.1:0").unwrap(), m).unwrap();
        let get = |path: &str| -> (u16, String) {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect(s.addr).unwrap();
            write!(c, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut text = String::new();
            c.read_to_string(&mut text).unwrap();
            let code = text[9..12].parse().unwrap();
            let body = text
                .split("\r\n\r\n")
                .nth(1)
                .unwrap_or_default()
                .to_string();
            (code, body)
        };
        let (code, body) = get("/metrics");
        assert_eq!(code, 200);
        assert!(
            body.contains("spk_indexer_runs_total") || body.contains("spk_indexer_ready"),
            "{body}"
        );
        assert_eq!(get("/healthz").0, 200);
        let (code, body) = get("/readyz");
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("brokers"), "{body}");
        m.set_connected(true);
        assert_eq!(get("/readyz").0, 200);
        assert_eq!(get("/nope").0, 404);
    }
}
