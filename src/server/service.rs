//! The per-request service: classify, hand to the sign-in handler or the forwarder, count and
//! log one line per request.

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;

use super::metrics::{HttpMetrics, InFlightGuard};
use crate::body::{GuardedBody, request_body};
use crate::proxy::{ClientInfo, Forwarder};
use crate::signin::{RouteClass, Router, SigninHandler};

/// Everything a request needs, shared by all connections.
pub struct RequestContext {
    /// Sign-in route matching.
    pub router: Router,
    /// Sign-in handling.
    pub signin: SigninHandler,
    /// The legacy upstream.
    pub legacy: Forwarder,
    /// Request metrics.
    pub metrics: HttpMetrics,
}

impl RequestContext {
    /// The context of another proxy worker: everything shared but the legacy upstream's
    /// connection pool and the per-request metrics, which are per worker.
    pub fn for_worker(&self) -> Result<Self, prometheus::Error> {
        let metrics = self.metrics.for_worker()?;
        Ok(Self {
            router: self.router.clone(),
            signin: self.signin.clone(),
            legacy: self.legacy.for_worker(metrics.clone()),
            metrics,
        })
    }
}

/// Keeps the request counted in flight and its connection busy until the response is streamed.
pub struct ResponseGuard {
    _in_flight: InFlightGuard,
    _busy: super::watchdog::BusyGuard,
}

/// The body of every response: the upstream's (or dripgate's own) body, holding the guard.
pub type ResponseBody = GuardedBody<ResponseGuard>;

/// Handles one request from `client`.
pub async fn handle(
    ctx: Arc<RequestContext>,
    req: Request<Incoming>,
    client: Arc<ClientInfo>,
    busy: super::watchdog::BusyGuard,
) -> Result<Response<ResponseBody>, std::convert::Infallible> {
    let started = Instant::now();
    let peer = client.peer;
    let in_flight = ctx.metrics.request_started();
    let class = ctx.router.classify(req.method(), req.uri().path());
    // The access line needs method and path after the request has moved on; copy them only
    // when that line is written.
    let access = tracing::enabled!(target: "dripgate::access", tracing::Level::INFO)
        .then(|| (req.method().clone(), req.uri().path().to_owned()));
    let req = req.map(request_body);
    let (resp, elapsed) = match class {
        // Boxed: the sign-in future is large, and keeping it out of this one keeps the state
        // that every pass-through request moves around small.
        RouteClass::Signin(route) => {
            let resp = Box::pin(ctx.signin.handle(req, &client, &ctx.legacy, route)).await;
            (resp, started.elapsed())
        }
        // The request's arrival time doubles as the start of the upstream exchange, and the
        // upstream latency as the request's: each then includes the header rewriting too,
        // microseconds against a smallest histogram bucket of 0.5 ms, and two clock reads per
        // request are saved.
        RouteClass::Proxy => ctx.legacy.forward_since(req, &client, started).await,
    };
    let status = resp.status();
    ctx.metrics.observe_request(class.as_str(), status, elapsed);
    // One access line per request: never the query, a body, a cookie or an Authorization value.
    if let Some((method, path)) = access {
        tracing::info!(
            target: "dripgate::access",
            method = %method,
            path = %path,
            status = status.as_u16(),
            route = class.as_str(),
            upstream = ctx.legacy.name(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            peer = %peer.ip(),
            "request"
        );
    }
    let guard = ResponseGuard {
        _in_flight: in_flight,
        _busy: busy,
    };
    Ok(resp.map(|body| GuardedBody::new(body, guard)))
}
