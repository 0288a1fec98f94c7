//! `dripgate handoff`: at the end of the migration window, move the legacy users who never
//! signed in, in bulk, through the live path's claim protocol ([`Engine::hand_off`]), so a
//! hand-off and live sign-ins on any number of replicas never make a second provider user.
//!
//! The legacy store is enumerated streaming ([`LegacyStore::enumerate`]); each user is
//! selected (filters, not yet migrated), re-read as a sign-in would read it
//! ([`LegacyStore::lookup`]: duplicate keys are refused the same way), given an action by
//! policy ([`policy`]) and handed off by a bounded number of workers. A dry run does the
//! reading and deciding only: no ledger write, no provider call. A real run is recorded in the
//! ledger (`ledger_handoff_runs`): when it has processed every selected user it is marked
//! completed ([`Ledger::last_completed_handoff`](crate::ledger::Ledger::last_completed_handoff)).
//! Killed, it is simply run again: the users it finished are migrated (listed again as
//! `already_handed_off`), a user it left mid-way is resumed by the claim protocol after the
//! lease expires (find-by-email first, so never a second create).

pub mod filter;
pub mod policy;
pub mod report;
mod run;

use std::path::PathBuf;
use std::time::Duration;

use crate::failure::{Blame, Classified, Retry};
use crate::ledger::LedgerError;
use crate::legacy::LegacyError;

pub use filter::Filters;
pub use policy::{HandoffConfig, Policies, Policy};
pub use report::{Counts, HandoffMetrics, UserResult};
pub use run::{Progress, Summary, run};

/// How to run a hand-off.
#[derive(Debug)]
pub struct Options {
    /// The action per hash format.
    pub policies: Policies,
    /// Which users.
    pub filters: Filters,
    /// Decide and report only; write nothing to the ledger, call no provider.
    pub dry_run: bool,
    /// Users handed off at once.
    pub concurrency: usize,
    /// The JSONL report (appended to).
    pub report: Option<PathBuf>,
    /// How long to wait for a user someone else holds (a sign-in now, a killed run's lease)
    /// before leaving it to the next run.
    pub hold_wait: Duration,
    /// How often the progress callback runs.
    pub progress_every: Duration,
}

/// Why a hand-off stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// The legacy store could not be enumerated.
    #[error("legacy store: {0}")]
    Legacy(#[from] LegacyError),
    /// The ledger could not record the run.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The report file could not be written.
    #[error("report: {0}")]
    Report(#[from] std::io::Error),
    /// The hand-off cannot run with this configuration.
    #[error("{0}")]
    Config(String),
}

/// Each variant keeps its source's classification; a report that cannot be written and a
/// configuration the hand-off cannot run with are the operator's to fix.
impl Classified for HandoffError {
    fn blame(&self) -> Blame {
        match self {
            Self::Legacy(e) => e.blame(),
            Self::Ledger(e) => e.blame(),
            Self::Report(_) | Self::Config(_) => Blame::Config,
        }
    }

    fn retry(&self) -> Retry {
        match self {
            Self::Legacy(e) => e.retry(),
            Self::Ledger(e) => e.retry(),
            Self::Report(_) | Self::Config(_) => Retry::Never,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Legacy(e) => e.label(),
            Self::Ledger(e) => e.label(),
            Self::Report(_) | Self::Config(_) => self.blame().as_str(),
        }
    }
}
