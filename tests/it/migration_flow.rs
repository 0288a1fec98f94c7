//! End to end: the drip-feed migration through a running dripgate, with a real legacy app, a
//! SQLite legacy store, a provider fake and a SQLite ledger, all on 127.0.0.1:0. Every test ends
//! with the invariants (one provider user per legacy user, `migrated` only with a password the
//! provider accepts, legacy's answer unchanged outside `route`, the password nowhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::migration_common;

use common::Dripgate;
use common::legacy_app::LegacyApp;
use dripgate::config::FailureSignature;
use dripgate::ledger::State;
use dripgate::migrate::Phase;
use dripgate::migrate::phase::{OnExistingUser, RouteTarget};
use dripgate::testkit::Fault;
use migration_common::*;

/// `dripgate_migration_progress` on a running dripgate.
async fn progress(dg: &Dripgate) -> f64 {
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    common::metric(&page, "dripgate_migration_progress").unwrap()
}

async fn first_signin_migrates_then_redirects(fake: Fake, test: &str) {
    let world = World::new().await;
    let email = "Ann+Lee@Example.com";
    let password = canary_password(test);
    world.add_user(email, &password).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    config.ledger.counts_interval = std::time::Duration::from_millis(100);
    let dg = Dripgate::start(config).await;
    assert_eq!(progress(&dg).await, 0.0);

    let first = sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    assert_eq!(first.status, 302);
    wait_outcome(&dg, "migrated", 1).await;
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    assert_eq!(
        common::metric(&page, "dripgate_migrations_total{result=\"migrated\"}"),
        Some(1.0)
    );
    // One legacy user, one migrated: the progress gauge reaches 1 once the ledger is recounted.
    for _ in 0..100 {
        if progress(&dg).await == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(progress(&dg).await, 1.0);
    assert_eq!(fake.users_with_email(email), 1);
    assert!(fake.verify(email, &password));
    let ledger = world.ledger().await;
    let row = ledger.get("ann+lee@example.com").await.unwrap().unwrap();
    assert_eq!(row.state, State::Migrated);
    ledger.close().await;
    world.expect_audit_events("user.migrated", 1).await;

    let second = sign_in(&dg.url(""), email, &password).await;
    assert_eq!(second.status, 303);
    assert_eq!(
        second.location.as_deref(),
        Some("https://auth.example.test/login?login_hint=ann%2Blee%40example.com"),
        "the hint is the user's email as the legacy rule normalizes it"
    );
    assert!(
        second.set_cookie.is_empty(),
        "a routed sign-in gets no legacy session"
    );
    wait_outcome(&dg, "routed", 1).await;
    world
        .expect_audit_events("user.routed_to_provider", 1)
        .await;
    assert_eq!(fake.calls("createUser"), 1);

    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn kinde_first_signin_migrates_second_is_redirected_with_login_hint() {
    first_signin_migrates_then_redirects(Fake::kinde().await, "kinde-redirect").await;
}

#[tokio::test]
async fn keycloak_first_signin_migrates_second_is_redirected_with_login_hint() {
    first_signin_migrates_then_redirects(Fake::keycloak().await, "flow-keycloak").await;
}

#[tokio::test]
async fn authgear_first_signin_migrates_second_is_redirected_with_login_hint() {
    first_signin_migrates_then_redirects(Fake::authgear().await, "authgear-redirect").await;
}

#[tokio::test]
async fn http_first_signin_migrates_second_is_redirected_with_login_hint() {
    first_signin_migrates_then_redirects(Fake::http().await, "http-redirect").await;
}

#[tokio::test]
async fn forward_mode_sends_a_migrated_users_signin_to_the_second_upstream() {
    let world = World::new().await;
    let fake = Fake::authgear().await;
    let new_app = LegacyApp::start().await;
    let email = "bo@example.org";
    let password = canary_password("forward");
    world.add_user(email, &password).await;
    new_app.set_user(email, &password);
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.phase = Phase::Route;
    config.migration.route = Some(RouteTarget::Forward {
        upstream_url: format!("http://{}", new_app.addr),
    });
    let dg = Dripgate::start(config).await;

    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "migrated", 1).await;
    let legacy_before = world.app.requests.load(std::sync::atomic::Ordering::SeqCst);
    let second = sign_in(&dg.url(""), email, &password).await;
    assert_eq!(second.status, 302);
    assert_eq!(second.location.as_deref(), Some("/home"));
    assert_eq!(
        new_app.requests.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the second sign-in reached the new upstream"
    );
    assert_eq!(
        world.app.requests.load(std::sync::atomic::Ordering::SeqCst),
        legacy_before,
        "the second sign-in did not reach legacy"
    );
    wait_outcome(&dg, "routed", 1).await;

    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_never_provision() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "cy@example.com";
    let password = canary_password("wrong");
    let wrong = canary_password("wrong-guess");
    world.add_user(email, &password).await;

    // Without a failure signature every sign-in is verified: the hash check is the judge.
    let dg = Dripgate::start(world.config(Some(&fake), FailureSignature::default())).await;
    let seen = sign_in_unchanged(&world, &dg.url(""), email, &wrong).await;
    assert_eq!(seen.status, 200);
    wait_outcome(&dg, "wrong_password", 1).await;
    sign_in_unchanged(&world, &dg.url(""), "nobody@example.com", &wrong).await;
    wait_outcome(&dg, "unknown_user", 1).await;
    assert_eq!(fake.writes(), 0);
    assert_eq!(fake.user_count(), 0);
    dg.stop().await;

    // With the legacy app's failure signature nothing legacy refused is even verified.
    let dg = Dripgate::start(world.config(Some(&fake), legacy_signature())).await;
    sign_in_unchanged(&world, &dg.url(""), email, &wrong).await;
    sign_in_unchanged(&world, &dg.url(""), "nobody@example.com", &wrong).await;
    wait_outcome(&dg, "legacy_rejected", 2).await;
    assert_eq!(outcome(&dg, "wrong_password").await, 0);
    assert_eq!(outcome(&dg, "unknown_user").await, 0);
    assert_eq!(fake.writes(), 0);
    assert_eq!(fake.user_count(), 0);
    let ledger = world.ledger().await;
    assert!(ledger.get(email).await.unwrap().is_none());
    ledger.close().await;

    world.assert_clean(&fake, &dg, email, &password).await;
    world.assert_secret_nowhere(&[&dg], &wrong, &[]).await;
    dg.stop().await;
}

#[tokio::test]
async fn provider_down_keeps_the_signin_and_a_later_signin_migrates() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "di@example.com";
    let password = canary_password("down");
    world.add_user(email, &password).await;
    // A create that fails with 500 is not retried (it may have been processed).
    fake.fail_next("createUser", 1, Fault::Status(500));
    let dg = Dripgate::start(world.config(Some(&fake), legacy_signature())).await;

    let seen = sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    assert_eq!(seen.status, 302);
    wait_outcome(&dg, "fallback", 1).await;
    assert_eq!(outcome(&dg, "migrated").await, 0);
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    for (series, count) in [
        ("dripgate_migrations_total{result=\"provider_failed\"}", 1.0),
        ("dripgate_fallbacks_total{stage=\"provider\"}", 1.0),
    ] {
        assert_eq!(common::metric(&page, series), Some(count), "{series}");
    }
    world.expect_audit_events("user.migration_failed", 1).await;
    let ledger = world.ledger().await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_ne!(row.state, State::Migrated);
    assert!(row.last_error.is_some());

    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "migrated", 1).await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(row.state, State::Migrated);
    ledger.close().await;
    assert_eq!(fake.users_with_email(email), 1);

    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn provider_at_a_dead_port_falls_back_to_plain_legacy() {
    let world = World::new().await;
    let fake = Fake::authgear().await;
    let email = "ed@example.com";
    let password = canary_password("dead-port");
    world.add_user(email, &password).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut config = world.config(Some(&fake), legacy_signature());
    if let Some(a) = config.provider.as_mut().and_then(|p| p.authgear.as_mut()) {
        a.base_url = dead_url;
    }
    let dg = Dripgate::start(config).await;
    let seen = sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    assert_eq!(seen.status, 302);
    wait_outcome(&dg, "fallback", 1).await;
    assert_eq!(fake.user_count(), 0);
    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn legacy_password_change_after_migration_is_resynced() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "fay@example.com";
    let old = canary_password("resync-old");
    let new = canary_password("resync-new");
    world.add_user(email, &old).await;
    let dg = Dripgate::start(world.config(Some(&fake), legacy_signature())).await;

    sign_in_unchanged(&world, &dg.url(""), email, &old).await;
    wait_outcome(&dg, "migrated", 1).await;
    assert!(fake.verify(email, &old));

    world.change_password(email, &new).await;
    // The old password no longer works at legacy: nothing is verified or set.
    let refused = sign_in_unchanged(&world, &dg.url(""), email, &old).await;
    assert_eq!(refused.status, 200);
    wait_outcome(&dg, "legacy_rejected", 1).await;

    let seen = sign_in_unchanged(&world, &dg.url(""), email, &new).await;
    assert_eq!(seen.status, 302);
    wait_outcome(&dg, "resynced", 1).await;
    assert!(fake.verify(email, &new));
    assert!(!fake.verify(email, &old));
    assert_eq!(fake.calls("createUser"), 1);
    world.expect_audit_events("user.password_resynced", 1).await;

    // Signing in again with the same new password changes nothing.
    sign_in_unchanged(&world, &dg.url(""), email, &new).await;
    wait_outcome(&dg, "already_migrated", 1).await;

    world.assert_invariants(&fake, &[(email, &new)]).await;
    world.assert_secret_nowhere(&[&dg], &old, &[]).await;
    world.assert_secret_nowhere(&[&dg], &new, &[]).await;
    dg.stop().await;
}

