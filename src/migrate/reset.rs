//! The forgot-password bridge's migration step: in `route` and `complete`, a reset request for
//! a user not yet migrated provisions that user at the provider first, so the provider's reset
//! page finds them. No password is proven here, so the user gets the legacy hash where the
//! provider imports its format (the old password then works there too), else none, with a
//! password change requested. The same claim protocol as a sign-in's migration: claim ►
//! find-by-email ► create ► `mark_created` ► import / require a change ► `mark_migrated`; a
//! concurrent sign-in or reset of the same user on any replica finds the claim taken.

use super::Engine;
use super::transfer::importable;
use crate::audit::{AuditEvent, AuditKind};
use crate::failure::Classified;
use crate::ledger::{Claim, State};
use crate::legacy::{LegacyUser, Lookup};
use crate::provider::{NewUser, Provider, ProviderError, ProviderUserId};

/// What the bridge did for one reset request (a bounded set; the metric label). The answer to
/// the client never depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetDecision {
    /// No legacy user by that identifier (or one that can never be migrated).
    Unknown,
    /// Migrated already: straight to the provider's reset page.
    Migrated,
    /// Provisioned now, with the legacy hash imported.
    ProvisionedWithHash,
    /// Provisioned now, without a password and with a change requested.
    ProvisionedWithoutPassword,
    /// Another sign-in or reset holds the user's claim.
    InProgress,
    /// Left alone: a `conflict` or `blocked_policy` user.
    Skipped,
    /// A step failed; recorded on the claim, the next request retries.
    Failed,
}

impl ResetDecision {
    /// Every label.
    pub const LABELS: [&'static str; 7] = [
        "unknown",
        "migrated",
        "provisioned_with_hash",
        "provisioned_without_password",
        "in_progress",
        "skipped",
        "failed",
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Migrated => "migrated",
            Self::ProvisionedWithHash => "provisioned_with_hash",
            Self::ProvisionedWithoutPassword => "provisioned_without_password",
            Self::InProgress => "in_progress",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

impl Engine {
    /// Makes sure the user a reset request names exists at the provider (see the module
    /// documentation). Call only in `route` or `complete`.
    pub async fn bridge_reset(&self, identifier: &str) -> ResetDecision {
        let user = match self.legacy().lookup(identifier).await {
            Ok(Lookup::Found(user)) => user,
            Ok(Lookup::NotFound | Lookup::NotMigratable(_)) => return ResetDecision::Unknown,
            Err(e) => {
                tracing::warn!(error = %e, "legacy store unreadable for a reset request");
                return ResetDecision::Failed;
            }
        };
        let Some(provider) = self.provider().cloned() else {
            return ResetDecision::Failed;
        };
        let record = match self.ledger().get(&user.key).await {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(error = %e, "ledger unreadable for a reset request");
                return ResetDecision::Failed;
            }
        };
        match record.map(|r| r.state) {
            Some(State::Migrated) => return ResetDecision::Migrated,
            Some(State::Conflict | State::BlockedPolicy) => return ResetDecision::Skipped,
            _ => {}
        }
        let claim = match self
            .ledger()
            .claim(&user.key, self.replica(), user.format.as_str())
            .await
        {
            Ok(Some(claim)) => claim,
            Ok(None) => return ResetDecision::InProgress,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a user for a reset request");
                return ResetDecision::Failed;
            }
        };
        let run = ResetRun {
            engine: self,
            provider: provider.as_ref(),
            user: &user,
            claim: &claim,
        };
        run.provision().await
    }
}

/// One reset provisioning holding a claim.
struct ResetRun<'a> {
    engine: &'a Engine,
    provider: &'a dyn Provider,
    user: &'a LegacyUser,
    claim: &'a Claim,
}

impl ResetRun<'_> {
    async fn provision(&self) -> ResetDecision {
        let ledger = self.engine.ledger();
        let id = match self.claim.provider_user_id.clone() {
            Some(id) => ProviderUserId(id),
            None => match self.find_or_create().await {
                Ok(id) => id,
                Err(e) => return self.failed(&e).await,
            },
        };
        if self.claim.provider_user_id.is_none()
            && let Err(e) = ledger.mark_created(self.claim, id.as_str()).await
        {
            return self.failed(&e).await;
        }
        let decision = self.password(&id).await;
        let fingerprint = ledger.fingerprint(self.user.hash.hash().as_bytes());
        if let Err(e) = ledger
            .mark_migrated(self.claim, id.as_str(), &fingerprint)
            .await
        {
            return self.failed(&e).await;
        }
        self.engine.audit().emit(
            self.audit(AuditKind::ProvisionedForReset, Some(id.as_str()))
                .reason(decision.as_str()),
        );
        decision
    }

    /// Find-by-email first (it also finds a user an earlier attempt created), then create
    /// without a password.
    async fn find_or_create(&self) -> Result<ProviderUserId, ProviderError> {
        if let Some(existing) = self.provider.find_user_by_email(&self.user.email).await? {
            return Ok(existing.id);
        }
        let new_user = NewUser {
            email: self.user.email.clone(),
            given_name: self.user.given_name.clone(),
            family_name: self.user.family_name.clone(),
            legacy_id: Some(self.user.legacy_id.clone()),
        };
        match self.provider.create_user(&new_user, None).await {
            Ok(created) => Ok(created.id),
            Err(ProviderError::AlreadyExists {
                existing_id: Some(id),
                ..
            }) => Ok(id),
            Err(e) => Err(e),
        }
    }

    /// The legacy hash where the provider imports its format, else a password change at the
    /// next sign-in (the provider's reset flow sets the password).
    async fn password(&self, id: &ProviderUserId) -> ResetDecision {
        let capabilities = self.provider.capabilities();
        if let Ok(hash) = importable(&self.user.hash, self.user.format)
            && capabilities.imports(hash.method)
        {
            match self.provider.import_legacy_hash(id, &hash).await {
                Ok(()) => return ResetDecision::ProvisionedWithHash,
                Err(e) => tracing::warn!(error = %e,
                    "provider refused the legacy hash for a reset; requesting a password change"),
            }
        }
        // The user has no password at the provider: its reset flow works with or without the
        // flag, so a provider that refuses it (none to expire) does not stop the bridge.
        if let Err(e) = self.provider.require_password_change(id).await {
            tracing::warn!(error = %e, "provider refused a password change request for a user without a password");
        }
        ResetDecision::ProvisionedWithoutPassword
    }

    fn audit(&self, kind: AuditKind, provider_id: Option<&str>) -> AuditEvent {
        AuditEvent::new(
            kind,
            Some(&self.user.key),
            self.engine.phase().get().phase.as_str(),
            self.engine.replica(),
        )
        .provider_user(provider_id)
    }

    /// Records the failure on the claim (freeing it for the next request) and audits it.
    async fn failed(&self, error: &(dyn Classified + Sync)) -> ResetDecision {
        let reason = error.label();
        tracing::warn!(user = %self.user.key, reason, "provisioning for a reset failed");
        let _ = self.engine.ledger().mark_failed(self.claim, reason).await;
        self.engine
            .audit()
            .emit(self.audit(AuditKind::MigrationFailed, None).reason(reason));
        ResetDecision::Failed
    }
}
