//! The Keycloak client's side of the shared client-credentials transport (`provider::oauth`):
//! the service account's token request, URLs, the hints on token errors, and the mapping of
//! answers to typed errors (password policy rejections included).

use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use super::wire::error_messages;
use super::{KIND, KeycloakClient};
use crate::provider::error::clip;
use crate::provider::http::Answer;
use crate::provider::limit::Idempotency;
use crate::provider::oauth::{Dialect, JsonCall, TokenRequest};
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

/// Keycloak's ways in the shared client-credentials transport.
pub(super) static DIALECT: Dialect = Dialect {
    kind: KIND,
    // Keycloak's default access token lifespan is 5 minutes.
    default_lifetime: Duration::from_secs(300),
    success: &[200, 201, 204],
    token_hint,
    map_failure,
};

fn token_hint(error: &str) -> &'static str {
    match error {
        "invalid_client" => "client id unknown, or client secret rejected",
        "unauthorized_client" => {
            "client rejected: wrong secret, or \"Service accounts roles\" is off for it"
        }
        "invalid_scope" => "scope not allowed for the client",
        "invalid_request" => "malformed token request",
        _ => "token request refused",
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

    /// `POST …/realms/{token_realm}/protocol/openid-connect/token` with the service-account
    /// client's credentials.
    fn token_request(&self) -> Result<TokenRequest, ProviderError> {
        let url = self.url(&[
            "realms",
            self.config.token_realm(),
            "protocol",
            "openid-connect",
            "token",
        ])?;
        Ok(TokenRequest::client_credentials(
            url,
            &self.config.client_id,
            &self.config.client_secret,
            &[],
        ))
    }

    pub(super) async fn token(&self, deadline: Instant) -> Result<Token, ProviderError> {
        self.transport
            .token(deadline, || self.token_request())
            .await
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
        let call = JsonCall { method, url, body };
        self.transport
            .call(op, idempotency, call, policy_rejection, || {
                self.token_request()
            })
            .await
    }
}
