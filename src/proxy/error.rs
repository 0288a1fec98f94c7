//! Upstream failures and the short answers the client gets for them.

use std::time::Duration;

use http::{Response, StatusCode, header};

use super::metrics::ClientErrorReason;
use crate::body::{Body, full};
use crate::failure::{Blame, Classified, Retry};

/// A request refused or cut because the client got it wrong; never an upstream error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// HTTP/1.1 without Host (RFC 9112 §3.2).
    #[error("request without Host")]
    MissingHost,
    /// More than one Host line, or one Host line with a list.
    #[error("request with more than one Host")]
    RepeatedHost,
    /// Transfer codings other than `chunked` alone, which dripgate cannot pass on.
    #[error("transfer coding other than chunked")]
    TransferCoding,
    /// The request body could not be decoded (chunk framing, truncation).
    #[error("malformed request body")]
    MalformedBody,
    /// No request body bytes arrived for `upstream.body_inactivity_timeout`.
    #[error("request body stalled")]
    BodyTimeout,
}

impl ClientError {
    /// The status the client gets.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingHost | Self::RepeatedHost | Self::MalformedBody => StatusCode::BAD_REQUEST,
            Self::TransferCoding => StatusCode::NOT_IMPLEMENTED,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Its `dripgate_client_errors_total` reason.
    pub fn reason(self) -> ClientErrorReason {
        match self {
            Self::MissingHost | Self::RepeatedHost => ClientErrorReason::BadHost,
            Self::TransferCoding => ClientErrorReason::TransferCoding,
            Self::MalformedBody => ClientErrorReason::MalformedBody,
            Self::BodyTimeout => ClientErrorReason::BodyTimeout,
        }
    }
}

/// The client's doing; a stalled body may arrive in time on another try.
impl Classified for ClientError {
    fn blame(&self) -> Blame {
        Blame::Client
    }

    fn retry(&self) -> Retry {
        match self {
            Self::BodyTimeout => Retry::Later,
            _ => Retry::Never,
        }
    }

    fn label(&self) -> &'static str {
        self.reason().as_str()
    }
}

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
    /// The client's request is at fault (refused before it went upstream, or its body failed
    /// on the way): counted as a client error, not against the upstream.
    #[error("{0}")]
    Client(#[from] ClientError),
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
            Self::Client(_) => "client",
        }
    }

    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Client(err) => err.status(),
            Self::Connect(_) | Self::Protocol(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// Logs the failure and builds the short plain-text answer. Kept out of line (`cold`): the
    /// code of the log line and the answer would otherwise sit inside every forwarding path and
    /// crowd the instruction cache of requests that succeed.
    #[cold]
    #[inline(never)]
    pub fn into_response(self, upstream: &str) -> Response<Body> {
        match &self {
            Self::Client(err) => tracing::debug!(upstream, error = %err, "request refused"),
            _ => {
                tracing::warn!(upstream, kind = self.kind(), error = %self, "upstream request failed")
            }
        }
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

/// What reaches the client is final: the pool already sent again what its rule allows
/// ([`Retry::OnReusedConnection`]), so a failed exchange is not retried, while an upstream
/// that could not be reached or was slow may answer a later request.
impl Classified for UpstreamError {
    fn blame(&self) -> Blame {
        match self {
            Self::Connect(_) | Self::Timeout(_) | Self::Protocol(_) => Blame::Upstream,
            Self::BadRequest(_) => Blame::Client,
            Self::Client(e) => e.blame(),
        }
    }

    fn retry(&self) -> Retry {
        match self {
            Self::Connect(_) | Self::Timeout(_) => Retry::Later,
            Self::Protocol(_) | Self::BadRequest(_) => Retry::Never,
            Self::Client(e) => e.retry(),
        }
    }

    fn label(&self) -> &'static str {
        self.kind()
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
