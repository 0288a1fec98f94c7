//! The generic HTTP provider's transport: every request signed afresh (timestamp, nonce,
//! signature) per attempt, sent under the client's limiter, answers mapped to typed errors by
//! the contract's status codes and `Error.code`.

use url::{Position, Url};

use super::sign::{self, Signed};
use super::wire::ErrorBody;
use super::{GenericHttpClient, KIND};
use crate::provider::error::clip;
use crate::provider::http::{Answer, send};
use crate::provider::limit::Idempotency;
use crate::provider::{Operation, ProviderError, ProviderUserId};

/// One request of the contract.
pub(super) struct Call<'a> {
    pub op: Operation,
    pub idempotency: Idempotency,
    pub method: reqwest::Method,
    pub url: Url,
    pub body: Option<&'a [u8]>,
    /// `Idempotency-Key` (creates), the same for every attempt.
    pub idempotency_key: Option<&'a str>,
    /// Answers other than 2xx that the operation reads itself (find's 404 `user_not_found`).
    pub also_ok: fn(&Answer) -> bool,
}

/// Only 2xx answers are the operation's.
pub(super) fn only_2xx(_: &Answer) -> bool {
    false
}

/// The error body, if the answer has one in the contract's shape.
pub(super) fn error_body(answer: &Answer) -> ErrorBody {
    serde_json::from_slice(&answer.body).unwrap_or_default()
}

fn describe(answer: &Answer, body: &ErrorBody) -> String {
    match (body.code.is_empty(), body.message.is_empty()) {
        (true, _) => format!("status {}", answer.status),
        (false, true) => clip(&body.code),
        (false, false) => clip(&format!("{}: {}", body.code, body.message)),
    }
}

/// Maps a non-success answer to a typed error (see the table in docs/PROVIDERS.md).
pub(super) fn map_failure(operation: Operation, answer: &Answer) -> ProviderError {
    let body = error_body(answer);
    let detail = describe(answer, &body);
    match (answer.status, body.code.as_str()) {
        (401 | 403, _) => ProviderError::Auth {
            provider: KIND,
            operation,
            detail: format!("request refused ({}): {detail}", answer.status),
        },
        (429, _) => ProviderError::RateLimited {
            provider: KIND,
            operation,
            retry_after: answer.retry_after(),
        },
        (404, "user_not_found") => ProviderError::NotFound {
            provider: KIND,
            operation,
        },
        (409, _) => ProviderError::AlreadyExists {
            provider: KIND,
            operation,
            existing_id: body.existing_id.map(ProviderUserId),
        },
        (422, "password_policy") => ProviderError::PasswordRejected {
            provider: KIND,
            operation,
            reasons: if body.reasons.is_empty() {
                vec![body.code]
            } else {
                body.reasons.iter().take(16).map(|r| clip(r)).collect()
            },
        },
        (501, _) => ProviderError::Unsupported {
            provider: KIND,
            operation,
            detail,
        },
        (408 | 500..=599, _) => ProviderError::Transient {
            provider: KIND,
            operation,
            detail,
            not_sent: false,
        },
        (status, _) => ProviderError::Invalid {
            provider: KIND,
            operation,
            status: Some(status),
            detail,
        },
    }
}

impl GenericHttpClient {
    /// `base_url` + `path` (the path already percent-encoded).
    pub(super) fn url(&self, path: &str) -> Result<Url, ProviderError> {
        Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ProviderError::Config(format!("http_provider base_url: {e}")))
    }

    /// The request with a fresh timestamp, nonce and signature.
    fn signed(&self, call: &Call<'_>) -> reqwest::RequestBuilder {
        let timestamp = sign::unix_now().to_string();
        let nonce = sign::nonce();
        let body = call.body.unwrap_or_default();
        let signed = Signed {
            key_id: &self.config.key_id,
            timestamp: &timestamp,
            nonce: &nonce,
            method: call.method.as_str(),
            target: &call.url[Position::BeforePath..Position::AfterQuery],
            idempotency_key: call.idempotency_key.unwrap_or_default(),
            body,
        };
        let signature = self.key.sign(&signed);
        let mut r = self
            .http
            .request(call.method.clone(), call.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(sign::KEY_ID, &self.config.key_id)
            .header(sign::TIMESTAMP, timestamp)
            .header(sign::NONCE, nonce)
            .header(sign::SIGNATURE, signature);
        if let Some(key) = call.idempotency_key {
            r = r.header(sign::IDEMPOTENCY_KEY, key);
        }
        if let Some(body) = call.body {
            r = r
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        r
    }

    /// Sends `call` under the limiter (retried as its idempotency allows, each attempt signed
    /// anew); a 2xx answer (or one `also_ok` takes) is returned, anything else mapped.
    pub(super) async fn call(&self, call: Call<'_>) -> Result<Answer, ProviderError> {
        let call = &call;
        self.limiter
            .run(call.op, call.idempotency, |_deadline| async move {
                let answer = send(KIND, call.op, self.signed(call)).await?;
                if (200..300).contains(&answer.status) || (call.also_ok)(&answer) {
                    Ok(answer)
                } else {
                    Err(map_failure(call.op, &answer))
                }
            })
            .await
    }
}
