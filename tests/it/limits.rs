//! Limits against bad clients: slowloris, oversized heads, idle connections, connection cap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::legacy_app::LegacyApp;
use common::{Dripgate, config_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until `complete` accepts what was read or the peer closes, bounded by `limit`; `None`
/// when the bound ran out first.
async fn read_until(
    stream: &mut TcpStream,
    limit: Duration,
    complete: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if complete(&out) {
                return;
            }
        }
    })
    .await;
    read.ok().map(|()| out)
}

/// Reads until the peer closes; returns what was read. Bounded by `limit`.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    read_until(stream, limit, |_| false).await
}

#[tokio::test]
async fn slowloris_client_is_dropped() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.server.header_read_timeout = Duration::from_millis(300);
    let dg = Dripgate::start(config).await;
    let mut stream = TcpStream::connect(dg.addr).await.unwrap();
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Trickle one header byte at a time, far slower than a real client; bounded to 40 bytes.
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream.write_all(b"X").await.is_err() {
                return true;
            }
        }
        false
    };
    let cut_off_while_writing = trickle.await;
    let closed = cut_off_while_writing
        || read_to_close(&mut stream, Duration::from_secs(5))
            .await
            .is_some();
    assert!(
        closed,
        "a client trickling its headers was not disconnected"
    );
    assert_eq!(app.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    dg.stop().await;
}

#[tokio::test]
async fn oversized_request_head_is_refused() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.server.max_header_bytes = 8192;
    let dg = Dripgate::start(config).await;
    let mut stream = TcpStream::connect(dg.addr).await.unwrap();
    let big = "a".repeat(20_000);
    let req = format!("GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = stream.write_all(req.as_bytes()).await;
    let answer = read_to_close(&mut stream, Duration::from_secs(5))
        .await
        .expect("connection closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "unexpected answer: {text}"
    );
    assert_eq!(app.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    dg.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.server.idle_timeout = Duration::from_millis(200);
    let dg = Dripgate::start(config).await;
    let mut stream = TcpStream::connect(dg.addr).await.unwrap();
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut stream, Duration::from_secs(10))
        .await
        .expect("idle connection closed by dripgate");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    dg.stop().await;
}

/// Whether `read` holds a whole response with a `content-length` body (none counts as 0).
fn is_whole_response(read: &[u8]) -> bool {
    let text = String::from_utf8_lossy(read);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}

/// Reads one response with a `content-length` body from `stream`, bounded by `limit`.
async fn read_response(stream: &mut TcpStream, limit: Duration) -> String {
    let out = read_until(stream, limit, is_whole_response)
        .await
        .expect("a response within the bound");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(is_whole_response(&out), "closed mid-response: {text:?}");
    text
}

#[tokio::test]
async fn the_header_read_timeout_spares_requests_in_flight() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.server.header_read_timeout = Duration::from_millis(200);
    let dg = Dripgate::start(config).await;
    let mut stream = TcpStream::connect(dg.addr).await.unwrap();
    // The upstream takes three header-read timeouts to answer: the client owes no head then.
    stream
        .write_all(b"GET /slow?ms=600 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut stream, Duration::from_secs(10)).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // The next head, sent at once, is served on the same connection.
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let second = read_response(&mut stream, Duration::from_secs(10)).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    // Then the connection rests: no head comes, and it is cut.
    let rest = read_to_close(&mut stream, Duration::from_secs(10))
        .await
        .expect("a connection owing a head was cut");
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert_eq!(app.requests.load(std::sync::atomic::Ordering::SeqCst), 2);
    dg.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_wait_their_turn() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.server.max_connections = 1;
    config.server.idle_timeout = Duration::from_millis(100);
    // The cap is shared by the workers, whichever socket each connection lands on.
    config.server.worker_threads = 2;
    let dg = Dripgate::start(config).await;
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));

    let slow = {
        let (order, url) = (order.clone(), dg.url("/slow?ms=600"));
        tokio::spawn(async move {
            let resp = common::client().get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            order.lock().unwrap().push("slow");
        })
    };
    // Wait (bounded) until the slow request holds the only connection slot.
    for _ in 0..200 {
        if app.requests.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fast = {
        let (order, url) = (order.clone(), dg.url("/echo"));
        tokio::spawn(async move {
            let resp = common::client().get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            order.lock().unwrap().push("fast");
        })
    };
    slow.await.unwrap();
    fast.await.unwrap();
    // Without the cap the fast request would finish first.
    assert_eq!(*order.lock().unwrap(), vec!["slow", "fast"]);
    dg.stop().await;
}
