//! Typed ledger errors: the caller tells "the ledger is unreachable" apart from "you lost the lease".

use crate::failure::{Blame, Classified, Retry};

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database could not be reached (connection refused, I/O, TLS, pool closed).
    #[error("ledger database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The operation did not finish within `ledger.query_timeout` (or no pooled connection
    /// became free in that time).
    #[error("ledger operation timed out")]
    Timeout,
    /// A fenced write matched no row: another holder claimed the user since this claim was
    /// taken (a higher epoch), so the caller must stop working on the user.
    #[error("ledger write fenced: the claim was superseded")]
    Fenced,
    /// The database answered with an error (constraint, syntax, decoding).
    #[error("ledger database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("ledger schema migration failed: {0}")]
    Migration(String),
    /// The ledger's configuration is not usable.
    #[error("invalid ledger configuration: {0}")]
    Config(String),
    /// A value read from the ledger is not one this version understands (e.g. an unknown state).
    #[error("unexpected value in the ledger: {0}")]
    Corrupt(String),
    /// The caller asked for something the API does not allow (e.g. a non-terminal state in
    /// `mark_terminal`).
    #[error("invalid ledger request: {0}")]
    Invalid(&'static str),
    /// The metrics could not be registered.
    #[error("ledger metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl LedgerError {
    /// True when the ledger could not be reached in time: callers fall back (e.g. to the cache
    /// of migrated users or to legacy) instead of treating it as a bug.
    pub fn is_unavailable(&self) -> bool {
        self.retry() == Retry::Later
    }

    /// A short, bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Timeout => "timeout",
            Self::Fenced => "fenced",
            Self::Database(_) => "database",
            Self::Migration(_) => "migration",
            Self::Config(_) => "config",
            Self::Corrupt(_) => "corrupt",
            Self::Invalid(_) => "invalid",
            Self::Metrics(_) => "metrics",
        }
    }
}

/// A fenced write is no failure of the ledger's: another holder owns the user, and this one
/// must stop. Only an unreachable or slow database may answer later.
impl Classified for LedgerError {
    fn blame(&self) -> Blame {
        match self {
            Self::Unavailable(_)
            | Self::Timeout
            | Self::Database(_)
            | Self::Migration(_)
            | Self::Corrupt(_) => Blame::Ledger,
            Self::Fenced => Blame::Contention,
            Self::Config(_) => Blame::Config,
            Self::Invalid(_) | Self::Metrics(_) => Blame::Internal,
        }
    }

    fn retry(&self) -> Retry {
        match self {
            Self::Unavailable(_) | Self::Timeout => Retry::Later,
            _ => Retry::Never,
        }
    }

    fn label(&self) -> &'static str {
        self.kind()
    }
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => Self::Timeout,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => Self::Unavailable(e),
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                match code.as_str() {
                    // PostgreSQL statement_timeout / lock_timeout / cancel.
                    "57014" | "55P03" => Self::Timeout,
                    // SQLite BUSY / LOCKED after the busy timeout.
                    "5" | "6" | "261" | "262" | "517" => Self::Timeout,
                    // PostgreSQL connection exceptions, operator intervention (shutdown,
                    // restart), insufficient resources.
                    c if c.starts_with("08") || c.starts_with("57") || c.starts_with("53") => {
                        Self::Unavailable(sqlx::Error::Database(db))
                    }
                    _ => Self::Database(sqlx::Error::Database(db)),
                }
            }
            other => Self::Database(other),
        }
    }
}
