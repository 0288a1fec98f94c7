//! The connection pool to one upstream: HTTP/1.1 connections made with hyper's low-level client
//! and kept idle on a LIFO stack.
//!
//! One pool serves one upstream, so there is no pool key to hash and a checkout is a pop under a
//! mutex. A connection goes back on the stack when its response body has been read to the end;
//! one whose body was dropped early, that failed, that the upstream closed or that was upgraded
//! is dropped instead.
//!
//! An upstream may close an idle connection just as a request goes out on it. When hyper hands
//! the request back unwritten it goes out again on another connection; when it was written and
//! the connection then failed with no response, only an idempotent request without a body is
//! sent again, on a new connection, as nginx does for its cached upstream connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri, header};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::UpstreamError;
use super::metrics::RetryCounters;
use crate::body::Body;
use crate::failure::Retry;

type Sender = http1::SendRequest<Body>;

/// The reaper never runs more often than this, whatever the idle timeout.
const MIN_REAP_INTERVAL: Duration = Duration::from_millis(90);

/// A request that goes out on a connection idle for at least this long keeps a copy of its head,
/// to be sent again if the upstream closed the connection under it. Upstreams close idle
/// connections after whole seconds (5 s for Apache httpd and Node.js), so a connection used
/// more recently is not at risk, and a busy proxy's requests, which find connections idle for
/// microseconds, copy nothing.
const REPLAY_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Idle connections to one upstream.
pub(super) struct Pool {
    connector: HttpConnector,
    /// `scheme://authority/`, what the connector resolves and dials.
    target: Uri,
    idle: Mutex<Stack>,
    max_idle: usize,
    idle_timeout: Duration,
    retries: RetryCounters,
}

#[derive(Default)]
struct Stack {
    /// In the order they became idle: the most recently used on top.
    entries: Vec<Idle>,
    reaping: bool,
}

struct Idle {
    sender: Sender,
    /// When its last response head arrived: no later than when it became idle.
    since: Instant,
}

impl Pool {
    pub(super) fn new(
        connector: HttpConnector,
        target: Uri,
        max_idle: usize,
        idle_timeout: Duration,
        retries: RetryCounters,
    ) -> Self {
        Self {
            connector,
            target,
            idle: Mutex::new(Stack::default()),
            max_idle,
            idle_timeout,
            retries,
        }
    }

    /// A pool with the same upstream and settings and no connections yet.
    pub(super) fn empty_like(&self) -> Self {
        Self::new(
            self.connector.clone(),
            self.target.clone(),
            self.max_idle,
            self.idle_timeout,
            self.retries.clone(),
        )
    }

    /// Starts the exchange of `req`: handed at once to an idle connection, or, when none is
    /// idle, to a new one (dialled by the returned future). `now` is about the time of the
    /// checkout, used to expire idle connections.
    ///
    /// The request is handed over before any future exists, so no future of the forwarding
    /// path holds it (a request is a few hundred bytes, and each async layer would keep and
    /// move its own copy); the dial path, rare, is boxed for the same reason.
    pub(super) fn send(
        self: &Arc<Self>,
        req: Request<Body>,
        now: Instant,
    ) -> Exchange<impl Future<Output = SendResult> + Send + use<>> {
        match self.take_idle(now) {
            Some((mut sender, since)) => {
                let replay = if now.saturating_duration_since(since) >= REPLAY_AFTER_IDLE {
                    replay_copy(&req).map(Box::new)
                } else {
                    None
                };
                Exchange::Sent {
                    response: sender.try_send_request(req),
                    sender: Some(sender),
                    replay,
                    pool: self.clone(),
                }
            }
            None => Exchange::Slow {
                fut: Box::pin(self.clone().send_slow(req, now)),
            },
        }
    }

    /// Sends `req` again, on a new connection: the idle one it went out on failed with no
    /// response, and the others idle as long may have been closed alike.
    async fn resend(
        self: Arc<Self>,
        req: Request<Body>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let mut sender = self.connect().await?;
        match sender.try_send_request(req).await {
            Ok(resp) => Ok(self.pooled(resp, sender)),
            Err(err) => Err(UpstreamError::send("SendRequest", &err.into_error())),
        }
    }

