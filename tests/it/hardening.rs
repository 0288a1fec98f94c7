//! Proxy hardening, checked on the wire: raw requests over TCP to dripgate in front of the test
//! legacy app, asserting what dripgate answered and what the app received.
//!
//! h2c upgrades are never tunnelled; the response timeout runs from the end of the request body
//! and a stalled body is cut; malformed bodies and unsupported transfer codings are the client's
//! fault; Host rules (RFC 9112 §3.2); spoofable headers dropped from untrusted peers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::legacy_app::LegacyApp;
use common::{Dripgate, config_for, get_text, metric};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Every wait on the wire is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

/// A response as read off the wire.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    /// The body as the echo app's JSON.
    fn echo(&self) -> Value {
        assert_eq!(self.status, 200, "{}\n{}", self.head, self.body);
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Reads one response until the peer closes (the requests ask for `Connection: close`, and
/// dripgate closes after a body it did not read). `None` when nothing came before the close.
async fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut raw = Vec::new();
    tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the connection was not closed in time");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// Sends `request` as written and reads the answer.
async fn raw(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_answer(&mut stream).await.expect("an answer")
}

/// What the echo app saw of header `name`: its values, one per line.
fn seen<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name]
        .as_array()
        .map(|values| values.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

async fn metrics(dg: &Dripgate) -> String {
    get_text(&dg.admin_url("/metrics")).await.1
}

/// The count of `series`, 0 when it does not exist.
fn count(page: &str, series: &str) -> f64 {
    metric(page, series).unwrap_or(0.0)
}

fn client_errors(page: &str, reason: &str) -> f64 {
    count(
        page,
        &format!("dripgate_client_errors_total{{reason=\"{reason}\"}}"),
    )
}

/// Whether any upstream exchange was counted as failed.
fn upstream_failed(page: &str) -> bool {
    let errors: f64 = page
        .lines()
        .filter(|l| l.starts_with("dripgate_upstream_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    errors > 0.0
        || count(
            page,
            "dripgate_upstream_requests_total{status=\"error\",upstream=\"legacy\"}",
        ) > 0.0
}

#[tokio::test]
async fn an_h2c_upgrade_is_forwarded_as_a_plain_request_and_websocket_still_tunnels() {
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    for offered in ["h2c", "websocket, h2c", "H2C"] {
        let request = format!(
            "GET /echo HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
             Upgrade: {offered}\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        );
        let answer = raw(dg.addr, request.as_bytes()).await;
        let echo = answer.echo();
        for name in ["upgrade", "http2-settings", "connection"] {
            assert!(
                seen(&echo, name).is_empty(),
                "{offered}: {name} reached the app"
            );
        }
        assert_eq!(echo["method"], "GET");
    }

    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", dg.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("still tunnelled")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still tunnelled")
    );
    ws.close(None).await.unwrap();
    dg.stop().await;
}

#[tokio::test]
async fn a_slow_but_flowing_upload_outlasts_the_response_timeout() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.upstream.response_timeout = Duration::from_millis(500);
    config.upstream.body_inactivity_timeout = Duration::from_secs(5);
    let dg = Dripgate::start(config).await;
    let mut stream = TcpStream::connect(dg.addr).await.unwrap();
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    // Eight chunks 300 ms apart: the body takes well over the response timeout.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.write_all(b"4\r\nabcd\r\n").await.unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let answer = read_answer(&mut stream).await.expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_eq!(answer.body, "32");
    let page = metrics(&dg).await;
    assert!(!upstream_failed(&page));
    dg.stop().await;
}

#[tokio::test]
async fn a_stalled_upload_is_cut_by_the_inactivity_timeout() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.upstream.body_inactivity_timeout = Duration::from_millis(300);
    let dg = Dripgate::start(config).await;
    let mut stream = TcpStream::connect(dg.addr).await.unwrap();
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100\r\n\r\nfirst bytes",
        )
        .await
        .unwrap();
    // Then nothing: the answer comes without the client sending more.
    let answer = read_answer(&mut stream).await.expect("an answer");
    assert_eq!(answer.status, 408, "{}", answer.head);
    let page = metrics(&dg).await;
    assert_eq!(client_errors(&page, "body_timeout"), 1.0);
    assert!(!upstream_failed(&page));
    dg.stop().await;
}

