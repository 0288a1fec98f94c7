//! Legacy store errors, classified by kind so the sign-in path can pick a fallback reason.
//!
//! Messages name the backend, the stage and the cause; they never contain a hash value.

use std::time::Duration;

use crate::failure::{Blame, Classified, Retry};

/// Why the legacy store could not answer. A user who cannot be migrated is not an error
/// (see [`super::Lookup::NotMigratable`]).
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    /// The `[legacy]` configuration is unusable.
    #[error("legacy store config: {0}")]
    Config(String),
    /// The store did not answer within the configured bound.
    #[error("legacy {backend} store timed out during {stage} after {after:?}")]
    Timeout {
        /// `sqlite`, `postgres`, `mysql` or `export`.
        backend: &'static str,
        /// `connect` or `query`.
        stage: &'static str,
        /// The bound that was exceeded.
        after: Duration,
    },
    /// The store cannot be reached (connection refused, TLS or authentication failure, I/O).
    #[error("legacy {backend} store unavailable: {message}")]
    Unavailable {
        /// `sqlite`, `postgres`, `mysql` or `export`.
        backend: &'static str,
        /// What failed.
        message: String,
    },
    /// The store answered with an error (bad query, missing column, undecodable value).
    #[error("legacy {backend} query failed: {message}")]
    Query {
        /// `sqlite`, `postgres`, `mysql` or `export`.
        backend: &'static str,
        /// What failed.
        message: String,
    },
    /// An export file could not be read or parsed.
    #[error("legacy export {path}: {message}")]
    Export {
        /// The file.
        path: String,
        /// What failed (with the line number where known).
        message: String,
    },
    /// A metric could not be registered.
    #[error("legacy store metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The kind of a [`LegacyError`], a bounded label for metrics and fallback reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Configuration error.
    Config,
    /// The store did not answer in time.
    Timeout,
    /// The store cannot be reached.
    Unavailable,
    /// The store answered with an error, or a file is malformed.
    Query,
}

impl ErrorKind {
    /// The stable label.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Query => "query",
        }
    }
}

impl LegacyError {
    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LegacyError::Config(_) | LegacyError::Metrics(_) => ErrorKind::Config,
            LegacyError::Timeout { .. } => ErrorKind::Timeout,
            LegacyError::Unavailable { .. } => ErrorKind::Unavailable,
            LegacyError::Query { .. } | LegacyError::Export { .. } => ErrorKind::Query,
        }
    }

    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// Classifies a sqlx error from `backend`; `connect_timeout` is the pool acquire bound.
    pub(crate) fn from_sqlx(
        backend: &'static str,
        e: sqlx::Error,
        connect_timeout: Duration,
    ) -> Self {
        use sqlx::Error as E;
        match e {
            E::PoolTimedOut => LegacyError::Timeout {
                backend,
                stage: "connect",
                after: connect_timeout,
            },
            E::Configuration(m) => LegacyError::Config(format!("{backend}: {m}")),
            E::Io(_) | E::Tls(_) | E::PoolClosed | E::WorkerCrashed | E::Protocol(_) => {
                LegacyError::Unavailable {
                    backend,
                    message: e.to_string(),
                }
            }
            // Authentication failures arrive as database errors with SQLSTATE 28xxx.
            E::Database(ref d) if d.code().is_some_and(|c| c.starts_with("28")) => {
                LegacyError::Unavailable {
                    backend,
                    message: e.to_string(),
                }
            }
            other => LegacyError::Query {
                backend,
                message: other.to_string(),
            },
        }
    }
}

/// Classified from [`ErrorKind`], which stays the finer label (`dripgate_legacy_*` series).
impl Classified for LegacyError {
    fn blame(&self) -> Blame {
        match self {
            Self::Metrics(_) => Blame::Internal,
            _ if self.kind() == ErrorKind::Config => Blame::Config,
            _ => Blame::LegacyStore,
        }
    }

    fn retry(&self) -> Retry {
        match self.kind() {
            ErrorKind::Timeout | ErrorKind::Unavailable => Retry::Later,
            ErrorKind::Config | ErrorKind::Query => Retry::Never,
        }
    }

    fn label(&self) -> &'static str {
        self.kind().as_str()
    }
}
