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
                Err(err) => match unsent(err, reused) {
                    Ok(unsent) => {
                        self.retries.unsent.inc();
                        req = unsent;
                    }
                    Err(err) => return Err(err),
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

/// The request back when it was never written (the idle connection was closed under it), so it
/// can go on another connection as hyper-util's client does; any other failure as an error.
fn unsent(
    mut err: hyper::client::conn::TrySendError<Request<Body>>,
    reused: bool,
) -> Result<Request<Body>, UpstreamError> {
    match err.take_message() {
        Some(unsent) if reused => Ok(unsent),
        Some(_) => Err(UpstreamError::send("Canceled", &err.into_error())),
        None => Err(UpstreamError::send("SendRequest", &err.into_error())),
    }
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
                Err(mut err) => match (err.take_message(), replay.take()) {
                    (Some(unsent), _) => {
                        pool.retries.unsent.inc();
                        Box::pin(pool.clone().send_slow(unsent, Instant::now()))
                    }
                    (None, Some(copy)) if closed_under(err.error()) => {
                        tracing::debug!(error = %err.error(), "idle upstream connection closed under a request; sending it again");
                        pool.retries.resent.inc();
                        Box::pin(pool.clone().resend(*copy))
                    }
                    (None, _) => {
                        return Poll::Ready(Err(UpstreamError::send(
                            "SendRequest",
                            &err.into_error(),
                        )));
                    }
                },
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use http_body_util::BodyExt;
    use hyper::server::conn::http1 as server;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    const BOUND: Duration = Duration::from_secs(10);

    /// An upstream on 127.0.0.1:0 that answers every request with the client port of the
    /// connection it came on, so a test can tell reused connections from new ones.
    async fn upstream() -> Uri {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = service_fn(move |_req| async move {
                        let body = crate::body::full(peer.port().to_string());
                        Ok::<_, std::convert::Infallible>(Response::new(body))
                    });
                    let _ = server::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        format!("http://{addr}/").parse().unwrap()
    }

    /// A request for `/` of the test upstreams, with `method` and `body`.
    fn request(method: Method, body: Body) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri("/")
            .header(http::header::HOST, "upstream")
            .body(body)
            .unwrap()
    }

    /// Reads `resp`'s body to the end (which returns the connection): the test upstreams'
    /// answer, the client port of the connection it came on.
    async fn port_in(resp: Response<PooledBody>) -> String {
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// Sends one request through `pool`; the port of the connection it went on.
    async fn port_of_exchange(pool: &Arc<Pool>) -> String {
        let req = request(Method::GET, crate::body::full(""));
        port_in(pool.send(req, Instant::now()).await.unwrap()).await
    }

    fn pool_to(target: Uri, idle_timeout: Duration) -> Arc<Pool> {
        Arc::new(Pool::new(
            HttpConnector::new(),
            target,
            8,
            idle_timeout,
            RetryCounters::unregistered().unwrap(),
        ))
    }

    /// Until the pool holds an idle connection again (the hand-back can wait for the
    /// connection's task to finish the exchange), bounded.
    async fn until_idle(pool: &Pool) {
        for _ in 0..200 {
            if !pool.lock().entries.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the connection never went back to the pool");
    }

    /// An upstream on a thread of its own, for at most `BOUND`: it answers one request per
    /// connection with the connection's client port and keeps the connection open, closes the
    /// first connection when told to (and says when it has), and counts the request heads it
    /// read. Blocking on it stops the test's runtime, so the pool's side cannot notice the close
    /// before the next request is handed over.
    struct ClosingUpstream {
        target: Uri,
        close: std::sync::mpsc::Sender<()>,
        closed: std::sync::mpsc::Receiver<()>,
        requests: Arc<std::sync::atomic::AtomicUsize>,
    }

    fn closing_upstream() -> ClosingUpstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let target = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let (close, close_rx) = std::sync::mpsc::channel::<()>();
        let (closed_tx, closed) = std::sync::mpsc::channel::<()>();
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = requests.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + BOUND;
            let mut kept = Vec::new();
            while let Some((mut tcp, peer)) = accept_before(&listener, until) {
                if answer_one(&mut tcp, peer.port(), &seen).is_err() {
                    continue;
                }
                if kept.is_empty() && close_rx.recv_timeout(BOUND).is_ok() {
                    drop(tcp);
                    let _ = closed_tx.send(());
                    kept.push(None);
                } else {
                    kept.push(Some(tcp));
                }
            }
        });
        ClosingUpstream {
            target,
            close,
            closed,
            requests,
        }
    }

    fn accept_before(
        listener: &std::net::TcpListener,
        until: Instant,
    ) -> Option<(std::net::TcpStream, std::net::SocketAddr)> {
        while Instant::now() < until {
            match listener.accept() {
                Ok((tcp, peer)) => {
                    tcp.set_nonblocking(false).ok()?;
                    tcp.set_read_timeout(Some(BOUND)).ok()?;
                    return Some((tcp, peer));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        None
    }

    /// Reads one request head from `tcp`, counts it in `seen` (before the answer, which the test
    /// may read and act on at once), and answers it with `port`.
    fn answer_one(
        tcp: &mut std::net::TcpStream,
        port: u16,
        seen: &std::sync::atomic::AtomicUsize,
    ) -> std::io::Result<()> {
        use std::io::{Read, Write};
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if tcp.read(&mut byte)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.push(byte[0]);
        }
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let port = port.to_string();
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{port}",
            port.len()
        );
        tcp.write_all(answer.as_bytes())
    }

    /// Runs `fut` on a single thread that polls its I/O driver only when no task can run: a
    /// request handed to a connection is then always written before the connection's task can
    /// learn of a close that happened while the runtime stood still.
    fn run_idle_driven<F: Future>(fut: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .event_interval(u32::MAX)
            .build()
            .unwrap()
            .block_on(fut)
    }

    /// What the test saw of one exchange after the upstream closed its connection.
    struct AfterClose {
        /// The port of the connection the exchange before it went on.
        first: String,
        /// The port the exchange was answered on, or its failure.
        sent: Result<String, UpstreamError>,
        /// How many request heads the upstream read, the exchange before included.
        requests: usize,
        /// The pool's `unsent` and `resent` retry counts.
        retries: (u64, u64),
    }

    /// One exchange through a pool to a `closing_upstream`, then the idle connection closed by
    /// the upstream while the runtime stands still, then the exchange of `req`, which the pool
    /// still hands to the closed connection (it has not run since). With `driver_first`, the
    /// runtime's I/O driver has been polled (the close is known, the connection's task not yet
    /// run) when the request is handed over, so the task sees the close before it can write the
    /// request: `block_on`'s own future, woken by a yield, is polled before the tasks the driver
    /// woke. Without it the request is written to the closed connection.
    fn exchange_after_close(req: Request<Body>, driver_first: bool) -> AfterClose {
        let upstream = closing_upstream();
        run_idle_driven(async move {
            let pool = pool_to(upstream.target.clone(), Duration::from_secs(60));
            let first = port_of_exchange(&pool).await;
            until_idle(&pool).await;
            // Idle long enough for an upstream's keep-alive timeout to be plausible.
            tokio::time::sleep(REPLAY_AFTER_IDLE + Duration::from_millis(100)).await;
            upstream.close.send(()).unwrap();
            upstream.closed.recv_timeout(BOUND).unwrap();
            if driver_first {
                tokio::task::yield_now().await;
            }
            let exchange = pool.send(req, Instant::now());
            assert!(
                matches!(exchange, Exchange::Sent { .. }),
                "handed to the idle connection"
            );
            let sent = match tokio::time::timeout(BOUND, exchange).await.unwrap() {
                Ok(resp) => {
                    assert_eq!(resp.status(), StatusCode::OK);
                    Ok(port_in(resp).await)
                }
                Err(err) => Err(err),
            };
            AfterClose {
                first,
                sent,
                requests: upstream.requests.load(std::sync::atomic::Ordering::SeqCst),
                retries: (pool.retries.unsent.get(), pool.retries.resent.get()),
            }
        })
    }

    #[test]
    fn a_post_handed_back_unwritten_goes_once_on_a_new_connection() {
        let req = request(Method::POST, crate::body::full("amount=10"));
        let seen = exchange_after_close(req, true);
        let port = seen.sent.expect("answered on a new connection");
        assert_ne!(port, seen.first);
        assert_eq!(seen.requests, 2, "the first exchange and the POST, once");
        assert_eq!(seen.retries, (1, 0), "handed back unwritten, sent on");
    }

    #[test]
    fn a_get_written_to_a_connection_closed_under_it_is_sent_again_on_a_new_one() {
        let req = request(Method::GET, Body::default());
        let seen = exchange_after_close(req, false);
        let port = seen.sent.expect("answered on a new connection");
        assert_ne!(port, seen.first);
        assert_eq!(seen.requests, 2, "the first exchange and the GET, once");
        assert_eq!(seen.retries, (0, 1), "written, then sent again");
    }

    #[test]
    fn a_post_written_to_a_connection_closed_under_it_is_not_sent_twice() {
        let req = request(Method::POST, crate::body::full("amount=10"));
        let seen = exchange_after_close(req, false);
        assert_eq!(seen.retries, (0, 0));
        let err = seen.sent.expect_err("a failure, not a second delivery");
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            seen.requests, 1,
            "only the first exchange reached the upstream"
        );
    }

    #[tokio::test]
    async fn a_returned_connection_is_reused_until_it_has_idled_past_the_timeout() {
        // A timeout that a loaded test machine cannot overrun between two exchanges.
        let pool = pool_to(upstream().await, Duration::from_secs(1));
        let first = port_of_exchange(&pool).await;
        until_idle(&pool).await;
        assert_eq!(port_of_exchange(&pool).await, first, "reused at once");
        until_idle(&pool).await;
        // Idle for longer than the timeout: closed, and the next exchange dials anew.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_ne!(port_of_exchange(&pool).await, first, "expired, not reused");
    }

    #[tokio::test]
    async fn an_expired_connection_on_top_does_not_take_fresh_ones_below_with_it() {
        let pool = pool_to(upstream().await, Duration::from_millis(500));
        let fresh = port_of_exchange(&pool).await;
        until_idle(&pool).await;
        // Put an idle connection on top whose last response head is older than the timeout,
        // as a long download leaves one.
        let stale = pool.connect().await.unwrap();
        pool.push(stale, Instant::now() - Duration::from_secs(5));
        assert_eq!(pool.lock().entries.len(), 2);
        assert_eq!(
            port_of_exchange(&pool).await,
            fresh,
            "the fresh one below is used"
        );
    }
}
