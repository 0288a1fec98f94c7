//! Forgot-password bridging. In `route` and `complete`, a reset request on one of the legacy
//! app's forgot-password routes is answered by dripgate: the user it names is provisioned at
//! the provider first when not yet migrated (`Engine::bridge_reset`), and the browser is sent
//! to the provider's reset page (`migration.reset_url_template`, `{login_hint}` = the identifier
//! as typed). In `observe` and `migrate` the request reaches legacy unchanged.
//!
//! No user enumeration: every bridged request gets the same answer (a 303 to the template with
//! what was typed, no body), after the same time (`answer_after` from its arrival; provisioning
//! still running then goes on in the background), whether the identifier is unknown, migrated
//! or provisioned meanwhile. The identifier is read by the sign-in machinery's rules (canonical
//! or refuse). Requests are limited per identifier (its normalized key) and per client address
//! with keyed GCRA limiters (`governor`), bounded to `max_tracked_keys` each.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use bytes::Bytes;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::{Request, Response, StatusCode, header};
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::time::Instant;

use super::config::ForgotPasswordConfig;
use super::extract::{BodyKind, Unread, extract_identifier};
use super::{Refusal, SigninHandler, plain, redirect};
use crate::body::{Body, full};
use crate::migrate::{Engine, Phase, ResetDecision};
use crate::proxy::{ClientInfo, Forwarder};

/// One forgot-password route's field and query condition.
#[derive(Clone)]
struct Field {
    kind: BodyKind,
    name: String,
    /// `(name, value)` pairs of which the query must hold one.
    query: Vec<(String, String)>,
}

/// How a request's query string reads against a route's query condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    /// It holds one of the route's pairs, with that name once (or the route has none).
    Holds,
    /// It holds none: not this route's request (another form posted to the same path).
    Fails,
    /// A condition's name is in it more than once: PHP reads the last value, Go's `FormValue`
    /// the first, so dripgate cannot tell which action legacy would run.
    Repeated,
}

