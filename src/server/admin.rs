//! The admin listener: `/healthz` (alias `/livez`), `/readyz`, `/metrics`, `/status`, and
//! `GET`/`POST /phase` to read or change the migration phase and canary share at run time.
//! Bind it to a private address; it exposes metrics, dependency state and the phase switch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus::Registry;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::health::{DependencyStatus, Health};
use super::listener::Phase;
use crate::body::{Body, full};
use crate::migrate::{Engine, RuntimeSettings};

/// Most admin connections served at once.
const MAX_ADMIN_CONNECTIONS: usize = 64;
/// Largest `POST /phase` body.
const MAX_ADMIN_BODY: usize = 4096;

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
    /// The migration engine, when migration is configured.
    pub engine: Option<Engine>,
}

#[derive(Serialize)]
struct Status<'a> {
    version: &'a str,
    ready: bool,
    uptime_seconds: u64,
    upstream: &'a str,
    dependencies: std::collections::BTreeMap<String, DependencyStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    migration: Option<MigrationStatus>,
}

#[derive(Serialize)]
struct MigrationStatus {
    settings: RuntimeSettings,
    /// Users per ledger state (absent when the ledger could not be read).
    ledger_users: Option<std::collections::BTreeMap<String, u64>>,
}

/// A requested phase change; absent fields stay as they are.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseChange {
    phase: Option<crate::migrate::Phase>,
    canary_percent: Option<f64>,
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
                async move { Ok::<_, std::convert::Infallible>(route(&state, req).await) }
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

async fn route(state: &AdminState, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == "/phase" && req.method() == Method::POST {
        return change_phase(state, req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match path.as_str() {
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
        "/status" => status(state).await,
        "/phase" => match &state.engine {
            Some(engine) => json(StatusCode::OK, &engine.phase().get()),
            None => text(StatusCode::NOT_FOUND, "migration is not configured\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn status(state: &AdminState) -> Response<Body> {
    let migration = match &state.engine {
        Some(engine) => Some(MigrationStatus {
            settings: engine.phase().get(),
            ledger_users: engine.ledger().counts().await.ok().map(|counts| {
                counts
                    .into_iter()
                    .map(|(s, n)| (s.as_str().to_owned(), n))
                    .collect()
            }),
        }),
        None => None,
    };
    let status = Status {
        version: env!("CARGO_PKG_VERSION"),
        ready: state.health.is_ready(),
        uptime_seconds: state.started.elapsed().as_secs(),
        upstream: &state.upstream,
        dependencies: state.health.dependencies(),
        migration,
    };
    json(StatusCode::OK, &status)
}

async fn change_phase(state: &AdminState, req: Request<Incoming>) -> Response<Body> {
    let Some(engine) = &state.engine else {
        return text(StatusCode::NOT_FOUND, "migration is not configured\n");
    };
    let limited = http_body_util::Limited::new(req.into_body(), MAX_ADMIN_BODY);
    let Ok(Ok(body)) = tokio::time::timeout(Duration::from_secs(5), limited.collect()).await else {
        return text(
            StatusCode::BAD_REQUEST,
            "body unreadable or larger than 4 KiB\n",
        );
    };
    let change: PhaseChange = match serde_json::from_slice(&body.to_bytes()) {
        Ok(c) => c,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!(
                    "expected {{\"phase\": \"observe|migrate|route\", \"canary_percent\": 0-100}}: {e}\n"
                ),
            );
        }
    };
    let current = engine.phase().get();
    let new = RuntimeSettings {
        phase: change.phase.unwrap_or(current.phase),
        canary_percent: change.canary_percent.unwrap_or(current.canary_percent),
    };
    if !(0.0..=100.0).contains(&new.canary_percent) {
        return text(
            StatusCode::BAD_REQUEST,
            "canary_percent must be within 0..=100\n",
        );
    }
    match engine.change_settings(new, "admin") {
        Ok(_) => json(StatusCode::OK, &new),
        Err(e) => text(StatusCode::CONFLICT, &format!("{e}\n")),
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_string_pretty(value) {
        Ok(json) => with_type(status, "application/json", json + "\n"),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
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
