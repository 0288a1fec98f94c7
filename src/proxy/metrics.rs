//! Metrics of the request path: requests by route class and status, latency, in-flight,
//! connections, upstream results and errors.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::StatusCode;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use super::UpstreamError;
use super::sharded::Sharded;
use crate::failure::Classified;

/// Latency buckets in seconds, from sub-millisecond proxying to slow sign-ins.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Route classes and upstream names whose label children are resolved ahead of time.
const ROUTE_LABELS: [&str; 3] = ["proxy", "signin", "forgot_password"];
const UPSTREAM_LABELS: [&str; 2] = ["legacy", "new"];

/// The counters of one first label (a route class or an upstream) by status code, each looked
/// up in its vector once and then kept: the lookup hashes the label values under a lock, which
/// is worth paying once per status code, not once per request.
#[derive(Clone)]
struct ByStatus {
    label: &'static str,
    /// Indexed by status code - 100 (`StatusCode` spans 100..=999).
    cells: Arc<[OnceLock<IntCounter>]>,
}

impl ByStatus {
    fn new(label: &'static str) -> Self {
        Self {
            label,
            cells: (100..=999).map(|_| OnceLock::new()).collect(),
        }
    }

    fn inc(&self, vec: &IntCounterVec, status: StatusCode) {
        let index = usize::from(status.as_u16()).saturating_sub(100);
        match self.cells.get(index) {
            Some(cell) => cell
                .get_or_init(|| vec.with_label_values(&[self.label, status.as_str()]))
                .inc(),
            None => vec.with_label_values(&[self.label, status.as_str()]).inc(),
        }
    }
}

/// Pre-resolved children of the per-route metrics.
#[derive(Clone)]
struct RouteCells {
    by_status: ByStatus,
    duration: Histogram,
}

/// The metrics every proxied request updates, one copy per proxy worker ([`Sharded`]).
#[derive(Clone)]
struct WorkerShard {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    upstream_requests: IntCounterVec,
    upstream_duration: Histogram,
    routes: Arc<[RouteCells]>,
    upstreams: Arc<[ByStatus]>,
}

impl WorkerShard {
    fn new() -> Result<Self, prometheus::Error> {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "dripgate_http_request_duration_seconds",
                "Time from request head to response head, by route class.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let routes = ROUTE_LABELS
            .into_iter()
            .map(|label| RouteCells {
                by_status: ByStatus::new(label),
                duration: duration.with_label_values(&[label]),
            })
            .collect();
        Ok(Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "dripgate_http_requests_total",
                    "Client requests answered, by route class and status code.",
                ),
                &["route", "status"],
            )?,
            duration,
            in_flight: IntGauge::new(
                "dripgate_http_requests_in_flight",
                "Client requests whose response has not finished streaming.",
            )?,
            upstream_requests: IntCounterVec::new(
                Opts::new(
                    "dripgate_upstream_requests_total",
                    "Requests sent upstream, by upstream and status code (or error).",
                ),
                &["upstream", "status"],
            )?,
            upstream_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "dripgate_upstream_request_duration_seconds",
                    "Time from sending a request upstream to its response head.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            routes,
            upstreams: UPSTREAM_LABELS.into_iter().map(ByStatus::new).collect(),
        })
    }
}

/// The registered families of the [`WorkerShard`] metrics, each the sum of every worker's copy.
#[derive(Clone)]
struct ShardedFamilies {
    requests: Sharded<IntCounterVec>,
    duration: Sharded<HistogramVec>,
    in_flight: Sharded<IntGauge>,
    upstream_requests: Sharded<IntCounterVec>,
    upstream_duration: Sharded<Histogram>,
}

impl ShardedFamilies {
    fn register(first: &WorkerShard, registry: &Registry) -> Result<Self, prometheus::Error> {
        let families = Self {
            requests: Sharded::new(first.requests.clone()),
            duration: Sharded::new(first.duration.clone()),
            in_flight: Sharded::new(first.in_flight.clone()),
            upstream_requests: Sharded::new(first.upstream_requests.clone()),
            upstream_duration: Sharded::new(first.upstream_duration.clone()),
        };
        registry.register(Box::new(families.requests.clone()))?;
        registry.register(Box::new(families.duration.clone()))?;
        registry.register(Box::new(families.in_flight.clone()))?;
        registry.register(Box::new(families.upstream_requests.clone()))?;
        registry.register(Box::new(families.upstream_duration.clone()))?;
        Ok(families)
    }

