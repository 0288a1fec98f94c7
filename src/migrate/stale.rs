//! A password write that may have landed after a newer holder's.
//!
//! A holder whose lease expired mid-flight can still have its password write applied by the
//! provider after the newer holder set a changed password (a provider that finishes a slow
//! request late). Its fenced `mark_migrated` then fails, but the provider may hold its older
//! password while the ledger holds the newer holder's fingerprint. So the row is demoted
//! ([`Ledger::mark_superseded`]): no longer `migrated`, fingerprint cleared, epoch bumped so the
//! newer holder's pending writes are fenced too. The user's next sign-in goes to legacy and sets
//! the password again, after every earlier write has been answered.

use super::Engine;
use crate::audit::{AuditEvent, AuditKind};
use crate::ledger::{Claim, Ledger};

/// Called when a fenced ledger write followed this holder's password write at the provider.
pub(super) async fn after_fenced_password_write(engine: &Engine, claim: &Claim) {
    let ledger: &Ledger = engine.ledger();
    match ledger.mark_superseded(claim).await {
        Ok(true) => {
            tracing::warn!(
                "a password write at the provider raced a newer claim; the user is set again at the next sign-in"
            );
            engine.audit().emit(
                AuditEvent::new(
                    AuditKind::MigrationFailed,
                    Some(&claim.user_key),
                    engine.phase().get().phase.as_str(),
                    engine.replica(),
                )
                .reason("superseded_password_write"),
            );
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not demote a row after a superseded password write");
        }
    }
}
