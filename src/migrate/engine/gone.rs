//! A migrated (or created) user whose recorded provider user is gone: the operator deleted it
//! at the provider, and setting the password answers "not found". Without this the user's every
//! later sign-in would retry the same id and fail forever; instead the user is taken as not
//! migrated: the provider id is cleared through a write fenced by the claim, and the user is
//! provisioned again (find-by-email, create, set password) on the same sign-in.

use futures_util::future::BoxFuture;

use super::{Exit, Run, Stage};
use crate::audit::AuditKind;
use crate::ledger::{PROVIDER_USER_GONE, cleared};
use crate::provider::{ErrorClass, ProviderError, ProviderUserId};

impl Run<'_> {
    /// Whether `error`, from giving the password to `id`, says that the user the ledger
    /// recorded no longer exists at the provider. An id this run just created or found is not
    /// in question (its "not found" is an ordinary failure), so this happens once per run.
    pub(super) fn provider_user_gone(&self, error: &ProviderError) -> bool {
        self.claim.provider_user_id.is_some() && error.class() == ErrorClass::NotFound
    }

    /// Clears the gone provider user from the ledger (fenced by this run's claim), audits it,
    /// and provisions the user again under the same claim.
    pub(super) async fn provision_again(&self, gone: &ProviderUserId) -> Exit {
        let ledger = self.engine.ledger();
        if let Err(e) = ledger
            .clear_provider_user(self.claim, PROVIDER_USER_GONE)
            .await
        {
            return self.failed(Stage::Ledger, &e).await;
        }
        tracing::info!(user = %self.user.key, "provider user gone; provisioning the user again");
        self.engine.audit().emit(
            self.audit(AuditKind::ProviderUserGone, Some(gone.as_str()))
                .reason(PROVIDER_USER_GONE),
        );
        let claim = cleared(self.claim);
        let again = Run {
            claim: &claim,
            ..*self
        };
        provision_boxed(again).await
    }
}

/// `provision` led here, and a future cannot contain itself: the second provisioning is boxed,
/// behind a signature that states it is `Send`.
fn provision_boxed(run: Run<'_>) -> BoxFuture<'_, Exit> {
    Box::pin(async move { run.provision(false).await })
}
