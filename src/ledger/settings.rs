//! The run-time migration settings shared by every replica (schema version 5): one row holding
//! the phase and canary share, where the last change came from and when, and a version that
//! every change bumps, so a replica polls one number and reads the row only when it moved. And
//! the marker of a completed hand-off, which the switch to phase `complete` requires.
//!
//! The ledger stores the phase as text: it does not know the migration's types (`migrate`
//! parses and checks it). No user, password or hash is ever part of it.

use super::{Backend, Ledger, LedgerError};

/// Longest `source` or `changed_by` text stored (an actor's token name and peer address).
pub const MAX_SETTINGS_TEXT: usize = 256;

/// The stored run-time settings and their provenance.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredSettings {
    /// Bumped by every change (1 for the first value stored).
    pub version: i64,
    /// The phase's name (`observe`, `migrate`, `route`, `complete`).
    pub phase: String,
    /// The canary share, 0–100.
    pub canary_percent: f64,
    /// Where the value came from: `file`, `admin_api`, `config_reload`.
    pub source: String,
    /// Who changed it (for the admin API the token name and peer), when known.
    pub changed_by: Option<String>,
    /// When it was stored, by the ledger's clock (ms since the Unix epoch).
    #[sqlx(rename = "changed_at")]
    pub changed_at_ms: i64,
}

/// A settings value to store.
#[derive(Debug, Clone, Copy)]
pub struct SettingsWrite<'a> {
    /// The phase's name.
    pub phase: &'a str,
    /// The canary share.
    pub canary_percent: f64,
    /// Where it comes from (a bounded label).
    pub source: &'a str,
    /// Who asks for it.
    pub changed_by: Option<&'a str>,
}

impl SettingsWrite<'_> {
    fn check(&self) -> Result<(), LedgerError> {
        let long = |s: &str| s.len() > MAX_SETTINGS_TEXT;
        if long(self.phase) || long(self.source) || self.changed_by.is_some_and(long) {
            return Err(LedgerError::Invalid("settings text longer than 256 bytes"));
        }
        if !(0.0..=100.0).contains(&self.canary_percent) {
            return Err(LedgerError::Invalid("canary_percent outside 0..=100"));
        }
        Ok(())
    }
}

impl Ledger {
    /// Stores `initial` unless settings are stored already (the first replica's file values),
    /// and returns what is stored: the ledger's value wins over every later file.
    pub async fn init_settings(
        &self,
        initial: SettingsWrite<'_>,
    ) -> Result<StoredSettings, LedgerError> {
        initial.check()?;
        self.run("init_settings", async {
            let row: StoredSettings = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query(q::SETTINGS_INIT)
                    .bind(initial.phase)
                    .bind(initial.canary_percent)
                    .bind(initial.source)
                    .bind(initial.changed_by)
                    .execute(p)
                    .await?;
                sqlx::query_as(q::SETTINGS_GET).fetch_one(p).await
            })?;
            Ok(row)
        })
        .await
    }

    /// Stores a change, bumping the version; returns the stored row.
    pub async fn write_settings(
        &self,
        change: SettingsWrite<'_>,
    ) -> Result<StoredSettings, LedgerError> {
        change.check()?;
        self.run("write_settings", async {
            let row: StoredSettings = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_as(q::SETTINGS_WRITE)
                    .bind(change.phase)
                    .bind(change.canary_percent)
                    .bind(change.source)
                    .bind(change.changed_by)
                    .fetch_one(p)
                    .await
            })?;
            Ok(row)
        })
        .await
    }

    /// The stored settings, if any were stored.
    pub async fn settings(&self) -> Result<Option<StoredSettings>, LedgerError> {
        self.run("settings", async {
            let row: Option<StoredSettings> = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_as(q::SETTINGS_GET).fetch_optional(p).await
            })?;
            Ok(row)
        })
        .await
    }

    /// The stored settings' version (`None` before any were stored): one indexed read of one
    /// number, what every replica polls.
    pub async fn settings_version(&self) -> Result<Option<i64>, LedgerError> {
        self.run("settings_version", async {
            let version: Option<i64> = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_scalar(q::SETTINGS_VERSION)
                    .fetch_optional(p)
                    .await
            })?;
            Ok(version)
        })
        .await
    }

    /// Records that the hand-off run `run_id` completed; returns the time stamped (the
    /// ledger's clock). The latest run replaces an earlier one.
    pub async fn record_handoff_completed(&self, run_id: &str) -> Result<i64, LedgerError> {
        if run_id.is_empty() || run_id.len() > MAX_SETTINGS_TEXT {
            return Err(LedgerError::Invalid("hand-off run id empty or too long"));
        }
        self.run("record_handoff_completed", async {
            let at: i64 = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_scalar(q::HANDOFF_RECORD)
                    .bind(run_id)
                    .fetch_one(p)
                    .await
            })?;
            Ok(at)
        })
        .await
    }

    /// When the latest hand-off run completed (ms since the Unix epoch), if one did.
    pub async fn handoff_completed_at(&self) -> Result<Option<i64>, LedgerError> {
        self.run("handoff_completed_at", async {
            let at: Option<i64> = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_scalar(q::HANDOFF_GET).fetch_optional(p).await
            })?;
            Ok(at)
        })
        .await
    }
}
