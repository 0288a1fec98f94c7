//! The migration of one user, run beside the sign-in on a bounded queue:
//! legacy lookup ► verify ► (observe: count) ► claim ► find-by-email ► create ► set password ►
//! migrated. Every exit is an [`Outcome`]; any failure of dripgate's own steps is recorded and
//! left for the next sign-in, while the legacy sign-in it rode on is untouched.

use std::sync::Arc;

use secrecy::ExposeSecret;
use tokio::sync::Semaphore;

use super::Credentials;
use super::adoption::{self, Taking};
use super::metrics::MigrationMetrics;
use super::outcome::{Exit, Outcome, Stage};
use super::phase::{MigrationConfig, Phase, PhaseState};
use super::transfer::{self, TransferMetrics};
use crate::audit::{AuditEvent, AuditKind, AuditLog};
use crate::failure::Classified;
use crate::hash::{Password, VerifyPool};
use crate::ledger::{Claim, Ledger, LedgerError, Method, State};
use crate::legacy::{LegacyStore, LegacyUser, Lookup};
use crate::provider::{
    ImportedHash, NewUser, Provider, ProviderError, ProviderUser, ProviderUserId,
};

mod gone;

/// Everything a migration needs; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    legacy: LegacyStore,
    verifier: VerifyPool,
    provider: Option<Arc<dyn Provider>>,
    ledger: Ledger,
    config: MigrationConfig,
    phase: PhaseState,
    audit: AuditLog,
    metrics: MigrationMetrics,
    transfer_metrics: TransferMetrics,
    replica: String,
    /// One permit per admitted job (running or queued).
    admission: Arc<Semaphore>,
    /// One permit per running job.
    running: Arc<Semaphore>,
}

/// The parts an [`Engine`] is built from.
pub struct EngineParts {
    /// The legacy hash store.
    pub legacy: LegacyStore,
    /// The bounded hash verification pool.
    pub verifier: VerifyPool,
    /// The new provider; `None` allows only the `observe` phase.
    pub provider: Option<Arc<dyn Provider>>,
    /// The migration ledger.
    pub ledger: Ledger,
    /// The `[migration]` section.
    pub config: MigrationConfig,
    /// The shared, hot-switchable phase.
    pub phase: PhaseState,
    /// Where audit events go.
    pub audit: AuditLog,
    /// Migration metrics.
    pub metrics: MigrationMetrics,
    /// How passwords reached the provider (`dripgate_password_transfer_total`).
    pub transfer_metrics: TransferMetrics,
    /// This replica's id (audit events, lease owner).
    pub replica: String,
}

impl Engine {
    /// Builds the engine.
    pub fn new(parts: EngineParts) -> Self {
        let workers = parts.config.workers.max(1);
        let admitted = workers + parts.config.queue_size;
        Self {
            inner: Arc::new(Inner {
                admission: Arc::new(Semaphore::new(admitted)),
                running: Arc::new(Semaphore::new(workers)),
                legacy: parts.legacy,
                verifier: parts.verifier,
                provider: parts.provider,
                ledger: parts.ledger,
                config: parts.config,
                phase: parts.phase,
                audit: parts.audit,
                metrics: parts.metrics,
                transfer_metrics: parts.transfer_metrics,
                replica: parts.replica,
            }),
        }
    }

