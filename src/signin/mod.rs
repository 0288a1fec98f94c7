//! Sign-in interception. The router picks out the configured method + exact path pairs; their
//! bodies are buffered (size- and time-limited) so the credentials can be read, and the original
//! bytes are then forwarded to the legacy app unchanged. A body larger than the limit is
//! forwarded untouched, streamed.

pub mod config;
pub mod extract;

mod body;
mod budget;
mod forgot;
mod metrics;
mod route;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use prometheus::Registry;

use crate::body::{Body, full};
use crate::failure::{Blame, Classified, Retry};
use crate::migrate::{Engine, Exit, Outcome, Phase, RouteDecision};
use crate::proxy::{ClientInfo, Forwarder};
pub use body::SigninBody;
use body::{ReadError, content_length, read_limited};
use budget::BodyBudget;
use config::{FailureSignature, LegacyUserBinding, SigninConfig, UnreadInRoute};
use extract::{FieldSpec, Unread};
pub use metrics::SigninMetrics;
pub use route::{RouteClass, Router, normalize_path};

/// Why a sign-in was refused in `route` rather than forwarded to legacy: the legacy app could
/// read it as a sign-in of a migrated user that dripgate cannot see (a bounded set; a label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The credentials could not be read unambiguously.
    Unread(Unread),
    /// The body is over `signin.max_body_bytes`.
    TooLarge,
    /// The identifier matches several legacy users, one of them migrated.
    AmbiguousIdentity,
}

impl Refusal {
    /// Every label, for pre-registering metric series.
    pub const LABELS: [&'static str; 10] = [
        "unsupported_content_type",
        "malformed_body",
        "repeated_field",
        "aliased_field",
        "field_in_query",
        "undecodable_part",
        "not_text",
        "control_characters",
        "too_large",
        "ambiguous_identity",
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unread(reason) => reason.as_str(),
            Self::TooLarge => "too_large",
            Self::AmbiguousIdentity => "ambiguous_identity",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Unread(Unread::RepeatedField) => "a sign-in field is repeated",
            Self::Unread(Unread::AliasedField) => "a sign-in field is spelled more than one way",
            Self::Unread(Unread::FieldInQuery) => "sign-in fields belong in the body, not the URL",
            Self::Unread(Unread::ControlCharacters) => "the identifier holds control characters",
            Self::Unread(_) => "the sign-in request could not be read",
            Self::TooLarge => "the sign-in request is too large",
            Self::AmbiguousIdentity => "the identifier matches more than one account",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Refusal {}

/// A refusal is the request's doing: the same request is refused again.
impl Classified for Refusal {
    fn blame(&self) -> Blame {
        Blame::Client
    }

    fn retry(&self) -> Retry {
        Retry::Never
    }

    fn label(&self) -> &'static str {
        self.as_str()
    }
}

/// One sign-in route's parsing rules and what legacy's answer must show.
#[derive(Clone)]
struct RouteSpec {
    fields: FieldSpec,
    failure: FailureSignature,
    legacy_user: Option<LegacyUserBinding>,
}

/// Handles sign-in routes.
#[derive(Clone)]
pub struct SigninHandler {
    max_body_bytes: usize,
    body_timeout: Duration,
    unread_in_route: UnreadInRoute,
    routes: Vec<RouteSpec>,
    budget: BodyBudget,
    metrics: SigninMetrics,
    engine: Option<Engine>,
    new_upstream: Option<Forwarder>,
    /// The forgot-password routes, when configured.
    forgot: Option<forgot::ForgotPassword>,
}

impl From<RouteDecision> for Decision {
    fn from(decision: RouteDecision) -> Self {
        match decision {
            RouteDecision::Legacy => Decision::Legacy,
            RouteDecision::Redirect(location) => Decision::Redirect(location),
            RouteDecision::NewUpstream => Decision::NewUpstream,
            RouteDecision::Deny => Decision::Deny,
            RouteDecision::AmbiguousIdentity => Decision::Refuse(Refusal::AmbiguousIdentity),
        }
    }
}

/// Where a sign-in goes after the routing decision.
enum Decision {
    Legacy,
    Redirect(String),
    NewUpstream,
    Deny,
    Refuse(Refusal),
}

impl SigninHandler {
    /// A handler with the limits and routes from `config`, its metrics registered in
    /// `registry`. Without an engine, sign-in bodies are only read and forwarded;
    /// `new_upstream` serves `route` mode `forward`.
    pub fn new(
        config: &SigninConfig,
        registry: &Registry,
        engine: Option<Engine>,
        new_upstream: Option<Forwarder>,
    ) -> Result<Self, prometheus::Error> {
        let routes = config
            .routes
            .iter()
            .map(|r| RouteSpec {
                fields: FieldSpec {
                    kind: r.body,
                    identifier: r.identifier_field.clone(),
                    password: r.password_field.clone(),
                },
                failure: r.legacy_failure.clone(),
                legacy_user: r.legacy_user.clone(),
            })
            .collect();
        let metrics = SigninMetrics::register(registry)?;
        let forgot = if config.forgot_password.routes.is_empty() {
            None
        } else {
            Some(forgot::ForgotPassword::new(
                &config.forgot_password,
                &Router::new(config),
                config.routes.len(),
                registry,
            )?)
        };
        Ok(Self {
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.body_timeout,
            unread_in_route: config.unread_in_route,
            routes,
            budget: BodyBudget::new(
                config.buffer_budget_bytes,
                config.buffer_wait,
                metrics.clone(),
            ),
            metrics,
            engine,
            new_upstream,
            forgot,
        })
    }

