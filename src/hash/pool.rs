//! A bounded pool of dedicated, low-priority threads for password hashing, never on the async
//! workers: legacy verifications, and any other password hashing dripgate does (the bcrypt sent to
//! Kinde). All of it shares `pool_size` threads, so hashing can never take every core.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, oneshot};

use super::metrics::UNKNOWN_FORMAT;
use super::{HashConfig, HashError, HashMetrics, LegacyHash, Password, verify};
use crate::failure::{Blame, Classified, Retry};

/// Why the pool did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The queue was full; the verification was not attempted.
    #[error("hash verification shed: queue full")]
    Shed,
    /// The hash could not be checked.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The hashing task failed to run to completion.
    #[error("hash verification task failed")]
    Aborted,
    /// The hashing threads could not be started.
    #[error("hash pool threads could not start: {0}")]
    Start(#[from] rayon::ThreadPoolBuildError),
}

impl Classified for VerifyError {
    fn blame(&self) -> Blame {
        match self {
            Self::Shed => Blame::Capacity,
            Self::Hash(e) => e.blame(),
            Self::Aborted | Self::Start(_) => Blame::Internal,
        }
    }

    fn retry(&self) -> Retry {
        match self {
            Self::Shed | Self::Aborted => Retry::Later,
            Self::Hash(e) => e.retry(),
            Self::Start(_) => Retry::Never,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Shed => "shed",
            Self::Hash(e) => e.label(),
            Self::Aborted => "aborted",
            Self::Start(_) => "start",
        }
    }
}

struct Inner {
    config: HashConfig,
    metrics: HashMetrics,
    /// One permit per verification allowed to run at once.
    workers: Arc<Semaphore>,
    /// One permit per verification admitted (running or waiting).
    admission: Arc<Semaphore>,
    /// The hashing threads.
    threads: rayon::ThreadPool,
}

/// Runs [`verify`] on `pool_size` dedicated threads: at most `pool_size` at once, at most
/// `queue_limit` more waiting; beyond that [`VerifyError::Shed`] is returned at once. The threads
/// run at background priority unless `background_priority = false`. Cheap to clone.
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
    /// Starts the pool's threads, with the caps and sizes of `config`.
    pub fn new(config: HashConfig, metrics: HashMetrics) -> Result<Self, VerifyError> {
        let workers = config.pool_size.max(1);
        let admitted = workers.saturating_add(config.queue_limit);
        let background = config.background_priority;
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("dripgate-hash-{i}"))
            .start_handler(move |_| {
                if background {
                    lower_current_thread_priority();
                }
            })
            .build()?;
        Ok(VerifyPool {
            inner: Arc::new(Inner {
                workers: Arc::new(Semaphore::new(workers)),
                admission: Arc::new(Semaphore::new(admitted)),
                threads,
                config,
                metrics,
            }),
        })
    }

    /// Runs other password-hashing work (not a verification: never shed, not counted) on the
    /// pool's threads, waiting for a free one.
    pub async fn run<T, F>(&self, job: F) -> Result<T, VerifyError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let worker = Arc::clone(&self.inner.workers)
            .acquire_owned()
            .await
            .map_err(|_| VerifyError::Aborted)?;
        self.spawn(move || {
            let _worker = worker;
            job()
        })
        .await
    }

    /// Runs `job` on a pool thread; the answer comes back over a channel.
    async fn spawn<T, F>(&self, job: F) -> Result<T, VerifyError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.inner.threads.spawn(move || {
            // The receiver may be gone (the sign-in task ended); the work is done either way.
            let _ = tx.send(job());
        });
        rx.await.map_err(|_| VerifyError::Aborted)
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
        let task = self.spawn(move || {
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
        Ok(task.await??)
    }
}

/// Lowers the calling thread to the lowest normal priority (Linux: `SCHED_BATCH`, nice 19), so
/// the async workers preempt it at once. A refusal only costs latency, so it is logged, not fatal.
fn lower_current_thread_priority() {
    use thread_priority::ThreadPriority;
    #[cfg(target_os = "linux")]
    let lowered = {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
        set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy)
    };
    #[cfg(not(target_os = "linux"))]
    let lowered = thread_priority::set_current_thread_priority(ThreadPriority::Min);
    if let Err(e) = lowered {
        tracing::warn!(error = ?e, "could not lower the hash threads' CPU priority");
    }
}
