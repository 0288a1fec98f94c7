//! Typed, classified provider errors.
//!
//! Every error names the provider and the operation; none carries a password, a secret, a token
//! or a raw response body that could echo one.

use std::fmt;
use std::time::Duration;

use super::{Operation, ProviderKind, ProviderUserId};
use crate::failure::{Blame, Classified, Retry};

/// The class of a provider error: what the caller should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Credentials rejected (after one refresh): a configuration problem.
    Auth,
    /// The provider asked us to slow down.
    RateLimited,
    /// The user (identity) already exists: go and find it.
    AlreadyExists,
    /// The provider's password policy refused this password: permanent for this password.
    PasswordRejected,
    /// The user does not exist.
    NotFound,
    /// The provider does not offer this operation.
    Unsupported,
    /// The provider refused the request as invalid: permanent, a bug or bad input.
    Invalid,
    /// Anything that may work later (network, timeouts, 5xx): fail open, retry on a later sign-in.
    Transient,
    /// dripgate's own configuration is unusable.
    Config,
}

impl ErrorClass {
    /// The bounded label value used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::RateLimited => "rate_limited",
            Self::AlreadyExists => "already_exists",
            Self::PasswordRejected => "password_rejected",
            Self::NotFound => "not_found",
            Self::Unsupported => "unsupported",
            Self::Invalid => "invalid",
            Self::Transient => "transient",
            Self::Config => "config",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a provider client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Credentials were rejected, also after one refresh.
    #[error("{provider} {operation}: authentication failed: {detail}")]
    Auth {
        /// Which provider.
        provider: ProviderKind,
        /// Which operation.
        operation: Operation,
        /// What the provider said (no secrets).
        detail: String,
    },
    /// The provider throttled us; `retry_after` is the wait it asked for, if it said.
    #[error("{provider} {operation}: rate limited (retry after {retry_after:?})")]
    RateLimited {
        /// Which provider.
        provider: ProviderKind,
        /// Which operation.
        operation: Operation,
        /// The wait the provider asked for.
        retry_after: Option<Duration>,
    },
    /// The user already exists at the provider.
    #[error("{provider} {operation}: user already exists")]
    AlreadyExists {
        /// Which provider.
        provider: ProviderKind,
        /// Which operation.
        operation: Operation,
        /// The existing user's id, when the client could find it.
        existing_id: Option<ProviderUserId>,
    },
    /// The password policy rejected the password.
    #[error("{provider} {operation}: password rejected by policy ({})", reasons.join(", "))]
    PasswordRejected {
        /// Which provider.
        provider: ProviderKind,
        /// Which operation.
        operation: Operation,
        /// Policy rule names, e.g. `PasswordTooShort`.
        reasons: Vec<String>,
    },
    /// The user does not exist.
    #[error("{provider} {operation}: user not found")]
    NotFound {
        /// Which provider.
        provider: ProviderKind,
        /// Which operation.
        operation: Operation,
    },
    /// The provider does not support this operation (or this input).
    #[error("{provider} {operation}: not supported: {detail}")]
    Unsupported {
        /// Which provider.
        provider: ProviderKind,
        /// Which operation.
        operation: Operation,
        /// Why.
        detail: String,
    },
    /// The provider rejected the request as invalid.
    #[error("{provider} {operation}: request rejected (status {status:?}): {detail}")]
    Invalid {
        /// Which provider.
        provider: ProviderKind,
        /// Which operation.
        operation: Operation,
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// The provider's error code and message (truncated, no secrets).
        detail: String,
    },
    /// A failure that may not happen again: network, timeout, 5xx.
    #[error("{provider} {operation}: transient failure: {detail}")]
    Transient {
        /// Which provider.
        provider: ProviderKind,
        /// Which operation.
        operation: Operation,
        /// What happened.
        detail: String,
        /// True when the request certainly did not reach the provider (safe to resend).
        not_sent: bool,
    },
    /// The operation's total deadline passed.
    #[error("{provider} {operation}: deadline exceeded")]
    DeadlineExceeded {
        /// Which provider.
        provider: ProviderKind,
        /// Which operation.
        operation: Operation,
    },
    /// The provider configuration is unusable.
    #[error("provider configuration: {0}")]
    Config(String),
}

impl ProviderError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Auth { .. } => ErrorClass::Auth,
            Self::RateLimited { .. } => ErrorClass::RateLimited,
            Self::AlreadyExists { .. } => ErrorClass::AlreadyExists,
            Self::PasswordRejected { .. } => ErrorClass::PasswordRejected,
            Self::NotFound { .. } => ErrorClass::NotFound,
            Self::Unsupported { .. } => ErrorClass::Unsupported,
            Self::Invalid { .. } => ErrorClass::Invalid,
            Self::Transient { .. } | Self::DeadlineExceeded { .. } => ErrorClass::Transient,
            Self::Config(_) => ErrorClass::Config,
        }
    }

    /// True when retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        self.retry() == Retry::Later
    }
}

/// Classified from [`ErrorClass`], which stays the finer label (`dripgate_provider_*` series,
/// the ledger's `last_error`).
impl Classified for ProviderError {
    fn blame(&self) -> Blame {
        match self.class() {
            ErrorClass::Auth | ErrorClass::Config => Blame::Config,
            ErrorClass::RateLimited
            | ErrorClass::AlreadyExists
            | ErrorClass::PasswordRejected
            | ErrorClass::NotFound
            | ErrorClass::Unsupported
            | ErrorClass::Invalid
            | ErrorClass::Transient => Blame::Provider,
        }
    }

    fn retry(&self) -> Retry {
        match self.class() {
            ErrorClass::Transient | ErrorClass::RateLimited => Retry::Later,
            _ => Retry::Never,
        }
    }

    fn label(&self) -> &'static str {
        self.class().as_str()
    }
}

/// Shortens a provider-supplied text for use in an error (bounded size, one line).
pub(crate) fn clip(text: &str) -> String {
    const MAX: usize = 200;
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= MAX {
        one_line
    } else {
        let mut s: String = one_line.chars().take(MAX).collect();
        s.push('…');
        s
    }
}
