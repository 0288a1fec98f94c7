//! The admin listener: `/healthz` (alias `/livez`), `/readyz`, `/metrics`, `/status`.
//! Bind it to a private address; it exposes metrics and dependency state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus::Registry;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::health::{DependencyStatus, Health};
use super::listener::Phase;
use crate::body::{Body, full};

/// Most admin connections served at once.
const MAX_ADMIN_CONNECTIONS: usize = 64;

/// What the admin endpoints read.
pub struct AdminState {
    /// Readiness and dependencies.
    pub health: Arc<Health>,
    /// Everything `/metrics` exposes.
    pub registry: Registry,
    /// When the server started.
    pub started: Instant,
    /// The legacy upstream, for `/status`.
    pub upstream: String,
}

#[derive(Serialize)]
struct Status<'a> {
    version: &'a str,
    ready: bool,
    uptime_seconds: u64,
    upstream: &'a str,
    dependencies: std::collections::BTreeMap<String, DependencyStatus>,
}

/// Serves the admin endpoints until the phase is `Closed`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut phase: watch::Receiver<Phase>,
) {
    let permits = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = phase.wait_for(|p| *p == Phase::Closed) => return,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue; // over the limit: drop the connection
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&state, &req)) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5));
            let conn = builder.serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
            drop(permit);
        });
    }
}

fn route(state: &AdminState, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if state.health.is_ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/metrics" => match crate::metrics::render(&state.registry) {
            Ok(body) => with_type(StatusCode::OK, crate::metrics::CONTENT_TYPE, body),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
        },
        "/status" => {
            let status = Status {
                version: env!("CARGO_PKG_VERSION"),
                ready: state.health.is_ready(),
                uptime_seconds: state.started.elapsed().as_secs(),
                upstream: &state.upstream,
                dependencies: state.health.dependencies(),
            };
            match serde_json::to_string_pretty(&status) {
                Ok(json) => with_type(StatusCode::OK, "application/json", json + "\n"),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    with_type(status, "text/plain; charset=utf-8", body.to_owned())
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}
