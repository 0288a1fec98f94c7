//! Prometheus metrics of hash verification. Labels come only from [`Format`] names and fixed
//! outcome names.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use super::Format;

/// Label value used when no format could be determined.
pub const UNKNOWN_FORMAT: &str = "unknown";

/// Hash verification metrics.
#[derive(Clone, Debug)]
pub struct HashMetrics {
    /// `dripgate_hash_verify_duration_seconds{format}`.
    pub duration: HistogramVec,
    /// `dripgate_hash_verifications_in_flight`: running on the blocking pool or waiting for it.
    pub in_flight: IntGauge,
    /// `dripgate_hash_verifications_shed_total`: refused because the queue was full.
    pub shed: IntCounter,
    /// `dripgate_hash_verifications_total{format,result}`: result is match, mismatch or error.
    pub results: IntCounterVec,
}

impl HashMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self::unregistered()?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.shed.clone()))?;
        registry.register(Box::new(m.results.clone()))?;
        Ok(m)
    }

    /// Creates the metrics without registering them (tests, the CLI).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "dripgate_hash_verify_duration_seconds",
                "Time to verify one password against a legacy hash, by format.",
            )
            .buckets(vec![
                0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["format"],
        )?;
        let in_flight = IntGauge::with_opts(Opts::new(
            "dripgate_hash_verifications_in_flight",
            "Hash verifications admitted to the pool (running or queued).",
        ))?;
        let shed = IntCounter::with_opts(Opts::new(
            "dripgate_hash_verifications_shed_total",
            "Hash verifications refused because the pool's queue was full.",
        ))?;
        let results = IntCounterVec::new(
            Opts::new(
                "dripgate_hash_verifications_total",
                "Hash verifications by format and result (match, mismatch, error).",
            ),
            &["format", "result"],
        )?;
        for f in Format::ALL {
            duration.with_label_values(&[f.as_str()]);
        }
        Ok(HashMetrics {
            duration,
            in_flight,
            shed,
            results,
        })
    }
}