#[tokio::test]
async fn observe_counts_without_provider_writes_and_phase_switches_at_run_time() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "gus@example.com";
    let password = canary_password("observe");
    world.add_user(email, &password).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.phase = Phase::Observe;
    let dg = Dripgate::start(config).await;

    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "would_migrate", 1).await;
    assert_eq!(fake.writes(), 0);
    assert_eq!(fake.calls("getUsers"), 0);
    assert_eq!(fake.user_count(), 0);

    let resp = raw_client()
        .post(dg.admin_url("/phase"))
        .header("content-type", "application/json")
        .body(r#"{"phase": "migrate"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, phase) = common::get_text(&dg.admin_url("/phase")).await;
    assert!(phase.contains("\"migrate\""), "{phase}");
    let changes = world.expect_audit_events("phase.changed", 1).await;
    assert_eq!(changes[0]["phase"], "migrate");
    let bad = raw_client()
        .post(dg.admin_url("/phase"))
        .header("content-type", "application/json")
        .body(r#"{"canary_percent": 101}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "migrated", 1).await;
    assert!(fake.verify(email, &password));
    let (_, status) = common::get_text(&dg.admin_url("/status")).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["migration"]["settings"]["phase"], "migrate");
    assert_eq!(status["migration"]["ledger_users"]["migrated"], 1);

    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn existing_provider_user_is_skipped_as_conflict_or_adopted() {
    for (mode, expected) in EXISTING_USER_POLICIES {
        let fake = Fake::kinde().await;
        let email = "hal@example.com";
        let ExistingUserSignIn {
            world,
            dg,
            password,
            row,
            ..
        } = sign_in_over_existing_user(&fake, email, (mode, expected), |f| {
            if let Fake::Kinde(k) = f {
                k.insert_user(email);
            }
        })
        .await;
        assert_eq!(fake.calls("createUser"), 0);
        assert_eq!(fake.users_with_email(email), 1);
        match mode {
            OnExistingUser::Skip => {
                assert_eq!(row.state, State::Conflict);
                assert!(
                    !fake.verify(email, &password),
                    "a skipped user is left alone"
                );
                world.expect_audit_events("user.conflict", 1).await;
                // Still skipped on the next sign-in.
                sign_in_unchanged(&world, &dg.url(""), email, &password).await;
                wait_outcome(&dg, "conflict", 2).await;
                assert!(!fake.verify(email, &password));
            }
            OnExistingUser::Adopt => {
                assert_eq!(row.state, State::Migrated);
                assert!(fake.verify(email, &password));
                world.expect_audit_events("user.adopted_existing", 1).await;
            }
        }
        world.assert_clean(&fake, &dg, email, &password).await;
        dg.stop().await;
    }
}

#[tokio::test]
async fn password_rejected_by_provider_policy_keeps_the_user_at_legacy() {
    let world = World::new().await;
    let fake = Fake::authgear_min_length(64).await;
    let email = "ivy@example.com";
    let password = canary_password("policy");
    world.add_user(email, &password).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    let dg = Dripgate::start(config).await;

    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "blocked_by_policy", 1).await;
    world
        .expect_audit_events("user.password_blocked_by_policy", 1)
        .await;
    let ledger = world.ledger().await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(row.state, State::BlockedPolicy);

    // In `route`, the user keeps signing in at legacy, and the password is not tried again.
    let creates = fake.calls("createUser");
    let second = sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    assert_eq!(second.status, 302);
    wait_outcome(&dg, "blocked_by_policy", 2).await;
    assert_eq!(fake.calls("createUser"), creates);
    assert_eq!(outcome(&dg, "routed").await, 0);
    assert_eq!(
        ledger.get(email).await.unwrap().unwrap().state,
        State::BlockedPolicy
    );
    ledger.close().await;

    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn canary_zero_routes_nobody() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "jo@example.com";
    let password = canary_password("canary0");
    world.add_user(email, &password).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.phase = Phase::Route;
    config.migration.canary_percent = 0.0;
    config.migration.route = redirect();
    let dg = Dripgate::start(config).await;

    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "migrated", 1).await;
    let second = sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    assert_eq!(second.status, 302);
    wait_outcome(&dg, "already_migrated", 1).await;
    assert_eq!(outcome(&dg, "routed").await, 0);

    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn json_api_signin_with_nested_fields_migrates_and_is_routed() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "jo@example.com";
    // Characters JSON escapes: the password is taken as the decoded string's bytes.
    let password = format!("{}\"\\ é", canary_password("json"));
    world.add_user(email, &password).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.signin.routes[0] = dripgate::config::SigninRoute {
        method: "POST".into(),
        path: "/api/signin".into(),
        body: dripgate::signin::extract::BodyKind::Json,
        identifier_field: "/credentials/email".into(),
        password_field: "/credentials/password".into(),
        legacy_failure: legacy_signature(),
        legacy_user: None,
        case_insensitive_path: false,
    };
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    let dg = Dripgate::start(config).await;
    let body =
        serde_json::json!({"credentials": {"email": email, "password": password}}).to_string();
    let post = |base: String| {
        let body = body.clone();
        async move {
            raw_client()
                .post(format!("{base}/api/signin?next=%2Fhome"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };

    let direct = post(world.legacy_url()).await;
    let first = post(dg.url("")).await;
    assert_eq!(first.status(), direct.status());
    assert_eq!(first.status(), 302, "legacy accepted the JSON sign-in");
    wait_outcome(&dg, "migrated", 1).await;
    assert!(
        fake.verify(email, &password),
        "the provider accepts the same password"
    );

    let second = post(dg.url("")).await;
    assert_eq!(second.status(), 303);
    assert_eq!(
        second.headers()["location"],
        "https://auth.example.test/login?login_hint=jo%40example.com"
    );

    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}
