//! Sign-in interception. The router picks out the configured method + exact path pairs; their
//! bodies are buffered (size- and time-limited) so the credentials can be read, and the original
//! bytes are then forwarded to the legacy app unchanged. A body larger than the limit is
//! forwarded untouched, streamed.

pub mod extract;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;

use crate::body::{Body, PrefixedBody, boxed, full};
use crate::config::SigninConfig;
use crate::proxy::{ClientInfo, Forwarder};

/// Which handler a request goes to; also the `route` label of the request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Forwarded as is, streamed.
    Proxy,
    /// A configured sign-in route: the body is read before forwarding.
    Signin,
}

impl RouteClass {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Signin => "signin",
        }
    }
}

/// Classifies requests by method and exact path.
#[derive(Debug, Clone, Default)]
pub struct Router {
    signin: Vec<(Method, String)>,
}

impl Router {
    /// A router for the sign-in routes in `config` (validated beforehand).
    pub fn new(config: &SigninConfig) -> Self {
        let signin = config
            .routes
            .iter()
            .filter_map(|r| {
                Method::from_bytes(r.method.as_bytes())
                    .ok()
                    .map(|m| (m, r.path.clone()))
            })
            .collect();
        Self { signin }
    }

    /// The class of a request with this method and path (query excluded).
    pub fn classify(&self, method: &Method, path: &str) -> RouteClass {
        if self.signin.iter().any(|(m, p)| m == method && p == path) {
            RouteClass::Signin
        } else {
            RouteClass::Proxy
        }
    }
}

/// What reading a sign-in body produced.
pub enum SigninBody {
    /// The whole body, within the size limit.
    Buffered(Bytes),
    /// Too large to inspect: the part read so far followed by the rest, to forward untouched.
    Oversized(Body),
}

/// Handles sign-in routes.
#[derive(Clone)]
pub struct SigninHandler {
    max_body_bytes: usize,
    body_timeout: Duration,
}

impl SigninHandler {
    /// A handler with the limits from `config`.
    pub fn new(config: &SigninConfig) -> Self {
        Self {
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.body_timeout,
        }
    }

    /// Reads the body within limits, then forwards the original bytes to legacy.
    pub async fn handle(
        &self,
        req: Request<Body>,
        client: ClientInfo,
        legacy: &Forwarder,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let declared_too_large = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len > self.max_body_bytes as u64);
        if declared_too_large {
            return legacy
                .forward(Request::from_parts(parts, body), client)
                .await;
        }
        let read = tokio::time::timeout(self.body_timeout, read_limited(body, self.max_body_bytes));
        let body = match read.await {
            Err(_) => return plain(StatusCode::REQUEST_TIMEOUT),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "client sign-in body failed");
                return plain(StatusCode::BAD_REQUEST);
            }
            Ok(Ok(SigninBody::Oversized(body))) => body,
            Ok(Ok(SigninBody::Buffered(bytes))) => full(bytes),
        };
        legacy
            .forward(Request::from_parts(parts, body), client)
            .await
    }
}

/// Reads `body` until it ends or exceeds `limit` bytes.
pub async fn read_limited(
    mut body: Body,
    limit: usize,
) -> Result<SigninBody, crate::body::BoxError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(data) = frame.data_ref() {
            buf.extend_from_slice(data);
            if buf.len() > limit {
                let rest = PrefixedBody::new(buf.freeze(), body);
                return Ok(SigninBody::Oversized(boxed(rest)));
            }
        }
    }
    Ok(SigninBody::Buffered(buf.freeze()))
}

fn plain(status: StatusCode) -> Response<Body> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    resp
}
