//! A migrated user deleted at the provider, end to end with the Kinde fake: the re-sync of a
//! changed password provisions the user again by itself; with an unchanged password the
//! operator's `dripgate ledger forget` (the built binary) lets the next sign-in do it, and
//! `dripgate ledger verify` reports the drift before and none after.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use dripgate::ledger::State;

use crate::common::Dripgate;
use crate::migration_common::{
    Fake, World, canary_password, legacy_signature, sign_in_unchanged, wait_outcome,
};

const BIN: &str = env!("CARGO_BIN_EXE_dripgate");

fn kinde(fake: &Fake) -> &dripgate::testkit::kinde::FakeKinde {
    match fake {
        Fake::Kinde(k) => k,
        _ => panic!("these tests use the Kinde fake"),
    }
}

/// The Kinde user id of `email` (exactly one such user).
fn provider_id(fake: &Fake, email: &str) -> String {
    assert_eq!(fake.users_with_email(email), 1, "{email}");
    kinde(fake).user_by_email(email).unwrap().id
}

#[tokio::test]
async fn resync_after_the_provider_user_was_deleted_provisions_the_user_again() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "hal@example.com";
    let old = canary_password("gone-old");
    let new = canary_password("gone-new");
    world.add_user(email, &old).await;
    let dg = Dripgate::start(world.config(Some(&fake), legacy_signature())).await;

    sign_in_unchanged(&world, &dg.url(""), email, &old).await;
    wait_outcome(&dg, "migrated", 1).await;
    let first = provider_id(&fake, email);
    assert!(kinde(&fake).delete_user(&first));

    // The password changes at legacy: the re-sync's set-password answers 404 for the recorded
    // id, and the user is provisioned again on the same sign-in.
    world.change_password(email, &new).await;
    sign_in_unchanged(&world, &dg.url(""), email, &new).await;
    wait_outcome(&dg, "migrated", 2).await;
    let second = provider_id(&fake, email);
    assert_ne!(first, second);
    assert!(fake.verify(email, &new));
    let ledger = world.ledger().await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(row.state, State::Migrated);
    assert_eq!(row.provider_user_id.as_deref(), Some(second.as_str()));
    assert_eq!(row.last_error, None);
    ledger.close().await;
    let gone = world
        .expect_audit_events("user.provider_user_gone", 1)
        .await;
    assert_eq!(gone[0]["provider_user_id"], first.as_str());
    world.expect_audit_events("user.migrated", 2).await;
    assert_eq!(fake.calls("createUser"), 2);

    world.assert_invariants(&fake, &[(email, &new)]).await;
    world.assert_secret_nowhere(&[&dg], &new, &[]).await;
    dg.stop().await;
}

fn run(config: &std::path::Path, args: &[&str], secret: &str) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("TEST_PROVIDER_SECRET", secret)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

// The binary runs (blocking) on one worker while the fake answers on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_lets_the_next_sign_in_provision_a_deleted_user_again() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "ivy@example.com";
    let password = canary_password("forget");
    world.add_user(email, &password).await;
    let dg = Dripgate::start(world.config(Some(&fake), legacy_signature())).await;
    let config = world.write_child_config(&fake, "");
    let secret = kinde(&fake).options().client_secret.clone();

    // The config names a generic store and states no email verification: check-config says
    // what is sent (false) and asks for a decision.
    let out = run(&config, &["check-config"], &secret);
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{warned}");
    assert!(
        warned.contains("warning: provider.kinde.mark_email_verified is not set"),
        "{warned}"
    );

    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "migrated", 1).await;
    let first = provider_id(&fake, email);
    assert!(kinde(&fake).delete_user(&first));

    // Reconciliation finds it; the same password changes nothing at legacy sign-in.
    let out = run(&config, &["ledger", "verify"], &secret);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("missing_at_provider"), "{said}");
    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "already_migrated", 1).await;
    assert_eq!(fake.users_with_email(email), 0);

    let out = run(
        &config,
        &[
            "ledger",
            "forget",
            email,
            "--reason",
            "deleted at Kinde by support",
            "--operator",
            "ops",
        ],
        &secret,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let forgotten = world.expect_audit_events("user.forgotten", 1).await;
    assert_eq!(forgotten[0]["actor"]["operator"], "ops");
    assert_eq!(forgotten[0]["provider_user_id"], first.as_str());

    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "migrated", 2).await;
    let second = provider_id(&fake, email);
    assert_ne!(first, second);
    assert!(fake.verify(email, &password));
    let out = run(&config, &["ledger", "verify"], &secret);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 ok, 0 with drift"), "{said}");

    world.assert_invariants(&fake, &[(email, &password)]).await;
    world
        .assert_secret_nowhere(&[&dg], &password, &[said.as_ref()])
        .await;
    dg.stop().await;
}
