//! Forwarding to the legacy upstream over pooled HTTP/1.1 connections: streamed bodies both ways,
//! hop-by-hop headers stripped, forwarded headers set, allowed protocol upgrades tunnelled,
//! requests the client got wrong refused (400/408/501), and upstream failures turned into short
//! 502/504 answers.

pub mod config;
mod error;
pub mod headers;
pub mod metrics;
mod pool;
mod scan;
mod sharded;
mod timer;
mod upgrade;
mod upload;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Method, Request, Response, Uri, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::connect::HttpConnector;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

pub use error::{ClientError, UpstreamError};
pub use headers::{ClientInfo, ForwardedPolicy, UpgradeProtocols};
pub(crate) use pool::SendResult;
use pool::{Exchange, PooledBody};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{Body, BoxError};
use config::{ForwardingConfig, ProxyConfigError, UpstreamConfig};
use metrics::{ClientErrorCounters, HttpMetrics};
use upload::{Stage, Upload, WatchedBody};

/// Forwards requests to one upstream.
#[derive(Clone)]
pub struct Forwarder {
    pool: Arc<pool::Pool>,
    authority: Authority,
    base_path: String,
    preserve_host: bool,
    response_timeout: Duration,
    body_inactivity_timeout: Duration,
    policy: ForwardedPolicy,
    upgrade_protocols: UpgradeProtocols,
    name: &'static str,
    metrics: HttpMetrics,
    client_errors: ClientErrorCounters,
}

impl Forwarder {
    /// A forwarder to the legacy upstream of `[upstream]`.
    pub fn legacy(
        upstream: &UpstreamConfig,
        forwarding: &ForwardingConfig,
        metrics: HttpMetrics,
    ) -> Result<Self, ProxyConfigError> {
        Self::to(
            "legacy",
            "upstream.url",
            &upstream.url,
            (upstream, forwarding),
            metrics,
        )
    }

    /// A forwarder named `name` to `url` (config key `key`), with the connection settings of
    /// `[upstream]` and the forwarded-header policy of `[forwarding]`.
    pub fn to(
        name: &'static str,
        key: &str,
        url: &str,
        (upstream, forwarding): (&UpstreamConfig, &ForwardingConfig),
        metrics: HttpMetrics,
    ) -> Result<Self, ProxyConfigError> {
        let invalid = |message: String| ProxyConfigError {
            key: key.to_owned(),
            message,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| invalid(format!("not a URL: {e}")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(invalid("must be an absolute http:// URL".to_owned()));
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(upstream.connect_timeout));
        connector.set_nodelay(true);
        let target = Uri::builder()
            .scheme(scheme)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| invalid(format!("not a URL: {e}")))?;
        let pool = pool::Pool::new(
            connector,
            target,
            upstream.pool_max_idle,
            upstream.pool_idle_timeout,
            metrics.upstream_retries(name),
        );
        Ok(Self {
            pool: Arc::new(pool),
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            preserve_host: upstream.preserve_host,
            response_timeout: upstream.response_timeout,
            body_inactivity_timeout: upstream.body_inactivity_timeout,
            policy: ForwardedPolicy::from_config(forwarding)?,
            upgrade_protocols: UpgradeProtocols::new(&forwarding.upgrade_protocols),
            name,
            client_errors: metrics.client_errors(),
            metrics,
        })
    }

    /// This forwarder for another proxy worker: a connection pool of its own, so no request
    /// waits on another worker's thread, and that worker's `metrics`.
    pub fn for_worker(&self, metrics: HttpMetrics) -> Self {
        Self {
            pool: Arc::new(self.pool.empty_like()),
            metrics,
            ..self.clone()
        }
    }

    /// The upstream's name in logs and metrics.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The upstream's `host:port`.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Sends `req` upstream and returns its response, or a short 400/408/501/502/504 answer.
    pub async fn forward(&self, req: Request<Body>, client: &ClientInfo) -> Response<Body> {
        let started = Instant::now();
        let mut forwarding = std::pin::pin!(self.start(req, client, started));
        std::future::poll_fn(|cx| forwarding.as_mut().poll_forward(cx, self, client, started))
            .await
            .0
            .map(ForwardedBody::boxed)
    }

    /// Whether `req` is one this forwarder would refuse as the client's fault (Host, transfer
    /// codings): checked before a sign-in's body is read, since its forwarding comes later.
    pub fn refuses(&self, req: &Request<Body>) -> bool {
        let scan = headers::HeaderScan::of(req.headers());
        let transfer_coding = if scan.has_transfer_encoding() {
            headers::check_transfer_coding(req.headers())
        } else {
            Ok(())
        };
        transfer_coding.and(client_host(req).map(drop)).is_err()
    }

