//! The pool against real loopback upstreams: reuse, expiry, and the retry rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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
