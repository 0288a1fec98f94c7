//! `route` with the ledger unreachable: a TCP relay in front of PostgreSQL is cut; the cache
//! answers for known users, then `on_ledger_unavailable` denies or falls back to legacy.

use super::*;

/// A TCP relay in front of a database: `cut` drops every relayed connection and closes the
/// listening port, so the database is unreachable as after a network partition.
struct Relay {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let mut stop = cut_rx.clone();
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.wait_for(|c| *c) => return,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                let target = target.clone();
                let mut stop = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = stop.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    fn cut(&self) {
        let _ = self.cut.send(true);
    }
}

/// `url` with its host and port replaced by the relay's.
fn through(relay: &Relay, url: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_host(Some(&relay.addr.ip().to_string())).unwrap();
    u.set_port(Some(relay.addr.port())).unwrap();
    u.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_unreachable_in_route_uses_the_cache_then_denies_or_falls_back_to_legacy() {
    let Some(db) = ledger_common::postgres("migration_edges_ledger_down").await else {
        return;
    };
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let (ann, ann_pw) = ("ann@example.com", canary_password("ledger-down-ann"));
    let (bob, bob_pw) = ("bob@example.com", canary_password("ledger-down-bob"));
    world.add_user(ann, &ann_pw).await;
    world.add_user(bob, &bob_pw).await;
    let direct_url = db.config.url.expose().to_owned();
    let pg = url::Url::parse(&direct_url).unwrap();
    let target = format!(
        "{}:{}",
        pg.host_str().unwrap(),
        pg.port_or_known_default().unwrap_or(5432)
    );

    let start = async |relay: &Relay, policy: LedgerUnavailable| {
        let mut config = world.config(Some(&fake), legacy_signature());
        config.ledger = db.config.clone();
        config.ledger.url = dripgate::config::Secret::inline(through(relay, &direct_url));
        config.ledger.query_timeout = Duration::from_secs(1);
        config.migration.phase = Phase::Route;
        config.migration.route = redirect();
        config.migration.on_ledger_unavailable = policy;
        Dripgate::start(config).await
    };

    // cache_then_deny: ann migrates (and so is in the cache), then the ledger goes away.
    let relay = Relay::start(target.clone()).await;
    let deny = start(&relay, LedgerUnavailable::CacheThenDeny).await;
    sign_in_accepted(&world, &deny.url(""), ann, &ann_pw).await;
    wait_outcome(&deny, "migrated", 1).await;
    relay.cut();

    let routed = sign_in(&deny.url(""), ann, &ann_pw).await;
    assert_eq!(routed.status, 303, "ann is routed from the cache");
    assert_eq!(routed.location.as_deref(), Some(routed_to(ann).as_str()));
    wait_outcome(&deny, "routed", 1).await;
    // By login name too: the legacy store (still up) names her key, found in the cache.
    let routed = sign_in(&deny.url(""), "ann", &ann_pw).await;
    assert_eq!(
        routed.status, 303,
        "ann's login name is routed from the cache"
    );
    // The hint is the email the provider knows her by, not the login name typed.
    assert_eq!(routed.location.as_deref(), Some(routed_to(ann).as_str()));
    wait_outcome(&deny, "routed", 2).await;

    let legacy_before = world.app.requests.load(Ordering::SeqCst);
    for typed in [bob, "bob"] {
        let denied = sign_in(&deny.url(""), typed, &bob_pw).await;
        assert_eq!(
            denied.status, 503,
            "{typed}, unknown to the cache, is refused"
        );
        assert!(denied.set_cookie.is_empty());
    }
    wait_outcome(&deny, "denied", 2).await;
    assert_eq!(
        world.app.requests.load(Ordering::SeqCst),
        legacy_before,
        "a denied sign-in never reaches legacy"
    );
    assert_eq!(outcome(&deny, "migrated").await, 1);

    // cache_then_legacy (the default): ann is read once (and cached) while the ledger is up;
    // with the ledger gone she is still routed, and bob signs in at legacy as usual.
    let relay2 = Relay::start(target).await;
    let legacy = start(&relay2, LedgerUnavailable::default()).await;
    let routed = sign_in(&legacy.url(""), ann, &ann_pw).await;
    assert_eq!(routed.status, 303, "ann is routed while the ledger is up");
    relay2.cut();
    let routed = sign_in(&legacy.url(""), ann, &ann_pw).await;
    assert_eq!(routed.status, 303, "ann is routed from the cache");
    wait_outcome(&legacy, "routed", 2).await;
    sign_in_accepted(&world, &legacy.url(""), bob, &bob_pw).await;
    // bob's migration cannot claim him in the unreachable ledger: recorded, left to legacy.
    wait_outcome(&legacy, "fallback", 1).await;
    assert_eq!(outcome(&legacy, "denied").await, 0);
    let (_, page) = common::get_text(&legacy.admin_url("/metrics")).await;
    assert!(
        series(&page, "dripgate_fallbacks_total{stage=\"ledger\"}") >= 1,
        "the fallback was the ledger's"
    );

    assert_eq!(fake.users_with_email(bob), 0, "bob was never provisioned");
    let ledger = open_ledger(&db.config).await;
    assert!(ledger.get(bob).await.unwrap().is_none());
    assert_eq!(
        ledger.get(ann).await.unwrap().unwrap().state,
        State::Migrated
    );
    assert_ledger_invariants(&ledger, &fake, &[(ann, &ann_pw), (bob, &bob_pw)]).await;
    ledger.close().await;
    for pw in [&ann_pw, &bob_pw] {
        world
            .assert_secret_nowhere(&[&deny, &legacy], pw, &[])
            .await;
    }
    deny.stop().await;
    legacy.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_unreachable_leaves_the_shared_phase_as_it_is_and_refuses_changes() {
    let Some(db) = ledger_common::postgres("migration_edges_settings_down").await else {
        return;
    };
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let direct_url = db.config.url.expose().to_owned();
    let pg = url::Url::parse(&direct_url).unwrap();
    let target = format!(
        "{}:{}",
        pg.host_str().unwrap(),
        pg.port_or_known_default().unwrap_or(5432)
    );
    let relay = Relay::start(target).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.ledger = db.config.clone();
    config.ledger.url = dripgate::config::Secret::inline(through(&relay, &direct_url));
    config.ledger.query_timeout = Duration::from_secs(1);
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    config.migration.settings_poll_interval = Duration::from_millis(100);
    let dg = Dripgate::start(config).await;
    relay.cut();

    // Polls fail, are counted, and the replica keeps serving with the phase it had.
    let errors = async || {
        let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
        common::metric(&page, "dripgate_settings_polls_total{result=\"error\"}").unwrap_or(0.0)
    };
    for _ in 0..100 {
        if errors().await >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(errors().await >= 2.0, "failed polls are counted");
    let (_, phase) = common::get_text(&dg.admin_url("/phase")).await;
    assert!(phase.contains("\"route\""), "{phase}");
    // A change the ledger cannot record is refused, and nothing changes.
    let resp = raw_client()
        .post(dg.admin_url("/phase"))
        .header("content-type", "application/json")
        .body(r#"{"phase": "migrate"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.text().await.unwrap().contains("nothing changed"));
    let (_, phase) = common::get_text(&dg.admin_url("/phase")).await;
    assert!(phase.contains("\"route\""), "{phase}");
    let (code, _) = common::get_text(&dg.url("/download?bytes=10")).await;
    assert_eq!(code, 200, "the replica still serves");
    dg.stop().await;
    db.cleanup().await;
}