    /// Sends `req` on an idle connection, or on a new one when none is idle, retrying on
    /// another when an idle one turns out closed.
    async fn send_slow(
        self: Arc<Self>,
        mut req: Request<Body>,
        now: Instant,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        loop {
            let (mut sender, reused) = match self.take_idle(now) {
                Some((sender, _)) => (sender, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.pooled(resp, sender)),
                Err(mut err) => match (send_retry(&err).now_on(reused), err.take_message()) {
                    // Only an unwritten request comes back: a written one has no copy here.
                    (true, Some(unsent)) => {
                        self.retries.unsent.inc();
                        req = unsent;
                    }
                    (_, Some(_)) => {
                        return Err(UpstreamError::send("Canceled", &err.into_error()));
                    }
                    (_, None) => return Err(failed(err)),
                },
            }
        }
    }

    /// `resp` with a body that hands `sender` back to the pool once read to the end.
    fn pooled(self: &Arc<Self>, resp: Response<Incoming>, sender: Sender) -> Response<PooledBody> {
        // One clock read serves the latency metrics and, standing for the time the connection
        // becomes idle again, the pool's expiry: an idle connection then looks older by the
        // time its body took to stream, so it is expired early, never late.
        let answered_at = Instant::now();
        // After 101 the connection belongs to the tunnel; it is never pooled.
        let conn =
            (resp.status() != StatusCode::SWITCHING_PROTOCOLS).then(|| (sender, self.clone()));
        resp.map(|inner| PooledBody {
            inner,
            conn,
            answered_at,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Stack> {
        // Nothing panics while holding the lock; a poisoned stack is still consistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle connection that is still open and not expired, and when its
    /// last response head arrived.
    fn take_idle(&self, now: Instant) -> Option<(Sender, Instant)> {
        let mut stack = self.lock();
        while let Some(entry) = stack.entries.pop() {
            // Expired ones are dropped one by one, not with everything below them: an entry's
            // time is its last response head, so a long download can put an older time above
            // newer ones.
            let expired = now.saturating_duration_since(entry.since) > self.idle_timeout;
            // Not ready: closed by the upstream, or it never finished its last exchange.
            if !expired && entry.sender.is_ready() {
                return Some((entry.sender, entry.since));
            }
        }
        None
    }

    async fn connect(&self) -> Result<Sender, UpstreamError> {
        let mut connector = self.connector.clone();
        let io = connector
            .call(self.target.clone())
            .await
            .map_err(|e| UpstreamError::connect(&e))?;
        let (sender, conn) = http1::handshake(io)
            .await
            .map_err(|e| UpstreamError::send("SendRequest", &e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection error");
            }
        });
        Ok(sender)
    }

    /// Takes back the connection of a response whose body was read to the end, idle `since`.
    fn put(self: &Arc<Self>, mut sender: Sender, since: Instant) {
        if sender.is_ready() {
            self.push(sender, since);
        } else if !sender.is_closed()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // The connection task has not asked for the next request yet (it may still be
            // sending the request body): pool the connection once it does.
            let pool = Arc::downgrade(self);
            runtime.spawn(async move {
                if sender.ready().await.is_ok()
                    && let Some(pool) = pool.upgrade()
                {
                    pool.push(sender, since);
                }
            });
        }
    }

    fn push(self: &Arc<Self>, sender: Sender, since: Instant) {
        let mut stack = self.lock();
        if stack.entries.len() >= self.max_idle {
            return;
        }
        stack.entries.push(Idle { sender, since });
        if !stack.reaping
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            stack.reaping = true;
            let every = self.idle_timeout.max(MIN_REAP_INTERVAL);
            runtime.spawn(reap(Arc::downgrade(self), every));
        }
    }
}

/// Closes connections that stayed idle too long even when no request comes to notice; ends
/// with the pool.
async fn reap(pool: Weak<Pool>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let now = Instant::now();
        pool.lock().entries.retain(|e| {
            now.saturating_duration_since(e.since) <= pool.idle_timeout && !e.sender.is_closed()
        });
    }
}

/// What hyper's client answers for one request.
pub(crate) type SendResult =
    Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Body>>>;

/// A copy of `req` to send again should its connection fail with no response: only for an
/// idempotent method (RFC 9110, 9.2.2) and a request without a body, which can be sent twice
/// without effect, and not for a protocol upgrade, whose connection becomes a tunnel.
fn replay_copy(req: &Request<Body>) -> Option<Request<Body>> {
    let idempotent = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    if !idempotent || !req.body().is_end_stream() || req.headers().contains_key(header::UPGRADE) {
        return None;
    }
    let mut copy = Request::new(Body::default());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// Whether a written request's connection failed before any response could be used: the
/// upstream closed or reset it. A response that failed for another reason (malformed, or too
/// large) would fail again.
fn closed_under(err: &hyper::Error) -> bool {
    use std::io::ErrorKind;
    if err.is_incomplete_message() || err.is_canceled() {
        return true;
    }
    let io = std::error::Error::source(err).and_then(|e| e.downcast_ref::<std::io::Error>());
    io.is_some_and(|e| {
        matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
        )
    })
}

