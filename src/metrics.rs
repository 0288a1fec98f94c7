//! The Prometheus registry every module registers its metrics in.
//!
//! Convention: each module owns a `XxxMetrics` struct built by `XxxMetrics::register(&Registry)`.
//! Metric names start with `dripgate_`; label values come from bounded enums or config names,
//! never from user input (no emails, identifiers, paths or hashes in labels).

use prometheus::{Encoder, Registry, TextEncoder};

/// Builds the registry that `/metrics` exposes, with the build info gauge already registered.
pub fn new_registry() -> Result<Registry, prometheus::Error> {
    let registry = Registry::new();
    let build_info = prometheus::IntGaugeVec::new(
        prometheus::Opts::new("dripgate_build_info", "Build information; always 1."),
        &["version"],
    )?;
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
    registry.register(Box::new(build_info))?;
    Ok(registry)
}

/// Renders every metric in `registry` in the Prometheus text exposition format.
pub fn render(registry: &Registry) -> Result<String, prometheus::Error> {
    let mut buf = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
