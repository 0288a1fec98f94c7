//! Client-side rate limit, concurrency bound, provider-requested pauses, and retries with
//! exponential back-off, full jitter and a total deadline.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::config::LimitsConfig;
use super::{Operation, ProviderError, ProviderKind, ProviderMetrics};
use crate::failure::{Classified, Retry};

/// Whether an operation may be sent again after a failure whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads and idempotent writes (set password, flags): retry transient failures.
    Idempotent,
    /// Creates: retry only when the request certainly was not processed (429, connect failure).
    NotIdempotent,
}

/// One per client: shared by every operation of that client.
#[derive(Debug)]
pub struct Limiter {
    provider: ProviderKind,
    rate: DefaultDirectRateLimiter,
    /// Callers waiting for the token bucket queue here first: tokio's mutex is FIFO, while
    /// governor's `until_ready` promises no order, so at a low rate (Auth0's free tier, 2/s) a
    /// caller could lose every race until its deadline passed while later ones got through.
    turn: tokio::sync::Mutex<()>,
    slots: Semaphore,
    blocked_until: Mutex<Option<Instant>>,
    limits: LimitsConfig,
    deadline: Duration,
    metrics: Option<ProviderMetrics>,
}

impl Limiter {
    /// Builds the limiter from config (values already validated non-zero).
    pub fn new(
        provider: ProviderKind,
        limits: &LimitsConfig,
        deadline: Duration,
        metrics: Option<ProviderMetrics>,
    ) -> Self {
        let rps = NonZeroU32::new(limits.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN);
        let slots = usize::try_from(limits.max_concurrency).unwrap_or(1).max(1);
        Self {
            provider,
            rate: RateLimiter::direct(Quota::per_second(rps).allow_burst(burst)),
            turn: tokio::sync::Mutex::new(()),
            slots: Semaphore::new(slots),
            blocked_until: Mutex::new(None),
            limits: limits.clone(),
            deadline,
            metrics,
        }
    }

    /// The deadline of an operation starting now.
    pub fn deadline_from_now(&self) -> Instant {
        Instant::now() + self.deadline
    }

    /// Records a request in the metrics.
    pub fn observe(
        &self,
        operation: Operation,
        result: Result<(), &ProviderError>,
        started: Instant,
    ) {
        if let Some(m) = &self.metrics {
            m.observe(
                self.provider,
                operation,
                result.err().map(ProviderError::class),
                started.elapsed(),
            );
        }
    }

    /// Remembers that the provider asked for a pause: no request is sent before it ends.
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        if let Ok(mut guard) = self.blocked_until.lock()
            && guard.is_none_or(|current| current < until)
        {
            *guard = Some(until);
        }
    }

    fn paused_until(&self) -> Option<Instant> {
        self.blocked_until.lock().ok().and_then(|g| *g)
    }

    /// Waits until a request may be sent: after any pause the provider asked for, and within
    /// the client-side rate. Fails when that would pass `deadline`.
    pub async fn admit(
        &self,
        operation: Operation,
        deadline: Instant,
    ) -> Result<(), ProviderError> {
        // Bounded: each pass either returns or sleeps until a pause that is later than now.
        for _ in 0..64 {
            let now = Instant::now();
            match self.paused_until() {
                Some(until) if until > now => {
                    if until > deadline {
                        return Err(ProviderError::RateLimited {
                            provider: self.provider,
                            operation,
                            retry_after: Some(until - now),
                        });
                    }
                    tokio::time::sleep_until(until).await;
                }
                _ => {
                    let turn = tokio::time::timeout_at(deadline, self.turn.lock())
                        .await
                        .map_err(|_| self.deadline_exceeded(operation))?;
                    tokio::time::timeout_at(deadline, self.rate.until_ready())
                        .await
                        .map_err(|_| self.deadline_exceeded(operation))?;
                    drop(turn);
                    // A pause may have been set while we waited for the rate limiter.
                    if self.paused_until().is_none_or(|u| u <= Instant::now()) {
                        return Ok(());
                    }
                }
            }
        }
        Err(self.deadline_exceeded(operation))
    }

    fn deadline_exceeded(&self, operation: Operation) -> ProviderError {
        ProviderError::DeadlineExceeded {
            provider: self.provider,
            operation,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .limits
            .initial_backoff
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.limits.max_backoff);
        let max_ms = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=max_ms))
    }

    /// Runs one operation: admission, a concurrency slot, the attempt, and retries as the error
    /// class allows, all within the operation's total deadline.
    pub async fn run<T, F, Fut>(
        &self,
        operation: Operation,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut(Instant) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let deadline = self.deadline_from_now();
        let mut tries = 0u32;
        loop {
            tries += 1;
            self.admit(operation, deadline).await?;
            let permit = tokio::time::timeout_at(deadline, self.slots.acquire())
                .await
                .map_err(|_| self.deadline_exceeded(operation))?
                .map_err(|_| self.deadline_exceeded(operation))?;
            let started = Instant::now();
            let result = match tokio::time::timeout_at(deadline, attempt(deadline)).await {
                Ok(r) => r,
                Err(_) => Err(self.deadline_exceeded(operation)),
            };
            drop(permit);
            self.observe(operation, result.as_ref().map(|_| ()), started);
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            // Only what the classification says may work later is retried; then the wait
            // and whether resending is safe depend on the failure.
            let wait = match &err {
                _ if err.retry() == Retry::Never => None,
                ProviderError::RateLimited { retry_after, .. } => {
                    let wait = retry_after
                        .map(|d| d.min(self.limits.max_retry_after))
                        .unwrap_or_else(|| self.backoff(tries));
                    self.pause_for(wait);
                    Some(wait)
                }
                ProviderError::Transient { not_sent: true, .. } => Some(self.backoff(tries)),
                ProviderError::Transient { .. } if idempotency == Idempotency::Idempotent => {
                    Some(self.backoff(tries))
                }
                _ => None,
            };
            let Some(wait) = wait else { return Err(err) };
            if tries >= self.limits.max_attempts || Instant::now() + wait > deadline {
                return Err(err);
            }
            tracing::debug!(provider = %self.provider, %operation, tries, ?wait, error = %err, "provider call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}
