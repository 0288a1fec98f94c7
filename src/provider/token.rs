//! A single-flight credentials cache: however many callers want a token at once, one fetch runs;
//! the token is reused until shortly before it expires.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::ProviderError;

/// A cached bearer credential.
#[derive(Debug, Clone)]
pub struct Token {
    /// The credential.
    pub value: Arc<SecretString>,
    /// Increases with each fetch; used to invalidate only the token that failed.
    pub generation: u64,
}

#[derive(Debug, Default)]
struct State {
    current: Option<(Token, Instant)>,
    generation: u64,
    last_failure: Option<(Instant, ProviderError)>,
}

/// The cache. Callers queue on one async mutex; the first fetches, the rest reuse its result.
#[derive(Debug, Default)]
pub struct TokenCache {
    state: Mutex<State>,
}

/// How long before expiry a token is replaced: a tenth of its life, at most a minute.
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

impl TokenCache {
    /// Creates an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the cached token, or runs `fetch` (which returns the token and its lifetime).
    /// Callers that queued behind a failed fetch get that failure instead of fetching again.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Token, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(SecretString, Duration), ProviderError>>,
    {
        let queued_at = Instant::now();
        let mut state = self.state.lock().await;
        if let Some((token, refresh_at)) = &state.current
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        if let Some((failed_at, err)) = &state.last_failure
            && *failed_at >= queued_at
        {
            return Err(err.clone());
        }
        match fetch().await {
            Ok((value, lifetime)) => {
                state.generation += 1;
                let token = Token {
                    value: Arc::new(value),
                    generation: state.generation,
                };
                let refresh_at = Instant::now() + lifetime.saturating_sub(refresh_margin(lifetime));
                state.current = Some((token.clone(), refresh_at));
                state.last_failure = None;
                Ok(token)
            }
            Err(err) => {
                state.current = None;
                state.last_failure = Some((Instant::now(), err.clone()));
                Err(err)
            }
        }
    }

    /// Drops the cached token if it is still the one of `generation` (the one that was rejected).
    pub async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state
            .current
            .as_ref()
            .is_some_and(|(t, _)| t.generation == generation)
        {
            state.current = None;
        }
    }
}
