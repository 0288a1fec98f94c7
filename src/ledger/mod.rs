//! The migration ledger: durable per-user migration state, shared by all replicas.
//!
//! One row per normalized legacy user key moves `claimed → created → migrated` (or ends in
//! `conflict` / `blocked_policy`). Work on a user is single-flight across replicas through a
//! lease taken by one atomic upsert ([`Ledger::claim`]) that bumps an epoch; every later write is
//! fenced by that epoch ([`Ledger::mark_created`], [`Ledger::mark_migrated`], …) and fails with
//! [`LedgerError::Fenced`] once someone else has re-claimed the user. Each call is one statement:
//! no transaction or lock is held between calls, so none is held across a provider call.
//!
//! The ledger never stores a password or a password hash: only an HMAC fingerprint of the legacy
//! hash that was migrated ([`Ledger::fingerprint`]). See docs/LEDGER.md.
//!
//! Backends: SQLite (the default; one replica) and PostgreSQL (several replicas). The SQL is
//! shared (`queries.rs`); only "now" differs, and on PostgreSQL it is the server's clock.

pub mod config;
mod error;
mod fingerprint;
mod metrics;
mod model;
mod postgres;
mod queries;
mod sqlite;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use sqlx::{PgPool, SqlitePool};
use zeroize::Zeroizing;

pub use census::{CensusRecord, MAX_CENSUS_BYTES};
pub use config::{BackendKind, LedgerCacheConfig, LedgerConfig};
pub use error::LedgerError;
pub use export::{EXPORT_COLUMNS, EXPORT_PAGE_ROWS, ExportRow};
pub use fingerprint::Fingerprinter;
pub use forget::{FORGOTTEN, Forgotten, PROVIDER_USER_GONE, cleared};
pub use handoff::HandoffRun;
pub use history::{HOUR_MS, MigrationHistory};
pub use metrics::LedgerMetrics;
pub use model::{
    Claim, MAX_LABEL_BYTES, MAX_OWNER_BYTES, MAX_USER_KEY_BYTES, Method, MigratedUser, State,
    UserRecord,
};
use model::{MigratedRow, RecordRow, check_key};
pub use settings::{MAX_SETTINGS_TEXT, SettingsWrite, StoredSettings};

enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool and `$q` to the backend's query module.
macro_rules! on_pool {
    ($backend:expr, |$pool:ident, $q:ident| $body:expr) => {
        match $backend {
            Backend::Sqlite($pool) => {
                use crate::ledger::sqlite as $q;
                $body
            }
            Backend::Postgres($pool) => {
                use crate::ledger::postgres as $q;
                $body
            }
        }
    };
}

// Declared after the macro, which they use.
mod census;
mod claims;
mod counts;
mod export;
mod forget;
mod handoff;
mod history;
mod settings;

struct Inner {
    backend: Backend,
    kind: BackendKind,
    lease_ms: i64,
    query_timeout: Duration,
    fingerprinter: Fingerprinter,
    cache: Option<Cache<String, MigratedUser>>,
    metrics: LedgerMetrics,
}

