//! Claims and fenced writes: the one-statement lease on a user, and every later write of the
//! claim's holder, refused with [`LedgerError::Fenced`] once another holder re-claimed the user.

use sqlx::Row;

use super::model::{
    Claim, ClaimRow, Method, MigratedUser, State, bounded_label, check_fingerprint, check_key,
    check_owner, check_provider_id,
};
use super::{Backend, Ledger, LedgerError};

impl Ledger {
    /// Takes the lease on a user, in one atomic upsert: inserts the row (`claimed`, epoch 1), or
    /// re-takes a `claimed`/`created` row whose lease has expired (epoch + 1). Returns `None`
    /// when another holder's lease is live or the user is `migrated`, `conflict` or
    /// `blocked_policy`: the caller then leaves the user to legacy and does not wait.
    /// `owner` names the holder (e.g. replica id) for operators; `legacy_format` is a label.
    pub async fn claim(
        &self,
        user_key: &str,
        owner: &str,
        legacy_format: &str,
    ) -> Result<Option<Claim>, LedgerError> {
        check_key(user_key)?;
        check_owner(owner)?;
        let format = bounded_label(legacy_format);
        let lease_ms = self.inner.lease_ms;
        let claim = self
            .run("claim", async {
                let row: Option<ClaimRow> = on_pool!(&self.inner.backend, |p, q| {
                    sqlx::query_as(q::CLAIM)
                        .bind(user_key)
                        .bind(owner)
                        .bind(lease_ms)
                        .bind(format)
                        .fetch_optional(p)
                        .await
                })?;
                row.map(Claim::try_from).transpose()
            })
            .await?;
        self.inner.metrics.claim("first", claim.is_some());
        Ok(claim)
    }

    /// Takes the lease on a `migrated` (or `blocked_policy`) user whose recorded fingerprint
    /// differs from `fingerprint`, i.e. whose password changed at legacy since: the caller sets
    /// the new password at the provider and calls [`Ledger::mark_migrated`] with the new
    /// fingerprint. The state is kept meanwhile (the user stays routable). `None` when the
    /// fingerprint matches, the user is not in such a state, or another holder's lease is live.
    pub async fn claim_resync(
        &self,
        user_key: &str,
        owner: &str,
        fingerprint: &str,
    ) -> Result<Option<Claim>, LedgerError> {
        check_key(user_key)?;
        check_owner(owner)?;
        check_fingerprint(fingerprint)?;
        let lease_ms = self.inner.lease_ms;
        let claim = self
            .run("claim_resync", async {
                let row: Option<ClaimRow> = on_pool!(&self.inner.backend, |p, q| {
                    sqlx::query_as(q::CLAIM_RESYNC)
                        .bind(user_key)
                        .bind(owner)
                        .bind(lease_ms)
                        .bind(fingerprint)
                        .fetch_optional(p)
                        .await
                })?;
                row.map(Claim::try_from).transpose()
            })
            .await?;
        self.inner.metrics.claim("resync", claim.is_some());
        Ok(claim)
    }

    /// Records the provider user id (state `claimed` → `created`; other states are kept).
    /// [`LedgerError::Fenced`] when the claim was superseded: stop, do not set the password.
    pub async fn mark_created(
        &self,
        claim: &Claim,
        provider_user_id: &str,
    ) -> Result<(), LedgerError> {
        check_provider_id(provider_user_id)?;
        self.run("mark_created", async {
            let done = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query(q::MARK_CREATED)
                    .bind(&claim.user_key)
                    .bind(claim.epoch)
                    .bind(provider_user_id)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            fenced(done)
        })
        .await
    }

    /// Records the finished migration (`migrated`, with the provider id and the fingerprint of
    /// the legacy hash from [`Ledger::fingerprint`]), clears `last_error`, releases the lease
    /// and caches the user. [`LedgerError::Fenced`] when the claim was superseded.
    pub async fn mark_migrated(
        &self,
        claim: &Claim,
        provider_user_id: &str,
        fingerprint: &str,
    ) -> Result<MigratedUser, LedgerError> {
        self.mark_migrated_by(claim, provider_user_id, fingerprint, Method::Live)
            .await
    }

