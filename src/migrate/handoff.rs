//! The hand-off's entry to the engine: a user who never signed in is moved through the same
//! claim and provisioning sequence as a sign-in ([`Run::provision`]), with the legacy hash
//! imported or a password change required instead of a password just proved.

use super::Engine;
use super::engine::{Claimed, Run, Source};
use super::outcome::{Exit, Outcome, Stage};
use crate::ledger::{LedgerError, State};
use crate::legacy::LegacyUser;
use crate::provider::ImportedHash;

/// How the hand-off gives a user a password at the provider.
#[derive(Debug)]
pub enum HandOff {
    /// The legacy hash, converted to a method the provider imports
    /// (`migrate::transfer::importable`); the user signs in there with the old password.
    LegacyHash(ImportedHash),
    /// No password: the provider asks the user to choose one at the next sign-in.
    Reset,
}

impl HandOff {
    fn source(&self) -> Source<'_> {
        match self {
            Self::LegacyHash(hash) => Source::Imported(hash),
            Self::Reset => Source::Reset,
        }
    }
}

impl Engine {
    /// Moves `user` (from the legacy store) to the provider without a sign-in: claim ►
    /// find-by-email ► create ► `mark_created` ► import the hash or require a change ►
    /// `migrated` (method `handoff_hash` / `handoff_reset`), the live path's sequence and fences.
    /// A user the ledger already has as `migrated`, `conflict` or `blocked_policy` is left as
    /// it is; a user whose lease someone holds (a sign-in now) is [`Outcome::InProgress`].
    /// The exit is not recorded as a sign-in.
    pub async fn hand_off(&self, user: &LegacyUser, how: &HandOff) -> Exit {
        let Some(provider) = self.provider().cloned() else {
            return Outcome::Fallback(Stage::Provider).into();
        };
        let claim = match self.claim_for_handoff(user).await {
            Ok(Claimed::Go(claim, _)) => claim,
            Ok(Claimed::Done(outcome)) => return outcome.into(),
            Err(e) => return Exit::failed(Stage::Ledger, &e),
        };
        let fingerprint = self.ledger().fingerprint(user.hash.hash().as_bytes());
        let run = Run {
            engine: self,
            provider: provider.as_ref(),
            user,
            claim: &claim,
            source: how.source(),
            phase: self.phase().get().phase,
            fingerprint: &fingerprint,
        };
        run.provision(false).await
    }

    /// The ordinary claim, never a resync: a hand-off does not touch a user who is done.
    async fn claim_for_handoff(&self, user: &LegacyUser) -> Result<Claimed, LedgerError> {
        let ledger = self.ledger();
        let state = ledger.get(&user.key).await?.map(|r| r.state);
        Ok(match state {
            Some(State::Migrated) => Claimed::Done(Outcome::AlreadyMigrated),
            Some(State::Conflict) => Claimed::Done(Outcome::Conflict),
            Some(State::BlockedPolicy) => Claimed::Done(Outcome::BlockedByPolicy),
            _ => match ledger
                .claim(&user.key, self.replica(), user.format.as_str())
                .await?
            {
                Some(claim) => Claimed::Go(claim, false),
                None => Claimed::Done(Outcome::InProgress),
            },
        })
    }
}