/// A handle on the ledger (cheap to clone; all clones share one pool and cache).
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("backend", &self.inner.kind)
            .field("lease_ms", &self.inner.lease_ms)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// The ledger's metrics.
    pub fn metrics(&self) -> &LedgerMetrics {
        &self.inner.metrics
    }

    /// Checks that [`Ledger::open`] could open the configured ledger, creating and changing
    /// nothing: for SQLite that the file's directory exists and is writable (and the file, if
    /// present), for PostgreSQL that the server takes a connection and a query.
    pub async fn check(config: &LedgerConfig) -> Result<(), LedgerError> {
        config.validate()?;
        match BackendKind::from_url(config.url.expose())? {
            BackendKind::Sqlite => sqlite::check(config),
            BackendKind::Postgres => {
                tokio::time::timeout(config.query_timeout * 2, postgres::check(config))
                    .await
                    .map_err(|_| LedgerError::Timeout)?
            }
        }
    }

    /// Connects to the configured database, brings its schema up to date, loads (or creates)
    /// the fingerprint key, registers the metrics in `registry` and starts the periodic recount
    /// of users by state (it stops when the last clone of the ledger is dropped).
    pub async fn open(
        config: &LedgerConfig,
        registry: &prometheus::Registry,
    ) -> Result<Ledger, LedgerError> {
        config.validate()?;
        let kind = BackendKind::from_url(config.url.expose())?;
        let backend = match kind {
            BackendKind::Sqlite => {
                let pool = sqlite::connect(config).await?;
                sqlite::migrate(&pool).await?;
                Backend::Sqlite(pool)
            }
            BackendKind::Postgres => {
                let pool = postgres::connect(config).await?;
                postgres::migrate(&pool).await?;
                Backend::Postgres(pool)
            }
        };
        let key: Zeroizing<Vec<u8>> = match &config.fingerprint_key {
            Some(secret) => Zeroizing::new(secret.expose().as_bytes().to_vec()),
            None => Zeroizing::new(load_or_create_key(&backend, config.query_timeout).await?),
        };
        let fingerprinter = Fingerprinter::new(&key)?;
        let cache = (config.cache.max_entries > 0).then(|| {
            Cache::builder()
                .max_capacity(config.cache.max_entries)
                .time_to_live(config.cache.ttl.max(Duration::from_millis(1)))
                .build()
        });
        let metrics = LedgerMetrics::register(registry)?;
        let ledger = Ledger {
            inner: Arc::new(Inner {
                backend,
                kind,
                lease_ms: i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX),
                query_timeout: config.query_timeout,
                fingerprinter,
                cache,
                metrics,
            }),
        };
        if !config.counts_interval.is_zero() {
            counts::spawn_counts_refresher(Arc::downgrade(&ledger.inner), config.counts_interval);
        }
        tracing::info!(backend = kind.as_str(), "ledger open");
        Ok(ledger)
    }

    /// Which database the ledger is on.
    pub fn backend(&self) -> BackendKind {
        self.inner.kind
    }

    /// The lease length in milliseconds.
    pub fn lease_ms(&self) -> i64 {
        self.inner.lease_ms
    }

    /// The user's row, if the user is known to the ledger.
    pub async fn get(&self, user_key: &str) -> Result<Option<UserRecord>, LedgerError> {
        check_key(user_key)?;
        self.run("get", async {
            let row: Option<RecordRow> = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_as(q::GET)
                    .bind(user_key)
                    .fetch_optional(p)
                    .await
            })?;
            row.map(UserRecord::try_from).transpose()
        })
        .await
    }

    /// Whether the user is migrated: from the cache of migrated users, else from the database
    /// (a migrated answer is then cached; "not migrated" never is, since another replica may
    /// migrate the user at any moment).
    pub async fn is_migrated(&self, user_key: &str) -> Result<Option<MigratedUser>, LedgerError> {
        check_key(user_key)?;
        if let Some(cache) = &self.inner.cache {
            let hit = cache.get(user_key).await;
            self.inner.metrics.cache_lookup(hit.is_some());
            if hit.is_some() {
                return Ok(hit);
            }
        }
        let user = self
            .run("is_migrated", async {
                let row: Option<MigratedRow> = on_pool!(&self.inner.backend, |p, q| {
                    sqlx::query_as(q::GET_MIGRATED)
                        .bind(user_key)
                        .fetch_optional(p)
                        .await
                })?;
                Ok(row.and_then(|r| {
                    Some(MigratedUser {
                        user_key: r.user_key,
                        provider_user_id: r.provider_user_id?,
                        hash_fingerprint: r.hash_fingerprint,
                        migrated_at: r.migrated_at.unwrap_or(0),
                    })
                }))
            })
            .await?;
        if let (Some(cache), Some(user)) = (&self.inner.cache, &user) {
            cache.insert(user_key.to_owned(), user.clone()).await;
        }
        Ok(user)
    }

    /// The user from the cache of migrated users only, never touching the database: for
    /// "ledger unreachable" fallbacks. `None` means "not known to be migrated".
    pub async fn cached_migrated(&self, user_key: &str) -> Option<MigratedUser> {
        let cache = self.inner.cache.as_ref()?;
        cache.get(user_key).await
    }

    /// Drops the user from the cache of migrated users (after an operator changed the row).
    pub async fn invalidate_cached(&self, user_key: &str) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(user_key).await;
        }
    }

    /// The fingerprint of a legacy hash to record: `hex(HMAC-SHA256(ledger key, legacy_hash))`.
    pub fn fingerprint(&self, legacy_hash: &[u8]) -> String {
        self.inner.fingerprinter.fingerprint(legacy_hash)
    }

    /// Whether `fingerprint` was made from `legacy_hash` with this ledger's key (constant time).
    pub fn fingerprint_matches(&self, legacy_hash: &[u8], fingerprint: &str) -> bool {
        self.inner.fingerprinter.matches(legacy_hash, fingerprint)
    }

    /// The ledger's clock (the database server's on PostgreSQL) in ms since the Unix epoch: the
    /// clock that `lease_expires_at` is compared with.
    pub async fn now_ms(&self) -> Result<i64, LedgerError> {
        self.run("now", async {
            let now: i64 = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_scalar(q::NOW).fetch_one(p).await
            })?;
            Ok(now)
        })
        .await
    }

    /// Dependency check: one round trip to the database within `ledger.query_timeout`.
    pub async fn ping(&self) -> Result<(), LedgerError> {
        self.run("ping", async {
            on_pool!(&self.inner.backend, |p, q| {
                sqlx::query(q::PING).execute(p).await.map(|_| ())
            })?;
            Ok(())
        })
        .await
    }

    /// Closes the pool: waits for checked-out connections to return, then closes them all.
    /// Later calls fail with [`LedgerError::Unavailable`].
    pub async fn close(&self) {
        match &self.inner.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }

    /// Runs one operation under the query timeout and records its metrics.
    async fn run<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, LedgerError>>,
    ) -> Result<T, LedgerError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.inner.query_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(LedgerError::Timeout),
        };
        let error = result.as_ref().err();
        if let Some(e) = error
            && !matches!(e, LedgerError::Fenced)
        {
            tracing::debug!(operation, error = %e, "ledger operation failed");
        }
        self.inner
            .metrics
            .observe(operation, error.map(LedgerError::kind), started.elapsed());
        result
    }
}

