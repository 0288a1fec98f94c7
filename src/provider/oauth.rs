//! The transport of providers whose admin API takes an OAuth 2.0 client-credentials token
//! (Kinde's M2M application, Keycloak's service-account client): the token fetched under the
//! limiter and cached single-flight, authenticated JSON requests with one token refresh on
//! 401/403, and RFC 6749 §5.2 token errors mapped to typed errors. What differs between
//! providers (token URL and form, default lifetime, error hints, answer mapping) is the
//! provider's [`Dialect`] and [`TokenRequest`].

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;
use zeroize::Zeroizing;

use super::error::clip;
use super::http::{Answer, send};
use super::limit::{Idempotency, Limiter};
use super::token::{Token, TokenCache};
use super::{Operation, ProviderError, ProviderKind};
use crate::secret::Secret;

/// A successful token answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// A token endpoint's failure (RFC 6749 §5.2).
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

/// What one provider does its own way in the shared flow.
pub(crate) struct Dialect {
    /// The provider, for errors and logs.
    pub kind: ProviderKind,
    /// The token's lifetime when the answer has no `expires_in`.
    pub default_lifetime: Duration,
    /// Statuses of an admin call that mean success.
    pub success: &'static [u16],
    /// A hint for the operator on an RFC 6749 error code (`invalid_client`, …).
    pub token_hint: fn(&str) -> &'static str,
    /// Maps a non-success answer (401/403 after the one refresh included) to a typed error.
    pub map_failure: fn(Operation, &Answer) -> ProviderError,
}

/// The client-credentials request: the token endpoint and the form (holds the client secret).
pub(crate) struct TokenRequest {
    pub url: Url,
    pub form: Zeroizing<String>,
}

impl TokenRequest {
    /// `grant_type=client_credentials` with the client's id and secret, then `extra` pairs.
    pub fn client_credentials(
        url: Url,
        client_id: &str,
        client_secret: &Secret,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", client_secret.expose_secret())
            .extend_pairs(extra);
        Self {
            url,
            form: Zeroizing::new(form.finish()),
        }
    }
}

/// An admin request: `method url` with an optional JSON body.
pub(crate) struct JsonCall<'a> {
    pub method: reqwest::Method,
    pub url: Url,
    pub body: Option<&'a [u8]>,
}

/// The shared state: HTTP client, limiter and token cache of one provider client.
pub(crate) struct OAuthTransport {
    dialect: &'static Dialect,
    http: reqwest::Client,
    limiter: Limiter,
    tokens: TokenCache,
}

impl OAuthTransport {
    pub fn new(dialect: &'static Dialect, http: reqwest::Client, limiter: Limiter) -> Self {
        Self {
            dialect,
            http,
            limiter,
            tokens: TokenCache::new(),
        }
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The cached token, or a new one fetched with `request` under the limiter.
    pub async fn token<R>(&self, deadline: Instant, request: R) -> Result<Token, ProviderError>
    where
        R: Fn() -> Result<TokenRequest, ProviderError>,
    {
        self.tokens
            .get(|| self.fetch_token(deadline, request))
            .await
    }

    async fn fetch_token<R>(
        &self,
        deadline: Instant,
        request: R,
    ) -> Result<(SecretString, Duration), ProviderError>
    where
        R: Fn() -> Result<TokenRequest, ProviderError>,
    {
        let op = Operation::Token;
        self.limiter.admit(op, deadline).await?;
        let started = Instant::now();
        let result = match request() {
            Ok(request) => self.fetch_token_once(request).await,
            Err(e) => Err(e),
        };
        self.limiter
            .observe(op, result.as_ref().map(|_| ()), started);
        result
    }

    async fn fetch_token_once(
        &self,
        request: TokenRequest,
    ) -> Result<(SecretString, Duration), ProviderError> {
        let op = Operation::Token;
        let kind = self.dialect.kind;
        let http_request = self
            .http
            .post(request.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(request.form.as_bytes().to_vec());
        let answer = send(kind, op, http_request).await?;
        if answer.status == 200 {
            let parsed: TokenResponse =
                serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Invalid {
                    provider: kind,
                    operation: op,
                    status: Some(200),
                    detail: format!("token response: {e}"),
                })?;
            let lifetime = parsed
                .expires_in
                .map_or(self.dialect.default_lifetime, Duration::from_secs)
                .max(Duration::from_secs(1));
            return Ok((SecretString::from(parsed.access_token), lifetime));
        }
        if let Ok(err) = serde_json::from_slice::<OAuthError>(&answer.body)
            && matches!(answer.status, 400 | 401 | 403)
        {
            let hint = (self.dialect.token_hint)(err.error.as_str());
            let desc = err
                .error_description
                .map(|d| format!(" ({})", clip(&d)))
                .unwrap_or_default();
            return Err(ProviderError::Auth {
                provider: kind,
                operation: op,
                detail: format!("{}: {hint}{desc}", clip(&err.error)),
            });
        }
        Err((self.dialect.map_failure)(op, &answer))
    }

    /// Sends an authenticated request; on 401/403 refreshes the token once and resends once
    /// (a scope or role granted to the client shows only in a new token).
    async fn authed<R, B>(
        &self,
        op: Operation,
        deadline: Instant,
        request: &R,
        build: B,
    ) -> Result<Answer, ProviderError>
    where
        R: Fn() -> Result<TokenRequest, ProviderError>,
        B: Fn(&str) -> reqwest::RequestBuilder,
    {
        let kind = self.dialect.kind;
        let token = self.token(deadline, request).await?;
        let answer = send(kind, op, build(token.value.expose_secret())).await?;
        if !matches!(answer.status, 401 | 403) {
            return Ok(answer);
        }
        tracing::debug!(provider = kind.as_str(), operation = %op, status = answer.status, "token rejected; refreshing once");
        self.tokens.invalidate(token.generation).await;
        let token = self.token(deadline, request).await?;
        send(kind, op, build(token.value.expose_secret())).await
    }

    fn json_request(&self, call: &JsonCall<'_>, token: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(call.method.clone(), call.url.clone())
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = call.body {
            r = r
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        r
    }

    /// Sends `call` under the limiter (retried as `idempotency` allows), with a token from
    /// `request`; a status in the dialect's `success` is success, `refine` may turn another
    /// answer into a more specific error than the dialect's mapping.
    pub async fn call<R>(
        &self,
        op: Operation,
        idempotency: Idempotency,
        call: JsonCall<'_>,
        refine: fn(Operation, &Answer) -> Option<ProviderError>,
        request: R,
    ) -> Result<Answer, ProviderError>
    where
        R: Fn() -> Result<TokenRequest, ProviderError>,
    {
        let call = &call;
        let request = &request;
        self.limiter
            .run(op, idempotency, |deadline| async move {
                let a = self
                    .authed(op, deadline, request, |t| self.json_request(call, t))
                    .await?;
                if self.dialect.success.contains(&a.status) {
                    return Ok(a);
                }
                Err(refine(op, &a).unwrap_or_else(|| (self.dialect.map_failure)(op, &a)))
            })
            .await
    }
}
