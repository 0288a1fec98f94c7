//! End to end: two dripgate instances sharing one PostgreSQL ledger (a fresh schema per test,
//! chosen through `search_path`) take 20 simultaneous first sign-ins of one user: exactly one
//! create reaches the provider. Skipped (with a message) when `DRIPGATE_TEST_POSTGRES_URL` is
//! unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use crate::ledger_common;
use crate::migration_common;

use common::Dripgate;
use dripgate::ledger::State;
use migration_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_simultaneous_first_signins_on_two_replicas_create_one_provider_user() {
    let Some(db) = ledger_common::postgres("migration_replicas").await else {
        return;
    };
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "kim@example.com";
    let password = canary_password("replicas");
    world.add_user(email, &password).await;

    let mut instances = Vec::new();
    for replica in ["replica-a", "replica-b"] {
        let mut config = world.config(Some(&fake), legacy_signature());
        config.ledger = db.config.clone();
        config.migration.replica_id = Some(replica.into());
        instances.push(Dripgate::start(config).await);
    }
    let direct = sign_in(&world.legacy_url(), email, &password).await;
    let signins = (0..20).map(|i| {
        let base = instances[i % 2].url("");
        let password = password.clone();
        async move { sign_in(&base, email, &password).await }
    });
    let seen = futures_util::future::join_all(signins).await;
    for s in &seen {
        assert_eq!(
            *s, direct,
            "legacy's answer changed on its way through dripgate"
        );
    }
    // Every sign-in's migration job ends with an outcome on the instance that took it.
    wait_total(&instances[0], 10).await;
    wait_total(&instances[1], 10).await;

    let mut migrated = 0;
    let mut fallbacks = 0;
    for dg in &instances {
        migrated += outcome(dg, "migrated").await;
        fallbacks += outcome(dg, "fallback").await;
    }
    assert_eq!(fake.calls("createUser"), 1, "exactly one create");
    assert_eq!(fake.users_with_email(email), 1);
    assert_eq!(migrated, 1, "one sign-in migrated the user");
    assert_eq!(fallbacks, 0, "no sign-in fell back");
    assert!(fake.verify(email, &password));
    let ledger = open_ledger(&db.config).await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(row.state, State::Migrated);
    assert_ledger_invariants(&ledger, &fake, &[(email, &password)]).await;
    ledger.close().await;

    let refs: Vec<&Dripgate> = instances.iter().collect();
    world.assert_secret_nowhere(&refs, &password, &[]).await;
    for dg in instances {
        dg.stop().await;
    }
    db.cleanup().await;
}
