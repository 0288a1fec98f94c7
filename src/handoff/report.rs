//! What a hand-off did: one JSON line per selected user (key, legacy id, format, action,
//! result, provider id, error label; never a hash or a password), the run's counts, and its
//! metrics.

use std::collections::BTreeMap;
use std::io::Write;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::Serialize;

use super::policy::Policy;

/// How one selected user's hand-off ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserResult {
    /// Created (or resumed) at the provider with the legacy hash or a required change.
    HandedOff,
    /// A provider user with the email existed and was taken over (the live rule).
    Adopted,
    /// A sign-in migrated the user meanwhile (the live path won the claim).
    AlreadyMigrated,
    /// Someone (a sign-in, another run) still held the user's lease when the run gave up
    /// waiting; the next run takes the user.
    InProgress,
    /// A provider user existed and `on_existing_user = "skip"` left it.
    Conflict,
    /// The provider rejected the imported hash by policy.
    BlockedByPolicy,
    /// The policy (or the fallback) is `skip`.
    Skipped,
    /// The store holds no migratable record for the key (e.g. a duplicate key).
    NotMigratable,
    /// A step failed (recorded on the user's claim); the next run retries.
    Failed,
    /// Dry run: would be handed off with this action.
    WouldHandOff,
    /// An earlier run handed the user off (listed again, so the latest run's report covers
    /// every user the hand-off moved).
    AlreadyHandedOff,
}

impl UserResult {
    /// Every result, for pre-registering metric series.
    pub const ALL: [UserResult; 11] = [
        Self::HandedOff,
        Self::Adopted,
        Self::AlreadyMigrated,
        Self::InProgress,
        Self::Conflict,
        Self::BlockedByPolicy,
        Self::Skipped,
        Self::NotMigratable,
        Self::Failed,
        Self::WouldHandOff,
        Self::AlreadyHandedOff,
    ];

    /// The label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HandedOff => "handed_off",
            Self::Adopted => "adopted",
            Self::AlreadyMigrated => "already_migrated",
            Self::InProgress => "in_progress",
            Self::Conflict => "conflict",
            Self::BlockedByPolicy => "blocked_by_policy",
            Self::Skipped => "skipped",
            Self::NotMigratable => "not_migratable",
            Self::Failed => "failed",
            Self::WouldHandOff => "would_hand_off",
            Self::AlreadyHandedOff => "already_handed_off",
        }
    }

    /// Whether the user needs no further run (everything but `in_progress` and `failed`).
    pub const fn is_final(self) -> bool {
        !matches!(self, Self::InProgress | Self::Failed)
    }
}

/// One line of the JSONL report.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// The run that wrote it.
    pub run_id: &'a str,
    /// The user's key in dripgate (normalized email or login).
    pub key: &'a str,
    /// The legacy store's id of the user.
    pub legacy_id: &'a str,
    /// The legacy hash format (a label).
    pub format: &'a str,
    /// `legacy_hash`, `reset` or `skip`.
    pub action: Policy,
    /// Whether `legacy_hash` was configured but the provider does not import this hash.
    pub fallback: bool,
    /// How it ended.
    pub result: UserResult,
    /// The user's id at the provider, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_user_id: Option<&'a str>,
    /// The failure's label (a bounded name), for `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// The JSONL report file (appended to, so a resumed run adds to the killed run's lines).
/// Each line is written with one `write` on a file opened for appending, so a killed run
/// leaves whole lines only.
pub struct Report {
    out: Option<std::fs::File>,
}

impl Report {
    /// Opens `path` for appending, or writes nowhere.
    pub fn open(path: Option<&std::path::Path>) -> std::io::Result<Self> {
        let out = match path {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => None,
        };
        Ok(Self { out })
    }

    /// Writes one line.
    pub fn write(&mut self, line: &Line<'_>) -> std::io::Result<()> {
        if let Some(out) = &mut self.out {
            let mut text = serde_json::to_vec(line)?;
            text.push(b'\n');
            out.write_all(&text)?;
        }
        Ok(())
    }
}

