//! Where the server is in its life: running, draining, closed.

/// Where the server is in its life; every connection task watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Accepting and serving.
    Running,
    /// Not accepting; connections finish their in-flight requests and close.
    Draining,
    /// The drain deadline passed: remaining connections are dropped.
    Closed,
}
