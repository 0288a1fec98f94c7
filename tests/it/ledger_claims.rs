//! The claim/lease/epoch protocol on real databases (SQLite, and PostgreSQL when configured).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::ledger_common;

use std::time::Duration;

use dripgate::ledger::{LedgerError, State};
use ledger_common::{dbs, eventually};

#[tokio::test]
async fn first_claim_wins_and_a_live_lease_blocks() {
    for db in dbs("first_claim").await {
        let ledger = db.open().await;
        let claim = ledger
            .claim("ada@example.com", "replica-a", "bcrypt")
            .await
            .unwrap()
            .expect("first claim wins");
        assert_eq!(claim.epoch, 1, "{}", db.name);
        assert_eq!(claim.state, State::Claimed);
        assert_eq!(claim.provider_user_id, None);
        assert_eq!(claim.attempts, 1);
        assert!(
            ledger
                .claim("ada@example.com", "replica-b", "bcrypt")
                .await
                .unwrap()
                .is_none(),
            "{}: a live lease blocks",
            db.name
        );
        let row = ledger.get("ada@example.com").await.unwrap().unwrap();
        assert_eq!(row.state, State::Claimed);
        assert_eq!(row.lease_owner.as_deref(), Some("replica-a"));
        assert_eq!(row.legacy_format.as_deref(), Some("bcrypt"));
        assert_eq!(row.epoch, 1);
        assert!(row.lease_expires_at > row.updated_at);
        assert!(ledger.get("nobody@example.com").await.unwrap().is_none());
        // Another user is independent.
        assert!(
            ledger
                .claim("bob@example.com", "replica-b", "md5")
                .await
                .unwrap()
                .is_some()
        );
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_on_two_instances_have_one_winner() {
    for db in dbs("concurrent_claims").await {
        // Racers hold 30 s leases, so no winner's lease can expire during a race.
        let a = db.open().await;
        let b = db.open().await;
        let short = db
            .open_with(&db.with_lease(Duration::from_millis(200)))
            .await;
        let race = |key: &'static str, round: usize| {
            let tasks: Vec<_> = (0..20)
                .map(|i| {
                    let ledger = if i % 2 == 0 { a.clone() } else { b.clone() };
                    tokio::spawn(async move {
                        ledger
                            .claim(key, &format!("r{round}-t{i}"), "bcrypt")
                            .await
                            .unwrap()
                    })
                })
                .collect();
            async move {
                let mut winners = Vec::new();
                for t in tasks {
                    if let Some(claim) = t.await.unwrap() {
                        winners.push(claim);
                    }
                }
                winners
            }
        };
        // A new user: one winner.
        let winners = race("new@example.com", 1).await;
        assert_eq!(winners.len(), 1, "{}: exactly one winner", db.name);
        assert_eq!(winners[0].epoch, 1);

        // A user whose holder's lease has expired: one winner, at epoch 2.
        let crashed = short
            .claim("expired@example.com", "crashed", "bcrypt")
            .await
            .unwrap()
            .unwrap();
        let expired = eventually(200, || async {
            (short.now_ms().await.unwrap() > short.lease_ms() + crashed_claim_time(&short).await)
                .then_some(())
        })
        .await;
        assert!(expired.is_some(), "{}: lease never expired", db.name);
        let winners = race("expired@example.com", 2).await;
        assert_eq!(winners.len(), 1, "{}: exactly one re-claim winner", db.name);
        assert_eq!(winners[0].epoch, crashed.epoch + 1);
        assert_eq!(winners[0].attempts, 2);

        // A user whose holder released the lease after a failure: one winner, at epoch 3.
        a.mark_failed(&winners[0], "provider_unavailable")
            .await
            .unwrap();
        let winners = race("expired@example.com", 3).await;
        assert_eq!(
            winners.len(),
            1,
            "{}: exactly one winner after release",
            db.name
        );
        assert_eq!(winners[0].epoch, 3);
        db.cleanup().await;
    }
}

/// When the short-lease claim of `expired@example.com` was taken, by the ledger's clock.
async fn crashed_claim_time(ledger: &dripgate::ledger::Ledger) -> i64 {
    ledger
        .get("expired@example.com")
        .await
        .unwrap()
        .unwrap()
        .updated_at
}

#[tokio::test]
async fn expired_lease_is_reclaimed_and_the_stale_holder_is_fenced() {
    for db in dbs("expired_lease").await {
        let ledger = db
            .open_with(&db.with_lease(Duration::from_millis(200)))
            .await;
        let stale = ledger
            .claim("cy@example.com", "slow", "bcrypt")
            .await
            .unwrap()
            .unwrap();
        let fresh = eventually(200, || ledger.claim_opt("cy@example.com", "fast"))
            .await
            .expect("expired lease re-claimed");
        assert!(fresh.epoch > stale.epoch, "{}", db.name);
        assert_eq!(fresh.state, State::Claimed);
        // The stale holder's fenced writes all fail.
        assert!(matches!(
            ledger.mark_created(&stale, "prov-stale").await,
            Err(LedgerError::Fenced)
        ));
        let fp = ledger.fingerprint(b"$1$salt$hash");
        assert!(matches!(
            ledger.mark_migrated(&stale, "prov-stale", &fp).await,
            Err(LedgerError::Fenced)
        ));
        assert!(matches!(
            ledger.mark_failed(&stale, "provider_unavailable").await,
            Err(LedgerError::Fenced)
        ));
        assert!(matches!(
            ledger
                .mark_terminal(&stale, State::Conflict, "exists")
                .await,
            Err(LedgerError::Fenced)
        ));
        // The new holder's succeed.
        ledger.mark_created(&fresh, "prov-1").await.unwrap();
        let row = ledger.get("cy@example.com").await.unwrap().unwrap();
        assert_eq!(row.state, State::Created);
        assert_eq!(row.provider_user_id.as_deref(), Some("prov-1"));
        assert_eq!(row.last_error, None);

        // The holder "crashes" after create: the next claim after expiry resumes with the id.
        let resumed = eventually(200, || ledger.claim_opt("cy@example.com", "after-crash"))
            .await
            .expect("crashed holder's lease re-claimed");
        assert_eq!(resumed.state, State::Created);
        assert_eq!(resumed.provider_user_id.as_deref(), Some("prov-1"));
        assert!(resumed.epoch > fresh.epoch);
        assert!(matches!(
            ledger.mark_migrated(&fresh, "prov-1", &fp).await,
            Err(LedgerError::Fenced)
        ));
        let user = ledger.mark_migrated(&resumed, "prov-1", &fp).await.unwrap();
        assert_eq!(user.provider_user_id, "prov-1");
        let row = ledger.get("cy@example.com").await.unwrap().unwrap();
        assert_eq!(row.state, State::Migrated);
        assert_eq!(row.lease_owner, None);
        assert_eq!(row.lease_expires_at, 0);
        assert!(row.migrated_at.is_some());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn migrated_rows_are_claimable_only_by_a_resync_with_another_fingerprint() {
    for db in dbs("resync").await {
        let ledger = db.open().await;
        let old_hash = b"$2y$10$oldoldoldoldoldoldoldeQ2cFvK0m7mRz1mN0b0fEoGgk3yJb6";
        let new_hash = b"$2y$10$newnewnewnewnewnewneweQ2cFvK0m7mRz1mN0b0fEoGgk3yJb6";
        let fp_old = ledger.fingerprint(old_hash);
        let fp_new = ledger.fingerprint(new_hash);
        assert_ne!(fp_old, fp_new);

        // Resync of an unknown or unfinished user: nothing to do.
        assert!(
            ledger
                .claim_resync("dee@example.com", "r", &fp_new)
                .await
                .unwrap()
                .is_none()
        );
        let claim = ledger
            .claim("dee@example.com", "r", "bcrypt")
            .await
            .unwrap()
            .unwrap();
        assert!(
            ledger
                .claim_resync("dee@example.com", "r", &fp_new)
                .await
                .unwrap()
                .is_none()
        );
        ledger.mark_created(&claim, "prov-dee").await.unwrap();
        let first = ledger
            .mark_migrated(&claim, "prov-dee", &fp_old)
            .await
            .unwrap();

        assert!(
            ledger
                .claim("dee@example.com", "r2", "bcrypt")
                .await
                .unwrap()
                .is_none(),
            "{}",
            db.name
        );
        assert!(
            ledger
                .claim_resync("dee@example.com", "r2", &fp_old)
                .await
                .unwrap()
                .is_none()
        );

        let resync = ledger
            .claim_resync("dee@example.com", "r2", &fp_new)
            .await
            .unwrap()
            .expect("changed fingerprint claims a migrated row");
        assert_eq!(resync.state, State::Migrated);
        assert_eq!(resync.provider_user_id.as_deref(), Some("prov-dee"));
        assert_eq!(resync.epoch, claim.epoch + 1);
        // Single-flight: a second resync while the lease is live gets nothing; the user stays
        // migrated (routable) meanwhile.
        assert!(
            ledger
                .claim_resync("dee@example.com", "r3", &fp_new)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            ledger
                .is_migrated("dee@example.com")
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            ledger.get("dee@example.com").await.unwrap().unwrap().state,
            State::Migrated
        );
        // A stale first claim cannot touch it.
        assert!(matches!(
            ledger.mark_migrated(&claim, "prov-dee", &fp_old).await,
            Err(LedgerError::Fenced)
        ));

        let second = ledger
            .mark_migrated(&resync, "prov-dee", &fp_new)
            .await
            .unwrap();
        assert_eq!(
            second.migrated_at, first.migrated_at,
            "first migration time is kept"
        );
        let row = ledger.get("dee@example.com").await.unwrap().unwrap();
        assert_eq!(row.hash_fingerprint.as_deref(), Some(fp_new.as_str()));
        assert!(ledger.fingerprint_matches(new_hash, row.hash_fingerprint.as_deref().unwrap()));
        assert!(!ledger.fingerprint_matches(old_hash, row.hash_fingerprint.as_deref().unwrap()));
        assert!(
            ledger
                .claim_resync("dee@example.com", "r4", &fp_new)
                .await
                .unwrap()
                .is_none()
        );

        // A failed resync keeps the user migrated with the old fingerprint and frees the lease.
        let again = ledger
            .claim_resync("dee@example.com", "r5", &fp_old)
            .await
            .unwrap()
            .unwrap();
        ledger
            .mark_failed(&again, "provider_unavailable")
            .await
            .unwrap();
        let row = ledger.get("dee@example.com").await.unwrap().unwrap();
        assert_eq!(row.state, State::Migrated);
        assert_eq!(row.hash_fingerprint.as_deref(), Some(fp_new.as_str()));
        assert_eq!(row.last_error.as_deref(), Some("provider_unavailable"));
        assert!(
            ledger
                .claim_resync("dee@example.com", "r6", &fp_old)
                .await
                .unwrap()
                .is_some()
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn mark_failed_records_the_reason_and_releases_the_lease() {
    for db in dbs("mark_failed").await {
        let ledger = db.open().await;
        let first = ledger
            .claim("eve@example.com", "a", "md5")
            .await
            .unwrap()
            .unwrap();
        ledger
            .mark_failed(&first, "provider_unavailable")
            .await
            .unwrap();
        let row = ledger.get("eve@example.com").await.unwrap().unwrap();
        assert_eq!(row.last_error.as_deref(), Some("provider_unavailable"));
        assert_eq!(row.state, State::Claimed);
        assert_eq!(row.lease_owner, None);
        // No waiting: the next sign-in claims at once (30 s lease in this config).
        let second = ledger
            .claim("eve@example.com", "b", "md5")
            .await
            .unwrap()
            .expect("released lease is claimable at once");
        assert_eq!(second.epoch, 2, "{}", db.name);
        assert_eq!(second.attempts, 2);
        assert!(matches!(
            ledger.mark_created(&first, "x").await,
            Err(LedgerError::Fenced)
        ));
        // A reason that is not a label (here: looks like a password) is stored as `other`.
        ledger.mark_failed(&second, "Tr0ub4dor&3 !").await.unwrap();
        let row = ledger.get("eve@example.com").await.unwrap().unwrap();
        assert_eq!(row.last_error.as_deref(), Some("other"));
        // Success clears the error.
        let third = ledger
            .claim("eve@example.com", "c", "md5")
            .await
            .unwrap()
            .unwrap();
        let fp = ledger.fingerprint(b"5f4dcc3b5aa765d61d8327deb882cf99");
        ledger.mark_migrated(&third, "prov-eve", &fp).await.unwrap();
        let row = ledger.get("eve@example.com").await.unwrap().unwrap();
        assert_eq!(row.last_error, None);
        assert_eq!(row.attempts, 3);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn terminal_states_end_ordinary_claims() {
    for db in dbs("terminal").await {
        let ledger = db.open().await;
        let c = ledger
            .claim("fay@example.com", "a", "bcrypt")
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            ledger.mark_terminal(&c, State::Migrated, "x").await,
            Err(LedgerError::Invalid(_))
        ));
        ledger
            .mark_terminal(&c, State::Conflict, "existing_user_skipped")
            .await
            .unwrap();
        let row = ledger.get("fay@example.com").await.unwrap().unwrap();
        assert_eq!(row.state, State::Conflict);
        assert_eq!(row.last_error.as_deref(), Some("existing_user_skipped"));
        assert!(
            ledger
                .claim("fay@example.com", "b", "bcrypt")
                .await
                .unwrap()
                .is_none(),
            "{}",
            db.name
        );
        let fp = ledger.fingerprint(b"hash");
        assert!(
            ledger
                .claim_resync("fay@example.com", "b", &fp)
                .await
                .unwrap()
                .is_none()
        );

        let c = ledger
            .claim("gus@example.com", "a", "bcrypt")
            .await
            .unwrap()
            .unwrap();
        ledger.mark_created(&c, "prov-gus").await.unwrap();
        ledger
            .mark_terminal(&c, State::BlockedPolicy, "password_policy")
            .await
            .unwrap();
        let row = ledger.get("gus@example.com").await.unwrap().unwrap();
        assert_eq!(row.state, State::BlockedPolicy);
        assert_eq!(row.provider_user_id.as_deref(), Some("prov-gus"));
        assert!(
            ledger
                .claim("gus@example.com", "b", "bcrypt")
                .await
                .unwrap()
                .is_none()
        );
        // No fingerprint recorded for it: a resync does not retry a policy rejection.
        assert!(
            ledger
                .claim_resync("gus@example.com", "b", &fp)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            ledger
                .is_migrated("gus@example.com")
                .await
                .unwrap()
                .is_none()
        );
        // A policy rejection recorded with its fingerprint is retried only after the legacy
        // password (hence the fingerprint) changed; success makes the user migrated.
        let rejected = ledger.fingerprint(b"hash-rejected");
        let c = ledger
            .claim("hue@example.com", "a", "bcrypt")
            .await
            .unwrap()
            .unwrap();
        ledger.mark_created(&c, "prov-hue").await.unwrap();
        ledger
            .mark_terminal_with_fingerprint(&c, State::BlockedPolicy, "password_policy", &rejected)
            .await
            .unwrap();
        assert!(
            ledger
                .claim("hue@example.com", "b", "bcrypt")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            ledger
                .claim_resync("hue@example.com", "b", &rejected)
                .await
                .unwrap()
                .is_none()
        );
        let changed = ledger.fingerprint(b"hash-changed");
        let r = ledger
            .claim_resync("hue@example.com", "b", &changed)
            .await
            .unwrap()
            .expect("changed password retried");
        assert_eq!(r.state, State::BlockedPolicy, "{}", db.name);
        assert_eq!(r.provider_user_id.as_deref(), Some("prov-hue"));
        ledger
            .mark_migrated(&r, "prov-hue", &changed)
            .await
            .unwrap();
        assert!(
            ledger
                .is_migrated("hue@example.com")
                .await
                .unwrap()
                .is_some()
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn invalid_arguments_are_refused() {
    for db in dbs("invalid_args").await {
        let ledger = db.open().await;
        assert!(matches!(
            ledger.claim("", "a", "x").await,
            Err(LedgerError::Invalid(_))
        ));
        assert!(matches!(
            ledger.claim("k", "", "x").await,
            Err(LedgerError::Invalid(_))
        ));
        let long = "k".repeat(513);
        assert!(matches!(
            ledger.get(&long).await,
            Err(LedgerError::Invalid(_))
        ));
        let c = ledger
            .claim("hal@example.com", "a", "x")
            .await
            .unwrap()
            .unwrap();
        // A legacy hash passed where a fingerprint belongs is refused.
        assert!(matches!(
            ledger
                .mark_migrated(
                    &c,
                    "p",
                    "$2y$10$abcdefghijklmnopqrstuuN8Kq1r0eV5sQ0mQyJX6XjQ3lQmW2mG"
                )
                .await,
            Err(LedgerError::Invalid(_))
        ));
        db.cleanup().await;
    }
}

/// Test helper: a claim attempt as `Option` for `eventually`.
trait ClaimOpt {
    async fn claim_opt(&self, key: &str, owner: &str) -> Option<dripgate::ledger::Claim>;
}

impl ClaimOpt for dripgate::ledger::Ledger {
    async fn claim_opt(&self, key: &str, owner: &str) -> Option<dripgate::ledger::Claim> {
        self.claim(key, owner, "bcrypt").await.unwrap()
    }
}
