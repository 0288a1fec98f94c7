//! The test kit (cargo feature `testkit`): provider fakes, real HTTP servers on loopback that
//! follow the providers' published contracts, hold state in memory, and take fault knobs per
//! operation; the hosted sign-in page the fakes serve; and a sample legacy app. Used by the
//! tests, the benches and `dripgate demo`; a build without the feature carries none of it.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use dripgate::testkit::kinde::{FakeKinde, FakeKindeOptions};
//! let fake = FakeKinde::start("127.0.0.1:0", FakeKindeOptions::default()).await?;
//! println!("Kinde fake at {}", fake.base_url());
//! # Ok(()) }
//! ```

use std::collections::{HashMap, VecDeque};
use std::future::Future;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub mod auth0;
pub mod authgear;
pub mod cognito;
pub mod generic;
pub mod keycloak;
pub mod kinde;
pub mod legacy_app;
pub mod signin_page;

/// A fault to inject into the next call(s) of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and the provider's error body shape.
    Status(u16),
    /// Answer 429 asking the client to wait this many seconds (`RateLimit-Reset`, `Retry-After`).
    RateLimit {
        /// Seconds until the limit resets.
        reset_secs: u64,
    },
    /// Wait this long, then handle the call normally.
    Delay(Duration),
    /// Close the connection without an answer.
    ResetConnection,
    /// Perform the write, then never answer (until the fake stops).
    CommitThenHang,
    /// Perform the write, then close the connection without an answer.
    CommitThenClose,
    /// Reject the password as violating the password policy.
    PasswordPolicy,
}

/// Per-operation counters, fault queues, spec violations and an arrival log, shared by the fakes.
#[derive(Debug, Default)]
pub struct Knobs {
    calls: HashMap<String, u64>,
    faults: HashMap<String, VecDeque<Fault>>,
    violations: Vec<String>,
    arrivals: Vec<(String, tokio::time::Instant)>,
}

impl Knobs {
    /// Counts a call and returns the fault to apply to it, if any.
    pub fn arrive(&mut self, operation: &str) -> Option<Fault> {
        *self.calls.entry(operation.to_string()).or_default() += 1;
        self.arrivals
            .push((operation.to_string(), tokio::time::Instant::now()));
        self.faults.get_mut(operation).and_then(VecDeque::pop_front)
    }

    /// Queues `fault` for the next `n` calls of `operation`.
    pub fn fail_next(&mut self, operation: &str, n: usize, fault: Fault) {
        let q = self.faults.entry(operation.to_string()).or_default();
        q.extend(std::iter::repeat_n(fault, n));
    }

    /// Drops every queued fault.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Calls seen for `operation`.
    pub fn calls(&self, operation: &str) -> u64 {
        self.calls.get(operation).copied().unwrap_or(0)
    }

    /// Records a request that does not follow the provider's spec.
    pub fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// Spec violations seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.clone()
    }

    /// When each call arrived, in order.
    pub fn arrivals(&self) -> Vec<(String, tokio::time::Instant)> {
        self.arrivals.clone()
    }
}

/// What a fake handler wants done with a request.
pub(crate) enum Reply {
    /// Send this response.
    Send(Response<Full<Bytes>>),
    /// Close the connection without an answer.
    Reset,
    /// Never answer (until the fake stops).
    Hang,
}

/// A request as the fake handlers see it (body already read).
pub(crate) struct Incoming_ {
    pub method: hyper::Method,
    pub uri: hyper::Uri,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// A running fake server; stops when dropped.
#[derive(Debug)]
pub(crate) struct ServerHandle {
    stop: watch::Sender<bool>,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub(crate) fn response(
    status: u16,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

pub(crate) fn json_response(status: u16, body: &serde_json::Value) -> Response<Full<Bytes>> {
    response(status, "application/json; charset=utf-8", body.to_string())
}

/// Starts an HTTP/1.1 server on `listener` that hands each request to `handler`.
pub(crate) fn serve<H, Fut>(listener: TcpListener, handler: H) -> std::io::Result<ServerHandle>
where
    H: Fn(Incoming_) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped.changed() => break,
            };
            let Ok((stream, _)) = accepted else { continue };
            let handler = handler.clone();
            let stop_conn = stopped.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    let mut stop_req = stop_conn.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = match Limited::new(body, 4 * 1024 * 1024).collect().await {
                            Ok(b) => b.to_bytes(),
                            Err(_) => {
                                return Ok::<_, FakeError>(response(
                                    413,
                                    "text/plain",
                                    "too large",
                                ));
                            }
                        };
                        let incoming = Incoming_ {
                            method: parts.method,
                            uri: parts.uri,
                            headers: parts.headers,
                            body,
                        };
                        match handler(incoming).await {
                            Reply::Send(r) => Ok(r),
                            Reply::Reset => Err(FakeError),
                            Reply::Hang => {
                                let _ = stop_req.wait_for(|s| *s).await;
                                Err(FakeError)
                            }
                        }
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let _ = conn.await;
            });
        }
    });
    Ok(ServerHandle { stop })
}

/// Locks a fake's state even if a thread panicked holding it: a failed assertion in one test
/// must not hide the fake's state from what the test reports next.
pub(crate) fn lock<T>(state: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the handlers of a fake with no other shared parts see: its options, its base URL and
/// its state.
pub(crate) struct FakeShared<O, S> {
    pub options: O,
    pub base_url: String,
    pub state: std::sync::Mutex<S>,
}

impl<O, S> FakeShared<O, S> {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        lock(&self.state)
    }
}

impl<O, S> FakeShared<O, S>
where
    O: Send + Sync + 'static,
    S: Send + 'static,
{
    /// Binds `addr` and serves `handle`; the base URL is `http://ADDR` + `base_path`.
    pub async fn start<H, Fut>(
        addr: &str,
        base_path: &str,
        options: O,
        state: S,
        handle: H,
    ) -> std::io::Result<(Arc<Self>, ServerHandle)>
    where
        H: Fn(Arc<Self>, Incoming_) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let listener = TcpListener::bind(addr).await?;
        let base_url = format!("http://{}{base_path}", listener.local_addr()?);
        let shared = Arc::new(Self {
            options,
            base_url,
            state: std::sync::Mutex::new(state),
        });
        let server = serve_shared(listener, &shared, handle)?;
        Ok((shared, server))
    }
}

/// [`serve`], each request handed to `handle` with the fake's shared parts.
pub(crate) fn serve_shared<S, H, Fut>(
    listener: TcpListener,
    shared: &Arc<S>,
    handle: H,
) -> std::io::Result<ServerHandle>
where
    S: Send + Sync + 'static,
    H: Fn(Arc<S>, Incoming_) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let shared = shared.clone();
    serve(listener, move |req| handle(shared.clone(), req))
}

/// The error a fake's service returns to make hyper drop the connection.
#[derive(Debug)]
pub(crate) struct FakeError;

impl std::fmt::Display for FakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for FakeError {}

/// The query parameters of a URI.
pub(crate) fn query_params(uri: &hyper::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// A request validator (e.g. one built from the provider's spec file at test time): given the
/// operation name and the request body, returns an error when the request breaks the spec.
pub type Validator = Arc<dyn Fn(&str, &serde_json::Value) -> Result<(), String> + Send + Sync>;
