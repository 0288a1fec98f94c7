//! Upstream failures and the short answers the client gets for them.

use std::time::Duration;

use http::{Response, StatusCode, header};

use crate::body::{Body, full};

/// Why a request could not be answered by the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No TCP connection could be made.
    #[error("upstream unreachable: {0}")]
    Connect(String),
    /// The upstream did not send its response head in time.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed after it was made (reset, malformed response).
    #[error("upstream connection failed: {0}")]
    Protocol(String),
    /// The request could not be rewritten for the upstream.
    #[error("request cannot be forwarded: {0}")]
    BadRequest(String),
}

impl UpstreamError {
    /// No connection could be made; worded as hyper-util's client words it.
    #[cold]
    pub(crate) fn connect(err: &(dyn std::error::Error + 'static)) -> Self {
        Self::Connect(format!("client error (Connect): {}", error_chain(err)))
    }

    /// The exchange failed on a connection; `stage` is hyper-util's name for the failure
    /// (`SendRequest`, or `Canceled` when the request was never written).
    #[cold]
    pub(crate) fn send(stage: &str, err: &hyper::Error) -> Self {
        Self::Protocol(format!("client error ({stage}): {}", error_chain(err)))
    }

    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout(_) => "timeout",
            Self::Protocol(_) => "protocol",
            Self::BadRequest(_) => "bad_request",
        }
    }

    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Connect(_) | Self::Protocol(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// Logs the failure and builds the short plain-text answer. Kept out of line (`cold`): the
    /// code of the log line and the answer would otherwise sit inside every forwarding path and
    /// crowd the instruction cache of requests that succeed.
    #[cold]
    #[inline(never)]
    pub fn into_response(self, upstream: &str) -> Response<Body> {
        tracing::warn!(upstream, kind = self.kind(), error = %self, "upstream request failed");
        let status = self.status();
        let text = format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        );
        let mut resp = Response::new(full(text));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
