//! The Kinde client's transport: the M2M token (single-flight cache), authenticated JSON
//! requests with one token refresh on 401/403, and the mapping of answers to typed errors.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;
use zeroize::Zeroizing;

use super::wire::{OAuthError, TokenResponse, error_codes};
use super::{KIND, KindeClient};
use crate::provider::error::clip;
use crate::provider::http::{Answer, send};
use crate::provider::token::Token;
use crate::provider::{Operation, ProviderError};

fn describe_errors(answer: &Answer) -> String {
    let codes = error_codes(answer);
    if codes.is_empty() {
        return format!("status {}", answer.status);
    }
    clip(
        &codes
            .iter()
            .map(|(c, m)| {
                if m.is_empty() {
                    c.clone()
                } else {
                    format!("{c}: {m}")
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// Maps a non-success answer (other than 401/403, handled by the caller) to a typed error.
pub(super) fn map_failure(operation: Operation, answer: &Answer) -> ProviderError {
    match answer.status {
        429 => ProviderError::RateLimited {
            provider: KIND,
            operation,
            retry_after: answer.retry_after(),
        },
        404 => ProviderError::NotFound {
            provider: KIND,
            operation,
        },
        401 | 403 => ProviderError::Auth {
            provider: KIND,
            operation,
            detail: auth_detail(answer),
        },
        408 | 500..=599 => ProviderError::Transient {
            provider: KIND,
            operation,
            detail: describe_errors(answer),
            not_sent: false,
        },
        status => ProviderError::Invalid {
            provider: KIND,
            operation,
            status: Some(status),
            detail: describe_errors(answer),
        },
    }
}

fn auth_detail(answer: &Answer) -> String {
    match answer.status {
        401 => "token rejected (401) after one refresh".into(),
        _ => format!(
            "forbidden (403) after one refresh: the M2M application lacks a scope this call needs ({})",
            describe_errors(answer)
        ),
    }
}

impl KindeClient {
    pub(super) fn url(&self, path: &str) -> Result<Url, ProviderError> {
        Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ProviderError::Config(format!("kinde base_url: {e}")))
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
        let audience = self.config.audience();
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("client_secret", self.config.client_secret.expose_secret())
                .append_pair("audience", &audience);
            if let Some(scope) = &self.config.scope {
                form.append_pair("scope", scope);
            }
            Zeroizing::new(form.finish())
        };
        let request = self
            .http
            .post(self.url("/oauth2/token")?)
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
            let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600).max(1));
            return Ok((SecretString::from(parsed.access_token), lifetime));
        }
        if let Ok(err) = serde_json::from_slice::<OAuthError>(&answer.body)
            && matches!(answer.status, 400 | 401 | 403)
        {
            let hint = match err.error.as_str() {
                "invalid_client" => "client id or secret rejected",
                "unauthorized_client" => {
                    "application not authorised for this audience (check `audience`)"
                }
                "invalid_scope" => "scope not granted to the application",
                "invalid_request" => "malformed token request",
                _ => "token request refused",
            };
            let desc = err
                .error_description
                .map(|d| format!(" ({})", clip(&d)))
                .unwrap_or_default();
            return Err(ProviderError::Auth {
                provider: KIND,
                operation: op,
                detail: format!("{}: {hint}{desc}", clip(&err.error)),
            });
        }
        Err(map_failure(op, &answer))
    }

    pub(super) async fn token(&self, deadline: Instant) -> Result<Token, ProviderError> {
        self.tokens.get(|| self.fetch_token(deadline)).await
    }

    /// Sends an authenticated request; on 401/403 refreshes the token once and resends once.
    pub(super) async fn authed<B>(
        &self,
        op: Operation,
        deadline: Instant,
        build: B,
    ) -> Result<Answer, ProviderError>
    where
        B: Fn(&str) -> Result<reqwest::RequestBuilder, ProviderError>,
    {
        let token = self.token(deadline).await?;
        let answer = send(KIND, op, build(token.value.expose_secret())?).await?;
        if !matches!(answer.status, 401 | 403) {
            return Ok(answer);
        }
        tracing::debug!(provider = "kinde", operation = %op, status = answer.status, "token rejected; refreshing once");
        self.tokens.invalidate(token.generation).await;
        let token = self.token(deadline).await?;
        send(KIND, op, build(token.value.expose_secret())?).await
    }

    pub(super) fn json_request(
        &self,
        method: reqwest::Method,
        url: Url,
        token: &str,
        body: Option<&[u8]>,
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            r = r
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        r
    }

    /// Sends `method url` with `body` under the limiter (retried as `idempotency` allows);
    /// 200 is success, `refine` may turn another answer into a more specific error.
    pub(super) async fn call(
        &self,
        op: Operation,
        idempotency: crate::provider::limit::Idempotency,
        method: reqwest::Method,
        url: Url,
        body: Option<&[u8]>,
        refine: fn(Operation, &Answer) -> Option<ProviderError>,
    ) -> Result<Answer, ProviderError> {
        self.limiter
            .run(op, idempotency, |deadline| {
                let url = url.clone();
                let method = method.clone();
                async move {
                    let a = self
                        .authed(op, deadline, |t| {
                            Ok(self.json_request(method.clone(), url.clone(), t, body))
                        })
                        .await?;
                    if a.status == 200 {
                        return Ok(a);
                    }
                    Err(refine(op, &a).unwrap_or_else(|| map_failure(op, &a)))
                }
            })
            .await
    }
}

/// No refinement: every failure as [`map_failure`] maps it.
pub(super) fn plain(_: Operation, _: &Answer) -> Option<ProviderError> {
    None
}
