//! The per-request service: classify, hand to the sign-in handler or the forwarder, count and
//! log one line per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use crate::body::{Body, GuardedBody, request_body};
use crate::proxy::metrics::{HttpMetrics, InFlightGuard};
use crate::proxy::{ClientInfo, ForwardedBody, Forwarder, Forwarding, SendResult};
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
    busy: super::watchdog::BusyGuard,
}

impl ResponseGuard {
    /// The client of the request's connection.
    fn client(&self) -> &ClientInfo {
        self.busy.conn().client()
    }
}

/// The body of every response: the upstream's (or dripgate's own) body, holding the guard.
pub type ResponseBody = GuardedBody<ForwardedBody, ResponseGuard>;

type SigninFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

pin_project! {
    /// One request in progress: sign-in handling or forwarding, then one count and one access
    /// line, from [`handle`].
    pub(crate) struct Handling<F> {
        ctx: Arc<RequestContext>,
        class: &'static str,
        started: Instant,
        access: Option<(Method, String)>,
        // Also how the request reaches its client (the connection's state), until the end.
        guard: Option<ResponseGuard>,
        #[pin]
        route: Route<F>,
    }
}

pin_project! {
    #[project = RouteProj]
    enum Route<F> {
        // Boxed: the sign-in future is large, and keeping it out of this one keeps the state
        // that every pass-through request moves around small.
        Signin { fut: SigninFuture },
        Proxy {
            #[pin]
            forwarding: Forwarding<F>,
        },
    }
}

/// Handles one request on the connection that `busy` keeps busy. The request is classified,
/// rewritten and handed to the upstream before the returned future exists, so that future never
/// holds the request itself.
pub(crate) fn handle(
    ctx: Arc<RequestContext>,
    req: Request<Incoming>,
    busy: super::watchdog::BusyGuard,
) -> Handling<impl Future<Output = SendResult> + Send + use<>> {
    let started = Instant::now();
    let in_flight = ctx.metrics.request_started();
    let class = ctx.router.classify(req.method(), req.uri());
    // The access line needs method and path after the request has moved on; copy them only
    // when that line is written.
    let access = tracing::enabled!(target: "dripgate::access", tracing::Level::INFO)
        .then(|| (req.method().clone(), req.uri().path().to_owned()));
    let req = req.map(request_body);
    let route = match class {
        // A sign-in the forwarder would refuse is refused before its body is read (below, by
        // `start`), so no credentials of it reach the migration engine.
        RouteClass::Signin(route) if !ctx.legacy.refuses(&req) => {
            let (ctx, conn) = (ctx.clone(), busy.conn().clone());
            Route::Signin {
                fut: Box::pin(async move {
                    ctx.signin
                        .handle(req, conn.client(), &ctx.legacy, route)
                        .await
                }),
            }
        }
        RouteClass::ForgotPassword(route) if !ctx.legacy.refuses(&req) => {
            let (ctx, conn) = (ctx.clone(), busy.conn().clone());
            Route::Signin {
                fut: Box::pin(async move {
                    ctx.signin
                        .handle_forgot_password(req, conn.client(), &ctx.legacy, route)
                        .await
                }),
            }
        }
        // The request's arrival time doubles as the start of the upstream exchange, and the
        // upstream latency as the request's: each then includes the header rewriting too,
        // microseconds against a smallest histogram bucket of 0.5 ms, and two clock reads per
        // request are saved.
        RouteClass::Proxy | RouteClass::Signin(_) | RouteClass::ForgotPassword(_) => Route::Proxy {
            forwarding: ctx.legacy.start(req, busy.conn().client(), started),
        },
    };
    Handling {
        guard: Some(ResponseGuard {
            _in_flight: in_flight,
            busy,
        }),
        class: class.as_str(),
        ctx,
        started,
        access,
        route,
    }
}

impl<F: Future<Output = SendResult>> Future for Handling<F> {
    type Output = Result<Response<ResponseBody>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The guard is there until the end: a future is not polled again after it.
        let Some(client) = this.guard.as_ref().map(ResponseGuard::client) else {
            return Poll::Pending;
        };
        let (resp, elapsed) = match this.route.project() {
            RouteProj::Signin { fut } => (
                ready!(fut.as_mut().poll(cx)).map(ForwardedBody::Local),
                this.started.elapsed(),
            ),
            RouteProj::Proxy { forwarding } => {
                ready!(forwarding.poll_forward(cx, &this.ctx.legacy, client, *this.started))
            }
        };
        let status = resp.status();
        this.ctx
            .metrics
            .observe_request(this.class, status, elapsed);
        // One access line per request: never the query, a body, a cookie or an Authorization
        // value.
        if let Some((method, path)) = this.access.take() {
            tracing::info!(
                target: "dripgate::access",
                method = %method,
                path = %path,
                status = status.as_u16(),
                route = *this.class,
                upstream = this.ctx.legacy.name(),
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                peer = %client.peer.ip(),
                "request"
            );
        }
        // The guard is taken, not cloned, and goes on with the body.
        let guard = this.guard.take();
        Poll::Ready(Ok(resp.map(|body| GuardedBody::new(body, guard))))
    }
}