/// An upstream that reads request heads and then never reads a body nor answers: the upload
/// stops moving on the upstream's side, which the response timeout then judges (as nginx's
/// `proxy_send_timeout`), while the client, which is still ready to send, is not blamed.
#[tokio::test]
async fn an_upstream_that_takes_none_of_the_body_gets_a_504() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            // Kept open, never read: the request fills the socket buffers and stops there.
            held.push(tcp);
        }
    });
    let mut config = config_for(upstream);
    config.upstream.response_timeout = Duration::from_millis(300);
    config.upstream.body_inactivity_timeout = Duration::from_secs(60);
    // The client connection outlives the 504 until the upstream connection, blocked on a write
    // the upstream never reads, lets go of the request body; shutdown need not wait for it.
    config.shutdown.drain_timeout = Duration::from_millis(200);
    let dg = Dripgate::start(config).await;
    let stream = TcpStream::connect(dg.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    const SIZE: usize = 64 << 20;
    let writer = tokio::spawn(async move {
        let head =
            format!("POST /upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: {SIZE}\r\n\r\n");
        write.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..SIZE / chunk.len() {
            if write.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 1024];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    drop(read);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    let page = metrics(&dg).await;
    assert_eq!(
        count(
            &page,
            "dripgate_upstream_errors_total{kind=\"timeout\",upstream=\"legacy\"}"
        ),
        1.0
    );
    assert_eq!(client_errors(&page, "body_timeout"), 0.0);
    dg.stop().await;
}

#[tokio::test]
async fn a_malformed_chunked_body_is_a_400_and_no_upstream_error() {
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    let head = "POST /upload HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    let bodies: [&str; 3] = [
        // A chunk size that is no hex number.
        "5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n",
        // Chunk data not followed by CRLF.
        "5\r\nhelloXX5\r\nhello\r\n0\r\n\r\n",
        // A chunk size too large for 64 bits.
        "5\r\nhello\r\n1ffffffffffffffff\r\n",
    ];
    for body in bodies {
        let answer = raw(dg.addr, format!("{head}{body}").as_bytes()).await;
        assert_eq!(answer.status, 400, "{body:?}: {}", answer.head);
    }
    let page = metrics(&dg).await;
    assert_eq!(client_errors(&page, "malformed_body"), 3.0);
    assert!(!upstream_failed(&page), "counted against the upstream");

    // Truncated: the client ends its side mid-chunk, and still reads the answer.
    let mut stream = TcpStream::connect(dg.addr).await.unwrap();
    stream
        .write_all(format!("{head}a\r\nonly").as_bytes())
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let answer = read_answer(&mut stream).await.expect("an answer");
    assert_eq!(answer.status, 400, "{}", answer.head);
    let page = metrics(&dg).await;
    assert_eq!(client_errors(&page, "malformed_body"), 4.0);
    assert!(!upstream_failed(&page));
    dg.stop().await;
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_alone_are_not_forwarded() {
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    let body = "5\r\nhello\r\n0\r\n\r\n";
    for codings in [
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let request = format!(
            "POST /echo HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n{codings}\r\n{body}"
        );
        let answer = raw(dg.addr, request.as_bytes()).await;
        assert_eq!(answer.status, 501, "{codings:?}: {}", answer.head);
    }
    // hyper's server itself answers 400 when chunked is not the last coding.
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\
         Transfer-Encoding: identity\r\n\r\n{body}"
    );
    assert_eq!(raw(dg.addr, request.as_bytes()).await.status, 400);
    assert_eq!(
        app.requests.load(Ordering::SeqCst),
        0,
        "the app saw a request"
    );
    assert_eq!(client_errors(&metrics(&dg).await, "transfer_coding"), 3.0);

    // Chunked alone still goes through.
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n{body}"
    );
    assert_eq!(raw(dg.addr, request.as_bytes()).await.echo()["body_len"], 5);
    dg.stop().await;
}