/// The run's counts: users read, excluded (and why), and per format × action × result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Rows read from the legacy store.
    pub scanned: u64,
    /// Rows that cannot be migrated, per reason (not selected).
    pub not_migratable: BTreeMap<String, u64>,
    /// Users outside the filters.
    pub filtered: u64,
    /// Users whose creation time is unknown while `--created-before` is set (not selected).
    pub created_unknown: u64,
    /// Users already migrated when the run reached them (not selected).
    pub already_migrated: u64,
    /// Selected users.
    pub selected: u64,
    /// Selected users per format, then action, then result.
    pub by_format: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
    /// Selected users per result.
    pub by_result: BTreeMap<String, u64>,
    /// `legacy_hash` users given the fallback because the provider does not import the hash.
    pub fallbacks: u64,
}

impl Counts {
    /// Counts one selected user.
    pub fn add(&mut self, format: &str, action: Policy, fallback: bool, result: UserResult) {
        *self
            .by_format
            .entry(format.to_owned())
            .or_default()
            .entry(action.as_str().to_owned())
            .or_default()
            .entry(result.as_str().to_owned())
            .or_default() += 1;
        *self
            .by_result
            .entry(result.as_str().to_owned())
            .or_default() += 1;
        self.fallbacks += u64::from(fallback);
    }

    /// Selected users whose result is `result`.
    pub fn result(&self, result: UserResult) -> u64 {
        self.by_result.get(result.as_str()).copied().unwrap_or(0)
    }

    /// Selected users that still need a run (`failed`, `in_progress`).
    pub fn unfinished(&self) -> u64 {
        UserResult::ALL
            .iter()
            .filter(|r| !r.is_final())
            .map(|r| self.result(*r))
            .sum()
    }

    /// The counts as a table for the terminal.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        t.push_str(&format!(
            "read {} legacy users: {} selected, {} already migrated, {} outside the filters, {} not migratable",
            self.scanned,
            self.selected,
            self.already_migrated,
            self.filtered,
            self.not_migratable.values().sum::<u64>()
        ));
        if self.created_unknown > 0 {
            t.push_str(&format!(
                ", {} without a readable creation time",
                self.created_unknown
            ));
        }
        t.push('\n');
        t.push_str(&format!(
            "{:<12} {:<12} {:<18} {:>8}\n",
            "format", "action", "result", "users"
        ));
        for (format, actions) in &self.by_format {
            for (action, results) in actions {
                for (result, n) in results {
                    t.push_str(&format!("{format:<12} {action:<12} {result:<18} {n:>8}\n"));
                }
            }
        }
        if self.fallbacks > 0 {
            t.push_str(&format!(
                "{} legacy_hash users got the fallback (the provider does not import their hash)\n",
                self.fallbacks
            ));
        }
        for (reason, n) in &self.not_migratable {
            t.push_str(&format!("not migratable: {reason:<20} {n:>8}\n"));
        }
        t
    }
}

/// `dripgate_handoff_*`.
#[derive(Debug, Clone)]
pub struct HandoffMetrics {
    users: IntCounterVec,
    /// Rows read from the legacy store.
    pub scanned: IntCounter,
    /// Users in the legacy store when the run started (the progress bar's total).
    pub store_users: IntGauge,
    /// Selected users the run has not finished yet (read but still queued or in flight).
    pub in_flight: IntGauge,
}

impl HandoffMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let users = IntCounterVec::new(
            Opts::new(
                "dripgate_handoff_users_total",
                "Users selected by dripgate handoff, by action (legacy_hash, reset, skip) and result.",
            ),
            &["action", "result"],
        )?;
        let scanned = IntCounter::new(
            "dripgate_handoff_scanned_users_total",
            "Legacy users read by dripgate handoff.",
        )?;
        let store_users = IntGauge::new(
            "dripgate_handoff_store_users",
            "Users in the legacy store when the hand-off started (its progress total).",
        )?;
        let in_flight = IntGauge::new(
            "dripgate_handoff_in_flight_users",
            "Selected users the hand-off is working on.",
        )?;
        registry.register(Box::new(users.clone()))?;
        registry.register(Box::new(scanned.clone()))?;
        registry.register(Box::new(store_users.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(Self {
            users,
            scanned,
            store_users,
            in_flight,
        })
    }

    /// Counts one selected user.
    pub fn user(&self, action: Policy, result: UserResult) {
        self.users
            .with_label_values(&[action.as_str(), result.as_str()])
            .inc();
    }
}
