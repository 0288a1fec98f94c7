//! Migration metrics: sign-ins by outcome, fallbacks by stage, the phase.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::outcome::{Outcome, Stage};
use super::phase::Phase;

/// Handles to the migration metrics; cheap to clone.
#[derive(Clone)]
pub struct MigrationMetrics {
    signins: IntCounterVec,
    fallbacks: IntCounterVec,
    phase: IntGaugeVec,
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
        registry.register(Box::new(fallbacks.clone()))?;
        registry.register(Box::new(phase.clone()))?;
        // Expose every series from the start so dashboards and rate() see zeros, not gaps.
        for label in Outcome::LABELS {
            signins.with_label_values(&[label]);
        }
        for stage in [
            Stage::Extract,
            Stage::LegacyStore,
            Stage::Hash,
            Stage::Provider,
            Stage::Ledger,
        ] {
            fallbacks.with_label_values(&[stage.as_str()]);
        }
        Ok(Self {
            signins,
            fallbacks,
            phase,
        })
    }

    /// Counts one sign-in outcome.
    pub fn record(&self, outcome: Outcome) {
        self.signins.with_label_values(&[outcome.as_str()]).inc();
        if let Outcome::Fallback(stage) = outcome {
            self.fallbacks.with_label_values(&[stage.as_str()]).inc();
        }
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
