//! The migration end to end against the Cognito fake (signature and model checked on every
//! request): first sign-in migrates and the next is routed, concurrent sign-ins make one user,
//! a crash between `AdminCreateUser` and `AdminSetUserPassword` is finished after a restart
//! (ledger `created`), throttling is honoured, the pool's policy blocks a password, an existing
//! user is adopted or left as a conflict, `legacy_hash` falls back to the password (counted).

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dripgate::ledger::State;
use dripgate::migrate::Phase;
use dripgate::migrate::phase::OnExistingUser;
use dripgate::provider::cognito::CognitoPasswordTransfer;
use dripgate::testkit::Fault;
use dripgate::testkit::cognito::{FakeCognitoOptions, FakePasswordPolicy};

use crate::common::{self, Dripgate};
use crate::migration_common::*;
use crate::provider_common::cognito::fake_with;

fn cognito(fake: &Fake) -> &dripgate::testkit::cognito::FakeCognito {
    match fake {
        Fake::Cognito(f) => f,
        _ => unreachable!("a Cognito test"),
    }
}

#[tokio::test]
async fn first_signin_migrates_and_the_next_is_routed() {
    let world = World::new().await;
    let fake = Fake::cognito().await;
    let email = "Ann+Lee@Example.com";
    let password = canary_password("cognito-redirect");
    world.add_user(email, &password).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    let dg = Dripgate::start(config).await;

    let first = sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    assert_eq!(first.status, 302);
    wait_outcome(&dg, "migrated", 1).await;
    let user = cognito(&fake).user_by_email(email).unwrap();
    assert_eq!(user.status, "CONFIRMED");
    assert_eq!(user.email(), Some("ann+lee@example.com"));
    assert!(user.attributes.contains_key("custom:legacy_id"));
    assert!(fake.verify(email, &password));
    assert_eq!(fake.calls("AdminCreateUser"), 1);
    assert_eq!(fake.calls("AdminSetUserPassword"), 1);
    let ledger = world.ledger().await;
    let row = ledger.get("ann+lee@example.com").await.unwrap().unwrap();
    assert_eq!(row.state, State::Migrated);
    assert_eq!(
        row.provider_user_id.as_deref(),
        Some(user.username.as_str())
    );
    ledger.close().await;

    let second = sign_in(&dg.url(""), email, &password).await;
    assert_eq!(second.status, 303);
    assert_eq!(
        second.location.as_deref(),
        Some("https://auth.example.test/login?login_hint=ann%2Blee%40example.com")
    );
    wait_outcome(&dg, "routed", 1).await;
    assert_eq!(fake.calls("AdminCreateUser"), 1);
    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_signins_make_one_cognito_user() {
    let world = World::new().await;
    let fake = Fake::cognito().await;
    let email = "cy@example.com";
    let password = canary_password("cognito-race");
    world.add_user(email, &password).await;
    // Slow creates widen the window in which the other sign-ins arrive.
    fake.fail_next(
        "AdminCreateUser",
        1,
        Fault::Delay(Duration::from_millis(300)),
    );
    let dg = Dripgate::start(world.config(Some(&fake), legacy_signature())).await;
    let url = dg.url("");
    let signins: Vec<_> = (0..8)
        .map(|_| {
            let (url, password) = (url.clone(), password.clone());
            tokio::spawn(async move { sign_in(&url, email, &password).await })
        })
        .collect();
    for s in signins {
        assert_eq!(s.await.unwrap().status, 302);
    }
    wait_outcome(&dg, "migrated", 1).await;
    wait_total(&dg, 8).await;
    assert_eq!(fake.calls("AdminCreateUser"), 1, "one create");
    assert_eq!(fake.users_with_email(email), 1);
    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn throttled_creates_are_retried_and_the_user_migrates() {
    let world = World::new().await;
    let fake = Fake::cognito().await;
    let email = "dee@example.com";
    let password = canary_password("cognito-throttle");
    world.add_user(email, &password).await;
    fake.fail_next("AdminCreateUser", 1, Fault::RateLimit { reset_secs: 1 });
    cognito(&fake).fail_next_exception("AdminSetUserPassword", 1, "LimitExceededException");
    let dg = Dripgate::start(world.config(Some(&fake), legacy_signature())).await;
    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "migrated", 1).await;
    assert_eq!(fake.calls("AdminCreateUser"), 2, "throttled, then resent");
    assert_eq!(fake.calls("AdminSetUserPassword"), 2);
    assert_eq!(fake.users_with_email(email), 1);
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    assert_eq!(
        common::metric(
            &page,
            r#"dripgate_provider_requests_total{operation="create_user",provider="cognito",status="rate_limited"}"#
        ),
        Some(1.0),
    );
    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn a_password_the_pool_refuses_is_blocked_by_policy() {
    let world = World::new().await;
    let fake = Fake::Cognito(
        fake_with(FakeCognitoOptions {
            password_policy: FakePasswordPolicy {
                min_length: 64,
                ..Default::default()
            },
            ..Default::default()
        })
        .await,
    );
    let email = "ivy@example.com";
    let password = canary_password("cognito-policy");
    world.add_user(email, &password).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    config.migration.require_change_on_policy_block = true;
    let dg = Dripgate::start(config).await;
    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "blocked_by_policy", 1).await;
    let ledger = world.ledger().await;
    assert_eq!(
        ledger.get(email).await.unwrap().unwrap().state,
        State::BlockedPolicy
    );
    ledger.close().await;
    world
        .expect_audit_events("user.password_blocked_by_policy", 1)
        .await;
    // The created user must choose a password through the pool's own recovery.
    assert_eq!(fake.calls("AdminResetUserPassword"), 1);
    assert_eq!(
        cognito(&fake).user_by_email(email).unwrap().status,
        "RESET_REQUIRED"
    );
    let second = sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    assert_eq!(second.status, 302, "kept at legacy");
    wait_outcome(&dg, "blocked_by_policy", 2).await;
    assert_eq!(
        fake.calls("AdminSetUserPassword"),
        1,
        "the password is not tried again"
    );
    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn an_existing_pool_user_is_a_conflict_or_adopted() {
    for (mode, expected) in EXISTING_USER_POLICIES {
        let fake = Fake::cognito().await;
        let email = "hal@example.com";
        let ExistingUserSignIn {
            world,
            dg,
            password,
            inserted: existing,
            row,
        } = sign_in_over_existing_user(&fake, email, (mode, expected), |f| {
            // An account of the pool's own, whose legacy-id attribute names another user: not
            // dripgate's lost create, so it is only taken under `adopt`.
            cognito(f).insert_user(email, Some("someone-else"))
        })
        .await;
        assert_eq!(fake.calls("AdminCreateUser"), 0);
        match mode {
            OnExistingUser::Skip => {
                assert_eq!(row.state, State::Conflict);
                assert!(!fake.verify(email, &password));
            }
            OnExistingUser::Adopt => {
                assert_eq!(row.state, State::Migrated);
                assert_eq!(row.provider_user_id.as_deref(), Some(existing.as_str()));
                assert!(fake.verify(email, &password));
            }
        }
        world.assert_clean(&fake, &dg, email, &password).await;
        dg.stop().await;
    }
}

#[tokio::test]
async fn legacy_hash_falls_back_to_the_password_and_counts_it() {
    let world = World::new().await;
    let fake = Fake::cognito().await;
    let email = "kim@example.com";
    let password = canary_password("cognito-fallback");
    world.add_user(email, &password).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    if let Some(c) = config.provider.as_mut().and_then(|p| p.cognito.as_mut()) {
        c.password_transfer = CognitoPasswordTransfer::LegacyHash;
    }
    let dg = Dripgate::start(config).await;
    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "migrated", 1).await;
    assert!(fake.verify(email, &password));
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    assert_eq!(
        common::metric(
            &page,
            r#"dripgate_password_transfer_total{format="bcrypt",method="password",provider="cognito",result="fallback_password"}"#
        ),
        Some(1.0),
        "{}",
        page.lines()
            .filter(|l| l.contains("transfer"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

const CRASH_OVERRIDES: &str = r#"
[ledger]
lease = "1s"

[provider.http]
request_timeout = "120s"
deadline = "240s"

[provider.limits]
max_attempts = 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_create_and_set_password_is_finished_after_restart() {
    let world = World::new().await;
    let fake = Fake::cognito().await;
    let email = "lou@example.com";
    let password = canary_password("cognito-crash");
    world.add_user(email, &password).await;
    let config = world.write_child_config(&fake, CRASH_OVERRIDES);
    let out = Arc::new(Mutex::new(String::new()));
    fake.fail_next(
        "AdminSetUserPassword",
        1,
        Fault::Delay(Duration::from_secs(300)),
    );
    let mut first = ChildDripgate::spawn(&config, &fake, &out);
    assert_eq!(sign_in(&first.url(), email, &password).await.status, 302);
    let mut reached = false;
    for _ in 0..400 {
        if fake.calls("AdminCreateUser") == 1 && fake.calls("AdminSetUserPassword") == 1 {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reached, "the fake saw the create and the set-password call");
    assert!(
        Command::new("kill")
            .args(["-KILL", &first.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    first.child.wait().unwrap();
    let ledger = world.ledger().await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(row.state, State::Created, "killed between the two calls");
    assert_eq!(
        cognito(&fake).user_by_email(email).unwrap().status,
        "FORCE_CHANGE_PASSWORD"
    );

    let mut second = ChildDripgate::spawn(&config, &fake, &out);
    let mut migrated = false;
    for _ in 0..40 {
        assert_eq!(sign_in(&second.url(), email, &password).await.status, 302);
        for _ in 0..20 {
            let page = common::get_text(&format!("{}/metrics", second.admin))
                .await
                .1;
            if outcome_in(&page, "migrated") >= 1 {
                migrated = true;
                break;
            }
            if outcome_in(&page, "in_progress") + outcome_in(&page, "fallback") > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if migrated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        migrated,
        "a sign-in after the restart finished the migration"
    );
    assert_eq!(
        ledger.get(email).await.unwrap().unwrap().state,
        State::Migrated
    );
    assert_eq!(fake.calls("AdminCreateUser"), 1, "no second create");
    assert_eq!(fake.users_with_email(email), 1);
    assert!(fake.verify(email, &password));
    assert_ledger_invariants(&ledger, &fake, &[(email, &password)]).await;
    ledger.close().await;
    let _ = Command::new("kill")
        .args(["-TERM", &second.child.id().to_string()])
        .status();
    let _ = second.child.wait();
    let logs = out.lock().unwrap().clone();
    world.assert_secret_nowhere(&[], &password, &[&logs]).await;
}

/// Migrations per second through dripgate against the fake at Cognito's published quotas
/// (the fake throttles past them; the client's buckets hold the same numbers). Prints the
/// figure; run with `-- --ignored --nocapture provider_cognito::migration::throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (a few seconds); run explicitly"]
async fn throughput_at_the_default_quotas() {
    let users: usize = std::env::var("COGNITO_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    // COGNITO_UNLIMITED=1: no quotas at either end, for the ceiling of the rest of the path
    // (legacy app, hash verify, SQLite ledger, the machine).
    let unlimited = std::env::var("COGNITO_UNLIMITED").is_ok_and(|v| v == "1");
    let world = World::new().await;
    let fake = if unlimited {
        Fake::Cognito(
            fake_with(FakeCognitoOptions {
                quotas: None,
                ..Default::default()
            })
            .await,
        )
    } else {
        Fake::cognito().await
    };
    let password = "Bench-Password-7!";
    for i in 0..users {
        world
            .add_user(&format!("user{i}@example.com"), password)
            .await;
    }
    let mut config = world.config(Some(&fake), legacy_signature());
    if let Some(p) = config.provider.as_mut() {
        // The defaults of [provider.limits] apart from the rate (per category for Cognito).
        p.limits = dripgate::provider::config::LimitsConfig::default();
        if let (true, Some(c)) = (unlimited, p.cognito.as_mut()) {
            c.quotas = dripgate::provider::cognito::CognitoQuotas {
                user_creation: 10_000,
                user_account_recovery: 10_000,
                user_read: 10_000,
                user_list: 10_000,
                user_pool_read: 10_000,
            };
        }
    }
    let dg = Dripgate::start(config).await;
    let url = dg.url("");
    let started = Instant::now();
    let signins: Vec<_> = (0..users)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(
                async move { sign_in(&url, &format!("user{i}@example.com"), password).await },
            )
        })
        .collect();
    for s in signins {
        assert_eq!(s.await.unwrap().status, 302);
    }
    let mut done = 0;
    for _ in 0..1200 {
        done = outcome(&dg, "migrated").await;
        if done >= users as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = done as f64 / secs;
    let f = cognito(&fake);
    // The steady rate at the provider: creates between the first and the last one.
    let creates: Vec<_> = f
        .arrivals()
        .into_iter()
        .filter(|(op, _)| op == "AdminCreateUser")
        .map(|(_, t)| t)
        .collect();
    let span = creates
        .last()
        .unwrap()
        .duration_since(creates[0])
        .as_secs_f64();
    let steady = (creates.len() - 1) as f64 / span;
    println!(
        "cognito steady: {} AdminCreateUser in {span:.2}s = {steady:.1}/s (ratio {:.2} to 50/s, {:.2} to 30/s)",
        creates.len(),
        steady / 50.0,
        steady / 30.0
    );
    println!(
        "cognito throughput: {done}/{users} migrated in {secs:.2}s = {rate:.1} migrations/s; \
         ratio to UserCreation 50/s = {:.2}, to the binding UserList/UserAccountRecovery 30/s = {:.2}; \
         fake throttled {} requests",
        rate / 50.0,
        rate / 30.0,
        f.throttled()
    );
    assert_eq!(done, users as u64);
    dg.stop().await;
}
