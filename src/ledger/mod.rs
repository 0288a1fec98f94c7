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
mod postgres;
mod queries;
mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use moka::future::Cache;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row, SqlitePool};
use zeroize::Zeroizing;

pub use config::{BackendKind, LedgerCacheConfig, LedgerConfig};
pub use error::LedgerError;
pub use fingerprint::Fingerprinter;
pub use metrics::LedgerMetrics;

/// Longest accepted user key, in bytes (normalized e-mail addresses are at most 254).
pub const MAX_USER_KEY_BYTES: usize = 512;
/// Longest accepted lease owner name, in bytes.
pub const MAX_OWNER_BYTES: usize = 128;
/// Longest stored reason or legacy format label; longer or unusual ones are stored as `other`.
pub const MAX_LABEL_BYTES: usize = 64;

/// A user's migration state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Someone took the lease; no provider user is known yet.
    Claimed,
    /// The provider user exists (its id is recorded); the password may not be set yet.
    Created,
    /// The provider holds the user and a password that verifies; the migration is done.
    Migrated,
    /// A user with this identity already existed at the provider and was not adopted.
    Conflict,
    /// The provider rejected the password by policy; the user keeps signing in at legacy.
    BlockedPolicy,
}

impl State {
    /// Every state, in order.
    pub const ALL: [State; 5] = [
        State::Claimed,
        State::Created,
        State::Migrated,
        State::Conflict,
        State::BlockedPolicy,
    ];

    /// The name stored in the ledger and used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::Created => "created",
            Self::Migrated => "migrated",
            Self::Conflict => "conflict",
            Self::BlockedPolicy => "blocked_policy",
        }
    }

    /// Whether the state is final for the ordinary claim (`conflict`, `blocked_policy`,
    /// `migrated`); only a resync claim re-opens `migrated` and `blocked_policy`.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Migrated | Self::Conflict | Self::BlockedPolicy)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| LedgerError::Corrupt(format!("unknown state {s:?}")))
    }
}

/// A user's full ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    /// The normalized legacy user key.
    pub user_key: String,
    /// Where the migration stands.
    pub state: State,
    /// The user's id at the provider, once known.
    pub provider_user_id: Option<String>,
    /// How many times the user was claimed (first attempts, retries and resyncs).
    pub attempts: i64,
    /// The reason of the last failure (a label from a bounded set), cleared on success.
    pub last_error: Option<String>,
    /// The legacy hash format seen at the last claim.
    pub legacy_format: Option<String>,
    /// HMAC fingerprint of the legacy hash that was migrated (never the hash).
    pub hash_fingerprint: Option<String>,
    /// Who holds (or last held) the lease, while it is held.
    pub lease_owner: Option<String>,
    /// When the lease ends, in ms since the Unix epoch by the ledger's clock; 0 when released.
    pub lease_expires_at: i64,
    /// Bumped by every claim; fences writes of earlier claims.
    pub epoch: i64,
    /// When the row was created (ms since the Unix epoch).
    pub created_at: i64,
    /// When the row last changed (ms since the Unix epoch).
    pub updated_at: i64,
    /// When the user was first migrated (ms since the Unix epoch).
    pub migrated_at: Option<i64>,
}

/// What the routing hot path needs to know about a migrated user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigratedUser {
    /// The normalized legacy user key.
    pub user_key: String,
    /// The user's id at the provider.
    pub provider_user_id: String,
    /// Fingerprint of the legacy hash that was migrated, to notice a changed password.
    pub hash_fingerprint: Option<String>,
    /// When the user was first migrated (ms since the Unix epoch).
    pub migrated_at: i64,
}

/// A lease on one user, won by [`Ledger::claim`] or [`Ledger::claim_resync`]; pass it to the
/// fenced writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The normalized legacy user key.
    pub user_key: String,
    /// The epoch this claim holds; writes with an older epoch are refused.
    pub epoch: i64,
    /// The state when claimed: `claimed` (start from find-by-email), `created` (resume with
    /// `provider_user_id`), or `migrated` / `blocked_policy` for a resync claim.
    pub state: State,
    /// The provider user id recorded by an earlier attempt, if any.
    pub provider_user_id: Option<String>,
    /// Claims of this user so far, this one included.
    pub attempts: i64,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    user_key: String,
    epoch: i64,
    state: String,
    provider_user_id: Option<String>,
    attempts: i64,
}

impl TryFrom<ClaimRow> for Claim {
    type Error = LedgerError;

