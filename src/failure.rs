//! How a failure is classified, once, by the module whose error it is: who is to blame and
//! whether trying again can help. Callers decide from these two answers (fall back, stop, shed,
//! resend, label) instead of matching every module's variants.
//!
//! A leaf module: it knows no other module of dripgate; each error type implements
//! [`Classified`] beside its definition.

use std::fmt;

/// Who is to blame for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blame {
    /// The client's request (its body, its headers, a password too long to hash).
    Client,
    /// The legacy application's data: a stored hash dripgate cannot verify (malformed, of an
    /// unsupported variant, undetectable, costlier than the configured cap).
    Legacy,
    /// The legacy hash store (database or export) could not answer.
    LegacyStore,
    /// An HTTP upstream (the legacy app, or the new upstream in `route`) failed.
    Upstream,
    /// The new identity provider.
    Provider,
    /// The migration ledger's database.
    Ledger,
    /// dripgate's configuration (or the credentials it was given) is unusable.
    Config,
    /// A bounded queue of dripgate's own was full: the work was shed, nothing failed.
    Capacity,
    /// Another holder (a concurrent sign-in, here or on another replica) owns the work.
    Contention,
    /// dripgate itself: a task that died, a metric that could not be registered.
    Internal,
}

impl Blame {
    /// Every value, for tests and pre-registered series.
    pub const ALL: [Blame; 10] = [
        Self::Client,
        Self::Legacy,
        Self::LegacyStore,
        Self::Upstream,
        Self::Provider,
        Self::Ledger,
        Self::Config,
        Self::Capacity,
        Self::Contention,
        Self::Internal,
    ];

    /// A bounded label for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Legacy => "legacy",
            Self::LegacyStore => "legacy_store",
            Self::Upstream => "upstream",
            Self::Provider => "provider",
            Self::Ledger => "ledger",
            Self::Config => "config",
            Self::Capacity => "capacity",
            Self::Contention => "contention",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for Blame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the same work may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retry {
    /// The same input fails the same way until something changes (data, config, password).
    Never,
    /// It may work later: a timeout, an unreachable service, a full queue, a rate limit.
    Later,
    /// The upstream closed a pooled (reused) connection under the request: it may go again
    /// at once on another connection, but only when the failed one was reused, since a fresh
    /// connection failing says the upstream itself is failing (pingora's `ReusedOnly`).
    OnReusedConnection,
}

impl Retry {
    /// A bounded label for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::Later => "later",
            Self::OnReusedConnection => "on_reused_connection",
        }
    }

    /// Whether a failed attempt on a connection that was (`reused`) or was not taken from the
    /// pool may be sent again at once.
    pub const fn now_on(self, reused: bool) -> bool {
        matches!(self, Self::OnReusedConnection) && reused
    }
}

impl fmt::Display for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that says who is to blame and whether trying again helps.
pub trait Classified: std::error::Error {
    /// Who is to blame.
    fn blame(&self) -> Blame;

    /// Whether the same work may succeed if tried again.
    fn retry(&self) -> Retry;

    /// A short, bounded name of the failure (metric labels, the ledger's `last_error`, log
    /// fields). The blame's label unless the module names its failures more finely.
    fn label(&self) -> &'static str {
        self.blame().as_str()
    }
}

#[cfg(test)]
mod tests;
