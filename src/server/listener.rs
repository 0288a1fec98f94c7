//! The public listener: accept loop, connection limit, optional TLS, per-connection HTTP/1.1 +
//! HTTP/2 serving with a header-read timeout, a header size limit and an idle timeout, and the
//! shutdown phases every connection follows.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::lifecycle::Lifecycle;
use super::service::{RequestContext, handle};
use super::watchdog::{ConnState, Signal, SignalSeen, Watchdog};
use crate::config::ServerConfig;
use crate::proxy::ClientInfo;

/// Limits applied to every client connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_header_bytes: usize,
}

impl From<&ServerConfig> for ConnLimits {
    fn from(c: &ServerConfig) -> Self {
        Self {
            header_read_timeout: c.header_read_timeout,
            idle_timeout: c.idle_timeout,
            max_header_bytes: c.max_header_bytes,
        }
    }
}

/// Accepts connections for proxy worker `worker` until the phase leaves `Running`. Each
/// connection holds one permit of `permits` (shared by all workers); when none is free the loop
/// stops accepting, so excess clients wait (in the kernel's backlog, one per worker accepted and
/// held) instead of being served half-way.
pub async fn accept_loop(
    worker: usize,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: Arc<RequestContext>,
    limits: ConnLimits,
    permits: Arc<Semaphore>,
    mut phase: watch::Receiver<Lifecycle>,
) {
    let accepted_here = ctx.metrics.worker_accepted(worker);
    let watchdog = Watchdog::spawn(
        limits.idle_timeout,
        limits.header_read_timeout,
        phase.clone(),
    );
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = phase.wait_for(|p| *p != Lifecycle::Running) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The permit is taken after the accept, not before: a worker waiting on its own socket
        // must not hold a slot idle while a connection waits on another worker's socket. A
        // connection accepted at the cap waits here, not served, until a slot frees; the loop
        // accepts nothing more meanwhile, so a worker holds at most one such connection.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = phase.wait_for(|p| *p != Lifecycle::Running) => return,
        };
        accepted_here.inc();
        let _ = tcp.set_nodelay(true);
        let ctx = ctx.clone();
        let tls = tls.clone();
        let state = watchdog.register(ClientInfo::new(peer, tls.is_some()));
        tokio::spawn(async move {
            let _open = ctx.metrics.connection_opened();
            match tls {
                None => serve_connection(tcp, ctx, limits, state).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            state.ready_for_requests();
                            serve_connection(stream, ctx, limits, state).await;
                        }
                        Ok(Err(e)) => {
                            ctx.metrics.tls_handshake_failed();
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            ctx.metrics.tls_handshake_failed();
                            tracing::debug!(peer = %peer, "TLS handshake timed out");
                        }
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one connection until it ends, goes idle, or shutdown closes it.
async fn serve_connection<I>(
    io: I,
    ctx: Arc<RequestContext>,
    limits: ConnLimits,
    state: Arc<ConnState>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = state.client().peer;
    // Each request reaches its client through the connection's state, which its busy guard
    // holds anyway: one reference count per request, and no copy.
    let service_state = state.clone();
    let service = service_fn(move |req| {
        let busy = service_state.busy(req.version());
        handle(ctx.clone(), req, busy)
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header-read timeout is the watchdog's (`ConnState`), not hyper's: hyper's arms a
    // boxed timer for every request head.
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);

    let mut seen = SignalSeen::new();
    loop {
        let step = poll_fn(|cx| {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(Err(result));
            }
            state.poll_signal(cx, &mut seen).map(Ok)
        })
        .await;
        match step {
            Err(result) => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            Ok(Signal::Close) => {
                tracing::debug!(peer = %peer, "closing connection (idle or draining)");
                conn.as_mut().graceful_shutdown();
            }
            Ok(_) => return,
        }
    }
}
