//! Liveness, readiness and the health of dependencies dripgate can fail open around.
//!
//! Readiness means "listeners up and not shutting down"; it never depends on the legacy store,
//! the provider or the ledger, because dripgate keeps forwarding when they are down. Their state
//! is reported on `/status` and as `dripgate_dependency_up{dependency}`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};
use serde::Serialize;

/// Shared health state.
pub struct Health {
    ready: AtomicBool,
    ready_gauge: IntGauge,
    dependency_up: IntGaugeVec,
    dependencies: Mutex<BTreeMap<String, DependencyStatus>>,
}

/// The last known state of one dependency.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyStatus {
    /// Whether the last check succeeded.
    pub up: bool,
    /// A short reason when down (never a secret).
    pub detail: Option<String>,
    /// When it was last checked, seconds since the Unix epoch.
    pub checked_at: u64,
}

impl Health {
    /// Creates the health state (not ready) and registers its gauges.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let ready_gauge = IntGauge::new(
            "dripgate_ready",
            "1 while dripgate accepts traffic and is not shutting down.",
        )?;
        let dependency_up = IntGaugeVec::new(
            Opts::new(
                "dripgate_dependency_up",
                "1 if the last check of a dependency succeeded, else 0.",
            ),
            &["dependency"],
        )?;
        registry.register(Box::new(ready_gauge.clone()))?;
        registry.register(Box::new(dependency_up.clone()))?;
        Ok(Self {
            ready: AtomicBool::new(false),
            ready_gauge,
            dependency_up,
            dependencies: Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Sets readiness.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        self.ready_gauge.set(i64::from(ready));
    }

    /// Records the result of checking a dependency. `name` must come from a fixed set.
    pub fn report(&self, name: &str, result: Result<(), String>) {
        let up = result.is_ok();
        self.dependency_up
            .with_label_values(&[name])
            .set(i64::from(up));
        let status = DependencyStatus {
            up,
            detail: result.err(),
            checked_at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        if let Ok(mut deps) = self.dependencies.lock() {
            deps.insert(name.to_owned(), status);
        }
    }

    /// A snapshot of every dependency's state.
    pub fn dependencies(&self) -> BTreeMap<String, DependencyStatus> {
        self.dependencies
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }
}
