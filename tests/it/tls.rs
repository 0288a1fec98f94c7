//! TLS end to end with a CA made at test time: HTTP/1.1 and HTTP/2 via ALPN, TLS 1.2 and 1.3,
//! and a certificate reload while a connection stays open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::Dripgate;
use common::config_for;
use common::legacy_app::LegacyApp;
use common::tls::TestCa;
use dripgate::config::TlsConfig;

fn tls_client(ca: &TestCa, http2: bool) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap();
    let builder = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(10));
    let builder = if http2 { builder } else { builder.http1_only() };
    builder.build().unwrap()
}

/// A TLS connection to `addr` that trusts only the test CA.
async fn tls_connect(
    ca: &TestCa,
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// The common name ("first" or "second") of the certificate a new connection is served.
async fn served_cn(ca: &TestCa, addr: std::net::SocketAddr) -> String {
    let tls = tls_connect(ca, addr).await;
    let (_, conn) = tls.get_ref();
    let leaf = conn.peer_certificates().unwrap()[0].as_ref().to_vec();
    for cn in ["first", "second"] {
        if leaf.windows(cn.len()).any(|w| w == cn.as_bytes()) {
            return cn.to_owned();
        }
    }
    "unknown".to_owned()
}

/// GET /echo on an existing HTTP/1.1 connection.
async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
) -> u16 {
    let req = http::Request::get("/echo")
        .header("host", "localhost")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    status
}

async fn start_tls(dir: &std::path::Path, ca: &TestCa) -> (LegacyApp, Dripgate) {
    let (cert_file, key_file) = ca.issue(dir, "first");
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.server.tls = Some(TlsConfig {
        cert_file,
        key_file,
        reload_interval: Duration::from_millis(100),
    });
    let dg = Dripgate::start(config).await;
    (app, dg)
}

#[tokio::test]
async fn https_http1_and_http2_reach_the_upstream_with_proto_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (_app, dg) = start_tls(dir.path(), &ca).await;
    let url = format!("https://localhost:{}/echo", dg.addr.port());
    for (http2, version) in [
        (false, http::Version::HTTP_11),
        (true, http::Version::HTTP_2),
    ] {
        let client = tls_client(&ca, http2);
        let resp = client
            .get(&url)
            .header("x-forwarded-proto", "http")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), version);
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["headers"]["x-forwarded-proto"][0], "https");
        // HTTP/2 to the client, HTTP/1.1 to the legacy app, Host carried over from :authority.
        assert_eq!(v["version"], "HTTP/1.1");
        assert_eq!(
            v["headers"]["host"][0],
            format!("localhost:{}", dg.addr.port())
        );
    }
    dg.stop().await;
}

#[tokio::test]
async fn plain_http_on_a_tls_port_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (_app, dg) = start_tls(dir.path(), &ca).await;
    let err = common::client().get(dg.url("/echo")).send().await;
    assert!(err.is_err() || !err.unwrap().status().is_success());
    // And the server still serves TLS afterwards.
    let resp = tls_client(&ca, false)
        .get(format!("https://localhost:{}/echo", dg.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    dg.stop().await;
}

#[tokio::test]
async fn certificate_reloads_without_dropping_an_open_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (_app, dg) = start_tls(dir.path(), &ca).await;
    // One connection, opened before the reload and kept open across it.
    let stream = tls_connect(&ca, dg.addr).await;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    assert_eq!(get_on(&mut sender).await, 200);
    assert_eq!(served_cn(&ca, dg.addr).await, "first");

    ca.issue(dir.path(), "second");
    // Bounded wait for the file watcher to pick the new certificate up.
    let mut reloaded = false;
    for _ in 0..100 {
        if served_cn(&ca, dg.addr).await == "second" {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "new certificate was not served");
    // The connection opened before the reload still serves requests.
    assert_eq!(get_on(&mut sender).await, 200);
    assert!(!conn.is_finished());
    let page = common::get_text(&dg.admin_url("/metrics")).await.1;
    assert!(
        common::metric(&page, "dripgate_tls_reloads_total{result=\"success\"}").unwrap() >= 1.0
    );
    dg.stop().await;
}

/// Replaces `dir`'s key.pem with a fresh key that matches no certificate (atomically, as a
/// certificate manager writes files).
fn write_foreign_key(dir: &std::path::Path) -> std::path::PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let path = dir.join("key.pem");
    std::fs::write(dir.join("key.pem.tmp"), key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("key.pem.tmp"), &path).unwrap();
    path
}

#[tokio::test]
async fn a_key_that_does_not_match_the_certificate_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert_file, _) = ca.issue(dir.path(), "first");
    let key_file = write_foreign_key(dir.path());
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.server.tls = Some(TlsConfig {
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
        reload_interval: Duration::from_millis(100),
    });
    let err = dripgate::BoundServer::bind(config)
        .await
        .err()
        .expect("a mismatched pair is refused")
        .to_string();
    assert!(err.contains("do not match"), "{err}");
    assert!(err.contains(&cert_file.display().to_string()), "{err}");
    assert!(err.contains(&key_file.display().to_string()), "{err}");
}

#[tokio::test]
async fn a_mismatched_reload_keeps_the_old_pair_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (_app, dg) = start_tls(dir.path(), &ca).await;
    assert_eq!(served_cn(&ca, dg.addr).await, "first");

    // A new certificate lands but its key does not (or is the wrong one).
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "second");
    let other_key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&other_key).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let mtime = |p: &std::path::Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let loaded = mtime(&cert_path);
    // The watcher notices a change by modification time, which the file system keeps at a
    // coarse tick: write again until the new file's time differs (bounded).
    for _ in 0..100 {
        std::fs::write(dir.path().join("cert.pem.tmp"), cert.pem()).unwrap();
        std::fs::rename(dir.path().join("cert.pem.tmp"), &cert_path).unwrap();
        if mtime(&cert_path) != loaded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_ne!(
        mtime(&cert_path),
        loaded,
        "the new certificate's file time never changed"
    );

    // Bounded wait for the watcher to try the new pair and count the failure.
    let mut failed = 0.0;
    for _ in 0..400 {
        let page = common::get_text(&dg.admin_url("/metrics")).await.1;
        failed =
            common::metric(&page, "dripgate_tls_reloads_total{result=\"failure\"}").unwrap_or(0.0);
        if failed >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failed >= 1.0, "the mismatched reload was not counted");
    // The old pair still serves new handshakes and requests.
    assert_eq!(served_cn(&ca, dg.addr).await, "first");
    let resp = tls_client(&ca, false)
        .get(format!("https://localhost:{}/echo", dg.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    dg.stop().await;
}
