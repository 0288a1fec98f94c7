#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End to end, the edges of the drip-feed migration: a full migration queue sheds the work but
//! never the sign-in; `route` with the ledger unreachable (cache, then deny or legacy); email
//! domain allow/deny lists; a phase switch by SIGHUP on the real binary with a keep-alive
//! connection open across it; Kinde's password policy; sign-ins by login name. Every test ends
//! with the state machine's invariants and searches every output for its unique passwords.

use crate::common;
use crate::ledger_common;
use crate::migration_common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Dripgate;
use dripgate::ledger::State;
use dripgate::legacy::KeyField;
use dripgate::migrate::Phase;
use dripgate::migrate::phase::LedgerUnavailable;
use dripgate::testkit::Fault;
use migration_common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

mod ledger_down;
mod sighup;

/// The `Location` a routed sign-in of `typed` gets.
fn routed_to(typed: &str) -> String {
    let hint: String = form_urlencoded::byte_serialize(typed.as_bytes()).collect();
    TEMPLATE.replace("{login_hint}", &hint)
}

/// Signs in through dripgate, checks the client saw exactly what legacy answers directly, and
/// that legacy accepted the sign-in.
async fn sign_in_accepted(world: &World, base: &str, email: &str, password: &str) -> Seen {
    let via = sign_in_unchanged(world, base, email, password).await;
    assert_eq!(via.status, 302, "legacy accepted the sign-in");
    assert!(
        via.set_cookie.iter().any(|c| c.starts_with("session=")),
        "legacy's session cookie reached the client"
    );
    via
}

/// The value of one series on a metrics page (0 when absent).
fn series(page: &str, name: &str) -> u64 {
    common::metric(page, name).unwrap_or(0.0) as u64
}

/// Polls (bounded: 200 × 50 ms) until `check` holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not reached within 10 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_migration_queue_sheds_the_work_never_the_signin() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let users: Vec<(String, String)> = (0..10)
        .map(|i| {
            (
                format!("shed{i}@example.com"),
                canary_password(&format!("shed{i}")),
            )
        })
        .collect();
    for (email, password) in &users {
        world.add_user(email, password).await;
    }
    // The provider is slow for the first two jobs: one runs, one waits, the rest are shed.
    fake.fail_next("getUsers", 2, Fault::Delay(Duration::from_secs(4)));
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.workers = 1;
    config.migration.queue_size = 1;
    let dg = Dripgate::start(config).await;
    let base = dg.url("");

    let legacy = world.legacy_url();
    let direct =
        futures_util::future::join_all(users.iter().map(|(e, p)| sign_in(&legacy, e, p))).await;
    let seen =
        futures_util::future::join_all(users.iter().map(|(e, p)| sign_in(&base, e, p))).await;
    for (i, (via, direct)) in seen.iter().zip(&direct).enumerate() {
        assert_eq!(via, direct, "sign-in #{i}: legacy's answer changed");
        assert_eq!(via.status, 302, "sign-in #{i} served by legacy");
        assert!(via.set_cookie.iter().any(|c| c.starts_with("session=")));
    }

    // Every sign-in ends with one outcome: shed at once, or migrated once the provider answers.
    wait_total(&dg, 10).await;
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    let shed = outcome_in(&page, "queue_full");
    let migrated = outcome_in(&page, "migrated");
    assert!(shed > 0, "the full queue shed work: {page}");
    assert!(migrated >= 1, "admitted jobs still migrated");
    assert_eq!(shed + migrated, 10, "one outcome per sign-in");
    // The hash pool is behind the engine's queue: it was never the one shedding here.
    assert_eq!(
        series(&page, "dripgate_hash_verifications_shed_total"),
        0,
        "the hash pool shed nothing"
    );
    assert_eq!(fake.calls("createUser"), migrated);

    // A shed user has no ledger row; their next sign-in (provider fast again) migrates them.
    let ledger = world.ledger().await;
    let mut shed_users = Vec::new();
    for (email, password) in &users {
        if ledger.get(email).await.unwrap().is_none() {
            shed_users.push((email.clone(), password.clone()));
        }
    }
    assert_eq!(shed_users.len() as u64, shed, "shed users left no trace");
    let (email, password) = &shed_users[0];
    sign_in_accepted(&world, &base, email, password).await;
    wait_outcome(&dg, "migrated", migrated + 1).await;
    assert_eq!(
        ledger.get(email).await.unwrap().unwrap().state,
        State::Migrated
    );
    assert!(fake.verify(email, password));
    ledger.close().await;

    let pairs: Vec<(&str, &str)> = users
        .iter()
        .map(|(e, p)| (e.as_str(), p.as_str()))
        .collect();
    world.assert_invariants(&fake, &pairs).await;
    for (_, password) in &users {
        world.assert_secret_nowhere(&[&dg], password, &[]).await;
    }
    dg.stop().await;
}

