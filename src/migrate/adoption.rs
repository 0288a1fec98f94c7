//! Whether a provider user found by email may be taken for a legacy user.
//!
//! dripgate stores the legacy user's id at the provider on create (Kinde `provided_id`), so a
//! user it finds whose stored legacy id is the legacy user's is its own: a create whose answer
//! was lost (a timeout, a crash, a replica that lost its lease) and that it now recovers. Any
//! other user with that email existed before the migration, or was made by someone else: it is
//! adopted only under `on_existing_user = "adopt"`; under `skip` it is never touched. How many
//! attempts the ledger counted proves nothing (a first attempt can fail before any create), so
//! it is not asked. Where the provider keeps no legacy id (Authgear), nothing is provably
//! dripgate's: under `skip` a found user is always a conflict.

use super::phase::OnExistingUser;
use crate::provider::{ProviderUser, ProviderUserId};

/// What to do with a provider user found by email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Taking {
    /// dripgate created it for this legacy user: finish the migration on it.
    Recovered(ProviderUserId),
    /// A user dripgate did not create, adopted (`on_existing_user = "adopt"`).
    Adopted(ProviderUserId),
    /// A user dripgate did not create, left alone (`on_existing_user = "skip"`).
    Refused(ProviderUserId),
}

/// The decision for `found`, a provider user with the legacy user's email.
pub(super) fn decide(found: ProviderUser, legacy_id: &str, policy: OnExistingUser) -> Taking {
    if found.legacy_id.as_deref() == Some(legacy_id) {
        return Taking::Recovered(found.id);
    }
    match policy {
        OnExistingUser::Adopt => Taking::Adopted(found.id),
        OnExistingUser::Skip => Taking::Refused(found.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(legacy_id: Option<&str>) -> ProviderUser {
        ProviderUser {
            id: ProviderUserId("kp_1".into()),
            email: Some("ann@example.com".into()),
            legacy_id: legacy_id.map(str::to_owned),
        }
    }

    #[test]
    fn only_a_matching_legacy_id_proves_dripgate_created_the_user() {
        let id = ProviderUserId("kp_1".into());
        for policy in [OnExistingUser::Adopt, OnExistingUser::Skip] {
            assert_eq!(
                decide(user(Some("42")), "42", policy),
                Taking::Recovered(id.clone())
            );
        }
        for found in [user(None), user(Some("43")), user(Some(""))] {
            assert_eq!(
                decide(found.clone(), "42", OnExistingUser::Skip),
                Taking::Refused(id.clone())
            );
            assert_eq!(
                decide(found, "42", OnExistingUser::Adopt),
                Taking::Adopted(id.clone())
            );
        }
    }
}