    /// The migration engine, when migration is configured.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// Records how a sign-in ended: counted with the engine's metrics when migration is
    /// configured, logged either way ([`Exit::record`]).
    fn record(&self, exit: impl Into<Exit>) {
        match &self.engine {
            Some(engine) => engine.record(exit),
            None => exit.into().record(None),
        }
    }

    /// Whether a sign-in the legacy app could read differently is refused now: in `route`
    /// (with a route target), unless the operator chose to forward such requests; always in
    /// `complete`, where no sign-in reaches legacy.
    fn strict(&self) -> bool {
        let Some(engine) = &self.engine else {
            return false;
        };
        let phase = engine.phase().get().phase;
        let routing = engine.config().route.is_some();
        match phase {
            Phase::Complete => routing,
            Phase::Route => routing && self.unread_in_route == UnreadInRoute::Refuse,
            Phase::Observe | Phase::Migrate => false,
        }
    }

    /// Reads a body within the limits for a request that is answered here (a bridged reset
    /// request): too large is refused (413), a failed read answered with its status. The
    /// reservation holds the body's room in the budget for as long as the caller keeps it.
    async fn read_body(
        &self,
        body: Body,
        headers: &http::HeaderMap,
    ) -> Result<(Bytes, budget::Reservation), Response<Body>> {
        let declared = content_length(headers);
        if declared.is_some_and(|len| len > self.max_body_bytes as u64) {
            return Err(self.refuse(Refusal::TooLarge));
        }
        let mut room = self.budget.reservation();
        let read = read_limited(body, self.max_body_bytes, declared, &mut room);
        match tokio::time::timeout(self.body_timeout, read)
            .await
            .unwrap_or(Err(ReadError::Timeout))
        {
            Ok(SigninBody::Buffered(bytes)) => Ok((bytes, room)),
            Ok(SigninBody::Oversized(_)) => Err(self.refuse(Refusal::TooLarge)),
            Err(e) => {
                self.record(Exit::with(e.outcome(), &e));
                Err(plain(e.status()))
            }
        }
    }

