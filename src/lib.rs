//! dripgate: a drip-feed migration authentication proxy.
//!
//! It forwards every request to a legacy application unchanged, except sign-ins: on a user's
//! first successful sign-in it verifies the password against the legacy hash store, provisions
//! the user in the new identity provider and records the migration. See docs/ARCHITECTURE.md.

pub mod architecture;
pub mod audit;
pub mod body;
pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod failure;
pub mod handoff;
pub mod hash;
pub mod ledger;
pub mod legacy;
pub mod logging;
pub mod metrics;
pub mod migrate;
pub mod provider;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod signin;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use server::{BoundServer, run};