/// Migrates a user at an allowed domain, one at a domain on both lists and one outside the
/// allow list, then signs each in again: only the first is routed. `key` is the legacy key
/// field; users sign in by login name when users are keyed by login.
async fn domain_lists(key: KeyField, tag: &str) {
    let world = World::new().await;
    let fake = Fake::authgear().await;
    let users = [
        ("al@EXAMPLE.com", canary_password(&format!("{tag}-allowed"))),
        (
            "bea@vip.example.com",
            canary_password(&format!("{tag}-denied")),
        ),
        ("cal@other.org", canary_password(&format!("{tag}-outside"))),
    ];
    for (email, password) in &users {
        world.add_user(email, password).await;
    }
    let typed = |email: &str| match key {
        KeyField::Email => email.to_owned(),
        KeyField::Login => email.split('@').next().unwrap().to_owned(),
    };
    let user_key = |email: &str| match key {
        KeyField::Email => email.to_lowercase(),
        KeyField::Login => typed(email),
    };
    let mut config = world.config(Some(&fake), legacy_signature());
    if let Some(legacy) = config.legacy.as_mut() {
        legacy.key = key;
    }
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    // Listed in any case; a domain on both lists is denied.
    config.migration.allow_domains = vec!["Example.Com".into(), "VIP.example.com".into()];
    config.migration.deny_domains = vec!["vip.EXAMPLE.com".into()];
    let dg = Dripgate::start(config).await;
    let base = dg.url("");

    for (i, (email, password)) in users.iter().enumerate() {
        sign_in_accepted(&world, &base, &typed(email), password).await;
        wait_outcome(&dg, "migrated", i as u64 + 1).await;
    }
    let ledger = world.ledger().await;
    for (email, _) in &users {
        let row = ledger.get(&user_key(email)).await.unwrap();
        assert_eq!(row.map(|r| r.state), Some(State::Migrated), "{email}");
    }
    ledger.close().await;

    let (al, al_pw) = &users[0];
    let routed = sign_in(&base, &typed(al), al_pw).await;
    assert_eq!(routed.status, 303, "an allowed domain is routed");
    assert_eq!(
        routed.location.as_deref(),
        Some(routed_to(&al.to_lowercase()).as_str())
    );
    assert!(routed.set_cookie.is_empty());
    wait_outcome(&dg, "routed", 1).await;

    for (email, password) in &users[1..] {
        sign_in_accepted(&world, &base, &typed(email), password).await;
    }
    wait_outcome(&dg, "already_migrated", 2).await;
    assert_eq!(outcome(&dg, "routed").await, 1, "only the allowed domain");
    // Signing in with the other identifier changes nothing.
    let other = |email: &str| match key {
        KeyField::Email => email.split('@').next().unwrap().to_owned(),
        KeyField::Login => email.to_owned(),
    };
    let routed = sign_in(&base, &other(al), al_pw).await;
    assert_eq!(routed.status, 303, "allowed, by the other identifier");
    assert_eq!(
        routed.location.as_deref(),
        Some(routed_to(&al.to_lowercase()).as_str())
    );
    for (email, password) in &users[1..] {
        sign_in_accepted(&world, &base, &other(email), password).await;
    }
    wait_outcome(&dg, "already_migrated", 4).await;
    assert_eq!(outcome(&dg, "routed").await, 2);
    let routed_events = world
        .expect_audit_events("user.routed_to_provider", 2)
        .await;
    assert!(routed_events.iter().all(|e| e["user"] == user_key(al)));
    assert_eq!(fake.user_count(), 3);

    let pairs: Vec<(&str, &str)> = users.iter().map(|(e, p)| (*e, p.as_str())).collect();
    world.assert_invariants(&fake, &pairs).await;
    for (email, password) in &users {
        assert!(fake.verify(email, password), "{email} migrated");
        world.assert_secret_nowhere(&[&dg], password, &[]).await;
    }
    dg.stop().await;
}

#[tokio::test]
async fn domain_allow_and_deny_lists_decide_who_is_routed() {
    domain_lists(KeyField::Email, "domains").await;
}

#[tokio::test]
async fn domain_lists_apply_where_users_are_keyed_by_login_name() {
    domain_lists(KeyField::Login, "domains-login").await;
}