#[tokio::test]
async fn http11_without_host_or_with_more_than_one_is_refused() {
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    for request in [
        "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: first.example\r\nHost: second.example\r\nConnection: close\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: first.example, second.example\r\nConnection: close\r\n\r\n",
        // A sign-in route is refused before its body is read.
        "POST /login HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=b",
    ] {
        let answer = raw(dg.addr, request.as_bytes()).await;
        assert_eq!(answer.status, 400, "{request:?}: {}", answer.head);
    }
    assert_eq!(
        app.requests.load(Ordering::SeqCst),
        0,
        "the app saw a request"
    );
    assert_eq!(client_errors(&metrics(&dg).await, "bad_host"), 4.0);

    // HTTP/1.0 needs no Host.
    let answer = raw(dg.addr, b"GET /echo HTTP/1.0\r\n\r\n").await;
    assert_eq!(answer.echo()["method"], "GET");
    dg.stop().await;
}

#[tokio::test]
async fn an_absolute_form_targets_authority_wins_over_host() {
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    let request = b"GET http://target.example:8081/echo?x=1 HTTP/1.1\r\nHost: other.example\r\n\
                    Connection: close\r\n\r\n";
    let echo = raw(dg.addr, request).await.echo();
    assert_eq!(seen(&echo, "host"), ["target.example:8081"]);
    assert_eq!(seen(&echo, "x-forwarded-host"), ["target.example:8081"]);
    assert_eq!(echo["uri"], "/echo?x=1");
    dg.stop().await;

    let mut config = config_for(app.addr);
    config.upstream.preserve_host = false;
    let dg = Dripgate::start(config).await;
    let echo = raw(dg.addr, request).await.echo();
    assert_eq!(seen(&echo, "host"), [app.addr.to_string().as_str()]);
    assert_eq!(seen(&echo, "x-forwarded-host"), ["target.example:8081"]);
    assert_eq!(echo["uri"], "/echo?x=1");
    dg.stop().await;
}

/// Headers an untrusted client could use to claim another origin or path.
const SPOOFABLE: [&str; 10] = [
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Forwarded-Server",
    "X-Real-IP",
    "X-Client-IP",
    "True-Client-IP",
    "CF-Connecting-IP",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X_Forwarded_For",
];

/// An echo request carrying every `SPOOFABLE` header.
fn spoofing_request() -> String {
    let mut request = "GET /echo HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n".to_owned();
    for name in SPOOFABLE {
        request.push_str(&format!("{name}: 6.6.6.6\r\n"));
    }
    request.push_str("X-Innocent_Looking: 1\r\nX-Kept: 1\r\n\r\n");
    request
}

#[tokio::test]
async fn spoofable_and_underscored_headers_are_dropped_from_an_untrusted_peer() {
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    let echo = raw(dg.addr, spoofing_request().as_bytes()).await.echo();
    for name in SPOOFABLE {
        let name = name.to_ascii_lowercase();
        assert!(seen(&echo, &name).is_empty(), "{name} reached the app");
    }
    assert!(seen(&echo, "x-innocent_looking").is_empty());
    assert_eq!(seen(&echo, "x-kept"), ["1"]);
    assert_eq!(seen(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    dg.stop().await;
}

#[tokio::test]
async fn spoofable_and_underscored_headers_are_kept_from_a_trusted_proxy() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.forwarding.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let dg = Dripgate::start(config).await;
    let echo = raw(dg.addr, spoofing_request().as_bytes()).await.echo();
    for name in SPOOFABLE {
        let name = name.to_ascii_lowercase();
        assert_eq!(seen(&echo, &name), ["6.6.6.6"], "{name}");
    }
    assert_eq!(seen(&echo, "x-innocent_looking"), ["1"]);
    dg.stop().await;
}
