//! Forwarding through dripgate to a real legacy app: headers, forwarded headers, errors,
//! sign-in routes, WebSocket upgrades, clients that leave mid-request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::legacy_app::LegacyApp;
use common::{Dripgate, client, config_for, get_text, metric};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

async fn echo(dg: &Dripgate, req: reqwest::RequestBuilder) -> Value {
    let _ = dg;
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("keep-alive").is_none(),
        "hop-by-hop response header leaked"
    );
    resp.json().await.unwrap()
}

fn header<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v["headers"][name][0].as_str()
}

#[tokio::test]
async fn forwards_method_path_query_and_end_to_end_headers() {
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    let req = client()
        .put(dg.url("/echo/a%20b?x=1&y=2"))
        .header("x-custom", "kept")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "dropped")
        .header("te", "trailers")
        .body("hello");
    let v = echo(&dg, req).await;
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["uri"], "/echo/a%20b?x=1&y=2");
    assert_eq!(v["body_len"], 5);
    assert_eq!(header(&v, "x-custom"), Some("kept"));
    assert_eq!(header(&v, "x-hop"), None);
    assert_eq!(header(&v, "te"), None);
    // Host is preserved by default: the client's, not the upstream's.
    assert_eq!(header(&v, "host"), Some(dg.addr.to_string().as_str()));
    dg.stop().await;
}

#[tokio::test]
async fn host_can_be_rewritten_to_the_upstream() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.upstream.preserve_host = false;
    let dg = Dripgate::start(config).await;
    let v = echo(&dg, client().get(dg.url("/echo"))).await;
    assert_eq!(header(&v, "host"), Some(app.addr.to_string().as_str()));
    assert_eq!(
        header(&v, "x-forwarded-host"),
        Some(dg.addr.to_string().as_str())
    );
    dg.stop().await;
}

/// Sends `request` as written (a client library would tidy its headers) to the proxy at `addr`,
/// expects a 200 from the echo app behind it, and returns what the app saw.
async fn raw_echo(addr: std::net::SocketAddr, request: &[u8]) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap()
}

/// `Connection` may name Host as hop-by-hop; the upstream still gets the client's Host.
#[tokio::test]
async fn a_host_that_connection_names_still_reaches_the_upstream() {
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    let v = raw_echo(
        dg.addr,
        b"GET /echo HTTP/1.1\r\nHost: named.example\r\nConnection: close, Host\r\n\r\n",
    )
    .await;
    assert_eq!(v["headers"]["host"], serde_json::json!(["named.example"]));
    dg.stop().await;
}