    fn try_from(row: ClaimRow) -> Result<Self, Self::Error> {
        Ok(Claim {
            user_key: row.user_key,
            epoch: row.epoch,
            state: row.state.parse()?,
            provider_user_id: row.provider_user_id,
            attempts: row.attempts,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    user_key: String,
    state: String,
    provider_user_id: Option<String>,
    attempts: i64,
    last_error: Option<String>,
    legacy_format: Option<String>,
    hash_fingerprint: Option<String>,
    lease_owner: Option<String>,
    lease_expires_at: i64,
    epoch: i64,
    created_at: i64,
    updated_at: i64,
    migrated_at: Option<i64>,
}

impl TryFrom<RecordRow> for UserRecord {
    type Error = LedgerError;

    fn try_from(row: RecordRow) -> Result<Self, Self::Error> {
        Ok(UserRecord {
            user_key: row.user_key,
            state: row.state.parse()?,
            provider_user_id: row.provider_user_id,
            attempts: row.attempts,
            last_error: row.last_error,
            legacy_format: row.legacy_format,
            hash_fingerprint: row.hash_fingerprint,
            lease_owner: row.lease_owner,
            lease_expires_at: row.lease_expires_at,
            epoch: row.epoch,
            created_at: row.created_at,
            updated_at: row.updated_at,
            migrated_at: row.migrated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct MigratedRow {
    user_key: String,
    provider_user_id: Option<String>,
    hash_fingerprint: Option<String>,
    migrated_at: Option<i64>,
}

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
            spawn_counts_refresher(Arc::downgrade(&ledger.inner), config.counts_interval);
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

    /// Takes the lease on a user, in one atomic upsert: inserts the row (`claimed`, epoch 1), or
    /// re-takes a `claimed`/`created` row whose lease has expired (epoch + 1). Returns `None`
    /// when another holder's lease is live or the user is `migrated`, `conflict` or
    /// `blocked_policy`: the caller then leaves the user to legacy and does not wait.
    /// `owner` names the holder (e.g. replica id) for operators; `legacy_format` is a label.
    pub async fn claim(
        &self,
        user_key: &str,
        owner: &str,
        legacy_format: &str,
    ) -> Result<Option<Claim>, LedgerError> {
        check_key(user_key)?;
        check_owner(owner)?;
        let format = bounded_label(legacy_format);
        let lease_ms = self.inner.lease_ms;
        let claim = self
            .run("claim", async {
                let row: Option<ClaimRow> = on_pool!(&self.inner.backend, |p, q| {
                    sqlx::query_as(q::CLAIM)
                        .bind(user_key)
                        .bind(owner)
                        .bind(lease_ms)
                        .bind(format)
                        .fetch_optional(p)
                        .await
                })?;
                row.map(Claim::try_from).transpose()
            })
            .await?;
        self.inner.metrics.claim("first", claim.is_some());
        Ok(claim)
    }

    /// Takes the lease on a `migrated` (or `blocked_policy`) user whose recorded fingerprint
    /// differs from `fingerprint`, i.e. whose password changed at legacy since: the caller sets
    /// the new password at the provider and calls [`Ledger::mark_migrated`] with the new
    /// fingerprint. The state is kept meanwhile (the user stays routable). `None` when the
    /// fingerprint matches, the user is not in such a state, or another holder's lease is live.
    pub async fn claim_resync(
        &self,
        user_key: &str,
        owner: &str,
        fingerprint: &str,
    ) -> Result<Option<Claim>, LedgerError> {
        check_key(user_key)?;
        check_owner(owner)?;
        check_fingerprint(fingerprint)?;
        let lease_ms = self.inner.lease_ms;
        let claim = self
            .run("claim_resync", async {
                let row: Option<ClaimRow> = on_pool!(&self.inner.backend, |p, q| {
                    sqlx::query_as(q::CLAIM_RESYNC)
                        .bind(user_key)
                        .bind(owner)
                        .bind(lease_ms)
                        .bind(fingerprint)
                        .fetch_optional(p)
                        .await
                })?;
                row.map(Claim::try_from).transpose()
            })
            .await?;
        self.inner.metrics.claim("resync", claim.is_some());
        Ok(claim)
    }

    /// Records the provider user id (state `claimed` → `created`; other states are kept).
    /// [`LedgerError::Fenced`] when the claim was superseded: stop, do not set the password.
    pub async fn mark_created(
        &self,
        claim: &Claim,
        provider_user_id: &str,
    ) -> Result<(), LedgerError> {
        check_provider_id(provider_user_id)?;
        self.run("mark_created", async {
            let done = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query(q::MARK_CREATED)
                    .bind(&claim.user_key)
                    .bind(claim.epoch)
                    .bind(provider_user_id)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            fenced(done)
        })
        .await
    }

    /// Records the finished migration (`migrated`, with the provider id and the fingerprint of
    /// the legacy hash from [`Ledger::fingerprint`]), clears `last_error`, releases the lease
    /// and caches the user. [`LedgerError::Fenced`] when the claim was superseded.
    pub async fn mark_migrated(
        &self,
        claim: &Claim,
        provider_user_id: &str,
        fingerprint: &str,
    ) -> Result<MigratedUser, LedgerError> {
        check_provider_id(provider_user_id)?;
        check_fingerprint(fingerprint)?;
        let migrated_at = self
            .run("mark_migrated", async {
                let row = on_pool!(&self.inner.backend, |p, q| {
                    sqlx::query(q::MARK_MIGRATED)
                        .bind(&claim.user_key)
                        .bind(claim.epoch)
                        .bind(provider_user_id)
                        .bind(fingerprint)
                        .fetch_optional(p)
                        .await
                        .and_then(|row| row.map(|r| r.try_get::<Option<i64>, _>(0)).transpose())
                })?;
                row.ok_or(LedgerError::Fenced)
            })
            .await?;
        let user = MigratedUser {
            user_key: claim.user_key.clone(),
            provider_user_id: provider_user_id.to_owned(),
            hash_fingerprint: Some(fingerprint.to_owned()),
            migrated_at: migrated_at.unwrap_or(0),
        };
        if let Some(cache) = &self.inner.cache {
            cache.insert(claim.user_key.clone(), user.clone()).await;
        }
        Ok(user)
    }

    /// Records a failed attempt (`reason`: a short label from a bounded set, e.g.
    /// `provider_unavailable`) and releases the lease at once, so the next sign-in retries.
    /// The state is kept. [`LedgerError::Fenced`] when the claim was superseded.
    pub async fn mark_failed(&self, claim: &Claim, reason: &str) -> Result<(), LedgerError> {
        let reason = bounded_label(reason);
        self.run("mark_failed", async {
            let done = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query(q::MARK_FAILED)
                    .bind(&claim.user_key)
                    .bind(claim.epoch)
                    .bind(reason)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            fenced(done)
        })
        .await
    }

    /// Ends the migration of a user in `State::Conflict` or `State::BlockedPolicy` with a
    /// reason label, releases the lease and drops the user from the cache. Ordinary claims no
    /// longer take the user. [`LedgerError::Fenced`] when the claim was superseded.
    pub async fn mark_terminal(
        &self,
        claim: &Claim,
        state: State,
        reason: &str,
    ) -> Result<(), LedgerError> {
        self.terminal(claim, state, reason, None).await
    }

    /// [`Ledger::mark_terminal`] that also records the fingerprint of the legacy hash whose
    /// password was rejected: for `BlockedPolicy`, a later [`Ledger::claim_resync`] then retries
    /// only once the user's legacy password (hence the fingerprint) has changed.
    pub async fn mark_terminal_with_fingerprint(
        &self,
        claim: &Claim,
        state: State,
        reason: &str,
        fingerprint: &str,
    ) -> Result<(), LedgerError> {
        check_fingerprint(fingerprint)?;
        self.terminal(claim, state, reason, Some(fingerprint)).await
    }

    async fn terminal(
        &self,
        claim: &Claim,
        state: State,
        reason: &str,
        fingerprint: Option<&str>,
    ) -> Result<(), LedgerError> {
        if !matches!(state, State::Conflict | State::BlockedPolicy) {
            return Err(LedgerError::Invalid(
                "mark_terminal takes State::Conflict or State::BlockedPolicy",
            ));
        }
        let reason = bounded_label(reason);
        let result = self
            .run("mark_terminal", async {
                let done = on_pool!(&self.inner.backend, |p, q| {
                    sqlx::query(q::MARK_TERMINAL)
                        .bind(&claim.user_key)
                        .bind(claim.epoch)
                        .bind(state.as_str())
                        .bind(reason)
                        .bind(fingerprint)
                        .execute(p)
                        .await
                        .map(|r| r.rows_affected())
                })?;
                fenced(done)
            })
            .await;
        self.invalidate_cached(&claim.user_key).await;
        result
    }

    /// The fingerprint of a legacy hash to record: `hex(HMAC-SHA256(ledger key, legacy_hash))`.
    pub fn fingerprint(&self, legacy_hash: &[u8]) -> String {
        self.inner.fingerprinter.fingerprint(legacy_hash)
    }

    /// Whether `fingerprint` was made from `legacy_hash` with this ledger's key (constant time).
    pub fn fingerprint_matches(&self, legacy_hash: &[u8], fingerprint: &str) -> bool {
        self.inner.fingerprinter.matches(legacy_hash, fingerprint)
    }

    /// Users per state (every state present, zero included).
    pub async fn counts(&self) -> Result<BTreeMap<State, u64>, LedgerError> {
        self.run("counts", async {
            let rows: Vec<(String, i64)> = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_as(q::COUNTS).fetch_all(p).await
            })?;
            let mut counts: BTreeMap<State, u64> = State::ALL.into_iter().map(|s| (s, 0)).collect();
            for (state, n) in rows {
                counts.insert(state.parse()?, u64::try_from(n).unwrap_or(0));
            }
            Ok(counts)
        })
        .await
    }

    /// Recounts users per state now and sets `dripgate_ledger_users{state}` (the background
    /// task does this every `ledger.counts_interval`).
    pub async fn refresh_counts(&self) -> Result<BTreeMap<State, u64>, LedgerError> {
        let counts = self.counts().await?;
        self.inner.metrics.set_counts(&counts);
        Ok(counts)
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

fn spawn_counts_refresher(inner: Weak<Inner>, every: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(inner) = inner.upgrade() else {
                break;
            };
            let ledger = Ledger { inner };
            if let Err(e) = ledger.refresh_counts().await {
                tracing::warn!(error = %e, "ledger: cannot recount users by state");
            }
        }
    });
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

fn fenced(rows: u64) -> Result<(), LedgerError> {
    if rows == 0 {
        Err(LedgerError::Fenced)
    } else {
        Ok(())
    }
}

fn check_key(user_key: &str) -> Result<(), LedgerError> {
    if user_key.is_empty() || user_key.len() > MAX_USER_KEY_BYTES {
        return Err(LedgerError::Invalid("user key empty or too long"));
    }
    Ok(())
}

fn check_owner(owner: &str) -> Result<(), LedgerError> {
    if owner.is_empty() || owner.len() > MAX_OWNER_BYTES {
        return Err(LedgerError::Invalid("lease owner empty or too long"));
    }
    Ok(())
}

fn check_provider_id(id: &str) -> Result<(), LedgerError> {
    if id.is_empty() || id.len() > MAX_USER_KEY_BYTES {
        return Err(LedgerError::Invalid("provider user id empty or too long"));
    }
    Ok(())
}

/// A fingerprint is exactly what [`Ledger::fingerprint`] returns: 64 lower-case hex digits.
/// This refuses, for instance, a legacy hash passed by mistake.
fn check_fingerprint(fingerprint: &str) -> Result<(), LedgerError> {
    let ok = fingerprint.len() == 64
        && fingerprint
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(LedgerError::Invalid(
            "fingerprint must come from Ledger::fingerprint",
        ))
    }
}

/// Reasons and format names are labels from bounded sets; anything else (too long, unusual
/// characters: possibly user input) is stored as `other`, so no secret can end up in the ledger.
fn bounded_label(label: &str) -> &str {
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL_BYTES
        && label.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b':')
        });
    if ok {
        label
    } else {
        tracing::warn!("ledger: a reason or format label was not a short label; stored as `other`");
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            bounded_label("provider_unavailable"),
            "provider_unavailable"
        );
        assert_eq!(bounded_label("bcrypt"), "bcrypt");
        assert_eq!(bounded_label("Hunter2 password!"), "other");
        assert_eq!(bounded_label(""), "other");
        assert_eq!(bounded_label(&"a".repeat(65)), "other");
    }

    #[test]
    fn states_round_trip() {
        for state in State::ALL {
            assert_eq!(state.as_str().parse::<State>().ok(), Some(state));
        }
        assert!("nope".parse::<State>().is_err());
    }

    #[test]
    fn fingerprint_shape_is_checked() {
        assert!(check_fingerprint(&"a".repeat(64)).is_ok());
        assert!(check_fingerprint("$2y$10$abc").is_err());
        assert!(check_fingerprint(&"A".repeat(64)).is_err());
    }
}
