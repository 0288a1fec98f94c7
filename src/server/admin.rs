//! The admin listener: the status page `/`, `/healthz` (alias `/livez`), `/readyz`, `/metrics`,
//! `/status` (docs/STATUS.md), and
//! `GET`/`POST /phase` to read or change the migration phase and canary share at run time.
//! Bind it to a private address; it exposes metrics, dependency state and the phase switch.
//! Every state-changing request (any method but GET/HEAD) passes [`Guard`] first: same-origin
//! and own-Host checks, JSON only, and the bearer token when one is configured.
//!
//! Connections: at most [`MAX_ADMIN_CONNECTIONS`] at once. A connection that arrives when all
//! are taken evicts the oldest one with no request in flight (one that sent nothing, a partial
//! head, or rests between requests), else the oldest one: clients that hold connections open
//! can never lock the probes (`/healthz`, `/readyz`, `/metrics`) out, since a probe sends its
//! request at once and is then no longer idle. Connections also end after
//! [`ADMIN_HEADER_TIMEOUT`] without a request head and after [`ADMIN_CONNECTION_LIFETIME`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use super::admin_guard::{Caller, Guard};
use super::health::Health;
use super::lifecycle::Lifecycle;
use crate::body::{Body, full};
use crate::migrate::{Engine, RuntimeSettings};

/// Most admin connections served at once.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;
/// Time a connection has to send a request head (from its start or its last response).
pub const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one admin connection.
pub const ADMIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
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
    /// The checks state-changing requests pass.
    pub guard: Guard,
    /// `dripgate_admin_connections_evicted_total{state}`, from [`evicted_counter`].
    pub evicted: IntCounterVec,
    /// The shared settings' metrics, when migration is configured.
    pub settings: Option<crate::migrate::SettingsMetrics>,
}

/// Registers the counter of admin connections evicted to make room for new ones.
pub fn evicted_counter(registry: &Registry) -> Result<IntCounterVec, prometheus::Error> {
    let evicted = IntCounterVec::new(
        Opts::new(
            "dripgate_admin_connections_evicted_total",
            "Admin connections dropped to make room for a new one, by whether a request was in \
             flight on them (idle, busy).",
        ),
        &["state"],
    )?;
    registry.register(Box::new(evicted.clone()))?;
    Ok(evicted)
}

/// A requested phase change; absent fields stay as they are.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseChange {
    phase: Option<crate::migrate::Phase>,
    canary_percent: Option<f64>,
    /// Switch into `complete` without a completed hand-off (audited as forced).
    #[serde(default)]
    force: bool,
}

/// Where one request came in: the client and the listener address it reached.
#[derive(Clone, Copy)]
struct Addrs {
    peer: SocketAddr,
    local: SocketAddr,
}

