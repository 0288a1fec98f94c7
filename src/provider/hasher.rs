//! The one piece of password hashing a provider client needs: a bcrypt of the password the user
//! just proved (Kinde takes only hashes). The server builds it over dripgate's hash pool
//! (`server::wiring`), so the hashing runs on the bounded, low-priority hash threads and never
//! on the async workers; without one, tokio's blocking pool runs it.

use std::fmt;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use zeroize::Zeroizing;

/// Why no hash came back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HasherError {
    /// The hashing task did not run to completion (pool stopped, task aborted).
    #[error("hashing task did not finish")]
    Aborted,
    /// bcrypt refused the input (cost out of range).
    #[error("bcrypt: {0}")]
    Bcrypt(String),
}

/// Hashes passwords with bcrypt off the async workers.
pub trait PasswordHasher: Send + Sync + fmt::Debug {
    /// `bcrypt(password, cost)` as a `$2b$` string. The password is zeroized after use.
    fn bcrypt(
        &self,
        password: Zeroizing<Vec<u8>>,
        cost: u32,
    ) -> BoxFuture<'static, Result<Zeroizing<String>, HasherError>>;
}

/// The bcrypt itself, for whichever thread runs it.
pub fn bcrypt_now(password: &[u8], cost: u32) -> Result<Zeroizing<String>, HasherError> {
    bcrypt::hash(password, cost)
        .map(Zeroizing::new)
        .map_err(|e| HasherError::Bcrypt(e.to_string()))
}

/// Runs the bcrypt on tokio's blocking pool (tools and tests; `serve` uses the hash pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockingHasher;

impl PasswordHasher for BlockingHasher {
    fn bcrypt(
        &self,
        password: Zeroizing<Vec<u8>>,
        cost: u32,
    ) -> BoxFuture<'static, Result<Zeroizing<String>, HasherError>> {
        async move {
            tokio::task::spawn_blocking(move || bcrypt_now(&password, cost))
                .await
                .map_err(|_| HasherError::Aborted)?
        }
        .boxed()
    }
}
