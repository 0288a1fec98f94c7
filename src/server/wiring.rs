//! Building the migration engine from the config: legacy store, hash pool, provider, ledger,
//! audit log and metrics, all registered in the one registry `/metrics` exposes.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use prometheus::Registry;
use zeroize::Zeroizing;

use super::ServerError;
use crate::audit::AuditLog;
use crate::config::Config;
use crate::hash::{HashMetrics, VerifyPool};
use crate::ledger::{Ledger, State};
use crate::legacy::LegacyStore;
use crate::migrate::phase::RouteTarget;
use crate::migrate::{
    Engine, EngineParts, MigrationMetrics, PhaseState, ProgressCollector, RuntimeSettings,
    SettingsMetrics, TransferMetrics,
};
use crate::provider::{HasherError, PasswordHasher, ProviderMetrics};
use crate::proxy::Forwarder;
use crate::proxy::metrics::HttpMetrics;

/// The engine and, for `route` mode `forward`, the second upstream.
pub struct Migration {
    /// The engine.
    pub engine: Engine,
    /// Where routed sign-ins are forwarded, in `forward` mode.
    pub new_upstream: Option<Forwarder>,
    /// The shared settings' poll metrics.
    pub settings_metrics: SettingsMetrics,
}

/// Builds the engine when `[legacy]` is configured; `None` means plain pass-through.
pub async fn build(
    config: &Config,
    registry: &Registry,
    http_metrics: &HttpMetrics,
) -> Result<Option<Migration>, ServerError> {
    let Some(legacy_config) = &config.legacy else {
        return Ok(None);
    };
    // Whether the phase can run without a provider or route target was checked by
    // `Config::validate` (`config::check_phase`), which check-config runs too.
    let dependency =
        |what: &str, e: &dyn std::fmt::Display| ServerError::Dependency(format!("{what}: {e}"));
    let legacy = LegacyStore::open_with_caps(legacy_config, &config.hash, registry)
        .map_err(|e| dependency("legacy store", &e))?;
    legacy.spawn_background();
    let verifier = VerifyPool::new(config.hash.clone(), HashMetrics::register(registry)?)
        .map_err(|e| dependency("hash pool", &e))?;
    let provider = match &config.provider {
        Some(p) => Some(
            crate::provider::build(
                p,
                Some(ProviderMetrics::register(registry)?),
                Some(Arc::new(PoolHasher(verifier.clone()))),
            )
            .map_err(|e| dependency("provider", &e))?,
        ),
        None => None,
    };
    let ledger = Ledger::open(&config.ledger, registry)
        .await
        .map_err(|e| dependency("ledger", &e))?;
    ProgressCollector::register(
        registry,
        ledger.metrics().users_in(State::Migrated),
        legacy.metrics().users.clone(),
    )?;
    let audit = AuditLog::open(&config.audit, registry).map_err(|e| dependency("audit log", &e))?;
    let metrics = MigrationMetrics::register(registry)?;
    let migration = &config.migration;
    metrics.set_phase(migration.phase);
    let new_upstream = match &migration.route {
        Some(RouteTarget::Forward { upstream_url }) => Some(
            Forwarder::to(
                "new",
                "migration.route.upstream_url",
                upstream_url,
                (&config.upstream, &config.forwarding),
                http_metrics.clone(),
            )
            .map_err(crate::config::ConfigError::from)?,
        ),
        _ => None,
    };
    let engine = Engine::new(EngineParts {
        legacy,
        verifier,
        provider,
        ledger,
        config: migration.clone(),
        phase: PhaseState::new(RuntimeSettings {
            phase: migration.phase,
            canary_percent: migration.canary_percent,
        }),
        audit,
        metrics,
        transfer_metrics: TransferMetrics::register(registry)?,
        replica: replica_id(migration.replica_id.as_deref()),
    });
    // The ledger's settings win over the file's, which are initial values only.
    let settings_metrics = SettingsMetrics::register(registry)?;
    engine.adopt_shared_settings(&settings_metrics).await;
    Ok(Some(Migration {
        engine,
        new_upstream,
        settings_metrics,
    }))
}

/// The engine alone, for one-shot commands (`dripgate handoff`), its metrics in `registry`;
/// `None` without `[legacy]`.
pub async fn build_engine(
    config: &Config,
    registry: &Registry,
) -> Result<Option<Engine>, ServerError> {
    let http = HttpMetrics::register(registry)?;
    Ok(build(config, registry, &http).await?.map(|m| m.engine))
}

/// The configured replica id, or host name + process id.
fn replica_id(configured: Option<&str>) -> String {
    if let Some(id) = configured {
        return id.to_owned();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dripgate".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The provider's bcrypt of a password, on the hash pool's threads: bounded, at background
/// priority, never on the async workers (the provider does not depend on `hash`).
#[derive(Debug)]
struct PoolHasher(VerifyPool);

impl PasswordHasher for PoolHasher {
    fn bcrypt(
        &self,
        password: Zeroizing<Vec<u8>>,
        cost: u32,
    ) -> BoxFuture<'static, Result<Zeroizing<String>, HasherError>> {
        let pool = self.0.clone();
        async move {
            pool.run(move || crate::provider::hasher::bcrypt_now(&password, cost))
                .await
                .map_err(|_| HasherError::Aborted)?
        }
        .boxed()
    }
}
