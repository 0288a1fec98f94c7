//! The run-time settings (phase, canary share) shared by every replica through the ledger.
//!
//! The config file's values are the initial ones: the first replica stores them, and every
//! replica, restarted or new, applies what the ledger holds. A change (`POST /phase`, a SIGHUP
//! whose file changed) is written to the ledger first, bumping its version, then applied here;
//! the other replicas read the version every `migration.settings_poll_interval` and apply the
//! row when it moved. A ledger that cannot be read never wedges a replica: it keeps the
//! settings it has, and the failed polls are counted (`dripgate_settings_polls_total`) and
//! logged.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::watch;

use super::Engine;
use super::engine::SettingsError;
use super::phase::{Phase, RuntimeSettings, SettingsOrigin, check_phase};
use crate::audit::{Actor, AuditEvent, AuditKind};
use crate::failure::{Blame, Classified, Retry};
use crate::ledger::{LedgerError, SettingsWrite, StoredSettings};

/// Why a settings change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeRefused {
    /// The phase needs what this replica was started without.
    #[error(transparent)]
    Unsupported(#[from] SettingsError),
    /// `complete` before any hand-off run completed, without `force`.
    #[error(
        "phase complete needs a completed hand-off (`dripgate handoff`); none is recorded in \
         the ledger. Send \"force\": true to switch anyway"
    )]
    HandoffRequired,
    /// The ledger could not store (or, for `complete`, confirm) it: nothing changed anywhere.
    #[error("the ledger could not record the change, nothing changed: {0}")]
    Ledger(#[from] LedgerError),
}

impl ChangeRefused {
    /// The HTTP status `POST /phase` answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unsupported(_) | Self::HandoffRequired => 409,
            Self::Ledger(_) => 503,
        }
    }
}

/// An unsupported phase or a missing hand-off is the operator's to fix; an unreachable ledger
/// may answer later.
impl Classified for ChangeRefused {
    fn blame(&self) -> Blame {
        match self {
            Self::Unsupported(_) | Self::HandoffRequired => Blame::Config,
            Self::Ledger(e) => e.blame(),
        }
    }

    fn retry(&self) -> Retry {
        match self {
            Self::Unsupported(_) | Self::HandoffRequired => Retry::Never,
            Self::Ledger(e) => e.retry(),
        }
    }
}

/// `dripgate_settings_polls_total{result}` and `dripgate_settings_version`.
#[derive(Clone)]
pub struct SettingsMetrics {
    polls: IntCounterVec,
    version: IntGauge,
}

impl SettingsMetrics {
    /// Registers the metrics.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let polls = IntCounterVec::new(
            Opts::new(
                "dripgate_settings_polls_total",
                "Reads of the shared run-time settings from the ledger, by result (unchanged, \
                 applied, refused: a phase this replica cannot run, error: ledger unreachable).",
            ),
            &["result"],
        )?;
        let version = IntGauge::new(
            "dripgate_settings_version",
            "The ledger's run-time settings version this replica applies (0: none stored).",
        )?;
        registry.register(Box::new(polls.clone()))?;
        registry.register(Box::new(version.clone()))?;
        for result in ["unchanged", "applied", "refused", "error"] {
            polls.with_label_values(&[result]);
        }
        Ok(Self { polls, version })
    }

    fn poll(&self, result: &str) {
        self.polls.with_label_values(&[result]).inc();
    }
}

/// The ledger's `source` label for an actor's channel.
fn source_of(actor: &Actor) -> &'static str {
    match actor.via {
        "admin" => "admin_api",
        "sighup" => "config_reload",
        other => other,
    }
}

/// Who changed it, as stored: the token name and peer for the admin API.
fn changed_by(actor: &Actor) -> Option<String> {
    match (&actor.token_name, actor.peer) {
        (Some(token), Some(peer)) => Some(format!("token {token} from {peer}")),
        (Some(token), None) => Some(format!("token {token}")),
        (None, Some(peer)) => Some(format!("from {peer}")),
        (None, None) => None,
    }
}

fn origin_of(row: &StoredSettings) -> SettingsOrigin {
    SettingsOrigin {
        source: row.source.clone(),
        changed_by: row.changed_by.clone(),
        changed_at: Some(row.changed_at_ms),
        version: Some(row.version),
    }
}

fn settings_of(row: &StoredSettings) -> Result<RuntimeSettings, String> {
    let phase: Phase = row.phase.parse()?;
    Ok(RuntimeSettings {
        phase,
        canary_percent: row.canary_percent,
    })
}

impl Engine {
    /// At start-up: stores the file's settings unless the ledger holds some, and applies what
    /// the ledger holds. When the ledger cannot be read, or holds a phase this replica cannot
    /// run, the file's values stay (logged) and the poll takes over.
    pub async fn adopt_shared_settings(&self, metrics: &SettingsMetrics) {
        let file = self.phase().get();
        let initial = SettingsWrite {
            phase: file.phase.as_str(),
            canary_percent: file.canary_percent,
            source: "file",
            changed_by: None,
        };
        match self.ledger().init_settings(initial).await {
            Ok(row) => {
                if row.source != "file" || row.version != 1 || settings_of(&row) != Ok(file) {
                    tracing::info!(
                        file_phase = file.phase.as_str(),
                        ledger_phase = row.phase,
                        source = row.source,
                        version = row.version,
                        "run-time settings from the ledger (the file's are initial values only)"
                    );
                }
                self.apply_stored(&row, metrics, "start");
            }
            Err(e) => {
                metrics.poll("error");
                tracing::error!(error = %e, "cannot read the shared settings at start-up; \
                    running with the file's until the ledger answers");
            }
        }
    }