    fn add(&self, shard: &WorkerShard) {
        self.requests.add(shard.requests.clone());
        self.duration.add(shard.duration.clone());
        self.in_flight.add(shard.in_flight.clone());
        self.upstream_requests.add(shard.upstream_requests.clone());
        self.upstream_duration.add(shard.upstream_duration.clone());
    }
}

/// Handles to the request-path metrics; cheap to clone. The per-request ones are this worker's
/// own copy ([`HttpMetrics::for_worker`]); the per-connection ones are shared.
#[derive(Clone)]
pub struct HttpMetrics {
    shard: WorkerShard,
    families: ShardedFamilies,
    connections_open: IntGauge,
    connections: IntCounter,
    worker_connections: IntCounterVec,
    tls_handshake_errors: IntCounter,
    upstream_errors: IntCounterVec,
    upstream_retries: IntCounterVec,
    client_errors: IntCounterVec,
}

impl HttpMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let shard = WorkerShard::new()?;
        let families = ShardedFamilies::register(&shard, registry)?;
        let m = Self {
            shard,
            families,
            connections_open: IntGauge::new(
                "dripgate_connections_open",
                "Client connections currently open.",
            )?,
            connections: IntCounter::new(
                "dripgate_connections_total",
                "Client connections accepted.",
            )?,
            worker_connections: IntCounterVec::new(
                Opts::new(
                    "dripgate_worker_connections_total",
                    "Client connections accepted, by proxy worker (how evenly the kernel spreads them).",
                ),
                &["worker"],
            )?,
            tls_handshake_errors: IntCounter::new(
                "dripgate_tls_handshake_errors_total",
                "TLS handshakes that failed or timed out.",
            )?,
            upstream_errors: IntCounterVec::new(
                Opts::new(
                    "dripgate_upstream_errors_total",
                    "Upstream requests that failed, by upstream and kind.",
                ),
                &["upstream", "kind"],
            )?,
            upstream_retries: IntCounterVec::new(
                Opts::new(
                    "dripgate_upstream_retries_total",
                    "Requests sent upstream again on another connection after the upstream closed \
                     a pooled one under them, by upstream and reason (unsent: handed back \
                     unwritten; resent: an idempotent request written and sent once more).",
                ),
                &["upstream", "reason"],
            )?,
            client_errors: IntCounterVec::new(
                Opts::new(
                    "dripgate_client_errors_total",
                    "Requests refused or cut for the client's fault, by reason (bad_host, \
                     transfer_coding, malformed_body, body_timeout); none is an upstream error.",
                ),
                &["reason"],
            )?,
        };
        registry.register(Box::new(m.connections_open.clone()))?;
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.worker_connections.clone()))?;
        registry.register(Box::new(m.tls_handshake_errors.clone()))?;
        registry.register(Box::new(m.upstream_errors.clone()))?;
        registry.register(Box::new(m.upstream_retries.clone()))?;
        registry.register(Box::new(m.client_errors.clone()))?;
        Ok(m)
    }

    /// Handles for another proxy worker: the same registered families, with per-request
    /// metrics of its own that `/metrics` adds to the others'.
    pub fn for_worker(&self) -> Result<Self, prometheus::Error> {
        let shard = WorkerShard::new()?;
        self.families.add(&shard);
        Ok(Self {
            shard,
            ..self.clone()
        })
    }

    /// Records an answered client request.
    pub fn observe_request(&self, route: &str, status: StatusCode, elapsed: Duration) {
        let shard = &self.shard;
        match shard.routes.iter().find(|r| r.by_status.label == route) {
            Some(cells) => {
                cells.by_status.inc(&shard.requests, status);
                cells.duration.observe(elapsed.as_secs_f64());
            }
            None => {
                shard
                    .requests
                    .with_label_values(&[route, status.as_str()])
                    .inc();
                shard
                    .duration
                    .with_label_values(&[route])
                    .observe(elapsed.as_secs_f64());
            }
        }
    }

    /// Records one upstream exchange.
    pub fn observe_upstream(
        &self,
        upstream: &str,
        result: Result<StatusCode, &UpstreamError>,
        elapsed: Duration,
    ) {
        match result {
            Ok(status) => {
                let shard = &self.shard;
                match shard.upstreams.iter().find(|u| u.label == upstream) {
                    Some(cells) => cells.inc(&shard.upstream_requests, status),
                    None => shard
                        .upstream_requests
                        .with_label_values(&[upstream, status.as_str()])
                        .inc(),
                }
                shard.upstream_duration.observe(elapsed.as_secs_f64());
            }
            Err(err) => self.observe_upstream_error(upstream, err),
        }
    }

    /// The failed half of [`Self::observe_upstream`], out of line: its label lookups are
    /// code that successful requests should not have to load.
    #[cold]
    #[inline(never)]
    fn observe_upstream_error(&self, upstream: &str, err: &UpstreamError) {
        self.shard
            .upstream_requests
            .with_label_values(&[upstream, "error"])
            .inc();
        self.upstream_errors
            .with_label_values(&[upstream, err.label()])
            .inc();
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn request_started(&self) -> InFlightGuard {
        self.shard.in_flight.inc();
        InFlightGuard(self.shard.in_flight.clone())
    }

    /// Counts an accepted connection as open until the returned guard is dropped.
    pub fn connection_opened(&self) -> InFlightGuard {
        self.connections.inc();
        self.connections_open.inc();
        InFlightGuard(self.connections_open.clone())
    }

    /// The counter of connections accepted by proxy worker `worker`.
    pub fn worker_accepted(&self, worker: usize) -> IntCounter {
        self.worker_connections
            .with_label_values(&[worker.to_string().as_str()])
    }

    /// The retry counters of `upstream`'s connection pool.
    pub fn upstream_retries(&self, upstream: &str) -> RetryCounters {
        RetryCounters {
            unsent: self
                .upstream_retries
                .with_label_values(&[upstream, "unsent"]),
            resent: self
                .upstream_retries
                .with_label_values(&[upstream, "resent"]),
        }
    }

    /// The counters of requests refused or cut for the client's fault, one per reason.
    pub fn client_errors(&self) -> ClientErrorCounters {
        let counter =
            |reason: ClientErrorReason| self.client_errors.with_label_values(&[reason.as_str()]);
        ClientErrorCounters(ClientErrorReason::ALL.map(counter))
    }

    /// Counts a failed TLS handshake.
    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_errors.inc();
    }
}

