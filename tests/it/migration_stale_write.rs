//! A password write applied by the provider after a newer holder's (a holder whose lease expired
//! while the provider sat on its request): the ledger must not be left `migrated` with the newer
//! fingerprint while the provider holds the older password. The older holder's fenced write
//! demotes the row, and the next sign-in sets the password again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use crate::migration_common;

use std::time::Duration;

use common::Dripgate;
use dripgate::ledger::State;
use dripgate::testkit::Fault;
use migration_common::*;

/// Polls (bounded: 400 × 25 ms) until `check` holds.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not reached within 10 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_write_landing_after_a_newer_one_is_set_again() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "sam@example.com";
    let first = canary_password("stale-0");
    let older = canary_password("stale-1");
    let newer = canary_password("stale-2");
    world.add_user(email, &first).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.ledger.lease = Duration::from_millis(500);
    if let Some(provider) = config.provider.as_mut() {
        // The client waits for the slow write: it lands after the lease expired.
        provider.http.request_timeout = Duration::from_secs(20);
        provider.http.deadline = Duration::from_secs(30);
    }
    let dg = Dripgate::start(config).await;
    sign_in_unchanged(&world, &dg.url(""), email, &first).await;
    wait_outcome(&dg, "migrated", 1).await;
    let ledger = world.ledger().await;

    // The older resync: its password write is held by the provider for 3 s.
    world.change_password(email, &older).await;
    fake.fail_next("SetUserPassword", 1, Fault::Delay(Duration::from_secs(3)));
    sign_in_unchanged(&world, &dg.url(""), email, &older).await;
    until("the older write reached the provider", async || {
        fake.calls("SetUserPassword") == 2
    })
    .await;
    until("the older holder's lease expired", async || {
        let row = ledger.get(email).await.unwrap().unwrap();
        ledger.now_ms().await.unwrap() > row.lease_expires_at
    })
    .await;

    // The newer resync runs to its end while the older write is still held.
    world.change_password(email, &newer).await;
    sign_in_unchanged(&world, &dg.url(""), email, &newer).await;
    wait_outcome(&dg, "resynced", 1).await;
    // The older write lands; its holder's fenced write follows.
    wait_outcome(&dg, "in_progress", 1).await;

    let row = ledger.get(email).await.unwrap().unwrap();
    assert!(
        row.state != State::Migrated || fake.verify(email, &newer),
        "migrated with the newer fingerprint, but the provider holds the older password"
    );
    assert_eq!(row.state, State::Created, "demoted until set again");

    // The next sign-in sets the newer password again.
    sign_in_unchanged(&world, &dg.url(""), email, &newer).await;
    wait_outcome(&dg, "migrated", 2).await;
    assert!(fake.verify(email, &newer));
    assert_eq!(
        ledger.get(email).await.unwrap().unwrap().state,
        State::Migrated
    );
    ledger.close().await;
    world.assert_clean(&fake, &dg, email, &newer).await;
    for password in [&first, &older] {
        world.assert_secret_nowhere(&[&dg], password, &[]).await;
    }
    dg.stop().await;
}
