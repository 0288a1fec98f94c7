//! Sign-in interception. The router picks out the configured method + exact path pairs; their
//! bodies are buffered (size- and time-limited) so the credentials can be read, and the original
//! bytes are then forwarded to the legacy app unchanged. A body larger than the limit is
//! forwarded untouched, streamed.

pub mod extract;

mod body;
mod budget;
mod metrics;
mod route;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use prometheus::Registry;

use crate::audit::{AuditEvent, AuditKind};
use crate::body::{Body, full};
use crate::config::{FailureSignature, LegacyUserBinding, SigninConfig, UnreadInRoute};
use crate::failure::{Blame, Classified, Retry};
use crate::ledger::MigratedUser;
use crate::legacy::{KeyField, Lookup};
use crate::migrate::phase::{LedgerUnavailable, RouteTarget, in_route_population};
use crate::migrate::{Engine, Exit, Outcome, Phase};
use crate::proxy::{ClientInfo, Forwarder};
pub use body::SigninBody;
use body::{ReadError, content_length, read_limited};
use budget::BodyBudget;
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
}

/// Where a sign-in goes after the routing decision.
enum Decision {
    Legacy,
    Redirect(String),
    NewUpstream,
    Deny,
    Refuse(Refusal),
}

/// A migrated user a sign-in names, found for routing.
struct Routed {
    key: String,
    email: Option<String>,
    migrated: MigratedUser,
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
    /// (with a route target), unless the operator chose to forward such requests.
    fn strict(&self) -> bool {
        self.unread_in_route == UnreadInRoute::Refuse
            && self.engine.as_ref().is_some_and(|e| {
                e.phase().get().phase == Phase::Route && e.config().route.is_some()
            })
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
                engine.record(Exit::with(Outcome::Unread, &reason));
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

    /// In `route` phase, whether this sign-in goes to the new provider.
    async fn decide(&self, engine: &Engine, identifier: &str) -> Decision {
        let settings = engine.phase().get();
        let config = engine.config();
        if settings.phase != Phase::Route || config.route.is_none() {
            return Decision::Legacy;
        }
        let routed = match migrated_identity(engine, identifier).await {
            Ok(Some(routed)) => routed,
            Ok(None) => return Decision::Legacy,
            Err(decision) => return decision,
        };
        // The domain lists and the login hint need the user's email: where users are keyed
        // by login, the legacy store names it. A user whose email is unknown is not routed
        // where domain lists apply.
        let email = match routed.email {
            Some(email) => Some(email),
            None => match engine.legacy().lookup(identifier).await {
                Ok(Lookup::Found(user)) => Some(engine.legacy().normalize(&user.email)),
                _ => None,
            },
        };
        let has_domain_lists = !config.allow_domains.is_empty() || !config.deny_domains.is_empty();
        if email.is_none() && has_domain_lists {
            return Decision::Legacy;
        }
        let population_email = email.as_deref().unwrap_or(&routed.key);
        if !in_route_population(
            config,
            settings.canary_percent,
            &routed.key,
            population_email,
        ) {
            return Decision::Legacy;
        }
        engine.audit().emit(
            AuditEvent::new(
                AuditKind::RoutedToProvider,
                Some(&routed.key),
                settings.phase.as_str(),
                engine.replica(),
            )
            .provider_user(Some(routed.migrated.provider_user_id.as_str())),
        );
        match &config.route {
            // The provider knows the user by the email dripgate created it with, not by the
            // login name that may have been typed.
            Some(RouteTarget::Redirect { url_template }) => {
                let hint: String =
                    form_urlencoded::byte_serialize(email.unwrap_or_default().as_bytes()).collect();
                Decision::Redirect(url_template.replace("{login_hint}", &hint))
            }
            Some(RouteTarget::Forward { .. }) => Decision::NewUpstream,
            None => Decision::Legacy,
        }
    }
}

/// The migrated user a sign-in names, if any: by the typed key first, then by every legacy
/// user the store itself matches for what was typed. The store's comparison is the legacy
/// app's (a database collation may match `Alicé@x.io` or a login name to a user keyed
/// otherwise), so a sign-in the legacy app would resolve to a migrated user is never left to
/// it; one that matches several users, one of them migrated, is refused.
async fn migrated_identity(engine: &Engine, identifier: &str) -> Result<Option<Routed>, Decision> {
    let legacy = engine.legacy();
    let key = legacy.normalize(identifier);
    // Where the ledger is unreachable and the typed key is not cached, the store may still
    // name a cached user; denial waits until no candidate is found.
    let mut denied = false;
    match migrated_user(engine, &key).await {
        Ok(Some(migrated)) => {
            let email = (legacy.key_field() == KeyField::Email).then(|| key.clone());
            return Ok(Some(Routed {
                key,
                email,
                migrated,
            }));
        }
        Ok(None) => {}
        Err(Deny) => denied = true,
    }
    let candidates = match legacy.candidates(identifier).await {
        Ok(candidates) => candidates,
        Err(e) => {
            tracing::warn!(error = %e, "legacy store unreachable while routing");
            return match engine.config().on_ledger_unavailable {
                LedgerUnavailable::CacheThenDeny => Err(Decision::Deny),
                LedgerUnavailable::CacheThenLegacy if denied => Err(Decision::Deny),
                LedgerUnavailable::CacheThenLegacy => Ok(None),
            };
        }
    };
    let mut found = None;
    for user in candidates.iter().filter(|u| u.key != key) {
        match migrated_user(engine, &user.key).await {
            Ok(Some(_)) if found.is_some() => {
                return Err(Decision::Refuse(Refusal::AmbiguousIdentity));
            }
            Ok(Some(migrated)) => {
                found = Some(Routed {
                    key: user.key.clone(),
                    email: Some(legacy.normalize(&user.email)),
                    migrated,
                });
            }
            Ok(None) => {}
            Err(Deny) => denied = true,
        }
    }
    if found.is_some() && candidates.len() > 1 {
        return Err(Decision::Refuse(Refusal::AmbiguousIdentity));
    }
    if found.is_none() && denied {
        return Err(Decision::Deny);
    }
    Ok(found)
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
