//! Every way a sign-in can end, as one enum. It names the `dripgate_signins_total{outcome}`
//! label, the log line's outcome field and what tests assert on. Every exit is recorded in one
//! place, [`Exit::record`]: one count and one log line.

use super::metrics::MigrationMetrics;
use crate::failure::{Blame, Classified, Retry};

/// The stage of dripgate's own work that failed, when a sign-in falls back to plain legacy:
/// the step the engine was at, where [`Blame`] says whose fault it was (a provider that
/// rejects dripgate's credentials is a `provider` stage failure to blame on the config).
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
    /// Every stage, for pre-registering metric series.
    pub const ALL: [Stage; 4] = [Self::LegacyStore, Self::Hash, Self::Provider, Self::Ledger];

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
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
    /// The body is over `signin.max_body_bytes`: forwarded to legacy untouched, unread.
    TooLarge,
    /// The client sent its body too slowly (`signin.body_timeout`): answered 408.
    BodyTimeout,
    /// The client's body failed (a reset, malformed chunking): answered 400.
    BodyError,
    /// The sign-in body budget stayed full for `signin.buffer_wait`: answered 503.
    BudgetFull,
    /// Legacy's success response did not name the user (`legacy_user` configured): nothing
    /// was verified.
    IdentityUnproven,
    /// Legacy's success response named another user than the one dripgate read: nothing was
    /// migrated.
    IdentityMismatch,
    /// The migration queue was full: the sign-in was served by legacy, the work skipped.
    QueueFull,
    /// The hash verification pool was full: the sign-in was served by legacy, the work skipped.
    HashPoolFull,
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
    /// A provider user that existed before the migration was adopted and given the password
    /// (`on_existing_user = "adopt"`).
    Adopted,
    /// dripgate's own earlier create, whose answer was lost, was found (its legacy id matches)
    /// and given the password.
    Recovered,
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
    /// Every variant once (`Fallback` with one stage: its stages are [`Stage::ALL`], a
    /// label of their own). [`Outcome::LABELS`] is derived from it.
    pub const ALL: [Outcome; 26] = [
        Self::Routed,
        Self::Denied,
        Self::LegacyRejected,
        Self::Unread,
        Self::Refused,
        Self::TooLarge,
        Self::BodyTimeout,
        Self::BodyError,
        Self::BudgetFull,
        Self::IdentityUnproven,
        Self::IdentityMismatch,
        Self::QueueFull,
        Self::HashPoolFull,
        Self::UnknownUser,
        Self::NotMigratable,
        Self::WrongPassword,
        Self::WouldMigrate,
        Self::AlreadyMigrated,
        Self::InProgress,
        Self::Migrated,
        Self::Adopted,
        Self::Recovered,
        Self::Resynced,
        Self::Conflict,
        Self::BlockedByPolicy,
        Self::Fallback(Stage::Provider),
    ];

    /// Every outcome label, for pre-registering metric series.
    pub const LABELS: [&'static str; Self::ALL.len()] = {
        let mut labels = [""; Self::ALL.len()];
        let mut i = 0;
        while i < labels.len() {
            labels[i] = Self::ALL[i].as_str();
            i += 1;
        }
        labels
    };

    /// The `outcome` metric label (a bounded set).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Routed => "routed",
            Self::Denied => "denied",
            Self::LegacyRejected => "legacy_rejected",
            Self::Unread => "unread",
            Self::Refused => "refused",
            Self::TooLarge => "too_large",
            Self::BodyTimeout => "body_timeout",
            Self::BodyError => "body_error",
            Self::BudgetFull => "budget_full",
            Self::IdentityUnproven => "identity_unproven",
            Self::IdentityMismatch => "identity_mismatch",
            Self::QueueFull => "queue_full",
            Self::HashPoolFull => "hash_pool_full",
            Self::UnknownUser => "unknown_user",
            Self::NotMigratable => "not_migratable",
            Self::WrongPassword => "wrong_password",
            Self::WouldMigrate => "would_migrate",
            Self::AlreadyMigrated => "already_migrated",
            Self::InProgress => "in_progress",
            Self::Migrated => "migrated",
            Self::Adopted => "adopted",
            Self::Recovered => "recovered",
            Self::Resynced => "resynced",
            Self::Conflict => "conflict",
            Self::BlockedByPolicy => "blocked_by_policy",
            Self::Fallback(_) => "fallback",
        }
    }

    /// The exit of a migration whose `stage` failed, from the failure's classification: work
    /// another holder owns is in progress, a full hash pool sheds the work, anything else falls
    /// back to plain legacy (and the next sign-in retries).
    pub fn on_failure(stage: Stage, blame: Blame) -> Self {
        match (stage, blame) {
            (_, Blame::Contention) => Self::InProgress,
            (Stage::Hash, Blame::Capacity) => Self::HashPoolFull,
            _ => Self::Fallback(stage),
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
    pub const MIGRATION_ATTEMPTS: [Outcome; 8] = [
        Self::Migrated,
        Self::Adopted,
        Self::Recovered,
        Self::Resynced,
        Self::Conflict,
        Self::BlockedByPolicy,
        Self::Fallback(Stage::Provider),
        Self::Fallback(Stage::Ledger),
    ];

    /// How loud its log line is: failures of dripgate's own and work turned away warn,
    /// changes of a user's migration state inform, the ordinary rest is debug.
    fn level(self) -> tracing::Level {
        match self {
            Self::Fallback(_)
            | Self::Denied
            | Self::IdentityMismatch
            | Self::QueueFull
            | Self::HashPoolFull
            | Self::BudgetFull => tracing::Level::WARN,
            Self::Migrated
            | Self::Adopted
            | Self::Recovered
            | Self::Resynced
            | Self::Conflict
            | Self::BlockedByPolicy
            | Self::Refused => tracing::Level::INFO,
            _ => tracing::Level::DEBUG,
        }
    }
}

/// The failure behind an outcome, as its log line shows it. Error messages never carry a
/// password or a hash (each error module guarantees it).
#[derive(Debug, Clone)]
pub struct Cause {
    /// Who is to blame.
    pub blame: Blame,
    /// Whether trying again may help.
    pub retry: Retry,
    /// The failure's bounded label.
    pub label: &'static str,
    /// The error's message.
    pub message: String,
}

impl Cause {
    /// The classification and message of `error`.
    pub fn of(error: &dyn Classified) -> Self {
        Self {
            blame: error.blame(),
            retry: error.retry(),
            label: error.label(),
            message: error.to_string(),
        }
    }
}

/// One log line for `$exit` at `$level` (a constant, as `tracing`'s callsites need).
macro_rules! log {
    ($level:expr, $exit:expr) => {{
        let outcome = $exit.outcome.as_str();
        let stage = match $exit.outcome {
            Outcome::Fallback(stage) => Some(stage.as_str()),
            _ => None,
        };
        match &$exit.cause {
            Some(c) => tracing::event!(
                $level,
                outcome,
                stage,
                blame = c.blame.as_str(),
                retry = c.retry.as_str(),
                kind = c.label,
                error = %c.message,
                "sign-in ended"
            ),
            None => tracing::event!($level, outcome, stage, "sign-in ended"),
        }
    }};
}

/// How a sign-in ended, and what failed when something did.
#[derive(Debug, Clone)]
pub struct Exit {
    /// The outcome.
    pub outcome: Outcome,
    /// The failure behind it, if any.
    pub cause: Option<Cause>,
}

impl Exit {
    /// An exit with `error` behind `outcome`.
    pub fn with(outcome: Outcome, error: &dyn Classified) -> Self {
        Self {
            outcome,
            cause: Some(Cause::of(error)),
        }
    }

    /// The exit of a migration whose `stage` failed with `error` ([`Outcome::on_failure`]).
    pub fn failed(stage: Stage, error: &dyn Classified) -> Self {
        Self::with(Outcome::on_failure(stage, error.blame()), error)
    }

    /// The one place an exit is recorded: counted in `metrics` (when migration is configured)
    /// and written as one log line with an `outcome` field. No user key, password or hash:
    /// the audit log names the user of a migration that failed.
    pub fn record(&self, metrics: Option<&MigrationMetrics>) {
        if let Some(metrics) = metrics {
            metrics.record(self.outcome);
        }
        match self.outcome.level() {
            tracing::Level::WARN => log!(tracing::Level::WARN, self),
            tracing::Level::INFO => log!(tracing::Level::INFO, self),
            _ => log!(tracing::Level::DEBUG, self),
        }
    }
}

impl From<Outcome> for Exit {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            cause: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// A position per variant. The `match` is exhaustive: a new variant does not compile
    /// until it has one, and then `all_lists_every_variant` fails until `ALL` holds it.
    fn position(outcome: Outcome) -> usize {
        match outcome {
            Outcome::Routed => 0,
            Outcome::Denied => 1,
            Outcome::LegacyRejected => 2,
            Outcome::Unread => 3,
            Outcome::Refused => 4,
            Outcome::TooLarge => 5,
            Outcome::BodyTimeout => 6,
            Outcome::BodyError => 7,
            Outcome::BudgetFull => 8,
            Outcome::IdentityUnproven => 9,
            Outcome::IdentityMismatch => 10,
            Outcome::QueueFull => 11,
            Outcome::HashPoolFull => 12,
            Outcome::UnknownUser => 13,
            Outcome::NotMigratable => 14,
            Outcome::WrongPassword => 15,
            Outcome::WouldMigrate => 16,
            Outcome::AlreadyMigrated => 17,
            Outcome::InProgress => 18,
            Outcome::Migrated => 19,
            Outcome::Adopted => 20,
            Outcome::Recovered => 21,
            Outcome::Resynced => 22,
            Outcome::Conflict => 23,
            Outcome::BlockedByPolicy => 24,
            Outcome::Fallback(_) => 25,
        }
    }

    const VARIANTS: usize = 26;

    #[test]
    fn all_lists_every_variant_once() {
        let mut seen = [0u8; VARIANTS];
        for outcome in Outcome::ALL {
            seen[position(outcome)] += 1;
        }
        assert_eq!(
            seen, [1; VARIANTS],
            "each variant exactly once in Outcome::ALL"
        );
    }

    #[test]
    fn labels_are_unique_and_follow_all() {
        let mut labels = Outcome::LABELS.to_vec();
        for (label, outcome) in labels.iter().zip(Outcome::ALL) {
            assert_eq!(*label, outcome.as_str());
        }
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Outcome::ALL.len(), "labels are unique");
        assert!(!Outcome::LABELS.contains(&"shed"), "shed is split in two");
    }

    #[test]
    fn stages_and_migration_results_are_labelled() {
        let stages: Vec<_> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(stages, ["legacy_store", "hash", "provider", "ledger"]);
        for stage in Stage::ALL {
            assert_eq!(Outcome::Fallback(stage).as_str(), "fallback");
        }
        for outcome in Outcome::MIGRATION_ATTEMPTS {
            assert!(outcome.migration_result().is_some());
        }
        assert_eq!(Outcome::QueueFull.migration_result(), None);
    }

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_exit_is_counted_and_logged_once() {
        let registry = prometheus::Registry::new();
        let metrics = MigrationMetrics::register(&registry).unwrap();
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let fenced = crate::ledger::LedgerError::Fenced;
            Exit::failed(Stage::Ledger, &fenced).record(Some(&metrics));
            Exit::failed(Stage::Ledger, &crate::ledger::LedgerError::Timeout)
                .record(Some(&metrics));
            Exit::from(Outcome::QueueFull).record(Some(&metrics));
            Exit::from(Outcome::Routed).record(None);
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let logged: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let field = |i: usize, name: &str| logged[i]["fields"][name].as_str().map(str::to_owned);
        assert_eq!(logged.len(), 4, "one line per exit: {text}");
        assert_eq!(field(0, "outcome").as_deref(), Some("in_progress"));
        assert_eq!(field(0, "blame").as_deref(), Some("contention"));
        assert_eq!(field(1, "outcome").as_deref(), Some("fallback"));
        assert_eq!(field(1, "stage").as_deref(), Some("ledger"));
        assert_eq!(field(1, "retry").as_deref(), Some("later"));
        assert_eq!(field(1, "kind").as_deref(), Some("timeout"));
        assert_eq!(logged[1]["level"], "WARN");
        assert_eq!(field(2, "outcome").as_deref(), Some("queue_full"));
        assert_eq!(field(3, "outcome").as_deref(), Some("routed"));
        assert_eq!(logged[3]["level"], "DEBUG");

        let count = |name: &str, label: &str, value: &str| -> u64 {
            let families = registry.gather();
            let family = families.iter().find(|f| f.name() == name).unwrap();
            family
                .get_metric()
                .iter()
                .find(|m| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == label && l.value() == value)
                })
                .map_or(0, |m| m.get_counter().get_value() as u64)
        };
        assert_eq!(count("dripgate_signins_total", "outcome", "in_progress"), 1);
        assert_eq!(count("dripgate_signins_total", "outcome", "fallback"), 1);
        assert_eq!(count("dripgate_signins_total", "outcome", "queue_full"), 1);
        assert_eq!(
            count("dripgate_signins_total", "outcome", "hash_pool_full"),
            0
        );
        assert_eq!(count("dripgate_fallbacks_total", "stage", "ledger"), 1);
        assert_eq!(
            count("dripgate_migrations_total", "result", "ledger_failed"),
            1
        );
    }

    #[test]
    fn failures_map_to_outcomes_by_blame() {
        assert_eq!(
            Outcome::on_failure(Stage::Ledger, Blame::Contention),
            Outcome::InProgress
        );
        assert_eq!(
            Outcome::on_failure(Stage::Hash, Blame::Capacity),
            Outcome::HashPoolFull
        );
        for blame in Blame::ALL {
            if blame != Blame::Contention {
                assert_eq!(
                    Outcome::on_failure(Stage::Provider, blame),
                    Outcome::Fallback(Stage::Provider)
                );
            }
        }
        assert_eq!(
            Outcome::on_failure(Stage::LegacyStore, Blame::LegacyStore),
            Outcome::Fallback(Stage::LegacyStore)
        );
    }
}