    /// Reads the body within limits, decides where the sign-in goes, forwards the original
    /// bytes, and hands the credentials to the migration engine when legacy accepted them.
    pub async fn handle(
        &self,
        req: Request<Body>,
        client: &ClientInfo,
        legacy: &Forwarder,
        route: usize,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let strict = self.strict();
        let declared = content_length(&parts.headers);
        if declared.is_some_and(|len| len > self.max_body_bytes as u64) {
            if strict {
                return self.refuse(Refusal::TooLarge);
            }
            self.record(Outcome::TooLarge);
            return legacy
                .forward(Request::from_parts(parts, body), client)
                .await;
        }
        let mut room = self.budget.reservation();
        let read = read_limited(body, self.max_body_bytes, declared, &mut room);
        let read = tokio::time::timeout(self.body_timeout, read)
            .await
            .unwrap_or(Err(ReadError::Timeout));
        let bytes = match read {
            Err(e) => {
                self.record(Exit::with(e.outcome(), &e));
                return plain(e.status());
            }
            Ok(SigninBody::Oversized(_)) if strict => {
                return self.refuse(Refusal::TooLarge);
            }
            Ok(SigninBody::Oversized(body)) => {
                self.record(Outcome::TooLarge);
                return legacy
                    .forward(Request::from_parts(parts, body), client)
                    .await;
            }
            Ok(SigninBody::Buffered(bytes)) => bytes,
        };
        let (Some(engine), Some(spec)) = (&self.engine, self.routes.get(route)) else {
            return legacy
                .forward(Request::from_parts(parts, full(bytes)), client)
                .await;
        };
        let read = extract::extract(&spec.fields, &parts.headers, parts.uri.query(), &bytes);
        let mut credentials = match read.await {
            Ok(c) => c,
            Err(reason) => {
                self.metrics.unread(reason);
                if strict && reason.is_ambiguous() {
                    return self.refuse(Refusal::Unread(reason));
                }
                // No sign-in credentials: a reset request where a forgot-password route
                // shares the path (WordPress's `/wp-login.php?action=lostpassword`).
                if reason == Unread::NoCredentials
                    && let Some(forgot) = self.reset_beside(route)
                {
                    return self
                        .forgot_buffered(parts, bytes, client, legacy, forgot)
                        .await;
                }
                engine.record(Exit::with(Outcome::Unread, &reason));
                // In `complete` a half-filled sign-in goes to the provider too, never to legacy.
                if self.closed() && reason != Unread::NoCredentials {
                    let decision = Decision::from(engine.route_decision("").await);
                    return self.to_provider(decision, parts, bytes, client).await;
                }
                return legacy
                    .forward(Request::from_parts(parts, full(bytes)), client)
                    .await;
            }
        };
        if self.closed() {
            let decision = Decision::from(engine.route_decision(&credentials.identifier).await);
            return self.to_provider(decision, parts, bytes, client).await;
        }
        match Decision::from(engine.route_decision(&credentials.identifier).await) {
            Decision::Legacy => {}
            Decision::Redirect(location) => {
                engine.record(Outcome::Routed);
                return redirect(&location);
            }
            Decision::NewUpstream => {
                if let Some(new_upstream) = &self.new_upstream {
                    engine.record(Outcome::Routed);
                    return new_upstream
                        .forward(Request::from_parts(parts, full(bytes)), client)
                        .await;
                }
            }
            Decision::Deny => {
                engine.record(Outcome::Denied);
                return plain(StatusCode::SERVICE_UNAVAILABLE);
            }
            Decision::Refuse(refusal) => return self.refuse(refusal),
        }
        let mut resp = legacy
            .forward(Request::from_parts(parts, full(bytes)), client)
            .await;
        if spec.failure.is_failure(resp.status(), resp.headers()) {
            engine.record(Outcome::LegacyRejected);
            return resp;
        }
        if let Some(binding) = &spec.legacy_user {
            match binding.user_named(resp.headers_mut()) {
                Some(named) => credentials.legacy_user = Some(named),
                None => {
                    engine.record(Outcome::IdentityUnproven);
                    return resp;
                }
            }
        }
        engine.submit(credentials);
        resp
    }

    /// In `complete`: the sign-in goes to the provider whatever the decision says; never to
    /// legacy (503 if no route target could take it).
    async fn to_provider(
        &self,
        decision: Decision,
        parts: http::request::Parts,
        bytes: Bytes,
        client: &ClientInfo,
    ) -> Response<Body> {
        match decision {
            Decision::Redirect(location) => {
                self.record(Outcome::Routed);
                redirect(&location)
            }
            Decision::NewUpstream if self.new_upstream.is_some() => {
                self.record(Outcome::Routed);
                match &self.new_upstream {
                    Some(new_upstream) => {
                        new_upstream
                            .forward(Request::from_parts(parts, full(bytes)), client)
                            .await
                    }
                    None => plain(StatusCode::SERVICE_UNAVAILABLE),
                }
            }
            Decision::Refuse(refusal) => self.refuse(refusal),
            Decision::Legacy | Decision::NewUpstream | Decision::Deny => {
                self.record(Outcome::Denied);
                plain(StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }

    /// A short refusal, counted and recorded as `refused` (never with the body).
    fn refuse(&self, refusal: Refusal) -> Response<Body> {
        self.metrics.refused(refusal);
        self.record(Exit::with(Outcome::Refused, &refusal));
        let status = refusal.status();
        let text = format!(
            "{} {}: {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            refusal.message()
        );
        let mut resp = Response::new(full(text));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        resp
    }
}

fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = http::HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, value);
    }
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
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