impl Field {
    /// How `query` reads against the route's pairs (none configured: any query holds). Names
    /// and values are compared decoded, exactly.
    fn query_condition(&self, query: Option<&str>) -> Condition {
        if self.query.is_empty() {
            return Condition::Holds;
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let values = |name: &str| -> Vec<&str> {
            pairs
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        if self.query.iter().any(|(name, _)| values(name).len() > 1) {
            return Condition::Repeated;
        }
        let holds = self
            .query
            .iter()
            .any(|(name, value)| values(name).contains(&value.as_str()));
        if holds {
            Condition::Holds
        } else {
            Condition::Fails
        }
    }
}

/// The configured forgot-password routes, their limits and metrics.
#[derive(Clone)]
pub(super) struct ForgotPassword {
    routes: Vec<Field>,
    /// For each sign-in route, the forgot-password route on the same method and path.
    beside: Vec<Option<usize>>,
    limits: std::sync::Arc<Limits>,
    answer_after: Duration,
    results: IntCounterVec,
}

/// Results of bridged reset requests besides [`ResetDecision`]'s.
const OTHER_RESULTS: [&str; 4] = ["forwarded", "rate_limited", "refused", "answered_first"];

impl ForgotPassword {
    /// The routes of `config`, `router` telling which share a sign-in route's path.
    pub(super) fn new(
        config: &ForgotPasswordConfig,
        router: &super::Router,
        signin_routes: usize,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let results = IntCounterVec::new(
            Opts::new(
                "dripgate_forgot_password_total",
                "Requests on the legacy app's forgot-password routes, by result: forwarded \
                 (to legacy: observe/migrate, or not a reset request), rate_limited, refused \
                 (unreadable identifier), and for bridged ones what the bridge did (unknown, \
                 migrated, provisioned_with_hash, provisioned_without_password, in_progress, \
                 skipped, failed); answered_first counts answers sent before provisioning ended.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(results.clone()))?;
        for label in OTHER_RESULTS.iter().chain(ResetDecision::LABELS.iter()) {
            results.with_label_values(&[label]);
        }
        Ok(Self {
            routes: config
                .routes
                .iter()
                .map(|r| Field {
                    kind: r.body,
                    name: r.identifier_field.clone(),
                    query: r
                        .query
                        .iter()
                        .map(|pair| match pair.split_once('=') {
                            Some((k, v)) => (k.to_owned(), v.to_owned()),
                            None => (pair.clone(), String::new()),
                        })
                        .collect(),
                })
                .collect(),
            beside: (0..signin_routes)
                .map(|i| router.forgot_password_beside(i))
                .collect(),
            limits: std::sync::Arc::new(Limits::new(config)),
            answer_after: config.answer_after,
            results,
        })
    }

    /// The forgot-password route sharing sign-in route `signin`'s method and path.
    pub(super) fn beside(&self, signin: usize) -> Option<usize> {
        self.beside.get(signin).copied().flatten()
    }

    fn count(&self, result: &str) {
        self.results.with_label_values(&[result]).inc();
    }
}

/// Per-identifier and per-client limiters, each bounded in the keys it tracks.
struct Limits {
    per_identifier: DefaultKeyedRateLimiter<String>,
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    max_keys: usize,
}

impl Limits {
    fn new(config: &ForgotPasswordConfig) -> Self {
        let quota = |n: u32| {
            let burst = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
            let every = config.period / burst.get();
            Quota::with_period(every.max(Duration::from_nanos(1)))
                .unwrap_or_else(|| Quota::per_second(burst))
                .allow_burst(burst)
        };
        Self {
            per_identifier: DefaultKeyedRateLimiter::keyed(quota(config.per_identifier)),
            per_client: DefaultKeyedRateLimiter::keyed(quota(config.per_client)),
            max_keys: config.max_tracked_keys,
        }
    }

    /// Takes one request of `client` for `key`, or the time until one is allowed.
    fn take(&self, client: IpAddr, key: &str) -> Result<(), Duration> {
        let full = Duration::from_secs(60);
        if !room(&self.per_client, self.max_keys) || !room(&self.per_identifier, self.max_keys) {
            return Err(full);
        }
        let now = DefaultClock::default().now();
        self.per_client
            .check_key(&client)
            .map_err(|e| e.wait_time_from(now))?;
        self.per_identifier
            .check_key(&key.to_owned())
            .map_err(|e| e.wait_time_from(now))
    }
}

/// Whether `limiter` may track one more key: when full, the keys whose state is back to fresh
/// are dropped first; while none can be, no new key is taken (the request is limited).
fn room<K: std::hash::Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, max: usize) -> bool {
    if limiter.len() < max {
        return true;
    }
    limiter.retain_recent();
    limiter.shrink_to_fit();
    limiter.len() < max
}

impl SigninHandler {
    /// Whether reset requests are bridged now, and where to: the engine and the reset page, in
    /// `route` and `complete`.
    fn bridging(&self) -> Option<(&Engine, &str)> {
        let engine = self.engine.as_ref()?;
        self.forgot.as_ref()?;
        let template = engine.config().reset_url_template.as_deref()?;
        engine
            .phase()
            .get()
            .phase
            .routes()
            .then_some((engine, template))
    }

    /// A request on forgot-password route `route`: to legacy untouched unless bridged (see
    /// the module documentation).
    pub async fn handle_forgot_password(
        &self,
        req: Request<Body>,
        client: &ClientInfo,
        legacy: &Forwarder,
        route: usize,
    ) -> Response<Body> {
        if self.bridging().is_none() {
            if let Some(forgot) = &self.forgot {
                forgot.count("forwarded");
            }
            return legacy.forward(req, client).await;
        }
        let (parts, body) = req.into_parts();
        match self.read_body(body, &parts.headers).await {
            Ok((bytes, _room)) => {
                self.forgot_buffered(parts, bytes, client, legacy, route)
                    .await
            }
            Err(resp) => resp,
        }
    }

    /// A reset request whose body is read: bridged when its identifier can be read, to legacy
    /// when it carries none (not a reset request), refused when it is ambiguous.
    pub(super) async fn forgot_buffered(
        &self,
        parts: http::request::Parts,
        bytes: Bytes,
        client: &ClientInfo,
        legacy: &Forwarder,
        route: usize,
    ) -> Response<Body> {
        let arrived = Instant::now();
        let (Some((engine, template)), Some(forgot)) = (self.bridging(), self.forgot.as_ref())
        else {
            return legacy
                .forward(Request::from_parts(parts, full(bytes)), client)
                .await;
        };
        let Some(field) = forgot.routes.get(route) else {
            return plain(StatusCode::INTERNAL_SERVER_ERROR);
        };
        match field.query_condition(parts.uri.query()) {
            Condition::Holds => {}
            Condition::Fails => {
                forgot.count("forwarded");
                return legacy
                    .forward(Request::from_parts(parts, full(bytes)), client)
                    .await;
            }
            // Legacy may read it as a reset request: never let it reach legacy's reset there.
            Condition::Repeated => {
                forgot.count("refused");
                return self.refuse(Refusal::Unread(Unread::RepeatedField));
            }
        }
        let read = extract_identifier(
            field.kind,
            &field.name,
            &parts.headers,
            parts.uri.query(),
            &bytes,
        );
        let identifier = match read.await {
            Ok(identifier) => identifier,
            Err(reason) if reason.is_ambiguous() => {
                forgot.count("refused");
                return self.refuse(Refusal::Unread(reason));
            }
            // No identifier (or only blanks): not a reset request.
            Err(_) => {
                forgot.count("forwarded");
                return legacy
                    .forward(Request::from_parts(parts, full(bytes)), client)
                    .await;
            }
        };
        let key = engine.legacy().normalize(&identifier);
        if let Err(wait) = forgot.limits.take(client.peer.ip(), &key) {
            forgot.count("rate_limited");
            return too_many(wait);
        }
        let location = reset_location(template, &identifier);
        let bridge = tokio::spawn({
            let (engine, forgot) = (engine.clone(), forgot.clone());
            async move {
                let decision = engine.bridge_reset(&identifier).await;
                forgot.count(decision.as_str());
            }
        });
        let deadline = arrived + forgot.answer_after;
        if tokio::time::timeout_at(deadline, bridge).await.is_err() {
            forgot.count("answered_first");
        }
        tokio::time::sleep_until(deadline).await;
        redirect(&location)
    }

    /// A sign-in route's request that carried no sign-in credentials: a reset request when a
    /// forgot-password route shares its path and reset requests are bridged now.
    pub(super) fn reset_beside(&self, signin_route: usize) -> Option<usize> {
        self.bridging()?;
        self.forgot.as_ref()?.beside(signin_route)
    }

    /// Whether the phase is `complete`: legacy's sign-in is closed.
    pub(super) fn closed(&self) -> bool {
        self.engine
            .as_ref()
            .is_some_and(|e| e.phase().get().phase == Phase::Complete)
    }
}

/// The provider's reset page for what was typed.
fn reset_location(template: &str, identifier: &str) -> String {
    let hint: String = form_urlencoded::byte_serialize(identifier.as_bytes()).collect();
    template.replace("{login_hint}", &hint)
}

/// 429 with `Retry-After` in whole seconds (at least 1).
fn too_many(wait: Duration) -> Response<Body> {
    let mut resp = plain(StatusCode::TOO_MANY_REQUESTS);
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(value) = http::HeaderValue::from_str(&seconds.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, value);
    }
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_query_condition_needs_one_pair_with_its_name_once() {
        let field = Field {
            kind: BodyKind::Form,
            name: "user_login".into(),
            query: vec![
                ("action".into(), "lostpassword".into()),
                ("action".into(), "retrievepassword".into()),
            ],
        };
        let reads = |q| field.query_condition(q);
        assert_eq!(reads(Some("action=lostpassword")), Condition::Holds);
        assert_eq!(reads(Some("x=1&action=retrievepassword")), Condition::Holds);
        assert_eq!(reads(Some("action=lost%70assword")), Condition::Holds);
        assert_eq!(reads(Some("action=register")), Condition::Fails);
        assert_eq!(reads(None), Condition::Fails);
        assert_eq!(reads(Some("Action=lostpassword")), Condition::Fails);
        // Last-wins (PHP) and first-wins (Go) stacks read these differently: refused.
        assert_eq!(
            reads(Some("action=lostpassword&action=register")),
            Condition::Repeated
        );
        assert_eq!(
            reads(Some("action=register&action=lostpassword")),
            Condition::Repeated
        );
        let any = Field {
            query: Vec::new(),
            ..field
        };
        assert_eq!(any.query_condition(None), Condition::Holds);
    }

    #[test]
    fn limits_trip_per_identifier_and_per_client_and_stay_bounded() {
        let config = ForgotPasswordConfig {
            per_identifier: 2,
            per_client: 3,
            max_tracked_keys: 4,
            ..ForgotPasswordConfig::default()
        };
        let limits = Limits::new(&config);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(limits.take(a, "x").is_ok());
        assert!(limits.take(a, "x").is_ok());
        let wait = limits.take(b, "x").unwrap_err();
        assert!(wait > Duration::ZERO);
        // `a`'s third request, for another identifier, is allowed; its fourth is not.
        assert!(limits.take(a, "y").is_ok());
        assert!(limits.take(a, "z").is_err());
        // A flood of new identifiers from new clients never grows the limiters past the bound.
        for i in 0..50u8 {
            let _ = limits.take(IpAddr::from([10, 0, 0, i]), &format!("k{i}"));
        }
        assert!(limits.per_identifier.len() <= 4);
        assert!(limits.per_client.len() <= 4);
    }
}
