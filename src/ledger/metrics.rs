//! Ledger metrics: users by state (recounted periodically, not per scrape), operations by
//! result, operation latency, and cache lookups.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{Method, State};

/// The ledger metrics (cheap to clone).
#[derive(Debug, Clone)]
pub struct LedgerMetrics {
    users: IntGaugeVec,
    migrated_by_method: IntGaugeVec,
    operations: IntCounterVec,
    duration: HistogramVec,
    claims: IntCounterVec,
    cache: IntCounterVec,
}

impl LedgerMetrics {
    /// The `dripgate_ledger_users` gauge of one state.
    pub fn users_in(&self, state: State) -> prometheus::IntGauge {
        self.users.with_label_values(&[state.as_str()])
    }

    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let users = IntGaugeVec::new(
            Opts::new(
                "dripgate_ledger_users",
                "Users in the migration ledger by state, recounted every ledger.counts_interval.",
            ),
            &["state"],
        )?;
        let migrated_by_method = IntGaugeVec::new(
            Opts::new(
                "dripgate_ledger_migrated_users",
                "Migrated users by how their password reached the provider (live: a sign-in; \
                 handoff_hash, handoff_reset: dripgate handoff), recounted with \
                 dripgate_ledger_users.",
            ),
            &["method"],
        )?;
        let operations = IntCounterVec::new(
            Opts::new(
                "dripgate_ledger_operations_total",
                "Ledger operations by operation and result (ok or an error kind).",
            ),
            &["operation", "result"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "dripgate_ledger_operation_duration_seconds",
                "Latency of ledger operations.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["operation"],
        )?;
        let claims = IntCounterVec::new(
            Opts::new(
                "dripgate_ledger_claims_total",
                "Claims by kind (first or resync) and result (won, or held: someone else holds \
                 the lease or there is nothing to do).",
            ),
            &["kind", "result"],
        )?;
        let cache = IntCounterVec::new(
            Opts::new(
                "dripgate_ledger_cache_lookups_total",
                "Lookups in the cache of migrated users by result (hit or miss).",
            ),
            &["result"],
        )?;
        for state in State::ALL {
            users.with_label_values(&[state.as_str()]).set(0);
        }
        for method in Method::ALL {
            migrated_by_method
                .with_label_values(&[method.as_str()])
                .set(0);
        }
        registry.register(Box::new(users.clone()))?;
        registry.register(Box::new(migrated_by_method.clone()))?;
        registry.register(Box::new(operations.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(claims.clone()))?;
        registry.register(Box::new(cache.clone()))?;
        Ok(Self {
            users,
            migrated_by_method,
            operations,
            duration,
            claims,
            cache,
        })
    }

    /// Records one operation: `error` is `None` on success, else the error kind.
    pub(super) fn observe(
        &self,
        operation: &'static str,
        error: Option<&'static str>,
        took: Duration,
    ) {
        self.operations
            .with_label_values(&[operation, error.unwrap_or("ok")])
            .inc();
        self.duration
            .with_label_values(&[operation])
            .observe(took.as_secs_f64());
    }

    /// Records a claim outcome.
    pub(super) fn claim(&self, kind: &'static str, won: bool) {
        self.claims
            .with_label_values(&[kind, if won { "won" } else { "held" }])
            .inc();
    }

    /// Records a cache lookup.
    pub(super) fn cache_lookup(&self, hit: bool) {
        self.cache
            .with_label_values(&[if hit { "hit" } else { "miss" }])
            .inc();
    }

    /// Sets the users-by-state gauge.
    pub(super) fn set_methods(&self, counts: &BTreeMap<Method, u64>) {
        for method in Method::ALL {
            let n = counts.get(&method).copied().unwrap_or(0);
            self.migrated_by_method
                .with_label_values(&[method.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub(super) fn set_counts(&self, counts: &BTreeMap<State, u64>) {
        for state in State::ALL {
            let n = counts.get(&state).copied().unwrap_or(0);
            self.users
                .with_label_values(&[state.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}
