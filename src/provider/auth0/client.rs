//! The Auth0 client's transport: the client-credentials token (single-flight cache), authenticated
//! JSON requests with one token refresh on 401, Auth0's rate-limit headers, and the mapping of
//! answers to typed errors.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;
use zeroize::Zeroizing;

use super::wire::{OAuthError, TokenResponse, error_fields, password_error};
use super::{Auth0Client, KIND};
use crate::provider::error::clip;
use crate::provider::http::{Answer, send};
use crate::provider::limit::Idempotency;
use crate::provider::token::Token;
use crate::provider::{Operation, ProviderError};

/// Seconds since the Unix epoch, now.
fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn header_secs(answer: &Answer, name: &str) -> Option<f64> {
    let v: f64 = answer
        .headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    v.is_finite().then_some(v)
}

/// The wait a 429 asks for: `Retry-After` (seconds) where sent, else `X-RateLimit-Reset`, which
/// Auth0 sends as the **Unix time** (seconds) the limit resets, converted against `now` (epoch
/// seconds). A reset already past gives `None` (the caller backs off); the caller caps the wait
/// at `limits.max_retry_after`, which also bounds the effect of clock skew.
pub(super) fn asked_wait(answer: &Answer, now: f64) -> Option<Duration> {
    if let Some(secs) = header_secs(answer, "retry-after").filter(|s| *s >= 0.0) {
        return Some(Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let reset = header_secs(answer, "x-ratelimit-reset")?;
    let wait = reset - now;
    (wait > 0.0).then(|| Duration::from_secs_f64(wait.min(86_400.0)))
}

fn describe(answer: &Answer) -> String {
    let (message, code) = error_fields(answer);
    match (message.is_empty(), code.is_empty()) {
        (true, true) => format!("status {}", answer.status),
        (false, true) => clip(&message),
        (true, false) => clip(&code),
        (false, false) => clip(&format!("{code}: {message}")),
    }
}

/// Maps a non-success answer to a typed error: 429 with the asked wait, 409 as a duplicate
/// (the caller looks the user up), a named password policy error as a refusal of the password.
pub(super) fn map_failure(operation: Operation, answer: &Answer) -> ProviderError {
    if let Some(reason) = password_error(answer) {
        return ProviderError::PasswordRejected {
            provider: KIND,
            operation,
            reasons: vec![reason],
        };
    }
    match answer.status {
        429 => ProviderError::RateLimited {
            provider: KIND,
            operation,
            retry_after: asked_wait(answer, epoch_now()),
        },
        409 => ProviderError::AlreadyExists {
            provider: KIND,
            operation,
            existing_id: None,
        },
        404 => ProviderError::NotFound {
            provider: KIND,
            operation,
        },
        401 => ProviderError::Auth {
            provider: KIND,
            operation,
            detail: "token rejected (401) after one refresh".into(),
        },
        403 => ProviderError::Auth {
            provider: KIND,
            operation,
            detail: format!(
                "forbidden (403): the application lacks a scope this call needs ({})",
                describe(answer)
            ),
        },
        408 | 500..=599 => ProviderError::Transient {
            provider: KIND,
            operation,
            detail: describe(answer),
            not_sent: false,
        },
        status => ProviderError::Invalid {
            provider: KIND,
            operation,
            status: Some(status),
            detail: describe(answer),
        },
    }
}

fn oauth_failure(answer: &Answer) -> Option<ProviderError> {
    let err: OAuthError = serde_json::from_slice(&answer.body).ok()?;
    if !matches!(answer.status, 400 | 401 | 403) {
        return None;
    }
    let hint = match err.error.as_str() {
        "access_denied" | "invalid_client" => "client id or secret rejected",
        "unauthorized_client" => "application not authorised for this grant or audience",
        "invalid_scope" => "scope not granted to the application",
        "invalid_request" => "malformed token request",
        _ => "token request refused",
    };
    let desc = err
        .error_description
        .map(|d| format!(" ({})", clip(&d)))
        .unwrap_or_default();
    Some(ProviderError::Auth {
        provider: KIND,
        operation: Operation::Token,
        detail: format!("{}: {hint}{desc}", clip(&err.error)),
    })
}

impl Auth0Client {
    pub(super) fn url(&self, path: &str) -> Result<Url, ProviderError> {
        Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ProviderError::Config(format!("auth0 base URL: {e}")))
    }

    /// `/api/v2/users/{id}` with the id as one percent-encoded segment (`auth0|…` has a `|`).
    pub(super) fn user_url(&self, id: &str) -> Result<Url, ProviderError> {
        let mut url = self.url("/api/v2/users")?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::Config("auth0 base URL cannot take a path".into()))?
            .push(id);
        Ok(url)
    }

    async fn fetch_token(
        &self,
        deadline: Instant,
    ) -> Result<(SecretString, Duration), ProviderError> {
        let op = Operation::Token;
        self.limiter.admit(op, deadline).await?;
        let started = Instant::now();
        let result = self.fetch_token_once().await;
        self.limiter
            .observe(op, result.as_ref().map(|_| ()), started);
        result
    }

    async fn fetch_token_once(&self) -> Result<(SecretString, Duration), ProviderError> {
        let op = Operation::Token;
        let body = Zeroizing::new(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("client_secret", self.config.client_secret.expose_secret())
                .append_pair("audience", &self.config.audience())
                .finish(),
        );
        let request = self
            .http
            .post(self.url("/oauth/token")?)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body.as_bytes().to_vec());
        let answer = send(KIND, op, request).await?;
        if answer.status == 200 {
            let parsed: TokenResponse =
                serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Invalid {
                    provider: KIND,
                    operation: op,
                    status: Some(200),
                    detail: format!("token response: {e}"),
                })?;
            if let Ok(mut scopes) = self.granted.lock() {
                *scopes = parsed.scope.clone();
            }
            let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(86_400).max(1));
            return Ok((SecretString::from(parsed.access_token), lifetime));
        }
        Err(oauth_failure(&answer).unwrap_or_else(|| map_failure(op, &answer)))
    }

    pub(super) async fn token(&self, deadline: Instant) -> Result<Token, ProviderError> {
        self.tokens.get(|| self.fetch_token(deadline)).await
    }

    /// Sends an authenticated request; on 401 refreshes the token once and resends once (a 403
    /// is a missing scope, which a new token of the same grant does not fix).
    async fn authed(
        &self,
        op: Operation,
        deadline: Instant,
        method: &reqwest::Method,
        url: &Url,
        body: Option<&[u8]>,
    ) -> Result<Answer, ProviderError> {
        let token = self.token(deadline).await?;
        let build = |t: &Token| self.json_request(method.clone(), url.clone(), t, body);
        let answer = send(KIND, op, build(&token)).await?;
        if answer.status != 401 {
            return Ok(answer);
        }
        tracing::debug!(provider = "auth0", operation = %op, "token rejected; refreshing once");
        self.tokens.invalidate(token.generation).await;
        let token = self.token(deadline).await?;
        send(KIND, op, build(&token)).await
    }

    fn json_request(
        &self,
        method: reqwest::Method,
        url: Url,
        token: &Token,
        body: Option<&[u8]>,
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, url)
            .bearer_auth(token.value.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            r = r
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        r
    }

    /// Sends `method url` with `body` under the limiter (retried as `idempotency` allows); any
    /// 2xx is success.
    pub(super) async fn call(
        &self,
        op: Operation,
        idempotency: Idempotency,
        method: reqwest::Method,
        url: Url,
        body: Option<&[u8]>,
    ) -> Result<Answer, ProviderError> {
        self.limiter
            .run(op, idempotency, |deadline| {
                let (method, url) = (method.clone(), url.clone());
                async move {
                    let a = self.authed(op, deadline, &method, &url, body).await?;
                    if (200..300).contains(&a.status) {
                        return Ok(a);
                    }
                    Err(map_failure(op, &a))
                }
            })
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        Answer {
            status,
            headers: map,
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn the_reset_header_is_epoch_seconds() {
        let now = 1_800_000_000.0;
        let a = answer(429, &[("x-ratelimit-reset", "1800000003")], "");
        assert_eq!(asked_wait(&a, now), Some(Duration::from_secs(3)));
        let past = answer(429, &[("x-ratelimit-reset", "1799999990")], "");
        assert_eq!(
            asked_wait(&past, now),
            None,
            "a reset in the past asks for no wait"
        );
        let both = answer(
            429,
            &[("x-ratelimit-reset", "1800000030"), ("retry-after", "2")],
            "",
        );
        assert_eq!(asked_wait(&both, now), Some(Duration::from_secs(2)));
    }

    #[test]
    fn policy_errors_and_duplicates_are_typed() {
        let weak = answer(
            400,
            &[],
            r#"{"statusCode":400,"error":"Bad Request","message":"PasswordStrengthError: Password is too weak"}"#,
        );
        match map_failure(Operation::CreateUser, &weak) {
            ProviderError::PasswordRejected { reasons, .. } => {
                assert_eq!(reasons, vec!["PasswordStrengthError".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        let dup = answer(
            409,
            &[],
            r#"{"statusCode":409,"error":"Conflict","message":"The user already exists."}"#,
        );
        assert!(matches!(
            map_failure(Operation::CreateUser, &dup),
            ProviderError::AlreadyExists { .. }
        ));
        let other = answer(
            400,
            &[],
            r#"{"statusCode":400,"message":"Connection does not exist."}"#,
        );
        assert!(matches!(
            map_failure(Operation::CreateUser, &other),
            ProviderError::Invalid {
                status: Some(400),
                ..
            }
        ));
    }
}
