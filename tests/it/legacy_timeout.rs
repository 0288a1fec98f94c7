//! A database that accepts connections and never answers gives a timeout error (not a hang),
//! and a closed port gives an error, for PostgreSQL and MySQL clients. Loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use dripgate::legacy::{ErrorKind, LegacyConfig, LegacyStore, Preset};
use tokio::net::TcpListener;

/// Accepts up to 16 connections and holds them open without sending a byte.
async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..16 {
            match listener.accept().await {
                Ok((socket, _)) => held.push(socket),
                Err(_) => break,
            }
        }
        std::future::pending::<()>().await;
    });
    (addr, task)
}

fn config(url: String) -> LegacyConfig {
    let mut c = LegacyConfig::sql(Preset::Wordpress, url);
    c.connect_timeout = Duration::from_millis(300);
    c.query_timeout = Duration::from_millis(600);
    c
}

#[tokio::test]
async fn silent_database_times_out() {
    let (addr, server) = silent_server().await;
    for url in [
        format!("postgres://postgres@{addr}/test"),
        format!("mysql://root@{addr}/test"),
    ] {
        let store = LegacyStore::open(&config(url.clone()), &prometheus::Registry::new()).unwrap();
        // The test's own bound is far above the configured one: it only guards against a hang.
        let result = tokio::time::timeout(Duration::from_secs(30), store.lookup("alice"))
            .await
            .expect("the lookup must end by itself");
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{url}: {err}");
        assert!(err.is_timeout());
        let count = tokio::time::timeout(Duration::from_secs(30), store.count())
            .await
            .expect("the count must end by itself");
        assert_eq!(count.unwrap_err().kind(), ErrorKind::Timeout);
    }
    server.abort();
}

#[tokio::test]
async fn closed_port_is_an_error_within_the_bound() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let store = LegacyStore::open(
        &config(format!("postgres://postgres@{addr}/test")),
        &prometheus::Registry::new(),
    )
    .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), store.lookup("alice"))
        .await
        .expect("the lookup must end by itself");
    // sqlx retries a refused connection until the connect bound, then reports a timeout.
    let err = result.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Timeout | ErrorKind::Unavailable),
        "{err}"
    );
}

#[tokio::test]
async fn failed_refresh_keeps_the_gauge_and_counts_the_error() {
    let (addr, server) = silent_server().await;
    let registry = prometheus::Registry::new();
    let store = LegacyStore::open(&config(format!("mysql://root@{addr}/test")), &registry).unwrap();
    assert!(store.refresh_count().await.is_err());
    let text = dripgate::metrics::render(&registry).unwrap();
    assert!(text.contains("dripgate_legacy_users 0"), "{text}");
    assert!(
        text.contains("dripgate_legacy_count_refreshes_total{result=\"timeout\"} 1"),
        "{text}"
    );
    server.abort();
}
