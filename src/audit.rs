//! Audit events: one JSON object per line, to stdout or a file, separate from the logs.
//!
//! Events carry the user key, provider user id where known, phase, replica and time; never a
//! password or a hash. Lines are written by a dedicated thread, so emitting never blocks the
//! async workers; if the writer falls behind by more than the queue bound, events are dropped
//! and counted.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::SystemTime;

use prometheus::{IntCounter, Registry};
use serde::{Deserialize, Serialize};

/// Where audit lines go.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// A file to append to; stdout when absent.
    pub file: Option<PathBuf>,
}

/// The audit event names (a fixed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AuditKind {
    /// A user was created (or recovered, or adopted) at the provider and given the password.
    #[serde(rename = "user.migrated")]
    Migrated,
    /// A migration attempt failed; the next sign-in retries.
    #[serde(rename = "user.migration_failed")]
    MigrationFailed,
    /// A provider user that existed before the migration (not created by dripgate) was
    /// linked and given the password (`on_existing_user = "adopt"` only).
    #[serde(rename = "user.adopted_existing")]
    AdoptedExisting,
    /// A provider user dripgate itself created for this legacy user (its stored legacy id
    /// matches) in an attempt whose answer was lost, found again and given the password.
    #[serde(rename = "user.recovered_own_create")]
    RecoveredOwnCreate,
    /// An existing provider user was left alone (`on_existing_user = "skip"`).
    #[serde(rename = "user.conflict")]
    Conflict,
    /// The password changed at legacy after migration and was set again at the provider.
    #[serde(rename = "user.password_resynced")]
    PasswordResynced,
    /// The provider's password policy rejected the password.
    #[serde(rename = "user.password_blocked_by_policy")]
    PasswordBlockedByPolicy,
    /// A migrated user's sign-in was sent to the new provider.
    #[serde(rename = "user.routed_to_provider")]
    RoutedToProvider,
    /// `dripgate handoff` moved a user who never signed in (detail: `handoff_hash` or
    /// `handoff_reset`).
    #[serde(rename = "user.handed_off")]
    HandedOff,
    /// The phase or canary share changed.
    #[serde(rename = "phase.changed")]
    PhaseChanged,
    /// An operator reset a user's ledger row to "not migrated" (`dripgate ledger forget`).
    #[serde(rename = "user.forgotten")]
    UserForgotten,
    /// The provider answered "not found" for a migrated user's recorded id; the user is
    /// provisioned again.
    #[serde(rename = "user.provider_user_gone")]
    ProviderUserGone,
    /// A user not yet migrated asked for a password reset and was created at the provider
    /// for the provider's reset page (the reason says with the legacy hash or without a
    /// password).
    #[serde(rename = "user.provisioned_for_reset")]
    ProvisionedForReset,
}

/// One audit line.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// What happened.
    pub event: AuditKind,
    /// The normalized legacy user key, when the event is about a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The provider's user id, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_user_id: Option<String>,
    /// A reason from a bounded set, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Free detail from a bounded set (e.g. the new phase).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Who asked for it, for operator actions (phase changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// The phase when it happened.
    pub phase: String,
    /// This replica's id.
    pub replica: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
}

impl AuditEvent {
    /// An event about `user` (or none) at `phase` on `replica`, stamped now.
    pub fn new(event: AuditKind, user: Option<&str>, phase: &str, replica: &str) -> Self {
        Self {
            event,
            user: user.map(str::to_owned),
            provider_user_id: None,
            reason: None,
            detail: None,
            actor: None,
            phase: phase.to_owned(),
            replica: replica.to_owned(),
            time_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// Sets the provider user id.
    pub fn provider_user(mut self, id: Option<&str>) -> Self {
        self.provider_user_id = id.map(str::to_owned);
        self
    }

    /// Sets the reason.
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets who asked for it.
    pub fn actor(mut self, actor: &Actor) -> Self {
        self.actor = Some(actor.clone());
        self
    }
}

/// Who asked for an operator action: the channel, and for the admin API the peer address and
/// the name of the token it presented (`none` when no token is configured). Never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `admin` (the admin API) or `sighup` (a config reload).
    pub via: &'static str,
    /// The admin client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<std::net::SocketAddr>,
    /// The operator who ran a command (`--operator`, else the login name), for `cli`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// `admin.token_name` when the token was presented, `none` without a configured token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
}

impl Actor {
    /// A config reload on SIGHUP.
    pub fn sighup() -> Self {
        Self {
            via: "sighup",
            peer: None,
            operator: None,
            token_name: None,
        }
    }

