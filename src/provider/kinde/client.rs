//! The Kinde client's side of the shared client-credentials transport (`provider::oauth`): the
//! M2M token request, the hints on token errors, and the mapping of answers to typed errors.

use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use super::wire::error_codes;
use super::{KIND, KindeClient};
use crate::provider::error::clip;
use crate::provider::http::Answer;
use crate::provider::oauth::{Dialect, JsonCall, TokenRequest};
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

/// Kinde's ways in the shared client-credentials transport.
pub(super) static DIALECT: Dialect = Dialect {
    kind: KIND,
    default_lifetime: Duration::from_secs(3600),
    success: &[200],
    token_hint,
    map_failure,
};

fn token_hint(error: &str) -> &'static str {
    match error {
        "invalid_client" => "client id or secret rejected",
        "unauthorized_client" => "application not authorised for this audience (check `audience`)",
        "invalid_scope" => "scope not granted to the application",
        "invalid_request" => "malformed token request",
        _ => "token request refused",
    }
}

impl KindeClient {
    pub(super) fn url(&self, path: &str) -> Result<Url, ProviderError> {
        Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ProviderError::Config(format!("kinde base_url: {e}")))
    }

    /// `POST /oauth2/token` with the M2M application's credentials for the management API.
    fn token_request(&self) -> Result<TokenRequest, ProviderError> {
        let audience = self.config.audience();
        let mut extra = vec![("audience", audience.as_str())];
        if let Some(scope) = &self.config.scope {
            extra.push(("scope", scope));
        }
        Ok(TokenRequest::client_credentials(
            self.url("/oauth2/token")?,
            &self.config.client_id,
            &self.config.client_secret,
            &extra,
        ))
    }

    pub(super) async fn token(&self, deadline: Instant) -> Result<Token, ProviderError> {
        self.transport
            .token(deadline, || self.token_request())
            .await
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
        let call = JsonCall { method, url, body };
        self.transport
            .call(op, idempotency, call, refine, || self.token_request())
            .await
    }
}

/// No refinement: every failure as [`map_failure`] maps it.
pub(super) fn plain(_: Operation, _: &Answer) -> Option<ProviderError> {
    None
}