/// Serves the admin endpoints until the phase is `Closed`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut phase: watch::Receiver<Lifecycle>,
) {
    let slots = Slots::new(MAX_ADMIN_CONNECTIONS, state.evicted.clone());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = phase.wait_for(|p| *p == Lifecycle::Closed) => return,
        };
        let Ok((tcp, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(local) = tcp.local_addr() else {
            continue;
        };
        let conn = slots.admit();
        let state = state.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            let addrs = Addrs { peer, local };
            let service = service_fn({
                let conn = conn.clone();
                move |req| {
                    let state = state.clone();
                    // Counted busy from the complete head to the end of the handler.
                    let busy = Busy::enter(&conn);
                    async move {
                        let resp = route(&state, req, addrs).await;
                        drop(busy);
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(ADMIN_HEADER_TIMEOUT);
            let served = builder.serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                _ = tokio::time::timeout(ADMIN_CONNECTION_LIFETIME, served) => {}
                () = conn.evicted.notified() => {}
            }
            slots.release(&conn);
        });
    }
}

/// The open admin connections, oldest first.
#[derive(Clone)]
struct Slots {
    open: Arc<Mutex<VecDeque<Arc<ConnSlot>>>>,
    cap: usize,
    next_id: Arc<AtomicU64>,
    evicted: IntCounterVec,
}

/// One admin connection's place in [`Slots`].
struct ConnSlot {
    id: u64,
    /// Requests in flight on it.
    busy: AtomicUsize,
    /// Tells its task to drop it.
    evicted: Notify,
}

impl Slots {
    fn new(cap: usize, evicted: IntCounterVec) -> Self {
        Self {
            open: Arc::new(Mutex::new(VecDeque::with_capacity(cap))),
            cap: cap.max(1),
            next_id: Arc::new(AtomicU64::new(0)),
            evicted,
        }
    }

    /// A slot for a new connection, evicting one when all are taken: the oldest idle one, else
    /// the oldest.
    fn admit(&self) -> Arc<ConnSlot> {
        let slot = Arc::new(ConnSlot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            busy: AtomicUsize::new(0),
            evicted: Notify::new(),
        });
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.cap {
            let idle = open
                .iter()
                .position(|c| c.busy.load(Ordering::Acquire) == 0);
            let (at, state) = match idle {
                Some(at) => (at, "idle"),
                None => (0, "busy"),
            };
            if let Some(victim) = open.remove(at) {
                // `notify_one` keeps the wake-up if the task is not waiting yet.
                victim.evicted.notify_one();
                self.evicted.with_label_values(&[state]).inc();
            }
        }
        open.push_back(slot.clone());
        slot
    }

    /// Forgets a connection that ended (a no-op if it was evicted).
    fn release(&self, slot: &ConnSlot) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = open.iter().position(|c| c.id == slot.id) {
            open.remove(at);
        }
    }
}

/// Marks its connection busy while it lives.
struct Busy(Arc<ConnSlot>);

impl Busy {
    fn enter(slot: &Arc<ConnSlot>) -> Self {
        slot.busy.fetch_add(1, Ordering::AcqRel);
        Self(slot.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn route(state: &AdminState, req: Request<Incoming>, addrs: Addrs) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if req.method() != Method::GET && req.method() != Method::HEAD {
        // Every state-changing route is reached only through the guard.
        let caller = match state.guard.check(&req, addrs.peer, addrs.local) {
            Ok(caller) => caller,
            Err(refused) => return rejection(refused),
        };
        return match (req.method(), path.as_str()) {
            (&Method::POST, "/phase") => change_phase(state, req, &caller).await,
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        };
    }
    match path.as_str() {
        "/" => status_page(),
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

/// The status page, under its Content-Security-Policy.
fn status_page() -> Response<Body> {
    let page = super::status_page::page();
    let mut resp = with_type(
        StatusCode::OK,
        "text/html; charset=utf-8",
        page.html.clone(),
    );
    let headers = resp.headers_mut();
    if let Ok(csp) = http::HeaderValue::from_str(&page.csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
    resp
}

async fn status(state: &AdminState) -> Response<Body> {
    json(StatusCode::OK, &super::status::build(state).await)
}

async fn change_phase(
    state: &AdminState,
    req: Request<Incoming>,
    caller: &Caller,
) -> Response<Body> {
    let (Some(engine), Some(settings)) = (&state.engine, &state.settings) else {
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
                    "expected {{\"phase\": \"observe|migrate|route|complete\", \"canary_percent\": 0-100, \"force\": false}}: {e}\n"
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
    match engine
        .change_shared(new, caller.actor(), change.force, settings)
        .await
    {
        Ok(_) => json(StatusCode::OK, &new),
        Err(e) => text(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::CONFLICT),
            &format!("{e}\n"),
        ),
    }
}

fn rejection(refused: super::admin_guard::Rejection) -> Response<Body> {
    let mut resp = text(refused.status(), refused.message());
    if refused.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"dripgate-admin\""),
        );
    }
    resp
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
