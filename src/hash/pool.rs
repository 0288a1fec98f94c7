//! A bounded pool that runs verifications on tokio's blocking threads, never on async workers.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::metrics::UNKNOWN_FORMAT;
use super::{HashConfig, HashError, HashMetrics, LegacyHash, Password, verify};

/// Why the pool did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The queue was full; the verification was not attempted.
    #[error("hash verification shed: queue full")]
    Shed,
    /// The hash could not be checked.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The blocking task failed to run to completion.
    #[error("hash verification task failed")]
    Aborted,
}

struct Inner {
    config: HashConfig,
    metrics: HashMetrics,
    /// One permit per verification allowed to run at once.
    workers: Arc<Semaphore>,
    /// One permit per verification admitted (running or waiting).
    admission: Arc<Semaphore>,
}

/// Runs [`verify`] on tokio's blocking pool: at most `pool_size` at once, at most `queue_limit`
/// more waiting; beyond that [`VerifyError::Shed`] is returned at once. Cheap to clone.
#[derive(Clone)]
pub struct VerifyPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for VerifyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyPool")
            .field("pool_size", &self.inner.config.pool_size)
            .field("queue_limit", &self.inner.config.queue_limit)
            .finish()
    }
}

/// Decrements the in-flight gauge however the task ends.
struct InFlight(prometheus::IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl VerifyPool {
    /// Creates a pool with the caps and sizes of `config`.
    pub fn new(config: HashConfig, metrics: HashMetrics) -> Self {
        let workers = config.pool_size.max(1);
        let admitted = workers.saturating_add(config.queue_limit);
        VerifyPool {
            inner: Arc::new(Inner {
                workers: Arc::new(Semaphore::new(workers)),
                admission: Arc::new(Semaphore::new(admitted)),
                config,
                metrics,
            }),
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &HashConfig {
        &self.inner.config
    }

    /// Verifies `password` against `hash` off the async workers. Returns [`VerifyError::Shed`]
    /// without waiting when `pool_size + queue_limit` verifications are already admitted.
    pub async fn verify(&self, hash: LegacyHash, password: Password) -> Result<bool, VerifyError> {
        let inner = &self.inner;
        let Ok(admit) = Arc::clone(&inner.admission).try_acquire_owned() else {
            inner.metrics.shed.inc();
            return Err(VerifyError::Shed);
        };
        inner.metrics.in_flight.inc();
        let in_flight = InFlight(inner.metrics.in_flight.clone());
        let worker = Arc::clone(&inner.workers)
            .acquire_owned()
            .await
            .map_err(|_| VerifyError::Aborted)?;
        let label = hash
            .resolved_format()
            .map_or(UNKNOWN_FORMAT, |f| f.as_str());
        let config = inner.config.clone();
        let metrics = inner.metrics.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permits = (admit, worker, in_flight);
            let start = Instant::now();
            let result = verify(&hash, password.expose(), &config);
            metrics
                .duration
                .with_label_values(&[label])
                .observe(start.elapsed().as_secs_f64());
            let outcome = match &result {
                Ok(true) => "match",
                Ok(false) => "mismatch",
                Err(_) => "error",
            };
            metrics.results.with_label_values(&[label, outcome]).inc();
            result
        });
        match task.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(VerifyError::Aborted),
        }
    }
}