#[tokio::test]
async fn untrusted_client_cannot_spoof_forwarded_headers() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.forwarding.forwarded_header = true;
    let dg = Dripgate::start(config).await;
    let req = client()
        .get(dg.url("/echo"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("x-real-ip", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6");
    let v = echo(&dg, req).await;
    assert_eq!(header(&v, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&v, "x-forwarded-proto"), Some("http"));
    assert_eq!(
        header(&v, "x-forwarded-host"),
        Some(dg.addr.to_string().as_str())
    );
    assert_eq!(header(&v, "x-real-ip"), None);
    let forwarded = header(&v, "forwarded").unwrap();
    assert!(
        forwarded.starts_with("for=127.0.0.1;proto=http"),
        "{forwarded}"
    );
    assert!(!forwarded.contains("6.6.6.6"));
    dg.stop().await;
}

#[tokio::test]
async fn trusted_proxy_headers_are_kept_and_extended() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.forwarding.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let dg = Dripgate::start(config).await;
    let req = client()
        .get(dg.url("/echo"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example");
    let v = echo(&dg, req).await;
    assert_eq!(
        header(&v, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(header(&v, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&v, "x-forwarded-host"), Some("app.example"));
    dg.stop().await;
}

#[tokio::test]
async fn upstream_down_gives_502_and_slow_gives_504() {
    // A port that was just free: nothing listens there.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dg = Dripgate::start(config_for(dead)).await;
    let resp = client().get(dg.url("/anything")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.text().await.unwrap(), "502 Bad Gateway\n");
    let page = get_text(&dg.admin_url("/metrics")).await.1;
    for series in [
        "dripgate_upstream_errors_total{kind=\"connect\",upstream=\"legacy\"}",
        "dripgate_upstream_requests_total{status=\"error\",upstream=\"legacy\"}",
        "dripgate_http_requests_total{route=\"proxy\",status=\"502\"}",
    ] {
        assert_eq!(metric(&page, series), Some(1.0), "{series}");
    }
    // A connection that could not be made is no retry; both series are there from the start.
    for reason in ["unsent", "resent"] {
        let series =
            format!("dripgate_upstream_retries_total{{reason=\"{reason}\",upstream=\"legacy\"}}");
        assert_eq!(metric(&page, &series), Some(0.0), "{series}");
    }
    dg.stop().await;

    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.upstream.response_timeout = Duration::from_millis(200);
    let dg = Dripgate::start(config).await;
    let resp = client().get(dg.url("/slow?ms=3000")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(resp.text().await.unwrap(), "504 Gateway Timeout\n");
    let page = get_text(&dg.admin_url("/metrics")).await.1;
    assert_eq!(
        metric(
            &page,
            "dripgate_upstream_errors_total{kind=\"timeout\",upstream=\"legacy\"}"
        ),
        Some(1.0)
    );
    dg.stop().await;
}

#[tokio::test]
async fn signin_route_body_reaches_legacy_byte_for_byte() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.signin.max_body_bytes = 1024;
    let dg = Dripgate::start(config).await;
    // Latin-1 bytes and an odd field order must arrive unchanged.
    let body: &[u8] = b"pwd=caf%E9&log=Alice%40Example.com&_csrf=zz&extra=%FF";
    let resp = client()
        .post(dg.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), body);

    // Larger than the limit: forwarded untouched, streamed.
    let big = vec![b'a'; 10_000];
    let resp = client()
        .post(dg.url("/login"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().len(), big.len());

    let page = get_text(&dg.admin_url("/metrics")).await.1;
    assert_eq!(
        metric(
            &page,
            "dripgate_http_requests_total{route=\"signin\",status=\"200\"}"
        ),
        Some(2.0)
    );
    dg.stop().await;
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", dg.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::text(format!("ping {i}"))).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back, Message::text(format!("ping {i}")));
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.close(None).await.unwrap();
    dg.stop().await;
}

/// A bare HTTP/1.1 upstream answering `ok` to every request; with `one_per_connection` it
/// closes each connection after its first answer, without announcing it. Counts the
/// connections that carried a request (the readiness probe's bare TCP connects carry none).
async fn counting_upstream(
    one_per_connection: bool,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut first = true;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if std::mem::take(&mut first) {
                            counted.fetch_add(1, Ordering::SeqCst);
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if tcp.write_all(answer).await.is_err() || one_per_connection {
                            return;
                        }
                    }
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, connections)
}

#[tokio::test]
async fn upstream_connections_are_reused_and_closed_ones_are_not() {
    use std::sync::atomic::Ordering;

    let (addr, connections) = counting_upstream(false).await;
    // One worker: each worker keeps upstream connections of its own.
    let mut config = config_for(addr);
    config.server.worker_threads = 1;
    let dg = Dripgate::start(config).await;
    for _ in 0..3 {
        let (status, body) = common::get_text(&dg.url("/x")).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    dg.stop().await;

    let (addr, connections) = counting_upstream(true).await;
    let dg = Dripgate::start(config_for(addr)).await;
    for _ in 0..3 {
        let (status, body) = common::get_text(&dg.url("/x")).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        // Time for the proxy to see the close before the next request.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    dg.stop().await;
}

/// With several proxy workers the kernel spreads new connections over their sockets, and each
/// worker reaches the upstream over connections of its own.
#[tokio::test]
async fn connections_are_spread_over_the_proxy_workers() {
    use std::sync::atomic::Ordering;

    const WORKERS: usize = 3;
    const CLIENTS: usize = 48;
    let (addr, upstream_connections) = counting_upstream(false).await;
    let mut config = config_for(addr);
    config.server.worker_threads = WORKERS;
    let dg = Dripgate::start(config).await;
    // One new client connection per request, one after the other: a worker's upstream
    // connection is idle again when that worker's next request comes.
    for _ in 0..CLIENTS {
        let (status, body) = common::get_text(&dg.url("/x")).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    let accepted: Vec<f64> = (0..WORKERS)
        .map(|w| {
            let series = format!("dripgate_worker_connections_total{{worker=\"{w}\"}}");
            common::metric(&page, &series).unwrap_or(0.0)
        })
        .collect();
    assert_eq!(accepted.iter().sum::<f64>(), CLIENTS as f64, "{accepted:?}");
    let busy = accepted.iter().filter(|&&n| n > 0.0).count();
    // All 48 on one of three sockets has a chance of 3^-47.
    assert!(busy >= 2, "one worker took every connection: {accepted:?}");
    // Each worker counts requests into its own copy of the request metrics; /metrics shows
    // their sum as one series, whichever workers served them.
    for series in [
        "dripgate_http_requests_total{route=\"proxy\",status=\"200\"}",
        "dripgate_http_request_duration_seconds_count{route=\"proxy\"}",
        "dripgate_upstream_requests_total{status=\"200\",upstream=\"legacy\"}",
        "dripgate_upstream_request_duration_seconds_count",
    ] {
        assert_eq!(
            common::metric(&page, series),
            Some(CLIENTS as f64),
            "{series}"
        );
    }
    // A shared pool would carry them all on one upstream connection.
    let upstream = upstream_connections.load(Ordering::SeqCst);
    assert!(
        upstream >= busy,
        "{upstream} upstream connections for {busy} workers"
    );
    dg.stop().await;
}

/// A client that goes away while its request waits on the upstream: dripgate notices, drops
/// the request and closes the upstream connection that carried it, instead of holding it until
/// the upstream answers or `upstream.response_timeout` passes.
#[tokio::test]
async fn client_that_leaves_cancels_its_upstream_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    const BOUND: Duration = Duration::from_secs(10);
    // An upstream that reads one request head, reports it, never answers, and reports when the
    // connection that carried it is closed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = oneshot::channel();
    let (closed_tx, closed_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut seen_tx, mut closed_tx) = (Some(seen_tx), Some(closed_tx));
        let has_head = |bytes: &[u8]| bytes.windows(4).any(|w| w == b"\r\n\r\n");
        // The readiness probe's bare connects carry no request; skip them.
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut chunk = [0u8; 1024];
            while !has_head(&head) {
                match tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            if !has_head(&head) {
                continue;
            }
            if let Some(tx) = seen_tx.take() {
                let _ = tx.send(());
            }
            while let Ok(n) = tcp.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
            }
            if let Some(tx) = closed_tx.take() {
                let _ = tx.send(());
            }
            return;
        }
    });

    let mut config = config_for(addr);
    config.upstream.response_timeout = Duration::from_secs(60);
    let dg = Dripgate::start(config).await;
    let mut tcp = tokio::net::TcpStream::connect(dg.addr).await.unwrap();
    tcp.write_all(b"GET /wait HTTP/1.1\r\nhost: app.example\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(BOUND, seen_rx)
        .await
        .expect("the request never reached the upstream")
        .unwrap();
    drop(tcp);
    tokio::time::timeout(BOUND, closed_rx)
        .await
        .expect("the upstream connection stayed open after its client left")
        .unwrap();
    dg.stop().await;
}