/// Loads the generated fingerprint key from `ledger_meta`, creating it first if absent (every
/// replica ends up with the key the first one stored).
async fn load_or_create_key(backend: &Backend, timeout: Duration) -> Result<Vec<u8>, LedgerError> {
    let candidate = Zeroizing::new(fingerprint::generate_key_hex());
    let work = async {
        let stored: String = on_pool!(backend, |p, q| {
            sqlx::query(q::META_INSERT)
                .bind(fingerprint::META_KEY)
                .bind(candidate.as_str())
                .execute(p)
                .await?;
            sqlx::query_scalar(q::META_GET)
                .bind(fingerprint::META_KEY)
                .fetch_one(p)
                .await
        })?;
        let stored = Zeroizing::new(stored);
        fingerprint::decode_key_hex(&stored)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| LedgerError::Timeout)?
}

/// Logs a warning when the database holds schema versions this build does not know (a newer
/// dripgate migrated it); the known tables are still used.
fn warn_if_newer(applied: &[i64], known: &[queries::Migration]) {
    let newest_known = known.iter().map(|m| m.0).max().unwrap_or(0);
    if let Some(newest) = applied.iter().copied().max()
        && newest > newest_known
    {
        tracing::warn!(
            newest,
            newest_known,
            "ledger schema is newer than this dripgate; running with it anyway"
        );
    }
}