    /// Starts forwarding `req`, a request that arrived at `started` (a clock reading the caller
    /// already took: the upstream latency and the response deadline count from it): rewrites it
    /// and hands it to an upstream connection. Drive the result with
    /// [`Forwarding::poll_forward`].
    pub(crate) fn start(
        &self,
        mut req: Request<Body>,
        client: &ClientInfo,
        started: Instant,
    ) -> Forwarding<impl Future<Output = SendResult> + Send + use<>> {
        // One pass over the header names serves the checks, the upgrade test and both rewrites.
        let scan = headers::HeaderScan::of(req.headers());
        let upgrade = scan.is_upgrade_request(req.headers(), &self.upgrade_protocols);
        if let Err(err) = self.rewrite_request(&mut req, client, upgrade, &scan) {
            return Forwarding::Refused { error: Some(err) };
        }
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        // A body still arriving (not one that came whole with the head, as for most GETs) is
        // watched, so that the deadline can move to its end.
        let upload = (!req.body().is_end_stream()).then(|| self.watch_upload(&mut req));
        // The deadline reuses the clock reading taken for the latency metric, and the timer is
        // the connection's own (`timer`): no timer-wheel update per request. For an upload it is
        // a first look at how the upload fares (`Forwarding::extend`).
        let deadline = tokio::time::Instant::from_std(started) + self.response_timeout;
        Forwarding::Exchanging {
            deadline: Some(client.response_timer.arm(deadline)),
            exchange: self.pool.send(req, started),
            client_upgrade,
            upload,
        }
    }

    /// Puts the body of `req` under watch ([`upload`]) and returns what it will report.
    #[cold]
    #[inline(never)]
    fn watch_upload(&self, req: &mut Request<Body>) -> Arc<Upload> {
        let upload = Arc::new(Upload::default());
        let body = std::mem::take(req.body_mut());
        *req.body_mut() = crate::body::boxed(WatchedBody::new(
            body,
            upload.clone(),
            self.body_inactivity_timeout,
            self.client_errors.clone(),
        ));
        upload
    }

    /// The upstream's response head arrived: counted, tunnelled on 101, hop-by-hop headers
    /// stripped.
    fn answered(
        &self,
        mut resp: Response<PooledBody>,
        client_upgrade: Option<OnUpgrade>,
        started: Instant,
    ) -> (Response<ForwardedBody>, Duration) {
        let elapsed = resp.body().answered_at().saturating_duration_since(started);
        let switching = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            // Only a request that asked for an allowed protocol may become a tunnel.
            let Some(client_upgrade) = client_upgrade else {
                let err =
                    UpstreamError::Protocol("101 to a request that asked for no upgrade".into());
                return self.failed(err, started);
            };
            upgrade::tunnel(client_upgrade, hyper::upgrade::on(&mut resp));
        }
        self.metrics
            .observe_upstream(self.name, Ok(resp.status()), elapsed);
        headers::strip_hop_by_hop(resp.headers_mut(), switching);
        (resp.map(ForwardedBody::Upstream), elapsed)
    }

    /// Counts a failed upstream exchange and answers 502/504; a request the client got wrong
    /// is answered as such and counted as the client's error, not the upstream's.
    #[cold]
    #[inline(never)]
    fn failed(&self, err: UpstreamError, started: Instant) -> (Response<ForwardedBody>, Duration) {
        let elapsed = started.elapsed();
        // A client error was counted where it was found (the refusal, or the body).
        if !matches!(err, UpstreamError::Client(_)) {
            self.metrics.observe_upstream(self.name, Err(&err), elapsed);
        }
        (
            err.into_response(self.name).map(ForwardedBody::Local),
            elapsed,
        )
    }

    /// The request target sent upstream: the request's path and query in origin form, reused as
    /// is (no copy, no re-parse) unless the upstream URL has a base path to put in front; for
    /// CONNECT the upstream's authority.
    fn upstream_uri(&self, method: &Method, uri: &Uri) -> Result<Uri, UpstreamError> {
        if method == Method::CONNECT {
            return Ok(Uri::from(self.authority.clone()));
        }
        let path_and_query = match (self.base_path.is_empty(), uri.path_and_query()) {
            (true, Some(pq)) => pq.clone(),
            (_, pq) => self.with_base_path(pq)?,
        };
        Ok(Uri::from(path_and_query))
    }

    /// `pq` behind the upstream URL's base path (out of line: most upstreams have none).
    #[cold]
    #[inline(never)]
    fn with_base_path(&self, pq: Option<&PathAndQuery>) -> Result<PathAndQuery, UpstreamError> {
        let path = pq.map_or("/", PathAndQuery::as_str);
        PathAndQuery::try_from(format!("{}{}", self.base_path, path))
            .map_err(|e| UpstreamError::BadRequest(e.to_string()))
    }

    /// Rewrites `req` for the upstream, in place rather than taken apart and rebuilt, which
    /// would move the whole request twice more; refuses it when the client got its Host or its
    /// transfer coding wrong.
    fn rewrite_request(
        &self,
        req: &mut Request<Body>,
        client: &ClientInfo,
        upgrade: bool,
        scan: &headers::HeaderScan,
    ) -> Result<(), UpstreamError> {
        if scan.has_transfer_encoding() {
            headers::check_transfer_coding(req.headers())?;
        }
        let ClientHost {
            value: client_host,
            in_place,
        } = client_host(req)?;
        // A single Host line that is kept as is needs no rewrite (a lookup and a replace saved).
        let host_in_place = in_place && self.preserve_host;
        *req.uri_mut() = self.upstream_uri(req.method(), req.uri())?;
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        headers::strip_scanned(headers, scan, upgrade);
        // The scan predates the stripping: a forwarded header that `Connection` named is gone
        // now, and the policy's lookups find nothing of it, as for a client that sent none.
        self.policy
            .apply(headers, client, client_host.as_ref(), scan);
        // Unless `Connection` named Host and the stripping took it: then it is set again below.
        if host_in_place && (!scan.has_connection() || headers.contains_key(header::HOST)) {
            return Ok(());
        }
        let host = match (client_host, self.preserve_host) {
            (Some(host), true) => host,
            _ => HeaderValue::from_str(self.authority.as_str())
                .map_err(|e| UpstreamError::BadRequest(e.to_string()))?,
        };
        headers.insert(header::HOST, host);
        Ok(())
    }
}