#[tokio::test]
async fn switching_to_route_without_a_route_target_is_refused() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "jan@example.com";
    let password = canary_password("no-target");
    world.add_user(email, &password).await;
    let dg = Dripgate::start(world.config(Some(&fake), legacy_signature())).await;

    sign_in_accepted(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "migrated", 1).await;
    let resp = raw_client()
        .post(dg.admin_url("/phase"))
        .header("content-type", "application/json")
        .body(r#"{"phase": "route"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    assert!(resp.text().await.unwrap().contains("route target"));
    let (_, phase) = common::get_text(&dg.admin_url("/phase")).await;
    assert!(phase.contains("\"migrate\""), "{phase}");
    assert!(world.audit_events("phase.changed").is_empty());
    // Still served by legacy, as the running phase says.
    sign_in_accepted(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "already_migrated", 1).await;

    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn kinde_password_policy_rejection_keeps_the_user_at_legacy_without_retries() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "kai@example.com";
    let password = canary_password("kinde-policy");
    world.add_user(email, &password).await;
    fake.fail_next("SetUserPassword", 1, Fault::PasswordPolicy);
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    config.migration.require_change_on_policy_block = true;
    let dg = Dripgate::start(config).await;
    let base = dg.url("");

    sign_in_accepted(&world, &base, email, &password).await;
    wait_outcome(&dg, "blocked_by_policy", 1).await;
    assert_eq!(fake.calls("SetUserPassword"), 1);
    // `require_change_on_policy_block`: Kinde is asked to have the user pick a new password.
    let Fake::Kinde(kinde) = &fake else {
        unreachable!()
    };
    let at_kinde: Vec<bool> = kinde
        .users()
        .iter()
        .filter(|u| u.email.as_deref() == Some(email))
        .map(|u| u.password_reset_requested)
        .collect();
    assert_eq!(
        at_kinde,
        [true],
        "password change requested at the provider"
    );
    assert_eq!(
        fake.users_with_email(email),
        1,
        "created, without a password"
    );
    assert!(!fake.verify(email, &password));
    let events = world
        .expect_audit_events("user.password_blocked_by_policy", 1)
        .await;
    assert_eq!(events[0]["reason"], "password_policy");
    assert_eq!(events[0]["user"], email);
    let ledger = world.ledger().await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(row.state, State::BlockedPolicy);

    // In `route`, the user keeps signing in at legacy; the same password is not tried again.
    for n in 2..=3 {
        sign_in_accepted(&world, &base, email, &password).await;
        wait_outcome(&dg, "blocked_by_policy", n).await;
    }
    assert_eq!(fake.calls("SetUserPassword"), 1, "no retry of the password");
    assert_eq!(fake.calls("createUser"), 1);
    assert_eq!(outcome(&dg, "routed").await, 0);
    assert_eq!(outcome(&dg, "migrated").await, 0);
    assert_eq!(
        ledger.get(email).await.unwrap().unwrap().state,
        State::BlockedPolicy
    );
    ledger.close().await;

    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn login_name_signins_migrate_and_are_routed() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "ann@example.com";
    let login = "ann";
    let password = canary_password("login-name");
    world.add_user(email, &password).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    let dg = Dripgate::start(config).await;
    let base = dg.url("");

    // Legacy takes the login name; the migration finds the user by it and keys them by email.
    sign_in_accepted(&world, &base, login, &password).await;
    wait_outcome(&dg, "migrated", 1).await;
    assert_eq!(fake.users_with_email(email), 1);
    assert!(fake.verify(email, &password));
    let ledger = world.ledger().await;
    assert_eq!(
        ledger.get(email).await.unwrap().unwrap().state,
        State::Migrated
    );
    assert!(ledger.get(login).await.unwrap().is_none(), "keyed by email");
    ledger.close().await;

    // The second sign-in by login name is routed; the hint is the email the provider knows
    // the user by, not the login name typed.
    let routed = sign_in(&base, login, &password).await;
    assert_eq!(routed.status, 303);
    assert_eq!(routed.location.as_deref(), Some(routed_to(email).as_str()));
    assert!(routed.set_cookie.is_empty());
    wait_outcome(&dg, "routed", 1).await;
    let events = world
        .expect_audit_events("user.routed_to_provider", 1)
        .await;
    assert_eq!(events[0]["user"], email);
    // So is a sign-in by email.
    let routed = sign_in(&base, email, &password).await;
    assert_eq!(routed.status, 303);
    assert_eq!(routed.location.as_deref(), Some(routed_to(email).as_str()));
    assert_eq!(fake.calls("createUser"), 1);

    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}
