//! The forgot-password bridge's migration step: in `route` and `complete`, a reset request for
//! a user not yet migrated provisions that user at the provider first, so the provider's reset
//! page finds them. No password is proven here, so the user gets the legacy hash where the
//! provider imports its format (the old password then works there too), else none, with a
//! password change requested. It is the hand-off's provisioning ([`Engine::hand_off`]): the
//! claim protocol and provisioning sequence of a sign-in's migration, with its adoption rule
//! (a provider account found by email is taken only when dripgate can prove it created it);
//! a concurrent sign-in or reset of the same user on any replica finds the claim taken.

use super::Engine;
use super::handoff::HandOff;
use super::outcome::Outcome;
use super::transfer::importable;
use crate::audit::{AuditEvent, AuditKind};
use crate::legacy::{LegacyUser, Lookup};

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
        let Some(provider) = self.provider() else {
            return ResetDecision::Failed;
        };
        let hash = importable(&user.hash, user.format)
            .ok()
            .filter(|hash| provider.capabilities().imports(hash.method));
        let decision = match hash {
            Some(hash) => match self
                .provision_for_reset(&user, HandOff::LegacyHash(hash))
                .await
            {
                // The provider refused the hash: without a password, a change requested.
                ResetDecision::Failed => self.provision_for_reset(&user, HandOff::Reset).await,
                decision => decision,
            },
            None => self.provision_for_reset(&user, HandOff::Reset).await,
        };
        if matches!(
            decision,
            ResetDecision::ProvisionedWithHash | ResetDecision::ProvisionedWithoutPassword
        ) {
            self.audit().emit(
                AuditEvent::new(
                    AuditKind::ProvisionedForReset,
                    Some(&user.key),
                    self.phase().get().phase.as_str(),
                    self.replica(),
                )
                .reason(decision.as_str()),
            );
        }
        decision
    }

    /// One hand-off of `user` for a reset request, its exit read as the bridge's decision.
    async fn provision_for_reset(&self, user: &LegacyUser, how: HandOff) -> ResetDecision {
        let provisioned = match how {
            HandOff::LegacyHash(_) => ResetDecision::ProvisionedWithHash,
            HandOff::Reset => ResetDecision::ProvisionedWithoutPassword,
        };
        let exit = self.hand_off(user, &how).await;
        match exit.outcome {
            Outcome::Migrated | Outcome::Recovered | Outcome::Adopted => provisioned,
            Outcome::AlreadyMigrated | Outcome::Resynced => ResetDecision::Migrated,
            Outcome::InProgress => ResetDecision::InProgress,
            Outcome::Conflict | Outcome::BlockedByPolicy => ResetDecision::Skipped,
            _ => {
                tracing::warn!(
                    user = %user.key,
                    outcome = exit.outcome.as_str(),
                    "provisioning for a reset failed"
                );
                ResetDecision::Failed
            }
        }
    }
}
