//! The least a hyper-based reverse proxy does per request, as a baseline for `benches/proxy.sh`:
//! one thread (tokio's current-thread scheduler, as dripgate with one worker), hyper's HTTP/1
//! server and client connections, idle upstream connections on a LIFO stack, and the forwarded
//! headers the nginx baseline sets. No limits, timeouts, metrics, logs or header hygiene: what
//! it costs per request is the floor of any proxy built on the same libraries, so
//! dripgate/hyper_floor is dripgate's own overhead and hyper_floor/nginx is what the libraries
//! leave.
//!
//! `hyper_floor LISTEN ORIGIN`, for example `hyper_floor 127.0.0.1:18084 127.0.0.1:18081`.
//! A benchmark tool only: never put it in front of real traffic.

use std::error::Error;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1 as client;
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Sender = client::SendRequest<Incoming>;

// The allocator dripgate's binary uses, so that dripgate/hyper_floor stays dripgate's own work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Idle upstream connections, the most recently used on top.
#[derive(Default)]
struct Pool(Mutex<Vec<Sender>>);

impl Pool {
    fn pop(&self) -> Option<Sender> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    fn push(&self, sender: Sender) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sender);
    }

    /// An idle connection that can take a request, or a new one.
    async fn checkout(&self, origin: SocketAddr) -> Result<Sender, Box<dyn Error + Send + Sync>> {
        while let Some(sender) = self.pop() {
            if sender.is_ready() {
                return Ok(sender);
            }
        }
        let tcp = TcpStream::connect(origin).await?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = client::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }
}

/// A response body that puts its connection back on the stack once read to the end: the same
/// hand-back as dripgate's pool, kept apart so that the floor measures the libraries alone.
struct PooledBody {
    inner: Incoming,
    conn: Option<(Sender, Arc<Pool>)>,
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended && let Some((sender, pool)) = self.conn.take() {
            pool.push(sender);
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

async fn forward(
    mut req: http::Request<Incoming>,
    client_ip: HeaderValue,
    pool: Arc<Pool>,
    origin: SocketAddr,
) -> Result<http::Response<PooledBody>, Box<dyn Error + Send + Sync>> {
    let mut sender = pool.checkout(origin).await?;
    if let Some(pq) = req.uri().path_and_query().cloned() {
        *req.uri_mut() = pq.into();
    }
    let headers = req.headers_mut();
    headers.insert(HeaderName::from_static("x-forwarded-for"), client_ip);
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    let resp = sender.send_request(req).await?;
    Ok(resp.map(|inner| PooledBody {
        inner,
        conn: Some((sender, pool)),
    }))
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(origin)) = (args.next(), args.next()) else {
        return Err("usage: hyper_floor LISTEN ORIGIN".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let origin: SocketAddr = origin.parse()?;
    // One thread, on the scheduler dripgate runs with `server.worker_threads = 1`, and with
    // its event interval.
    tokio::runtime::Builder::new_current_thread()
        .event_interval(dripgate::cli::EVENT_INTERVAL)
        .enable_all()
        .build()?
        .block_on(serve(listen, origin))
}

async fn serve(listen: SocketAddr, origin: SocketAddr) -> Result<(), Box<dyn Error + Send + Sync>> {
    let listener = TcpListener::bind(listen).await?;
    let pool = Arc::new(Pool::default());
    loop {
        // A failed accept or a client gone before it is set up costs that connection only.
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        // The client's address as a header value, made once per connection.
        let Ok(client_ip) = HeaderValue::from_str(&peer.ip().to_string()) else {
            continue;
        };
        let pool = pool.clone();
        tokio::spawn(async move {
            let service =
                service_fn(move |req| forward(req, client_ip.clone(), pool.clone(), origin));
            let _ = server::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
