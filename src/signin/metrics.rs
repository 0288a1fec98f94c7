//! Sign-in request metrics: requests whose credentials were not read, by reason; requests
//! refused in `route`, by reason; the sign-in body memory budget.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::Refusal;
use super::extract::Unread;

/// Handles to the sign-in request metrics; cheap to clone.
#[derive(Clone)]
pub struct SigninMetrics {
    unread: IntCounterVec,
    refused: IntCounterVec,
    buffered_bytes: IntGauge,
    budget_exhausted: IntCounter,
}

impl SigninMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let unread = IntCounterVec::new(
            Opts::new(
                "dripgate_signin_unread_total",
                "Sign-in requests whose credentials were not read (never verified, never migrated), by reason.",
            ),
            &["reason"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "dripgate_signin_refused_total",
                "Sign-in requests refused in route because the legacy app could read them differently, by reason.",
            ),
            &["reason"],
        )?;
        let buffered_bytes = IntGauge::new(
            "dripgate_signin_buffered_bytes",
            "Bytes of sign-in bodies held in memory now, against signin.buffer_budget_bytes.",
        )?;
        let budget_exhausted = IntCounter::new(
            "dripgate_signin_budget_exhausted_total",
            "Sign-in requests answered 503 because the sign-in body memory budget stayed full.",
        )?;
        registry.register(Box::new(unread.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(buffered_bytes.clone()))?;
        registry.register(Box::new(budget_exhausted.clone()))?;
        for reason in Unread::ALL {
            unread.with_label_values(&[reason.as_str()]);
        }
        for reason in Refusal::LABELS {
            refused.with_label_values(&[reason]);
        }
        Ok(Self {
            unread,
            refused,
            buffered_bytes,
            budget_exhausted,
        })
    }

    /// Counts a sign-in whose credentials were not read.
    pub fn unread(&self, reason: Unread) {
        self.unread.with_label_values(&[reason.as_str()]).inc();
    }

    /// Counts a sign-in refused in `route`.
    pub fn refused(&self, reason: Refusal) {
        self.refused.with_label_values(&[reason.as_str()]).inc();
    }

    /// The gauge of sign-in body bytes held.
    pub fn buffered_bytes(&self) -> &IntGauge {
        &self.buffered_bytes
    }

    /// Counts a sign-in turned away because the body budget stayed full.
    pub fn budget_exhausted(&self) {
        self.budget_exhausted.inc();
    }
}