/// The host a request asked for, and whether its Host line can stay as it is.
struct ClientHost {
    value: Option<HeaderValue>,
    /// A single Host line that names that host.
    in_place: bool,
}

/// The host `req` asks for (RFC 9112 §3.2): an absolute-form target's authority over any Host
/// line, else its single Host line, else (HTTP/2) the `:authority`. HTTP/1.1 without Host, and
/// any request with more than one Host (several lines, or a list), is refused: a proxy and the
/// app behind it could read different hosts from it.
#[inline]
fn client_host(req: &Request<Body>) -> Result<ClientHost, ClientError> {
    let mut lines = req.headers().get_all(header::HOST).iter();
    let (first, more) = (lines.next(), lines.next().is_some());
    if more || first.is_some_and(|h| headers::contains_byte(h.as_bytes(), b',')) {
        return Err(ClientError::RepeatedHost);
    }
    let http1 = req.version() <= Version::HTTP_11;
    if http1 && first.is_none() && req.version() == Version::HTTP_11 {
        return Err(ClientError::MissingHost);
    }
    match (http1, req.uri().authority(), first) {
        // Origin form (almost every request): the Host line, kept where it is.
        (true, None, Some(host)) | (false, _, Some(host)) => Ok(ClientHost {
            value: Some(host.clone()),
            in_place: true,
        }),
        (_, Some(authority), _) => Ok(target_authority(authority)),
        (_, None, None) => Ok(ClientHost {
            value: None,
            in_place: false,
        }),
    }
}

/// An absolute-form target's (or HTTP/2 `:authority`'s) authority as the host.
fn target_authority(authority: &Authority) -> ClientHost {
    ClientHost {
        value: HeaderValue::from_str(authority.as_str()).ok(),
        in_place: false,
    }
}

pin_project! {
    /// A request on its way upstream, from [`Forwarder::start`]: rewritten and handed to a
    /// connection, waiting for the response head until the deadline.
    ///
    /// Not a future of its own: it borrows its forwarder and client only while polled
    /// ([`Forwarding::poll_forward`]), so the request's future can own both beside it.
    #[project = ForwardingProj]
    pub(crate) enum Forwarding<F> {
        /// Waiting for the upstream's response head.
        Exchanging {
            #[pin]
            exchange: Exchange<F>,
            deadline: Option<Pin<Box<Sleep>>>,
            client_upgrade: Option<OnUpgrade>,
            // What the request's body reports while it is still arriving; `None` for a body
            // that came whole with the head.
            upload: Option<Arc<Upload>>,
        },
        /// The request cannot go upstream as it is.
        Refused {
            error: Option<UpstreamError>,
        },
    }
}