    /// [`Ledger::mark_migrated`], recording how the password reached the provider (`method`:
    /// [`Method::Live`] for a sign-in, a hand-off method for `dripgate handoff`).
    pub async fn mark_migrated_by(
        &self,
        claim: &Claim,
        provider_user_id: &str,
        fingerprint: &str,
        method: Method,
    ) -> Result<MigratedUser, LedgerError> {
        check_provider_id(provider_user_id)?;
        check_fingerprint(fingerprint)?;
        let migrated_at = self
            .run("mark_migrated", async {
                let row = on_pool!(&self.inner.backend, |p, q| {
                    sqlx::query(q::MARK_MIGRATED)
                        .bind(&claim.user_key)
                        .bind(claim.epoch)
                        .bind(provider_user_id)
                        .bind(fingerprint)
                        .bind(method.as_str())
                        .fetch_optional(p)
                        .await
                        .and_then(|row| row.map(|r| r.try_get::<Option<i64>, _>(0)).transpose())
                })?;
                row.ok_or(LedgerError::Fenced)
            })
            .await?;
        let user = MigratedUser {
            user_key: claim.user_key.clone(),
            provider_user_id: provider_user_id.to_owned(),
            hash_fingerprint: Some(fingerprint.to_owned()),
            migrated_at: migrated_at.unwrap_or(0),
        };
        if let Some(cache) = &self.inner.cache {
            cache.insert(claim.user_key.clone(), user.clone()).await;
        }
        Ok(user)
    }

    /// Records a failed attempt (`reason`: a short label from a bounded set, e.g.
    /// `provider_unavailable`) and releases the lease at once, so the next sign-in retries.
    /// The state is kept. [`LedgerError::Fenced`] when the claim was superseded.
    pub async fn mark_failed(&self, claim: &Claim, reason: &str) -> Result<(), LedgerError> {
        let reason = bounded_label(reason);
        self.run("mark_failed", async {
            let done = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query(q::MARK_FAILED)
                    .bind(&claim.user_key)
                    .bind(claim.epoch)
                    .bind(reason)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            fenced(done)
        })
        .await
    }

    /// After this claim's holder wrote a password at the provider and then found the claim
    /// superseded (a fenced write): its write may have landed after the newer holder's, so the
    /// row is no longer trusted as `migrated`. Demotes it to `created` with no fingerprint and
    /// bumps the epoch (the newer holder's pending writes are fenced); the next sign-in sets the
    /// password again. Drops the user from the cache. `false` when there was nothing to demote.
    pub async fn mark_superseded(&self, claim: &Claim) -> Result<bool, LedgerError> {
        let result = self
            .run("mark_superseded", async {
                let done = on_pool!(&self.inner.backend, |p, q| {
                    sqlx::query(q::MARK_SUPERSEDED)
                        .bind(&claim.user_key)
                        .bind(claim.epoch)
                        .execute(p)
                        .await
                        .map(|r| r.rows_affected())
                })?;
                Ok(done > 0)
            })
            .await;
        self.invalidate_cached(&claim.user_key).await;
        result
    }

    /// Ends the migration of a user in `State::Conflict` or `State::BlockedPolicy` with a
    /// reason label, releases the lease and drops the user from the cache. Ordinary claims no
    /// longer take the user. [`LedgerError::Fenced`] when the claim was superseded.
    pub async fn mark_terminal(
        &self,
        claim: &Claim,
        state: State,
        reason: &str,
    ) -> Result<(), LedgerError> {
        self.terminal(claim, state, reason, None).await
    }

    /// [`Ledger::mark_terminal`] that also records the fingerprint of the legacy hash whose
    /// password was rejected: for `BlockedPolicy`, a later [`Ledger::claim_resync`] then retries
    /// only once the user's legacy password (hence the fingerprint) has changed.
    pub async fn mark_terminal_with_fingerprint(
        &self,
        claim: &Claim,
        state: State,
        reason: &str,
        fingerprint: &str,
    ) -> Result<(), LedgerError> {
        check_fingerprint(fingerprint)?;
        self.terminal(claim, state, reason, Some(fingerprint)).await
    }

    async fn terminal(
        &self,
        claim: &Claim,
        state: State,
        reason: &str,
        fingerprint: Option<&str>,
    ) -> Result<(), LedgerError> {
        if !matches!(state, State::Conflict | State::BlockedPolicy) {
            return Err(LedgerError::Invalid(
                "mark_terminal takes State::Conflict or State::BlockedPolicy",
            ));
        }
        let reason = bounded_label(reason);
        let result = self
            .run("mark_terminal", async {
                let done = on_pool!(&self.inner.backend, |p, q| {
                    sqlx::query(q::MARK_TERMINAL)
                        .bind(&claim.user_key)
                        .bind(claim.epoch)
                        .bind(state.as_str())
                        .bind(reason)
                        .bind(fingerprint)
                        .execute(p)
                        .await
                        .map(|r| r.rows_affected())
                })?;
                fenced(done)
            })
            .await;
        self.invalidate_cached(&claim.user_key).await;
        result
    }
}

fn fenced(rows: u64) -> Result<(), LedgerError> {
    if rows == 0 {
        Err(LedgerError::Fenced)
    } else {
        Ok(())
    }
}