/// The pool's one retry rule, [`Retry::OnReusedConnection`]: a request hyper hands back
/// unwritten, or one whose connection the upstream closed under it with no response, may go
/// again on another connection when the failed one came from the pool (the upstream may have
/// closed it idle, as hyper-util's client and nginx assume); on a new connection the failure
/// is the upstream's own. Any other failure would fail again.
fn send_retry(err: &hyper::client::conn::TrySendError<Request<Body>>) -> Retry {
    if err.message().is_some() || closed_under(err.error()) {
        Retry::OnReusedConnection
    } else {
        Retry::Never
    }
}

/// A send that will not be retried, worded as hyper-util's client words it.
fn failed(err: hyper::client::conn::TrySendError<Request<Body>>) -> UpstreamError {
    UpstreamError::send("SendRequest", &err.into_error())
}

type SlowSend = Pin<Box<dyn Future<Output = Result<Response<PooledBody>, UpstreamError>> + Send>>;

pin_project! {
    /// One request's exchange with the upstream, from [`Pool::send`]: resolves to the response
    /// head, its body tied to the pool.
    #[project = ExchangeProj]
    pub(crate) enum Exchange<F> {
        /// Handed to an idle connection; waiting for the response head.
        Sent {
            #[pin]
            response: F,
            sender: Option<Sender>,
            // What to send again if the connection turns out closed (`REPLAY_AFTER_IDLE`).
            replay: Option<Box<Request<Body>>>,
            pool: Arc<Pool>,
        },
        /// Dialling a connection first, or retrying on another.
        Slow {
            fut: SlowSend,
        },
    }
}

impl<F: Future<Output = SendResult>> Future for Exchange<F> {
    type Output = Result<Response<PooledBody>, UpstreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut: SlowSend = match self.as_mut().project() {
            ExchangeProj::Slow { fut } => return fut.as_mut().poll(cx),
            ExchangeProj::Sent {
                response,
                sender,
                replay,
                pool,
            } => match std::task::ready!(response.poll(cx)) {
                Ok(resp) => {
                    let Some(sender) = sender.take() else {
                        return Poll::Ready(Err(UpstreamError::Protocol(
                            "exchange polled after its end".to_owned(),
                        )));
                    };
                    return Poll::Ready(Ok(pool.pooled(resp, sender)));
                }
                // The connection was idle in the pool: reused.
                Err(mut err) if send_retry(&err).now_on(true) => {
                    match (err.take_message(), replay.take()) {
                        (Some(unsent), _) => {
                            pool.retries.unsent.inc();
                            Box::pin(pool.clone().send_slow(unsent, Instant::now()))
                        }
                        // Written: sent again only with the copy of an idempotent bodiless request.
                        (None, Some(copy)) => {
                            tracing::debug!(error = %err.error(), "idle upstream connection closed under a request; sending it again");
                            pool.retries.resent.inc();
                            Box::pin(pool.clone().resend(*copy))
                        }
                        (None, None) => return Poll::Ready(Err(failed(err))),
                    }
                }
                Err(err) => return Poll::Ready(Err(failed(err))),
            },
        };
        self.set(Exchange::Slow { fut });
        self.poll(cx)
    }
}

/// A response body from the upstream that hands its connection back to the pool once read to
/// the end.
pub struct PooledBody {
    inner: Incoming,
    conn: Option<(Sender, Arc<Pool>)>,
    answered_at: Instant,
}

impl PooledBody {
    /// When the response head arrived.
    pub(super) fn answered_at(&self) -> Instant {
        self.answered_at
    }

    fn release(&mut self) {
        if let Some((sender, pool)) = self.conn.take() {
            pool.put(sender, self.answered_at);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            // Released at the last frame: the server writing the response out need not poll
            // again once the body says it has ended.
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Err(_))) => self.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An empty body (HEAD, 204, 304) is never polled. A body dropped before its end leaves
        // unread bytes on the connection, which then closes with the dropped sender.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests;