impl<F: Future<Output = SendResult>> Forwarding<F> {
    /// Polls for the response (the upstream's, or a short answer of dripgate's) and the
    /// upstream latency (until the response head arrived, or the exchange failed). `forwarder`,
    /// `client` and `started` are the ones this forwarding was started with.
    pub(crate) fn poll_forward(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        forwarder: &Forwarder,
        client: &ClientInfo,
        started: Instant,
    ) -> Poll<(Response<ForwardedBody>, Duration)> {
        match self.project() {
            ForwardingProj::Refused { error } => {
                let error = error
                    .take()
                    .unwrap_or_else(|| UpstreamError::BadRequest("already answered".to_owned()));
                if let UpstreamError::Client(err) = &error {
                    forwarder.client_errors.count(err.reason());
                }
                let resp = error
                    .into_response(forwarder.name)
                    .map(ForwardedBody::Local);
                Poll::Ready((resp, started.elapsed()))
            }
            ForwardingProj::Exchanging {
                exchange,
                deadline,
                client_upgrade,
                upload,
            } => {
                let sent = match exchange.poll(cx) {
                    Poll::Ready(sent) => Some(Ok(sent)),
                    Poll::Pending => loop {
                        match deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                            Some(Poll::Pending) => return Poll::Pending,
                            // An upload's deadline fired: moved on, or the verdict.
                            Some(Poll::Ready(())) => match (upload.as_deref(), deadline.as_mut()) {
                                (Some(upload), Some(timer)) => {
                                    match extend(upload, timer, forwarder.response_timeout) {
                                        Ok(()) => continue,
                                        Err(err) => break Some(Err(err)),
                                    }
                                }
                                _ => break None,
                            },
                            None => break None,
                        }
                    },
                };
                if let Some(timer) = deadline.take() {
                    client.response_timer.put_back(timer);
                }
                Poll::Ready(match sent {
                    Some(Ok(Ok(resp))) => forwarder.answered(resp, client_upgrade.take(), started),
                    Some(Ok(Err(err))) => forwarder.failed(blame(err, upload.as_deref()), started),
                    Some(Err(err)) => forwarder.failed(err, started),
                    None => forwarder
                        .failed(UpstreamError::Timeout(forwarder.response_timeout), started),
                })
            }
        }
    }
}

/// An upload's response deadline fired: moves it on (`Ok`) or gives the verdict. The
/// upstream's `response_timeout` runs from the end of the body; while the body arrives, the
/// client is judged by the body's own inactivity timer, and the upstream by whether it took
/// any of the body during the last `response_timeout` (as nginx's `proxy_send_timeout`).
#[cold]
#[inline(never)]
fn extend(
    upload: &Upload,
    timer: &mut Pin<Box<Sleep>>,
    response_timeout: Duration,
) -> Result<(), UpstreamError> {
    let now = tokio::time::Instant::now();
    let moved = upload.moved_since_last_look();
    let until = match upload.stage() {
        Stage::Ended => upload.ended_at().unwrap_or(now) + response_timeout,
        Stage::Failed(err) => return Err(UpstreamError::Client(err)),
        Stage::AwaitingClient => now + response_timeout,
        Stage::AwaitingUpstream if moved => now + response_timeout,
        Stage::AwaitingUpstream => return Err(UpstreamError::Timeout(response_timeout)),
    };
    if until <= now {
        return Err(UpstreamError::Timeout(response_timeout));
    }
    timer.as_mut().reset(until);
    Ok(())
}

/// A failed exchange of a request whose body the client broke (malformed, or stalled): the
/// client's fault, whatever the upstream connection then reported. The body already counted it.
fn blame(err: UpstreamError, upload: Option<&Upload>) -> UpstreamError {
    match upload.map(Upload::stage) {
        Some(Stage::Failed(client)) => UpstreamError::Client(client),
        _ => err,
    }
}

/// A response body as forwarding answers it: the upstream's own, streamed from its pooled
/// connection, or one dripgate made (a 502/504 answer, a sign-in's). The upstream's is kept
/// unboxed: every pass-through response would otherwise pay an allocation and a call through
/// a vtable for each frame, for a body type known here.
pub enum ForwardedBody {
    /// The upstream's body; its connection goes back to the pool at the end.
    Upstream(PooledBody),
    /// A body dripgate made or wrapped.
    Local(Body),
}

impl ForwardedBody {
    /// This body boxed, for callers that hold any body.
    pub fn boxed(self) -> Body {
        match self {
            Self::Upstream(body) => crate::body::boxed(body),
            Self::Local(body) => body,
        }
    }
}

impl HttpBody for ForwardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Upstream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::Local(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream(body) => body.is_end_stream(),
            Self::Local(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream(body) => body.size_hint(),
            Self::Local(body) => body.size_hint(),
        }
    }
}
