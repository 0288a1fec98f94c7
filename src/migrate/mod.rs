//! The drip-feed migration: phases and routing, the per-user migration engine, outcomes and
//! their metrics. The sign-in handler (`signin`) decides per request; the [`Engine`] does the
//! work beside the response.

mod adoption;
mod credentials;
pub mod engine;
mod handoff;
pub mod metrics;
pub mod outcome;
pub mod phase;
pub mod recent;
pub mod reset;
mod routing;
pub mod settings;
mod stale;
pub mod transfer;

pub use credentials::Credentials;
pub use engine::{Engine, EngineParts, SettingsError};
pub use handoff::HandOff;
pub use metrics::{MigrationMetrics, ProgressCollector};
pub use outcome::{Cause, Exit, Outcome, Stage};
pub use phase::{MigrationConfig, Phase, PhaseState, RuntimeSettings, SettingsOrigin};
pub use reset::ResetDecision;
pub use routing::RouteDecision;
pub use settings::{ChangeRefused, SettingsMetrics, spawn_settings_poll};
pub use transfer::TransferMetrics;
