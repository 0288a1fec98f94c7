//! Migration metrics: sign-ins by outcome, migrations by result, fallbacks by stage, the phase,
//! and the progress ratio (migrated ÷ legacy users).

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::outcome::{Outcome, Stage};
use super::phase::Phase;
use super::recent::RecentOutcomes;

/// Handles to the migration metrics; cheap to clone.
#[derive(Clone)]
pub struct MigrationMetrics {
    signins: IntCounterVec,
    migrations: IntCounterVec,
    fallbacks: IntCounterVec,
    phase: IntGaugeVec,
    recent: Arc<RecentOutcomes>,
}

impl MigrationMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let signins = IntCounterVec::new(
            Opts::new(
                "dripgate_signins_total",
                "Sign-ins through dripgate, by how they ended.",
            ),
            &["outcome"],
        )?;
        let migrations = IntCounterVec::new(
            Opts::new(
                "dripgate_migrations_total",
                "Migration attempts that reached the provider, by result.",
            ),
            &["result"],
        )?;
        let fallbacks = IntCounterVec::new(
            Opts::new(
                "dripgate_fallbacks_total",
                "Sign-ins left to plain legacy because a step of dripgate's own failed, by stage.",
            ),
            &["stage"],
        )?;
        let phase = IntGaugeVec::new(
            Opts::new(
                "dripgate_phase",
                "1 for the current migration phase, 0 for the others.",
            ),
            &["phase"],
        )?;
        registry.register(Box::new(signins.clone()))?;
        registry.register(Box::new(migrations.clone()))?;
        registry.register(Box::new(fallbacks.clone()))?;
        registry.register(Box::new(phase.clone()))?;
        // Expose every series from the start so dashboards and rate() see zeros, not gaps.
        for label in Outcome::LABELS {
            signins.with_label_values(&[label]);
        }
        for result in Outcome::MIGRATION_ATTEMPTS
            .into_iter()
            .filter_map(Outcome::migration_result)
        {
            migrations.with_label_values(&[result]);
        }
        for stage in Stage::ALL {
            fallbacks.with_label_values(&[stage.as_str()]);
        }
        Ok(Self {
            signins,
            migrations,
            fallbacks,
            phase,
            recent: Arc::new(RecentOutcomes::new()),
        })
    }

    /// Counts one sign-in outcome.
    pub fn record(&self, outcome: Outcome) {
        self.signins.with_label_values(&[outcome.as_str()]).inc();
        self.recent.record(outcome);
        if let Some(result) = outcome.migration_result() {
            self.migrations.with_label_values(&[result]).inc();
        }
        if let Outcome::Fallback(stage) = outcome {
            self.fallbacks.with_label_values(&[stage.as_str()]).inc();
        }
    }

    /// This process's sign-ins by outcome label over the last hour (60 one-minute buckets, the
    /// current one included); every label present.
    pub fn signins_last_hour(&self) -> BTreeMap<&'static str, u64> {
        self.recent.last_hour()
    }

    /// Shows `current` as the phase.
    pub fn set_phase(&self, current: Phase) {
        for phase in Phase::ALL {
            self.phase
                .with_label_values(&[phase.as_str()])
                .set(i64::from(phase == current));
        }
    }
}

/// `dripgate_migration_progress`: migrated users ÷ legacy users, the figure people watch during
/// the cutover. Computed when scraped from the two gauges it reads (each refreshed by its own
/// background count), so it never queries a database itself; 0 while the legacy count is unknown.
pub struct ProgressCollector {
    migrated: IntGauge,
    legacy: IntGauge,
    progress: Gauge,
}

impl ProgressCollector {
    /// Registers the progress gauge, reading `migrated` (ledger users in state `migrated`) and
    /// `legacy` (users in the legacy store).
    pub fn register(
        registry: &Registry,
        migrated: IntGauge,
        legacy: IntGauge,
    ) -> Result<(), prometheus::Error> {
        let progress = Gauge::new(
            "dripgate_migration_progress",
            "Migrated users divided by legacy users (0 to 1), as of the last counts.",
        )?;
        registry.register(Box::new(Self {
            migrated,
            legacy,
            progress,
        }))
    }
}

impl Collector for ProgressCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.progress.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let legacy = self.legacy.get();
        let ratio = if legacy > 0 {
            self.migrated.get() as f64 / legacy as f64
        } else {
            0.0
        };
        self.progress.set(ratio);
        self.progress.collect()
    }
}