    /// The legacy store (for normalizing identifiers on the routing path).
    pub fn legacy(&self) -> &LegacyStore {
        &self.inner.legacy
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The `[migration]` section.
    pub fn config(&self) -> &MigrationConfig {
        &self.inner.config
    }

    /// The phase state.
    pub fn phase(&self) -> &PhaseState {
        &self.inner.phase
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    /// Whether a provider is configured (phases other than `observe` need one).
    pub fn has_provider(&self) -> bool {
        self.inner.provider.is_some()
    }

    /// The provider, when one is configured.
    pub fn provider(&self) -> Option<&Arc<dyn Provider>> {
        self.inner.provider.as_ref()
    }

    /// The migration metrics (for `/status`: sign-ins by outcome over the last hour).
    pub fn metrics(&self) -> &MigrationMetrics {
        &self.inner.metrics
    }

    /// Records an exit (counted and logged once, [`Exit::record`]).
    pub fn record(&self, exit: impl Into<Exit>) {
        exit.into().record(Some(&self.inner.metrics));
    }

    /// Queues the migration of the user who just signed in at legacy. Never waits: when the
    /// queue is full the work is shed (and counted); the sign-in is not affected either way.
    pub fn submit(&self, credentials: Credentials) {
        let Ok(admitted) = self.inner.admission.clone().try_acquire_owned() else {
            self.record(Outcome::QueueFull);
            return;
        };
        let engine = self.clone();
        tokio::spawn(async move {
            let _admitted = admitted;
            let Ok(_running) = engine.inner.running.clone().acquire_owned().await else {
                return;
            };
            let exit = engine.attempt(credentials).await;
            engine.record(exit);
        });
    }

    /// Runs one migration to its outcome (not recorded; [`Engine::submit`] records it).
    pub async fn migrate(&self, credentials: Credentials) -> Outcome {
        self.attempt(credentials).await.outcome
    }

    /// Runs one migration to its exit: the outcome and, when a step failed, why.
    async fn attempt(&self, credentials: Credentials) -> Exit {
        let this = &self.inner;
        let user = match this.legacy.lookup(&credentials.identifier).await {
            Ok(Lookup::Found(user)) => user,
            Ok(Lookup::NotFound) => return Outcome::UnknownUser.into(),
            Ok(Lookup::NotMigratable(reason)) => {
                tracing::debug!(reason = reason.as_str(), "legacy user not migratable");
                return Outcome::NotMigratable.into();
            }
            Err(e) => return Exit::failed(Stage::LegacyStore, &e),
        };
        if let Some(named) = &credentials.legacy_user
            && !this.legacy.names_user(named, &user)
        {
            return Outcome::IdentityMismatch.into();
        }
        let password = Password::from_slice(credentials.password.expose_secret());
        match this.verifier.verify(user.hash.clone(), password).await {
            Ok(true) => {}
            Ok(false) => return Outcome::WrongPassword.into(),
            Err(e) => return Exit::failed(Stage::Hash, &e),
        }
        let phase = this.phase.get().phase;
        if phase == Phase::Observe {
            return Outcome::WouldMigrate.into();
        }
        let Some(provider) = this.provider.clone() else {
            return Outcome::Fallback(Stage::Provider).into();
        };
        let fingerprint = this.ledger.fingerprint(user.hash.hash().as_bytes());
        let (claim, resync) = match self.claim(&user, &fingerprint).await {
            Ok(Claimed::Go(claim, resync)) => (claim, resync),
            Ok(Claimed::Done(outcome)) => return outcome.into(),
            Err(e) => return Exit::failed(Stage::Ledger, &e),
        };
        let run = Run {
            engine: self,
            provider: provider.as_ref(),
            user: &user,
            claim: &claim,
            source: Source::Proven(&credentials),
            phase,
            fingerprint: &fingerprint,
        };
        run.provision(resync).await
    }

    async fn claim(&self, user: &LegacyUser, fingerprint: &str) -> Result<Claimed, LedgerError> {
        let this = &self.inner;
        let record = this.ledger.get(&user.key).await?;
        let format = user.format.as_str();
        match record.as_ref().map(|r| r.state) {
            Some(State::Migrated) => {
                let same = record
                    .as_ref()
                    .and_then(|r| r.hash_fingerprint.as_deref())
                    .is_some_and(|stored| {
                        this.ledger
                            .fingerprint_matches(user.hash.hash().as_bytes(), stored)
                    });
                if same {
                    return Ok(Claimed::Done(Outcome::AlreadyMigrated));
                }
                // The password changed at legacy after migration: set it again.
                Ok(
                    match this
                        .ledger
                        .claim_resync(&user.key, &this.replica, fingerprint)
                        .await?
                    {
                        Some(claim) => Claimed::Go(claim, true),
                        None => Claimed::Done(Outcome::InProgress),
                    },
                )
            }
            Some(State::Conflict) => Ok(Claimed::Done(Outcome::Conflict)),
            Some(State::BlockedPolicy) => {
                // Rejected by the provider's policy: retried only once the legacy password changed.
                Ok(
                    match this
                        .ledger
                        .claim_resync(&user.key, &this.replica, fingerprint)
                        .await?
                    {
                        Some(claim) => Claimed::Go(claim, false),
                        None => Claimed::Done(Outcome::BlockedByPolicy),
                    },
                )
            }
            _ => Ok(
                match this.ledger.claim(&user.key, &this.replica, format).await? {
                    Some(claim) => Claimed::Go(claim, false),
                    None => Claimed::Done(Outcome::InProgress),
                },
            ),
        }
    }
}

/// Why a run-time settings change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The phase needs what the engine was started without (a provider, a route target); both
    /// are read at start-up only.
    #[error("{0}; [provider] and [migration.route] are read at start-up only, restart with them")]
    Unsupported(#[from] super::phase::PhaseUnsupported),
}

/// A phase the engine was not started for: the operator's to change.
impl Classified for SettingsError {
    fn blame(&self) -> crate::failure::Blame {
        crate::failure::Blame::Config
    }

    fn retry(&self) -> crate::failure::Retry {
        crate::failure::Retry::Never
    }
}

pub(super) enum Claimed {
    Go(Claim, bool),
    Done(Outcome),
}

/// Where the provider user's password comes from in a [`Run`].
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// A sign-in: the password the user just proved (`migrate::transfer`).
    Proven(&'a Credentials),
    /// The hand-off: the legacy hash, in a format the provider imports.
    Imported(&'a ImportedHash),
    /// The hand-off: no password; a change is required at the next sign-in.
    Reset,
}

impl Source<'_> {
    /// How the ledger records the password's way to the provider.
    fn method(self) -> Method {
        match self {
            Self::Proven(_) => Method::Live,
            Self::Imported(_) => Method::HandoffHash,
            Self::Reset => Method::HandoffReset,
        }
    }
}

/// One migration holding a claim: the one provisioning sequence, for sign-ins and the hand-off.
pub(super) struct Run<'a> {
    pub(super) engine: &'a Engine,
    pub(super) provider: &'a dyn Provider,
    pub(super) user: &'a LegacyUser,
    pub(super) claim: &'a Claim,
    pub(super) source: Source<'a>,
    pub(super) phase: Phase,
    pub(super) fingerprint: &'a str,
}

impl Run<'_> {
    fn audit(&self, kind: AuditKind, provider_id: Option<&str>) -> AuditEvent {
        AuditEvent::new(
            kind,
            Some(&self.user.key),
            self.phase.as_str(),
            self.engine.replica(),
        )
        .provider_user(provider_id)
    }

