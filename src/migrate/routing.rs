//! The `route` phase's decision for one sign-in: is the user it names migrated, in the route
//! population, and where does the provider take it. Resolves what was typed the way the legacy
//! app would (the legacy store's own comparison), so a sign-in legacy could resolve to a
//! migrated user is never left to legacy.

use super::Engine;
use super::phase::{LedgerUnavailable, Phase, RouteTarget, in_route_population};
use crate::audit::{AuditEvent, AuditKind};
use crate::ledger::MigratedUser;
use crate::legacy::{KeyField, Lookup};

/// Where a sign-in goes in `route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// To legacy: not `route`, not migrated, or outside the route population.
    Legacy,
    /// A 303 to this URL (the redirect target, `{login_hint}` filled in).
    Redirect(String),
    /// To the new upstream (route mode `forward`).
    NewUpstream,
    /// The ledger (or the legacy store) cannot be read and `cache_then_deny` applies: 503.
    Deny,
    /// The identifier matches several legacy users, one of them migrated: refused.
    AmbiguousIdentity,
}

/// A migrated user a sign-in names, found for routing.
struct Routed {
    key: String,
    email: Option<String>,
    migrated: MigratedUser,
}

impl Engine {
    /// In `route` phase, where this sign-in goes: the new provider for a migrated user in the
    /// route population, else legacy.
    pub async fn route_decision(&self, identifier: &str) -> RouteDecision {
        let engine = self;
        let settings = engine.phase().get();
        let config = engine.config();
        if !settings.phase.routes() || config.route.is_none() {
            return RouteDecision::Legacy;
        }
        if settings.phase == Phase::Complete {
            return complete_decision(engine, identifier).await;
        }
        let routed = match migrated_identity(engine, identifier).await {
            Ok(Some(routed)) => routed,
            Ok(None) => return RouteDecision::Legacy,
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
            return RouteDecision::Legacy;
        }
        let population_email = email.as_deref().unwrap_or(&routed.key);
        if !in_route_population(
            config,
            settings.canary_percent,
            &routed.key,
            population_email,
        ) {
            return RouteDecision::Legacy;
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
        // The provider knows the user by the email dripgate created it with, not by the
        // login name that may have been typed.
        to_provider(config.route.as_ref(), &email.unwrap_or_default())
    }
}

/// Where `complete` sends a sign-in: to the provider, whoever it names. The login hint is the
/// user's email where the legacy store knows the user, else what was typed.
async fn complete_decision(engine: &Engine, identifier: &str) -> RouteDecision {
    let legacy = engine.legacy();
    let hint = match legacy.lookup(identifier).await {
        Ok(Lookup::Found(user)) => {
            engine.audit().emit(AuditEvent::new(
                AuditKind::RoutedToProvider,
                Some(&user.key),
                Phase::Complete.as_str(),
                engine.replica(),
            ));
            legacy.normalize(&user.email)
        }
        _ => identifier.to_owned(),
    };
    to_provider(engine.config().route.as_ref(), &hint)
}

/// The route target's decision: a redirect with `login_hint`, or the new upstream.
fn to_provider(target: Option<&RouteTarget>, login_hint: &str) -> RouteDecision {
    match target {
        Some(RouteTarget::Redirect { url_template }) => {
            let hint: String = form_urlencoded::byte_serialize(login_hint.as_bytes()).collect();
            RouteDecision::Redirect(url_template.replace("{login_hint}", &hint))
        }
        Some(RouteTarget::Forward { .. }) => RouteDecision::NewUpstream,
        None => RouteDecision::Legacy,
    }
}

/// The migrated user a sign-in names, if any: by the typed key first, then by every legacy
/// user the store itself matches for what was typed. The store's comparison is the legacy
/// app's (a database collation may match `Alicé@x.io` or a login name to a user keyed
/// otherwise), so a sign-in the legacy app would resolve to a migrated user is never left to
/// it; one that matches several users, one of them migrated, is refused.
async fn migrated_identity(
    engine: &Engine,
    identifier: &str,
) -> Result<Option<Routed>, RouteDecision> {
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
                LedgerUnavailable::CacheThenDeny => Err(RouteDecision::Deny),
                LedgerUnavailable::CacheThenLegacy if denied => Err(RouteDecision::Deny),
                LedgerUnavailable::CacheThenLegacy => Ok(None),
            };
        }
    };
    let mut found = None;
    for user in candidates.iter().filter(|u| u.key != key) {
        match migrated_user(engine, &user.key).await {
            Ok(Some(_)) if found.is_some() => {
                return Err(RouteDecision::AmbiguousIdentity);
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
        return Err(RouteDecision::AmbiguousIdentity);
    }
    if found.is_none() && denied {
        return Err(RouteDecision::Deny);
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