    /// An operator running a `dripgate` command.
    pub fn cli(operator: &str) -> Self {
        Self {
            via: "cli",
            peer: None,
            operator: Some(operator.to_owned()),
            token_name: None,
        }
    }

    /// An admin API caller at `peer`, authenticated as `token_name`.
    pub fn admin(peer: std::net::SocketAddr, token_name: &str) -> Self {
        Self {
            via: "admin",
            peer: Some(peer),
            operator: None,
            token_name: Some(token_name.to_owned()),
        }
    }
}

/// Why the audit log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The audit file could not be opened for appending.
    #[error("cannot open audit file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The dropped-events counter could not be registered.
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl crate::failure::Classified for AuditError {
    fn blame(&self) -> crate::failure::Blame {
        match self {
            Self::Open { .. } => crate::failure::Blame::Config,
            Self::Metrics(_) => crate::failure::Blame::Internal,
        }
    }

    fn retry(&self) -> crate::failure::Retry {
        crate::failure::Retry::Never
    }
}

/// Sends audit events to the writer thread.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<AuditEvent>,
    dropped: IntCounter,
}

/// Events queued for the writer before new ones are dropped.
const QUEUE: usize = 10_000;

impl AuditLog {
    /// Opens the sink and starts its writer thread.
    pub fn open(config: &AuditConfig, registry: &Registry) -> Result<Self, AuditError> {
        let sink: Box<dyn Write + Send> = match &config.file {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| AuditError::Open {
                        path: path.clone(),
                        source,
                    })?,
            ),
            None => Box::new(std::io::stdout()),
        };
        Ok(Self::with_writer(sink, registry)?)
    }

    /// An audit log writing to `sink` (tests pass a buffer).
    pub fn with_writer(
        mut sink: Box<dyn Write + Send>,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let dropped = IntCounter::new(
            "dripgate_audit_events_dropped_total",
            "Audit events dropped because the writer fell behind or could not write (disk full).",
        )?;
        registry.register(Box::new(dropped.clone()))?;
        let (tx, rx) = sync_channel::<AuditEvent>(QUEUE);
        let lost = dropped.clone();
        std::thread::Builder::new()
            .name("dripgate-audit".to_owned())
            .spawn(move || {
                let mut failing = false;
                for event in rx {
                    let Ok(line) = serde_json::to_string(&event) else {
                        continue;
                    };
                    match writeln!(sink, "{line}").and_then(|()| sink.flush()) {
                        Ok(()) => failing = false,
                        Err(e) => {
                            lost.inc();
                            // Once per run of failures, not per event.
                            if !failing {
                                tracing::error!(error = %e, "audit events cannot be written; counting them as dropped");
                            }
                            failing = true;
                        }
                    }
                }
            })
            .ok();
        Ok(Self { tx, dropped })
    }

    /// Writes one event to the configured sink at once and returns when it is written, for
    /// one-shot commands that exit right after (the writer thread of [`AuditLog::open`] could
    /// be cut off by the exit).
    pub fn write_one(config: &AuditConfig, event: &AuditEvent) -> Result<(), AuditError> {
        let line = serde_json::to_string(event).unwrap_or_default();
        let written = match &config.file {
            Some(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}").and_then(|()| f.flush())),
            None => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}").and_then(|()| out.flush())
            }
        };
        written.map_err(|source| AuditError::Open {
            path: config.file.clone().unwrap_or_else(|| PathBuf::from("-")),
            source,
        })
    }

    /// Queues `event`; never blocks.
    pub fn emit(&self, event: AuditEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }
}
