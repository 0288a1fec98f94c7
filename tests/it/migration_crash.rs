//! End to end with the real binary: `dripgate serve` is SIGKILLed after the provider created the
//! user but before the password was set; after a restart, the next sign-in finishes the
//! migration without a second provider user. The child's stdout (JSON logs at trace level) is
//! searched for the password too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use crate::migration_common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dripgate::ledger::State;
use dripgate::testkit::Fault;
use migration_common::*;

/// The child's config: a short lease, generous provider timeouts (the hanging call must not
/// time out before the kill), and no provider retries.
const OVERRIDES: &str = r#"
[ledger]
lease = "1s"

[provider.http]
request_timeout = "120s"
deadline = "240s"

[provider.limits]
max_attempts = 1
"#;

async fn metric_page(admin: &str) -> String {
    common::get_text(&format!("{admin}/metrics")).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_create_and_set_password_is_finished_after_restart() {
    sigkill_between_create_and_set_password(Fake::kinde().await, "SetUserPassword").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_sigkill_between_create_and_reset_password_is_finished_after_restart() {
    sigkill_between_create_and_set_password(Fake::keycloak().await, "resetPassword").await;
}

/// `set_password_op`: the fake's name for the password call.
async fn sigkill_between_create_and_set_password(fake: Fake, set_password_op: &str) {
    let world = World::new().await;
    let email = "lou@example.com";
    let password = canary_password("crash");
    world.add_user(email, &password).await;
    let config = world.write_child_config(&fake, OVERRIDES);
    let out = Arc::new(Mutex::new(String::new()));

    // The first set-password call hangs (it is answered only long after the test is over).
    fake.fail_next(set_password_op, 1, Fault::Delay(Duration::from_secs(300)));
    let mut first = ChildDripgate::spawn(&config, &fake, &out);
    let seen = sign_in(&first.url(), email, &password).await;
    assert_eq!(seen.status, 302, "legacy answered the sign-in");
    let mut reached = false;
    for _ in 0..400 {
        if fake.calls("createUser") == 1 && fake.calls(set_password_op) == 1 {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reached, "the fake saw the create and the set-password call");
    let pid = first.child.id().to_string();
    let killed = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(killed.success());
    first.child.wait().unwrap();

    let ledger = world.ledger().await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(
        row.state,
        State::Created,
        "killed between create and set-password"
    );
    assert!(row.provider_user_id.is_some());
    assert!(!fake.verify(email, &password), "no password set yet");

    // Restart; sign in until the migration is finished (the dead process's lease expires
    // after 1 s; until then a sign-in finds the migration in progress).
    let mut second = ChildDripgate::spawn(&config, &fake, &out);
    let mut migrated = false;
    for _ in 0..40 {
        let seen = sign_in(&second.url(), email, &password).await;
        assert_eq!(seen.status, 302);
        for _ in 0..20 {
            let page = metric_page(&second.admin).await;
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
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(row.state, State::Migrated);
    assert_eq!(fake.calls("createUser"), 1, "no second create");
    assert_eq!(fake.users_with_email(email), 1);
    assert!(fake.verify(email, &password));
    assert_ledger_invariants(&ledger, &fake, &[(email, &password)]).await;
    ledger.close().await;

    let metrics = metric_page(&second.admin).await;
    let status = common::get_text(&format!("{}/status", second.admin))
        .await
        .1;
    let _ = Command::new("kill")
        .args(["-TERM", &second.child.id().to_string()])
        .status();
    let _ = second.child.wait();
    let logs = out.lock().unwrap().clone();
    assert!(logs.contains("dripgate serving"), "child output captured");
    world
        .assert_secret_nowhere(&[], &password, &[&logs, &metrics, &status])
        .await;
}

/// Auth0 creates the user with the password in one call: the process is killed while that call
/// hangs after Auth0 committed it (before the ledger heard of the user). After a restart the
/// next sign-in finds the user by email and finishes; the stable `user_id` would refuse a
/// second create anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_an_auth0_create_hangs_after_commit_is_finished_after_restart() {
    let world = World::new().await;
    let fake = Fake::auth0().await;
    let email = "mo@example.com";
    let password = canary_password("auth0-crash");
    world.add_user(email, &password).await;
    let config = world.write_child_config(&fake, OVERRIDES);
    let out = Arc::new(Mutex::new(String::new()));

    fake.fail_next("post_users", 1, Fault::CommitThenHang);
    let mut first = ChildDripgate::spawn(&config, &fake, &out);
    let seen = sign_in(&first.url(), email, &password).await;
    assert_eq!(seen.status, 302, "legacy answered the sign-in");
    for _ in 0..400 {
        if fake.calls("post_users") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fake.users_with_email(email),
        1,
        "Auth0 committed the create"
    );
    let killed = Command::new("kill")
        .args(["-KILL", &first.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    first.child.wait().unwrap();
    let ledger = world.ledger().await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(
        row.state,
        State::Claimed,
        "killed before the ledger heard of the user"
    );

    let mut second = ChildDripgate::spawn(&config, &fake, &out);
    let mut finished = false;
    for _ in 0..40 {
        sign_in(&second.url(), email, &password).await;
        for _ in 0..20 {
            let page = metric_page(&second.admin).await;
            if outcome_in(&page, "recovered") >= 1 {
                finished = true;
                break;
            }
            if outcome_in(&page, "in_progress") + outcome_in(&page, "fallback") > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if finished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        finished,
        "a sign-in after the restart finished the migration"
    );
    assert_eq!(
        ledger.get(email).await.unwrap().unwrap().state,
        State::Migrated
    );
    assert_eq!(fake.calls("post_users"), 1, "no second create");
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
