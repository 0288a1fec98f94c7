//! The per-request service: classify, hand to the sign-in handler or the forwarder, count and
//! log one line per request.

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;

use super::metrics::{HttpMetrics, InFlightGuard};
use crate::body::{Body, GuardedBody, boxed};
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

/// Keeps the request counted in flight and its connection busy until the response is streamed.
struct ResponseGuard {
    _in_flight: InFlightGuard,
    _busy: super::listener::BusyGuard,
}

/// Handles one request from `client`.
pub async fn handle(
    ctx: Arc<RequestContext>,
    req: Request<Incoming>,
    client: ClientInfo,
    busy: super::listener::BusyGuard,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let in_flight = ctx.metrics.request_started();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let class = ctx.router.classify(&method, &path);
    let req = req.map(boxed);
    let resp = match class {
        RouteClass::Signin(route) => ctx.signin.handle(req, client, &ctx.legacy, route).await,
        RouteClass::Proxy => ctx.legacy.forward(req, client).await,
    };
    let elapsed = started.elapsed();
    let status = resp.status();
    ctx.metrics.observe_request(class.as_str(), status, elapsed);
    // One access line per request: never the query, a body, a cookie or an Authorization value.
    tracing::info!(
        target: "dripgate::access",
        method = %method,
        path = %path,
        status = status.as_u16(),
        route = class.as_str(),
        upstream = ctx.legacy.name(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        peer = %client.peer.ip(),
        "request"
    );
    let guard = ResponseGuard {
        _in_flight: in_flight,
        _busy: busy,
    };
    Ok(resp.map(|body| boxed(GuardedBody::new(body, guard))))
}
