//! Legacy store metrics: the user count (refreshed in the background, never per scrape),
//! lookups by outcome, lookup latency, count refreshes and export reloads.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// The legacy store metrics (cheap to clone).
#[derive(Debug, Clone)]
pub struct LegacyMetrics {
    /// `dripgate_legacy_users`: users in the legacy store at the last refresh.
    pub users: IntGauge,
    lookups: IntCounterVec,
    duration: Histogram,
    refreshes: IntCounterVec,
    reloads: IntCounterVec,
}

impl LegacyMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let users = IntGauge::new(
            "dripgate_legacy_users",
            "Users in the legacy store, as of the last background count.",
        )?;
        let lookups = IntCounterVec::new(
            Opts::new(
                "dripgate_legacy_lookups_total",
                "Legacy store lookups by outcome (found, not_found, not_migratable, error) and reason.",
            ),
            &["outcome", "reason"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "dripgate_legacy_lookup_duration_seconds",
                "Time to look a user up in the legacy store.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        let refreshes = IntCounterVec::new(
            Opts::new(
                "dripgate_legacy_count_refreshes_total",
                "Background refreshes of dripgate_legacy_users by result (ok or the error kind).",
            ),
            &["result"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "dripgate_legacy_export_reloads_total",
                "Reloads of a legacy export file after it changed, by result (ok or error).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(users.clone()))?;
        registry.register(Box::new(lookups.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(refreshes.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        Ok(LegacyMetrics {
            users,
            lookups,
            duration,
            refreshes,
            reloads,
        })
    }

    /// Records one lookup.
    pub fn lookup(&self, outcome: &str, reason: &str, seconds: f64) {
        self.lookups.with_label_values(&[outcome, reason]).inc();
        self.duration.observe(seconds);
    }

    /// Records one count refresh (`ok` or an error kind).
    pub fn refresh(&self, result: &str) {
        self.refreshes.with_label_values(&[result]).inc();
    }

    /// Records one export reload (`ok` or `error`).
    pub fn reload(&self, result: &str) {
        self.reloads.with_label_values(&[result]).inc();
    }
}
