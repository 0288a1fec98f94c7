//! Shared HTTP helpers: client construction, response reading, header parsing.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;

use super::config::HttpConfig;
use super::{Operation, ProviderError, ProviderKind};

/// Largest response body read from a provider.
const MAX_BODY: usize = 1024 * 1024;

/// Builds the reqwest client: timeouts, optional extra CA bundle.
pub(crate) fn build_client(http: &HttpConfig) -> Result<reqwest::Client, ProviderError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("dripgate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(http.connect_timeout)
        .timeout(http.request_timeout)
        .pool_idle_timeout(Duration::from_secs(60));
    if let Some(path) = &http.ca_bundle {
        let pem = std::fs::read(path).map_err(|e| {
            ProviderError::Config(format!("http.ca_bundle {}: {e}", path.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            ProviderError::Config(format!("http.ca_bundle {}: {e}", path.display()))
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| ProviderError::Config(format!("building the HTTP client: {e}")))
}

/// A provider's answer, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// Whether the content type is JSON.
    pub fn is_json(&self) -> bool {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("json"))
    }

    /// The wait the provider asked for: `RateLimit-Reset` (seconds until reset, Kinde) or
    /// `Retry-After` (seconds).
    pub fn retry_after(&self) -> Option<Duration> {
        ["ratelimit-reset", "retry-after"].iter().find_map(|name| {
            let v = self.headers.get(*name)?.to_str().ok()?.trim();
            let secs: f64 = v.parse().ok()?;
            (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
        })
    }
}

/// Sends a request and reads the answer; maps transport failures to transient errors.
pub(crate) async fn send(
    provider: ProviderKind,
    operation: Operation,
    request: reqwest::RequestBuilder,
) -> Result<Answer, ProviderError> {
    let transient = |e: reqwest::Error| ProviderError::Transient {
        provider,
        operation,
        detail: describe(&e),
        not_sent: e.is_connect(),
    };
    let response = request.send().await.map_err(transient)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    if response
        .content_length()
        .is_some_and(|l| l > MAX_BODY as u64)
    {
        return Err(ProviderError::Transient {
            provider,
            operation,
            detail: format!("status {status}: response body too large"),
            not_sent: false,
        });
    }
    let body = response.bytes().await.map_err(transient)?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A transport error described without the URL (which may carry the queried email).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else if e.is_request() {
        "sending the request failed"
    } else {
        "HTTP error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::from(kind);
    // The innermost cause says what happened (reset, refused, TLS…); never contains the URL.
    while let Some(s) = source {
        if s.source().is_none() {
            detail.push_str(": ");
            detail.push_str(&super::error::clip(&s.to_string()));
        }
        source = s.source();
    }
    detail
}