    /// The password the user just proved, on the live path.
    fn password(&self) -> Option<crate::provider::Password<'_>> {
        match self.source {
            Source::Proven(credentials) => Some(crate::provider::Password::from_secret_bytes(
                &credentials.password,
            )),
            Source::Imported(_) | Source::Reset => None,
        }
    }

    pub(super) async fn provision(&self, resync: bool) -> Exit {
        let fingerprint = self.fingerprint;
        let ledger = self.engine.ledger();
        let mut taken = None;
        let mut password_set = false;
        let id = match self.claim.provider_user_id.clone() {
            Some(id) => ProviderUserId(id),
            None => match self.find_or_create().await {
                Ok(Found::Existing(id, how)) => {
                    taken = Some(how);
                    id
                }
                Ok(Found::Created(id, set)) => {
                    // Only a password given to create counts (the hand-off gives none).
                    password_set = set && self.password().is_some();
                    if password_set {
                        transfer::count_password_at_create(
                            self.provider,
                            self.user.format,
                            &self.engine.inner.transfer_metrics,
                        );
                    }
                    id
                }
                Ok(Found::Stop(exit)) => return exit,
                Err(e) => return self.provider_failed(&e, None).await,
            },
        };
        if self.claim.provider_user_id.is_none()
            && let Err(e) = ledger.mark_created(self.claim, id.as_str()).await
        {
            return self.failed(Stage::Ledger, &e).await;
        }
        if !password_set && let Err(e) = self.give_password(&id).await {
            if self.provider_user_gone(&e) {
                return self.provision_again(&id).await;
            }
            return self.provider_failed(&e, Some(&id)).await;
        }
        let method = self.source.method();
        if let Err(e) = ledger
            .mark_migrated_by(self.claim, id.as_str(), fingerprint, method)
            .await
        {
            if matches!(e, LedgerError::Fenced) {
                super::stale::after_fenced_password_write(self.engine, self.claim).await;
            }
            return self.failed(Stage::Ledger, &e).await;
        }
        let audit = self.engine.audit();
        if resync {
            audit.emit(self.audit(AuditKind::PasswordResynced, Some(id.as_str())));
            return Outcome::Resynced.into();
        }
        let outcome = match taken {
            Some(Took::Recovered) => {
                audit.emit(self.audit(AuditKind::RecoveredOwnCreate, Some(id.as_str())));
                Outcome::Recovered
            }
            Some(Took::Adopted) => {
                audit.emit(self.audit(AuditKind::AdoptedExisting, Some(id.as_str())));
                Outcome::Adopted
            }
            None => Outcome::Migrated,
        };
        audit.emit(match method {
            Method::Live => self.audit(AuditKind::Migrated, Some(id.as_str())),
            _ => self
                .audit(AuditKind::HandedOff, Some(id.as_str()))
                .detail(method.as_str()),
        });
        outcome.into()
    }

    /// The password, to the provider. Live: the password the user just proved (the verified
    /// legacy hash where the provider is configured for it and takes it, `migrate::transfer`).
    /// Hand-off: the legacy hash imported as it is, or a password change required.
    async fn give_password(&self, id: &ProviderUserId) -> Result<(), ProviderError> {
        match self.source {
            Source::Proven(credentials) => {
                transfer::transfer(
                    self.provider,
                    id,
                    crate::provider::Password::from_secret_bytes(&credentials.password),
                    &self.user.hash,
                    self.user.format,
                    &self.engine.inner.transfer_metrics,
                )
                .await
            }
            Source::Imported(hash) => self.provider.import_legacy_hash(id, hash).await,
            Source::Reset => self.provider.require_password_change(id).await,
        }
    }

    /// Find-by-email first (it also finds a user created by an attempt that crashed), then
    /// create if absent. A found user is taken only as [`adoption::decide`] allows.
    async fn find_or_create(&self) -> Result<Found, ProviderError> {
        if let Some(existing) = self.provider.find_user_by_email(&self.user.email).await? {
            return Ok(self.take(existing).await);
        }
        let new_user = NewUser {
            email: self.user.email.clone(),
            given_name: self.user.given_name.clone(),
            family_name: self.user.family_name.clone(),
            legacy_id: Some(self.user.legacy_id.clone()),
        };
        match self.provider.create_user(&new_user, self.password()).await {
            Ok(created) => Ok(Found::Created(created.id, created.password_set)),
            // Created meanwhile (by another holder, or by someone else): decided as if found.
            Err(e @ ProviderError::AlreadyExists { .. }) => {
                match self.provider.find_user_by_email(&self.user.email).await? {
                    Some(existing) => Ok(self.take(existing).await),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A provider user found with the legacy user's email: recovered when dripgate provably
    /// created it for this user, else adopted or left alone as `on_existing_user` says.
    async fn take(&self, existing: ProviderUser) -> Found {
        let policy = self.engine.config().on_existing_user;
        match adoption::decide(existing, &self.user.legacy_id, policy) {
            Taking::Recovered(id) => Found::Existing(id, Took::Recovered),
            Taking::Adopted(id) => Found::Existing(id, Took::Adopted),
            Taking::Refused(id) => Found::Stop(self.conflict(&id).await),
        }
    }

    async fn conflict(&self, id: &ProviderUserId) -> Exit {
        let ledger = self.engine.ledger();
        if let Err(e) = ledger
            .mark_terminal(self.claim, State::Conflict, "existing_provider_user")
            .await
        {
            return self.failed(Stage::Ledger, &e).await;
        }
        self.engine.audit().emit(
            self.audit(AuditKind::Conflict, Some(id.as_str()))
                .reason("existing_provider_user"),
        );
        Outcome::Conflict.into()
    }

    /// A refused password is the provider's answer, not a failure: the user is blocked until
    /// the legacy password changes. Anything else is a failure of the provider stage.
    async fn provider_failed(&self, error: &ProviderError, id: Option<&ProviderUserId>) -> Exit {
        if let ProviderError::PasswordRejected { .. } = error {
            return self.blocked_by_policy(id).await;
        }
        self.failed(Stage::Provider, error).await
    }

    async fn blocked_by_policy(&self, id: Option<&ProviderUserId>) -> Exit {
        let ledger = self.engine.ledger();
        if let Err(e) = ledger
            .mark_terminal_with_fingerprint(
                self.claim,
                State::BlockedPolicy,
                "password_policy",
                self.fingerprint,
            )
            .await
        {
            return self.failed(Stage::Ledger, &e).await;
        }
        if let (true, Some(id)) = (self.engine.config().require_change_on_policy_block, id)
            && let Err(e) = self.provider.require_password_change(id).await
        {
            tracing::warn!(user = %self.user.key, error = %e, "could not require a password change");
        }
        self.engine.audit().emit(
            self.audit(
                AuditKind::PasswordBlockedByPolicy,
                id.map(ProviderUserId::as_str),
            )
            .reason("password_policy"),
        );
        Outcome::BlockedByPolicy.into()
    }

    /// The exit of a failed `stage`, from the error's classification: when the run falls back,
    /// the failure is recorded on the claim (which frees it for the next sign-in to retry) and
    /// audited; when another holder owns the user (a fenced write), it is left to them.
    async fn failed(&self, stage: Stage, error: &(dyn Classified + Sync)) -> Exit {
        let exit = Exit::failed(stage, error);
        if let Outcome::Fallback(_) = exit.outcome {
            self.fail(error.label()).await;
        }
        exit
    }

    async fn fail(&self, reason: &str) {
        let _ = self.engine.ledger().mark_failed(self.claim, reason).await;
        self.engine
            .audit()
            .emit(self.audit(AuditKind::MigrationFailed, None).reason(reason));
    }
}

enum Found {
    Existing(ProviderUserId, Took),
    Created(ProviderUserId, bool),
    Stop(Exit),
}

/// How a found provider user was taken.
#[derive(Clone, Copy)]
enum Took {
    /// dripgate's own earlier create, recovered.
    Recovered,
    /// A pre-existing user, adopted (`on_existing_user = "adopt"`).
    Adopted,
}
