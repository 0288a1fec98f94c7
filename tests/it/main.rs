//! dripgate's integration tests, one binary: each module is one test file of the former layout
//! (`cargo test --test it migration_flow::` runs one of them), and the shared harness modules
//! below compile once for all of them.
//!
//! Modules that use the provider fakes or the demo need the `testkit` or `demo` cargo feature,
//! both on by default.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The shared harness.
mod common;
mod ledger_common;
mod legacy_support;
#[cfg(feature = "testkit")]
mod migration_common;
#[cfg(feature = "testkit")]
mod provider_common;

// The proxy: forwarding, limits, TLS, the admin listener, the command line.
#[cfg(feature = "testkit")]
mod admin;
mod cli;
mod hardening;
mod limits;
mod proxy;
#[cfg(feature = "testkit")]
mod status;
#[cfg(feature = "testkit")]
mod status_browser;
mod streaming;
mod tls;

// Legacy password hashes and hash stores.
mod hash_cli;
mod hash_edges;
mod hash_vectors;
mod legacy_cli;
mod legacy_enumerate;
mod legacy_export;
mod legacy_sql;
mod legacy_timeout;
mod legacy_unverifiable;

// The ledger.
mod ledger_claims;
#[cfg(feature = "testkit")]
mod ledger_forget_flow;
mod ledger_state;
#[cfg(feature = "testkit")]
mod ledger_tools;

// The provider clients against the fakes.
#[cfg(feature = "testkit")]
mod provider_authgear;
#[cfg(feature = "testkit")]
mod provider_check;
#[cfg(feature = "testkit")]
mod provider_cognito;
#[cfg(feature = "testkit")]
mod provider_http;
#[cfg(feature = "testkit")]
mod provider_http_contract;
#[cfg(feature = "testkit")]
mod provider_keycloak;
#[cfg(feature = "testkit")]
mod provider_kinde;

// End to end: sign-ins that migrate, route and refuse.
#[cfg(feature = "testkit")]
mod cutover;
#[cfg(feature = "testkit")]
mod forgot_password;
#[cfg(feature = "testkit")]
mod migration_adoption;
#[cfg(feature = "testkit")]
mod migration_crash;
#[cfg(feature = "testkit")]
mod migration_disk_full;
#[cfg(feature = "testkit")]
mod migration_edges;
#[cfg(feature = "testkit")]
mod migration_flow;
#[cfg(feature = "testkit")]
mod migration_http;
#[cfg(feature = "testkit")]
mod migration_keycloak;
#[cfg(feature = "testkit")]
mod migration_replicas;
#[cfg(feature = "testkit")]
mod migration_stale_write;
#[cfg(feature = "testkit")]
mod migration_transfer;
#[cfg(feature = "testkit")]
mod signin_integrity;

// The chaos soak: two replicas of the binary, kills, provider, ledger and legacy faults, the
// invariants checked every round.
#[cfg(feature = "testkit")]
mod soak;
// `dripgate handoff` on the built binary (uses the demo's phpass generator).
#[cfg(feature = "demo")]
mod handoff;

// The shipped operations files against a real scrape.
#[cfg(feature = "testkit")]
mod deploy_metrics;

// `dripgate demo`.
#[cfg(feature = "demo")]
mod demo;
