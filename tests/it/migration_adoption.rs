//! Which provider users dripgate may take: only one it provably created for the legacy user
//! (the provider's stored legacy id is the legacy user's id) is recovered; a pre-existing
//! account is adopted only under `on_existing_user = "adopt"`, never under `skip`, however
//! many attempts came before.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use crate::migration_common;

use common::Dripgate;
use dripgate::ledger::State;
use dripgate::migrate::phase::OnExistingUser;
use dripgate::testkit::Fault;
use migration_common::*;

/// The attempts one find makes (`provider_common::fast_limits`): all of them answered 500.
const FIND_ATTEMPTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_existing_account_is_never_taken_over_under_skip_even_after_a_failed_attempt() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let Fake::Kinde(kinde) = &fake else {
        unreachable!()
    };
    let email = "pat@example.com";
    let password = canary_password("takeover-legacy");
    let own_password = canary_password("takeover-own");
    world.add_user(email, &password).await;
    kinde.seed_user(email, &own_password);
    kinde.fail_next("getUsers", FIND_ATTEMPTS, Fault::Status(500));
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.on_existing_user = OnExistingUser::Skip;
    let dg = Dripgate::start(config).await;

    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "fallback", 1).await;
    let ledger = world.ledger().await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(row.state, State::Claimed, "the failed attempt left a claim");
    assert_eq!(row.last_error.as_deref(), Some("transient"));

    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "conflict", 1).await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(row.state, State::Conflict, "the second attempt refused it");
    assert!(
        fake.verify(email, &own_password),
        "the pre-existing account's own password still works"
    );
    assert!(!fake.verify(email, &password));
    assert_eq!(fake.calls("createUser"), 0);
    assert_eq!(fake.calls("SetUserPassword"), 0, "never written to");
    world.expect_audit_events("user.conflict", 1).await;
    assert!(world.audit_events("user.adopted_existing").is_empty());
    assert!(world.audit_events("user.migrated").is_empty());
    ledger.close().await;
    world.assert_clean(&fake, &dg, email, &password).await;
    world
        .assert_secret_nowhere(&[&dg], &own_password, &[])
        .await;
    dg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_is_recovered_not_adopted() {
    for mode in [OnExistingUser::Skip, OnExistingUser::Adopt] {
        let world = World::new().await;
        let fake = Fake::kinde().await;
        let email = "quinn@example.com";
        let password = canary_password("recovered");
        world.add_user(email, &password).await;
        // The create is committed at Kinde, but the connection closes before the answer.
        fake.fail_next("createUser", 1, Fault::CommitThenClose);
        let mut config = world.config(Some(&fake), legacy_signature());
        config.migration.on_existing_user = mode;
        let dg = Dripgate::start(config).await;

        sign_in_unchanged(&world, &dg.url(""), email, &password).await;
        wait_outcome(&dg, "fallback", 1).await;
        assert_eq!(fake.users_with_email(email), 1, "the create was committed");
        sign_in_unchanged(&world, &dg.url(""), email, &password).await;
        wait_outcome(&dg, "recovered", 1).await;
        assert_eq!(outcome(&dg, "adopted").await, 0);
        assert_eq!(fake.calls("createUser"), 1, "no second create");
        assert!(fake.verify(email, &password));
        world
            .expect_audit_events("user.recovered_own_create", 1)
            .await;
        world.expect_audit_events("user.migrated", 1).await;
        assert!(world.audit_events("user.adopted_existing").is_empty());
        let ledger = world.ledger().await;
        assert_eq!(
            ledger.get(email).await.unwrap().unwrap().state,
            State::Migrated
        );
        ledger.close().await;
        world.assert_clean(&fake, &dg, email, &password).await;
        dg.stop().await;
    }
}
