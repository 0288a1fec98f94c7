//! The Keycloak client's transport: the service account's token (client credentials,
//! single-flight cache), authenticated JSON requests with one token refresh on 401/403, and the
//! mapping of answers to typed errors.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;
use zeroize::Zeroizing;

use super::wire::{OAuthError, TokenResponse, error_messages};
use super::{KIND, KeycloakClient};
use crate::provider::error::clip;
use crate::provider::http::{Answer, send};
use crate::provider::limit::Idempotency;
use crate::provider::token::Token;
use crate::provider::{Operation, ProviderError};

fn describe(answer: &Answer) -> String {
    let messages = error_messages(answer);
    if messages.is_empty() {
        format!("status {}", answer.status)
    } else {
        clip(&messages.join("; "))
    }
}

/// Maps a non-success answer to a typed error.
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
        401 => ProviderError::Auth {
            provider: KIND,
            operation,
            detail: "token rejected (401) after one refresh".into(),
        },
        403 => ProviderError::Auth {
            provider: KIND,
            operation,
            detail: format!(
                "forbidden (403) after one refresh: the service account lacks a realm-management \
                 role this call needs (manage-users, view-users) ({})",
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

/// A 400 naming a password policy rule: `reset-password` answers `{"error":
/// "invalidPassword…Message", "error_description": …}`, a create or update with a credential
/// `{"errorMessage": "invalidPassword…Message"}` or (older servers) `"Password policy not met"`.
pub(super) fn policy_rejection(operation: Operation, answer: &Answer) -> Option<ProviderError> {
    if answer.status != 400 || operation == Operation::ImportHash {
        return None;
    }
    let messages = error_messages(answer);
    let reasons: Vec<String> = messages
        .iter()
        .filter(|m| m.starts_with("invalidPassword") || m.as_str() == "Password policy not met")
        .map(|m| clip(m))
        .collect();
    (!reasons.is_empty()).then_some(ProviderError::PasswordRejected {
        provider: KIND,
        operation,
        reasons,
    })
}

impl KeycloakClient {
    /// `base_url` + `segments`, each segment percent-encoded.
    pub(super) fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        let mut url = Url::parse(&self.base)
            .map_err(|e| ProviderError::Config(format!("keycloak base_url: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::Config("keycloak base_url cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// `…/admin/realms/{realm}` + `segments`.
    pub(super) fn admin_url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        let mut all = vec!["admin", "realms", self.config.realm.as_str()];
        all.extend_from_slice(segments);
        self.url(&all)
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
                .finish(),
        );
        let url = self.url(&[
            "realms",
            self.config.token_realm(),
            "protocol",
            "openid-connect",
            "token",
        ])?;
        let request = self
            .http
            .post(url)
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
            // Keycloak's default access token lifespan is 5 minutes.
            let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(300).max(1));
            return Ok((SecretString::from(parsed.access_token), lifetime));
        }
        if let Ok(err) = serde_json::from_slice::<OAuthError>(&answer.body)
            && matches!(answer.status, 400 | 401 | 403)
        {
            let hint = match err.error.as_str() {
                "invalid_client" => "client id unknown, or client secret rejected",
                "unauthorized_client" => {
                    "client rejected: wrong secret, or \"Service accounts roles\" is off for it"
                }
                "invalid_scope" => "scope not allowed for the client",
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

    /// Sends an authenticated request; on 401/403 refreshes the token once and resends once
    /// (a role granted to the service account shows only in a new token).
    async fn authed<B>(
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
        tracing::debug!(provider = "keycloak", operation = %op, status = answer.status, "token rejected; refreshing once");
        self.tokens.invalidate(token.generation).await;
        let token = self.token(deadline).await?;
        send(KIND, op, build(token.value.expose_secret())?).await
    }

    fn json_request(
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
    /// 200, 201 and 204 are success; a 400 naming a password policy rule is `PasswordRejected`.
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
                let url = url.clone();
                let method = method.clone();
                async move {
                    let a = self
                        .authed(op, deadline, |t| {
                            Ok(self.json_request(method.clone(), url.clone(), t, body))
                        })
                        .await?;
                    if matches!(a.status, 200 | 201 | 204) {
                        return Ok(a);
                    }
                    Err(policy_rejection(op, &a).unwrap_or_else(|| map_failure(op, &a)))
                }
            })
            .await
    }
}
