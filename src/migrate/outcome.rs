//! Every way a sign-in can end, as one enum. It names the `dripgate_signins_total{outcome}`
//! label, the log line's outcome field and what tests assert on.

/// The stage of dripgate's own work that failed, when a sign-in falls back to plain legacy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The legacy hash store.
    LegacyStore,
    /// Hash verification.
    Hash,
    /// The identity provider.
    Provider,
    /// The migration ledger.
    Ledger,
}

impl Stage {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LegacyStore => "legacy_store",
            Self::Hash => "hash",
            Self::Provider => "provider",
            Self::Ledger => "ledger",
        }
    }
}

/// How one sign-in through dripgate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A migrated user's sign-in was sent to the new provider.
    Routed,
    /// `route` phase, ledger unreachable, `cache_then_deny`: refused with 503.
    Denied,
    /// Legacy's answer matched the failure signature: nothing was verified.
    LegacyRejected,
    /// The credentials could not be read unambiguously (or there were none): forwarded to
    /// legacy, never verified or migrated.
    Unread,
    /// `route` phase: a sign-in the legacy app could read differently was refused (400/413).
    Refused,
    /// Legacy's success response did not name the user (`legacy_user` configured): nothing
    /// was verified.
    IdentityUnproven,
    /// Legacy's success response named another user than the one dripgate read: nothing was
    /// migrated.
    IdentityMismatch,
    /// The migration queue was full: the sign-in was served by legacy, the work skipped.
    Shed,
    /// No such user in the legacy store.
    UnknownUser,
    /// The user's legacy row cannot be migrated (no email, unknown hash format, …).
    NotMigratable,
    /// The password did not verify against the legacy hash.
    WrongPassword,
    /// `observe` phase: the user would have been migrated.
    WouldMigrate,
    /// Already migrated with this password: nothing to do.
    AlreadyMigrated,
    /// Another sign-in (here or on another replica) holds the user's migration lease.
    InProgress,
    /// Created at the provider and given the password.
    Migrated,
    /// An existing provider user was adopted and given the password.
    Adopted,
    /// The password changed at legacy and was set again at the provider.
    Resynced,
    /// An existing provider user was left alone (`on_existing_user = "skip"`).
    Conflict,
    /// The provider's password policy rejected the password.
    BlockedByPolicy,
    /// dripgate's own work failed at this stage; the legacy sign-in was untouched.
    Fallback(Stage),
}

impl Outcome {
    /// The `outcome` metric label (a bounded set).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Routed => "routed",
            Self::Denied => "denied",
            Self::LegacyRejected => "legacy_rejected",
            Self::Unread => "unread",
            Self::Refused => "refused",
            Self::IdentityUnproven => "identity_unproven",
            Self::IdentityMismatch => "identity_mismatch",
            Self::Shed => "shed",
            Self::UnknownUser => "unknown_user",
            Self::NotMigratable => "not_migratable",
            Self::WrongPassword => "wrong_password",
            Self::WouldMigrate => "would_migrate",
            Self::AlreadyMigrated => "already_migrated",
            Self::InProgress => "in_progress",
            Self::Migrated => "migrated",
            Self::Adopted => "adopted",
            Self::Resynced => "resynced",
            Self::Conflict => "conflict",
            Self::BlockedByPolicy => "blocked_by_policy",
            Self::Fallback(_) => "fallback",
        }
    }

    /// The `result` label of `dripgate_migrations_total` for outcomes of a migration attempt
    /// that got as far as the provider (or failed there or at the ledger); `None` for the rest.
    pub fn migration_result(self) -> Option<&'static str> {
        match self {
            Self::Fallback(Stage::Provider) => Some("provider_failed"),
            Self::Fallback(Stage::Ledger) => Some("ledger_failed"),
            _ if Self::MIGRATION_ATTEMPTS.contains(&self) => Some(self.as_str()),
            _ => None,
        }
    }

    /// Every outcome with a `dripgate_migrations_total` result label.
    pub const MIGRATION_ATTEMPTS: [Outcome; 7] = [
        Self::Migrated,
        Self::Adopted,
        Self::Resynced,
        Self::Conflict,
        Self::BlockedByPolicy,
        Self::Fallback(Stage::Provider),
        Self::Fallback(Stage::Ledger),
    ];

    /// Every outcome label, for pre-registering metric series.
    pub const LABELS: [&'static str; 20] = [
        "routed",
        "denied",
        "legacy_rejected",
        "unread",
        "refused",
        "identity_unproven",
        "identity_mismatch",
        "shed",
        "unknown_user",
        "not_migratable",
        "wrong_password",
        "would_migrate",
        "already_migrated",
        "in_progress",
        "migrated",
        "adopted",
        "resynced",
        "conflict",
        "blocked_by_policy",
        "fallback",
    ];
}
