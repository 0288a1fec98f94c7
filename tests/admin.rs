//! Admin endpoints and graceful shutdown, in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::legacy_app::LegacyApp;
use common::{Dripgate, client, config_for, get_text, metric};

#[tokio::test]
async fn health_readiness_status_and_metrics_after_traffic() {
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    assert_eq!(
        get_text(&dg.admin_url("/healthz")).await,
        (200, "ok\n".to_owned())
    );
    assert_eq!(get_text(&dg.admin_url("/livez")).await.0, 200);
    assert_eq!(
        get_text(&dg.admin_url("/readyz")).await,
        (200, "ready\n".to_owned())
    );
    assert_eq!(get_text(&dg.admin_url("/nope")).await.0, 404);

    for _ in 0..3 {
        assert_eq!(get_text(&dg.url("/echo")).await.0, 200);
    }
    let _ = client()
        .post(dg.url("/login"))
        .body("a=b")
        .send()
        .await
        .unwrap();
    let (status, page) = get_text(&dg.admin_url("/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &page,
            "dripgate_http_requests_total{route=\"proxy\",status=\"200\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &page,
            "dripgate_http_requests_total{route=\"signin\",status=\"200\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &page,
            "dripgate_upstream_requests_total{status=\"200\",upstream=\"legacy\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        metric(
            &page,
            "dripgate_http_request_duration_seconds_count{route=\"proxy\"}"
        ),
        Some(3.0)
    );
    assert_eq!(metric(&page, "dripgate_http_requests_in_flight"), Some(0.0));
    assert_eq!(metric(&page, "dripgate_ready"), Some(1.0));
    assert!(page.contains("dripgate_build_info{version=\""));
    assert!(page.contains("# TYPE dripgate_upstream_request_duration_seconds histogram"));

    // The upstream probe reports the legacy app as a dependency (first check runs at start).
    let mut seen = false;
    for _ in 0..50 {
        let (_, status) = get_text(&dg.admin_url("/status")).await;
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        if v["dependencies"]["legacy_upstream"]["up"] == true {
            assert_eq!(v["ready"], true);
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "legacy_upstream dependency never reported up");
    let page = get_text(&dg.admin_url("/metrics")).await.1;
    assert_eq!(
        metric(
            &page,
            "dripgate_dependency_up{dependency=\"legacy_upstream\"}"
        ),
        Some(1.0)
    );
    dg.stop().await;
}

#[tokio::test]
async fn readiness_stays_up_when_the_upstream_is_down() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dg = Dripgate::start(config_for(dead)).await;
    let mut reported = false;
    for _ in 0..50 {
        let page = get_text(&dg.admin_url("/metrics")).await.1;
        if metric(
            &page,
            "dripgate_dependency_up{dependency=\"legacy_upstream\"}",
        ) == Some(0.0)
        {
            reported = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reported, "down upstream not reported");
    assert_eq!(get_text(&dg.admin_url("/readyz")).await.0, 200);
    dg.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.shutdown.delay = Duration::from_millis(400);
    config.shutdown.drain_timeout = Duration::from_secs(10);
    // In flight on every worker's thread: twelve connections over three workers' sockets.
    const SLOW: usize = 12;
    config.server.worker_threads = 3;
    let mut dg = Dripgate::start(config).await;

    let slow: Vec<_> = (0..SLOW)
        .map(|_| tokio::spawn(client().get(dg.url("/slow?ms=1200")).send()))
        .collect();
    for _ in 0..200 {
        if app.requests.load(Ordering::SeqCst) == SLOW {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dg.begin_shutdown();
    // During the delay: not ready, but still serving new requests.
    let mut saw_not_ready = false;
    for _ in 0..40 {
        if get_text(&dg.admin_url("/readyz")).await.0 == 503 {
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        saw_not_ready,
        "/readyz did not turn 503 after shutdown began"
    );
    assert_eq!(get_text(&dg.url("/echo")).await.0, 200);

    for slow in slow {
        let resp = slow.await.unwrap().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "slow done");
    }
    let addr = dg.addr;
    tokio::time::timeout(Duration::from_secs(20), &mut dg.task)
        .await
        .expect("serve returns after draining")
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn drain_deadline_closes_stuck_connections() {
    let app = LegacyApp::start().await;
    let mut config = config_for(app.addr);
    config.shutdown.drain_timeout = Duration::from_millis(300);
    let mut dg = Dripgate::start(config).await;
    let stuck = tokio::spawn(client().get(dg.url("/slow?ms=20000")).send());
    for _ in 0..200 {
        if app.requests.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dg.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(10), &mut dg.task)
        .await
        .expect("serve returns at the drain deadline")
        .unwrap();
    assert!(stuck.await.unwrap().is_err(), "stuck request should be cut");
}