/// Requests a connection pool sent again on another connection.
#[derive(Clone)]
pub struct RetryCounters {
    /// Handed back unwritten by a pooled connection that turned out closed.
    pub unsent: IntCounter,
    /// Written to a pooled connection that then failed with no response, and sent once more.
    pub resent: IntCounter,
}

impl RetryCounters {
    /// Counters registered nowhere, for a pool whose retries nobody reads.
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Ok(Self {
            unsent: IntCounter::new("upstream_retries_unsent", "unregistered")?,
            resent: IntCounter::new("upstream_retries_resent", "unregistered")?,
        })
    }
}

/// Why a request was refused or cut as the client's fault: the `reason` label of
/// `dripgate_client_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientErrorReason {
    /// No Host, or more than one (HTTP/1.1).
    BadHost,
    /// A transfer coding other than `chunked` alone.
    TransferCoding,
    /// A request body that could not be decoded (bad chunk framing, truncated).
    MalformedBody,
    /// No request body bytes for `upstream.body_inactivity_timeout`.
    BodyTimeout,
}

impl ClientErrorReason {
    const ALL: [Self; 4] = [
        Self::BadHost,
        Self::TransferCoding,
        Self::MalformedBody,
        Self::BodyTimeout,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadHost => "bad_host",
            Self::TransferCoding => "transfer_coding",
            Self::MalformedBody => "malformed_body",
            Self::BodyTimeout => "body_timeout",
        }
    }
}

/// `dripgate_client_errors_total`, its children resolved once (every series exists from the
/// start, at 0).
#[derive(Clone)]
pub struct ClientErrorCounters([IntCounter; 4]);

impl ClientErrorCounters {
    /// Counts one request refused or cut for `reason`.
    pub fn count(&self, reason: ClientErrorReason) {
        // `ALL` lists the reasons in declaration order, so a reason's discriminant is its index.
        self.0[reason as usize].inc();
    }
}

/// Decrements a gauge when dropped.
pub struct InFlightGuard(IntGauge);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
