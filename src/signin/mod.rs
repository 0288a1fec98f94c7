//! Sign-in interception. The router picks out the configured method + exact path pairs; their
//! bodies are buffered (size- and time-limited) so the credentials can be read, and the original
//! bytes are then forwarded to the legacy app unchanged. A body larger than the limit is
//! forwarded untouched, streamed.

pub mod extract;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;

use crate::audit::{AuditEvent, AuditKind};
use crate::body::{Body, PrefixedBody, boxed, full};
use crate::config::{FailureSignature, SigninConfig};
use crate::ledger::MigratedUser;
use crate::legacy::{KeyField, Lookup};
use crate::migrate::phase::{LedgerUnavailable, RouteTarget, in_route_population};
use crate::migrate::{Engine, Outcome, Phase, Stage};
use crate::proxy::{ClientInfo, Forwarder};
use extract::FieldSpec;

/// Which handler a request goes to; also the `route` label of the request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Forwarded as is, streamed.
    Proxy,
    /// A configured sign-in route (its index in `signin.routes`): the body is read first.
    Signin(usize),
}

impl RouteClass {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Signin(_) => "signin",
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
        self.signin
            .iter()
            .position(|(m, p)| m == method && p == path)
            .map_or(RouteClass::Proxy, RouteClass::Signin)
    }
}

/// What reading a sign-in body produced.
pub enum SigninBody {
    /// The whole body, within the size limit.
    Buffered(Bytes),
    /// Too large to inspect: the part read so far followed by the rest, to forward untouched.
    Oversized(Body),
}

/// One sign-in route's parsing rules and failure signature.
#[derive(Clone)]
struct RouteSpec {
    fields: FieldSpec,
    failure: FailureSignature,
}

/// Handles sign-in routes.
#[derive(Clone)]
pub struct SigninHandler {
    max_body_bytes: usize,
    body_timeout: Duration,
    routes: Vec<RouteSpec>,
    engine: Option<Engine>,
    new_upstream: Option<Forwarder>,
}

/// Where a sign-in goes after the routing decision.
enum Decision {
    Legacy,
    Redirect(String),
    NewUpstream,
    Deny,
}

impl SigninHandler {
    /// A handler with the limits and routes from `config`. Without an engine, sign-in bodies
    /// are only read and forwarded; `new_upstream` serves `route` mode `forward`.
    pub fn new(
        config: &SigninConfig,
        engine: Option<Engine>,
        new_upstream: Option<Forwarder>,
    ) -> Self {
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
            })
            .collect();
        Self {
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.body_timeout,
            routes,
            engine,
            new_upstream,
        }
    }

    /// The migration engine, when migration is configured.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
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
        let bytes = match read.await {
            Err(_) => return plain(StatusCode::REQUEST_TIMEOUT),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "client sign-in body failed");
                return plain(StatusCode::BAD_REQUEST);
            }
            Ok(Ok(SigninBody::Oversized(body))) => {
                return legacy
                    .forward(Request::from_parts(parts, body), client)
                    .await;
            }
            Ok(Ok(SigninBody::Buffered(bytes))) => bytes,
        };
        let (Some(engine), Some(spec)) = (&self.engine, self.routes.get(route)) else {
            return legacy
                .forward(Request::from_parts(parts, full(bytes)), client)
                .await;
        };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let credentials = match extract::extract(&spec.fields, content_type, &bytes).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(reason = e.as_str(), "sign-in credentials not readable");
                engine.record(Outcome::Fallback(Stage::Extract));
                return legacy
                    .forward(Request::from_parts(parts, full(bytes)), client)
                    .await;
            }
        };
        match self.decide(engine, &credentials.identifier).await {
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
        }
        let resp = legacy
            .forward(Request::from_parts(parts, full(bytes)), client)
            .await;
        if spec.failure.is_failure(resp.status(), resp.headers()) {
            engine.record(Outcome::LegacyRejected);
        } else {
            engine.submit(credentials);
        }
        resp
    }

    /// In `route` phase, whether this sign-in goes to the new provider.
    async fn decide(&self, engine: &Engine, identifier: &str) -> Decision {
        let settings = engine.phase().get();
        let config = engine.config();
        if settings.phase != Phase::Route || config.route.is_none() {
            return Decision::Legacy;
        }
        let legacy = engine.legacy();
        let keyed_by_email = legacy.key_field() == KeyField::Email;
        let mut key = legacy.normalize(identifier);
        let mut migrated = migrated_user(engine, &key).await;
        // The ledger is keyed by the legacy user key (usually the email); a user who typed the
        // other identifier (a login name, or an email where users are keyed by login) is found
        // through the legacy store first. With the ledger unreachable the typed form is not in
        // the cache either, so the user's key is looked up before denying.
        let mut email = keyed_by_email.then(|| key.clone());
        if !matches!(migrated, Ok(Some(_)))
            && identifier.contains('@') != keyed_by_email
            && let Ok(Lookup::Found(user)) = legacy.lookup(identifier).await
            && user.key != key
        {
            key = user.key;
            email = Some(user.email);
            migrated = migrated_user(engine, &key).await;
        }
        let migrated = match migrated {
            Ok(Some(found)) => found,
            Ok(None) => return Decision::Legacy,
            Err(Deny) => return Decision::Deny,
        };
        // The domain lists need the user's email: where users are keyed by login, the legacy
        // store names it; a user whose email is unknown is not routed.
        let has_domain_lists = !config.allow_domains.is_empty() || !config.deny_domains.is_empty();
        if email.is_none() && has_domain_lists {
            email = match legacy.lookup(identifier).await {
                Ok(Lookup::Found(user)) => Some(user.email),
                _ => return Decision::Legacy,
            };
        }
        let email = email.unwrap_or_else(|| key.clone());
        if !in_route_population(config, settings.canary_percent, &key, &email) {
            return Decision::Legacy;
        }
        engine.audit().emit(
            AuditEvent::new(
                AuditKind::RoutedToProvider,
                Some(&key),
                settings.phase.as_str(),
                engine.replica(),
            )
            .provider_user(Some(migrated.provider_user_id.as_str())),
        );
        match &config.route {
            Some(RouteTarget::Redirect { url_template }) => {
                let hint: String =
                    form_urlencoded::byte_serialize(identifier.trim().as_bytes()).collect();
                Decision::Redirect(url_template.replace("{login_hint}", &hint))
            }
            Some(RouteTarget::Forward { .. }) => Decision::NewUpstream,
            None => Decision::Legacy,
        }
    }
}

/// The ledger could not be read and `on_ledger_unavailable = "cache_then_deny"` applies.
struct Deny;

/// Whether `key` is migrated: the ledger (read-through cache), or only the cache when the
/// ledger is unreachable.
async fn migrated_user(engine: &Engine, key: &str) -> Result<Option<MigratedUser>, Deny> {
    match engine.ledger().is_migrated(key).await {
        Ok(found) => Ok(found),
        Err(e) => {
            tracing::warn!(error = %e, "ledger unreachable while routing; using the cache");
            let cached = engine.ledger().cached_migrated(key).await;
            let deny = engine.config().on_ledger_unavailable == LedgerUnavailable::CacheThenDeny;
            if cached.is_none() && deny {
                return Err(Deny);
            }
            Ok(cached)
        }
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
