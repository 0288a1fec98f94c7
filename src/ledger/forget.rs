//! Making a user "not migrated" again, when the provider no longer holds them: by an operator
//! who deleted the user there ([`Ledger::forget`], `dripgate ledger forget`), or by the holder of
//! a claim whose provider user answered "not found" ([`Ledger::clear_provider_user`]).
//!
//! Both keep the row and move it back to `claimed` with no provider id, fingerprint or
//! `migrated_at`, so the next sign-in (or the same one) provisions the user again through the
//! ordinary claim. The row is kept rather than deleted so that its epoch keeps growing: a new
//! row would start again at epoch 1, and a holder still working on the old row with that epoch
//! could then write into the new one.

use super::model::{State, UserRecord, bounded_label, check_key};
use super::{Backend, Claim, Ledger, LedgerError};

/// `last_error` of a row an operator forgot.
pub const FORGOTTEN: &str = "forgotten";
/// `last_error` of a row whose provider user answered "not found".
pub const PROVIDER_USER_GONE: &str = "provider_user_gone";

/// What [`Ledger::forget`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forgotten {
    /// The row was reset; this is how it was before.
    Reset(UserRecord),
    /// The ledger has no row for the key.
    Unknown,
    /// A claim's lease on the user is live (a migration is running); nothing changed.
    LeaseHeld(UserRecord),
}

impl Ledger {
    /// Resets the user's row to "not migrated" (`claimed`, lease released, no provider id,
    /// fingerprint or `migrated_at`, `last_error = forgotten`), bumping the epoch so that any
    /// holder still working on the user is fenced. Refused while a lease is live unless
    /// `force`. Drops the user from this process's cache; other processes' caches keep a
    /// migrated entry for at most `ledger.cache.ttl`.
    pub async fn forget(&self, user_key: &str, force: bool) -> Result<Forgotten, LedgerError> {
        check_key(user_key)?;
        let Some(before) = self.get(user_key).await? else {
            return Ok(Forgotten::Unknown);
        };
        if !force && before.lease_expires_at > self.now_ms().await? {
            return Ok(Forgotten::LeaseHeld(before));
        }
        // Fenced by the epoch read above: a claim taken since then bumped it, and is refused
        // here (Fenced) rather than overwritten.
        self.run("forget", async {
            let done = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query(q::FORGET)
                    .bind(user_key)
                    .bind(before.epoch)
                    .bind(FORGOTTEN)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            if done == 0 {
                Err(LedgerError::Fenced)
            } else {
                Ok(())
            }
        })
        .await?;
        self.invalidate_cached(user_key).await;
        Ok(Forgotten::Reset(before))
    }

    /// For the holder of `claim` whose recorded provider user is gone (the provider answered
    /// "not found"): the row goes back to `claimed` with no provider id, fingerprint or
    /// `migrated_at`, and `last_error = reason`; the lease and epoch stay the holder's, who goes
    /// on to find-by-email and create. [`LedgerError::Fenced`] when the claim was superseded.
    pub async fn clear_provider_user(
        &self,
        claim: &Claim,
        reason: &str,
    ) -> Result<(), LedgerError> {
        let reason = bounded_label(reason);
        self.run("clear_provider_user", async {
            let done = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query(q::CLEAR_PROVIDER_USER)
                    .bind(&claim.user_key)
                    .bind(claim.epoch)
                    .bind(reason)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            if done == 0 {
                Err(LedgerError::Fenced)
            } else {
                Ok(())
            }
        })
        .await?;
        self.invalidate_cached(&claim.user_key).await;
        Ok(())
    }
}

/// The claim a holder goes on with after [`Ledger::clear_provider_user`]: same lease and epoch,
/// no provider user.
pub fn cleared(claim: &Claim) -> Claim {
    Claim {
        state: State::Claimed,
        provider_user_id: None,
        ..claim.clone()
    }
}