    /// One poll: reads the ledger's settings version and applies the row when it moved.
    pub async fn poll_shared_settings(&self, metrics: &SettingsMetrics, seen: &AtomicI64) {
        let version = match self.ledger().settings_version().await {
            Ok(Some(version)) => version,
            Ok(None) => {
                metrics.poll("unchanged");
                return;
            }
            Err(e) => {
                metrics.poll("error");
                tracing::warn!(error = %e, "cannot poll the shared settings; keeping the current ones");
                return;
            }
        };
        if version == seen.load(Ordering::Acquire) {
            metrics.poll("unchanged");
            return;
        }
        match self.ledger().settings().await {
            Ok(Some(row)) => {
                // A refused row is logged once, not at every poll.
                self.apply_stored(&row, metrics, "poll");
                seen.fetch_max(row.version, Ordering::AcqRel);
            }
            Ok(None) => metrics.poll("unchanged"),
            Err(e) => {
                metrics.poll("error");
                tracing::warn!(error = %e, "cannot read the shared settings; keeping the current ones");
            }
        }
    }

    /// Applies a stored row here (no audit: the replica that made the change audited it).
    /// Returns whether it was applied; a phase this replica cannot run is refused and logged.
    fn apply_stored(&self, row: &StoredSettings, metrics: &SettingsMetrics, when: &str) -> bool {
        // Already applied, or a poll that read the row just before this replica stored a newer one.
        if self
            .phase()
            .origin()
            .version
            .is_some_and(|v| v >= row.version)
        {
            metrics.poll("unchanged");
            return false;
        }
        let settings = match settings_of(row).and_then(|s| {
            check_phase(s.phase, self.has_provider(), self.config().route.is_some())
                .map(|()| s)
                .map_err(|e| e.to_string())
        }) {
            Ok(settings) => settings,
            Err(e) => {
                metrics.poll("refused");
                tracing::error!(phase = row.phase, version = row.version, error = %e,
                    "the shared settings name a phase this replica cannot run; keeping the current ones");
                return false;
            }
        };
        let old = self.phase().set_with_origin(settings, origin_of(row));
        self.metrics().set_phase(settings.phase);
        metrics.version.set(row.version);
        if when == "poll" {
            metrics.poll("applied");
        }
        if old != settings {
            tracing::info!(
                from = old.phase.as_str(),
                to = settings.phase.as_str(),
                canary_percent = settings.canary_percent,
                source = row.source,
                version = row.version,
                when,
                "migration phase applied from the ledger"
            );
        }
        true
    }

    /// Changes the settings for every replica: checked here (the phase must be runnable; the
    /// switch into `complete` needs a completed hand-off unless `force`), stored in the ledger
    /// (nothing changes when it cannot be), applied here at once and audited with `actor`. The
    /// other replicas apply it at their next poll. Returns the previous settings.
    pub async fn change_shared(
        &self,
        new: RuntimeSettings,
        actor: &Actor,
        force: bool,
        metrics: &SettingsMetrics,
    ) -> Result<RuntimeSettings, ChangeRefused> {
        check_phase(
            new.phase,
            self.has_provider(),
            self.config().route.is_some(),
        )
        .map_err(SettingsError::from)?;
        let current = self.phase().get();
        let entering_complete = new.phase == Phase::Complete && current.phase != Phase::Complete;
        let mut handoff_at = None;
        if entering_complete {
            handoff_at = match self.ledger().handoff_completed_at().await {
                Ok(at) => at,
                Err(_) if force => None,
                Err(e) => return Err(e.into()),
            };
            if handoff_at.is_none() && !force {
                return Err(ChangeRefused::HandoffRequired);
            }
        }
        let by = changed_by(actor);
        let row = self
            .ledger()
            .write_settings(SettingsWrite {
                phase: new.phase.as_str(),
                canary_percent: new.canary_percent,
                source: source_of(actor),
                changed_by: by.as_deref(),
            })
            .await?;
        self.apply_stored(&row, metrics, "change");
        let forced = entering_complete && handoff_at.is_none();
        let handoff = match (entering_complete, handoff_at) {
            (false, _) => String::new(),
            (true, Some(at)) => format!(", hand-off completed at {at}"),
            (true, None) => ", forced without a completed hand-off".to_owned(),
        };
        tracing::info!(
            from = current.phase.as_str(),
            to = new.phase.as_str(),
            canary_percent = new.canary_percent,
            source = source_of(actor),
            version = row.version,
            forced,
            "migration phase changed"
        );
        self.audit().emit(
            AuditEvent::new(
                AuditKind::PhaseChanged,
                None,
                new.phase.as_str(),
                self.replica(),
            )
            .detail(format!(
                "{} -> {}, canary {} -> {}, via {}, settings version {}{handoff}",
                current.phase.as_str(),
                new.phase.as_str(),
                current.canary_percent,
                new.canary_percent,
                actor.via,
                row.version,
            ))
            .actor(actor),
        );
        Ok(current)
    }
}

/// Polls the shared settings every `interval` until `stop` fires.
pub fn spawn_settings_poll(
    engine: Engine,
    metrics: SettingsMetrics,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let seen = AtomicI64::new(engine.phase().origin().version.unwrap_or(0));
    tokio::spawn(async move {
        let mut every = tokio::time::interval(interval.max(Duration::from_millis(50)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = every.tick() => {}
            }
            // The version this replica applies may have moved through its own change.
            if let Some(version) = engine.phase().origin().version {
                seen.fetch_max(version, Ordering::AcqRel);
            }
            engine.poll_shared_settings(&metrics, &seen).await;
        }
    });
}
