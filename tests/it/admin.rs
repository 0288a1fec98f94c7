//! Admin endpoints and graceful shutdown, in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

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

// ---- The admin guard: token, origin, host, content type; the audited caller. ----

use crate::migration_common;

use dripgate::config::{FailureSignature, Secret};
use migration_common::World;

const TOKEN: &str = "admin-token-3f9c1e7a5b2d4c6e";

/// A dripgate with a migration engine in `observe` phase (no provider), the admin section
/// changed by `admin`.
async fn with_engine(
    world: &World,
    admin: impl FnOnce(&mut dripgate::config::AdminConfig),
) -> Dripgate {
    let mut config = world.config(None, FailureSignature::default());
    config.migration.phase = dripgate::migrate::Phase::Observe;
    config.migration.canary_percent = 0.0;
    admin(&mut config.admin);
    Dripgate::start(config).await
}

/// POST /phase with `body` and `headers` (JSON content type unless overridden).
async fn post_phase(dg: &Dripgate, headers: &[(&str, &str)], body: &str) -> reqwest::Response {
    let mut req = client().post(dg.admin_url("/phase")).body(body.to_owned());
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn canary(dg: &Dripgate) -> f64 {
    let (_, phase) = get_text(&dg.admin_url("/phase")).await;
    let v: serde_json::Value = serde_json::from_str(&phase).unwrap();
    v["canary_percent"].as_f64().unwrap()
}

async fn rejected(dg: &Dripgate, reason: &str) -> f64 {
    let page = get_text(&dg.admin_url("/metrics")).await.1;
    metric(
        &page,
        &format!("dripgate_admin_requests_rejected_total{{reason=\"{reason}\"}}"),
    )
    .unwrap()
}

#[tokio::test]
async fn a_configured_token_is_required_and_compared_whole() {
    let world = World::new().await;
    let dg = with_engine(&world, |admin| {
        admin.token = Some(Secret::inline(TOKEN));
        admin.token_name = "ops-team".to_owned();
    })
    .await;
    let change = r#"{"canary_percent": 5}"#;

    let resp = post_phase(&dg, &[], change).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .split(' ')
            .next(),
        Some("Bearer")
    );
    // Wrong tokens of the same length (differing in the last byte only), shorter, longer, and
    // the right one under another scheme: all the same 401.
    let same_length = format!("Bearer {}x", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Bearer {TOKEN}0");
    let basic = format!("Basic {TOKEN}");
    for auth in [
        same_length.as_str(),
        "Bearer short",
        longer.as_str(),
        basic.as_str(),
    ] {
        let resp = post_phase(&dg, &[("authorization", auth)], change).await;
        assert_eq!(resp.status(), 401, "{auth}");
        let body = resp.text().await.unwrap();
        assert!(!body.contains(TOKEN) && !body.contains("short"), "{body}");
    }
    assert_eq!(canary(&dg).await, 0.0);
    assert_eq!(rejected(&dg, "missing_token").await, 2.0);
    assert_eq!(rejected(&dg, "wrong_token").await, 3.0);

    let good = format!("Bearer {TOKEN}");
    let resp = post_phase(&dg, &[("authorization", &good)], change).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(canary(&dg).await, 5.0);
    // Reading stays open: GET needs no token.
    assert_eq!(get_text(&dg.admin_url("/status")).await.0, 200);

    // The audit event names the caller (peer, token name), never the token.
    let events = world.expect_audit_events("phase.changed", 1).await;
    let actor = &events[0]["actor"];
    assert_eq!(actor["via"], "admin");
    assert_eq!(actor["token_name"], "ops-team");
    let peer: std::net::SocketAddr = actor["peer"].as_str().unwrap().parse().unwrap();
    assert!(peer.ip().is_loopback());
    assert!(!world.audit().contains(TOKEN));
    assert!(!migration_common::logs().contains(TOKEN));
    assert!(!get_text(&dg.admin_url("/metrics")).await.1.contains(TOKEN));
    dg.stop().await;
}

#[tokio::test]
async fn without_a_token_loopback_changes_are_allowed_and_audited_as_none() {
    let world = World::new().await;
    let dg = with_engine(&world, |_| {}).await;
    let resp = post_phase(&dg, &[], r#"{"canary_percent": 7}"#).await;
    assert_eq!(resp.status(), 200);
    let events = world.expect_audit_events("phase.changed", 1).await;
    assert_eq!(events[0]["actor"]["token_name"], "none");
    assert!(events[0]["actor"]["peer"].is_string());

    // A phase the engine cannot run (no provider) is refused by the check start-up uses.
    let resp = post_phase(&dg, &[], r#"{"phase": "migrate"}"#).await;
    assert_eq!(resp.status(), 409);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("phases migrate and route need a [provider] section"),
        "{text}"
    );
    let (_, phase) = get_text(&dg.admin_url("/phase")).await;
    assert!(phase.contains("\"observe\""), "{phase}");
    dg.stop().await;
}

#[tokio::test]
async fn foreign_origins_hosts_and_bodies_are_refused_before_the_token() {
    let world = World::new().await;
    let dg = with_engine(&world, |admin| {
        admin.token = Some(Secret::inline(TOKEN));
        admin.allowed_hosts = vec!["dripgate-admin.internal".to_owned()];
    })
    .await;
    let good = format!("Bearer {TOKEN}");
    let auth = ("authorization", good.as_str());
    let change = r#"{"canary_percent": 9}"#;
    let port = dg.admin.port();

    // A page elsewhere posting with the browser's credentials-less fetch or a form.
    let resp = post_phase(&dg, &[auth, ("origin", "http://evil.example")], change).await;
    assert_eq!(resp.status(), 403);
    let resp = post_phase(&dg, &[auth, ("origin", "null")], change).await;
    assert_eq!(resp.status(), 403);
    // DNS rebinding: the attacker's name resolved to this listener; the Host is theirs.
    let rebound = format!("evil.example:{port}");
    let resp = post_phase(&dg, &[auth, ("host", &rebound)], change).await;
    assert_eq!(resp.status(), 403);
    // Not JSON: what an HTML form can send without a preflight.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let resp = post_phase(&dg, &[auth, ("content-type", ct)], change).await;
        assert_eq!(resp.status(), 415, "{ct}");
    }
    assert_eq!(canary(&dg).await, 0.0);
    assert_eq!(rejected(&dg, "foreign_origin").await, 2.0);
    assert_eq!(rejected(&dg, "foreign_host").await, 1.0);
    assert_eq!(rejected(&dg, "not_json").await, 3.0);
    assert_eq!(rejected(&dg, "wrong_token").await, 0.0);

    // The listener's own origin, localhost on loopback, and a configured name pass.
    let own_origin = format!("http://127.0.0.1:{port}");
    let resp = post_phase(&dg, &[auth, ("origin", &own_origin)], change).await;
    assert_eq!(resp.status(), 200);
    let localhost = format!("localhost:{port}");
    let resp = post_phase(
        &dg,
        &[
            auth,
            ("host", &localhost),
            ("content-type", "application/json; charset=utf-8"),
        ],
        r#"{"canary_percent": 10}"#,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = post_phase(
        &dg,
        &[
            auth,
            ("host", "dripgate-admin.internal"),
            ("origin", "https://dripgate-admin.internal"),
        ],
        r#"{"canary_percent": 11}"#,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(canary(&dg).await, 11.0);
    dg.stop().await;
}

// ---- Capacity: held-open connections never lock the probes out. ----

#[tokio::test]
async fn probes_answer_while_more_connections_than_the_cap_are_held_open() {
    use tokio::io::AsyncWriteExt;
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    // More than the 64 admin connections served at once: half send nothing, half a partial head.
    let mut held = Vec::new();
    for i in 0..80 {
        let mut tcp = tokio::net::TcpStream::connect(dg.admin).await.unwrap();
        if i % 2 == 1 {
            tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .unwrap();
        }
        held.push(tcp);
    }
    let patient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for path in ["/healthz", "/readyz", "/metrics", "/healthz"] {
        let resp = patient
            .get(dg.admin_url(path))
            .send()
            .await
            .expect("a probe answers while connections are held open");
        assert_eq!(resp.status(), 200, "{path}");
    }
    let page = get_text(&dg.admin_url("/metrics")).await.1;
    let evicted = metric(
        &page,
        "dripgate_admin_connections_evicted_total{state=\"idle\"}",
    );
    assert!(evicted.unwrap_or(0.0) >= 16.0, "{evicted:?}");
    drop(held);
    dg.stop().await;
}
