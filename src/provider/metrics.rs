//! Provider metrics: calls by provider, operation and status; latency by provider and operation.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::{ErrorClass, Operation, ProviderKind};

/// The provider metrics (cheap to clone).
#[derive(Debug, Clone)]
pub struct ProviderMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl ProviderMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "dripgate_provider_requests_total",
                "HTTP requests to the identity provider, by provider, operation and status class.",
            ),
            &["provider", "operation", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "dripgate_provider_request_duration_seconds",
                "Latency of HTTP requests to the identity provider.",
            )
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["provider", "operation"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { requests, duration })
    }

    /// Records one request: `status` is `None` for success, else the error class.
    pub fn observe(
        &self,
        provider: ProviderKind,
        operation: Operation,
        status: Option<ErrorClass>,
        took: Duration,
    ) {
        let status = status.map_or("ok", ErrorClass::as_str);
        self.requests
            .with_label_values(&[provider.as_str(), operation.as_str(), status])
            .inc();
        self.duration
            .with_label_values(&[provider.as_str(), operation.as_str()])
            .observe(took.as_secs_f64());
    }
}
