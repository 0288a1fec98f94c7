//! Typed errors of hash verification. They never carry a hash value or a password.

use super::Format;
use crate::failure::{Blame, Classified, Retry};

/// Why a stored hash could not be checked. A wrong password is `Ok(false)`, never an error.
///
/// Messages name the format and the rule that failed, and never contain the hash or password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The stored value does not have the layout its format requires.
    #[error("malformed {format} hash: {reason}")]
    Malformed {
        /// The format the value was checked as.
        format: Format,
        /// Which rule the value broke.
        reason: &'static str,
    },
    /// The stored value is well formed but uses a variant dripgate does not verify.
    #[error("unsupported {format} hash: {reason}")]
    Unsupported {
        /// The format the value was checked as.
        format: Format,
        /// What is not supported.
        reason: &'static str,
    },
    /// A work-factor parameter read from the hash exceeds the configured cap.
    #[error("{format} hash {param} {value} exceeds the configured cap {max}")]
    CostTooHigh {
        /// The format the value was checked as.
        format: Format,
        /// The parameter's name (`cost`, `rounds`, `iterations`, `memory_kib`, …).
        param: &'static str,
        /// The value the hash asks for.
        value: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The submitted password is longer than `max_password_bytes`.
    #[error("password of {len} bytes exceeds the {max}-byte limit")]
    PasswordTooLong {
        /// The password's length in bytes.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// No format was configured and the value's shape matches none.
    #[error("hash format could not be detected from the stored value")]
    Undetected,
    /// The salted-digest configuration is inconsistent (e.g. a salt position without a salt).
    #[error("invalid {format} settings: {reason}")]
    Settings {
        /// The format the value was checked as.
        format: Format,
        /// What is inconsistent.
        reason: &'static str,
    },
    /// A library used for verification failed or panicked.
    #[error("internal error verifying a {format} hash: {reason}")]
    Internal {
        /// The format the value was checked as.
        format: Format,
        /// What failed.
        reason: &'static str,
    },
}

impl HashError {
    /// Shorthand for [`HashError::Malformed`].
    pub(crate) const fn malformed(format: Format, reason: &'static str) -> Self {
        HashError::Malformed { format, reason }
    }

    /// Shorthand for [`HashError::Unsupported`].
    pub(crate) const fn unsupported(format: Format, reason: &'static str) -> Self {
        HashError::Unsupported { format, reason }
    }

    /// Shorthand for [`HashError::CostTooHigh`], checking `value <= max`.
    pub(crate) fn check_cap(
        format: Format,
        param: &'static str,
        value: u64,
        max: u64,
    ) -> Result<(), Self> {
        if value > max {
            Err(HashError::CostTooHigh {
                format,
                param,
                value,
                max,
            })
        } else {
            Ok(())
        }
    }

    /// A short, bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            HashError::Malformed { .. } => "malformed",
            HashError::Unsupported { .. } => "unsupported",
            HashError::CostTooHigh { .. } => "cost_too_high",
            HashError::PasswordTooLong { .. } => "password_too_long",
            HashError::Undetected => "undetected",
            HashError::Settings { .. } => "settings",
            HashError::Internal { .. } => "internal",
        }
    }
}

/// A stored hash dripgate cannot check is the legacy data's doing and stays so until the user's
/// hash changes; a password over the limit is the client's.
impl Classified for HashError {
    fn blame(&self) -> Blame {
        match self {
            Self::Malformed { .. }
            | Self::Unsupported { .. }
            | Self::CostTooHigh { .. }
            | Self::Undetected => Blame::Legacy,
            Self::PasswordTooLong { .. } => Blame::Client,
            Self::Settings { .. } => Blame::Config,
            Self::Internal { .. } => Blame::Internal,
        }
    }

    fn retry(&self) -> Retry {
        Retry::Never
    }

    fn label(&self) -> &'static str {
        self.kind()
    }
}
