//! Legacy hash stores: given the identifier a user typed, return the user's legacy record (stable
//! id, email, names, and the hash with how to verify it), or why the user cannot be migrated.
//!
//! Backends: SQL through sqlx (SQLite, PostgreSQL, MySQL/MariaDB) with product presets
//! (`wordpress`, `drupal7`, `django`) or your own table or queries, and CSV/JSON Lines exports
//! held in memory and reloaded when the file changes. The store is only ever read. Bad rows are
//! not errors: the user is [`Lookup::NotMigratable`] with a bounded [`Reason`] and the sign-in
//! stays with the legacy app. Hash values never appear in logs, errors or `Debug` output.
//! See docs/LEGACY-STORES.md.

pub mod census;
mod config;
mod enumerate;
mod error;
mod export;
mod metrics;
pub mod normalize;
mod presets;
mod record;
mod shape;
mod sql;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use secrecy::ExposeSecret;

use crate::failure::Classified;
use crate::hash::HashConfig;

pub use census::{Census, CensusSummary};
pub use config::{
    Columns, DEFAULT_CONNECT_TIMEOUT, DEFAULT_COUNT_INTERVAL, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_QUERY_TIMEOUT, DEFAULT_RELOAD_INTERVAL, ExportConfig, ExportKind, KeyField,
    LegacyConfig, Preset,
};
pub use enumerate::{Enumeration, Listed};
pub use error::{ErrorKind, LegacyError};
pub use metrics::LegacyMetrics;
pub use normalize::{Lowercase, NormalizeConfig};
pub use record::{LegacyUser, Lookup, Reason};

use enumerate::Source;
use export::{Index, Stamp};
use presets::{Dialect, ResultColumns};
use record::{RawRow, Rules};
use sql::SqlStore;

/// A legacy store (cheap to clone; clones share the pool or index).
#[derive(Clone)]
pub struct LegacyStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    rules: Rules,
    preset: Preset,
    metrics: LegacyMetrics,
    count_interval: std::time::Duration,
}

enum Backend {
    Sql(SqlStore),
    Export(ExportStore),
}

struct ExportStore {
    config: ExportConfig,
    kind: ExportKind,
    columns: ResultColumns,
    index: ArcSwap<Index>,
}

impl std::fmt::Debug for LegacyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyStore")
            .field("backend", &self.backend())
            .field("preset", &self.inner.preset.as_str())
            .finish_non_exhaustive()
    }
}

impl LegacyStore {
    /// Opens the store and registers its metrics in `registry`.
    ///
    /// A SQL store connects lazily (the first lookup connects) and must be opened inside a tokio
    /// runtime. An export file is read and indexed now (about 2 s per million rows).
    ///
    /// Hashes are classified against the default `[hash]` caps; use [`Self::open_with_caps`] with
    /// the caps verification runs with.
    pub fn open(
        config: &LegacyConfig,
        registry: &prometheus::Registry,
    ) -> Result<Self, LegacyError> {
        Self::open_with_caps(config, &HashConfig::default(), registry)
    }

    /// [`Self::open`], classifying a hash whose work factor exceeds `caps` as not migratable
    /// (`work_factor_over_cap`), as verification would refuse it.
    pub fn open_with_caps(
        config: &LegacyConfig,
        caps: &HashConfig,
        registry: &prometheus::Registry,
    ) -> Result<Self, LegacyError> {
        config.validate()?;
        let normalize = config
            .normalize
            .unwrap_or_else(|| presets::default_normalize(config.preset));
        let format = match config.format.as_deref() {
            Some("auto") => None,
            Some(name) => Some(
                name.parse()
                    .map_err(|e| LegacyError::Config(format!("format {name:?}: {e}")))?,
            ),
            None => presets::default_format(config.preset),
        };
        let rules = Rules {
            normalize,
            key: config.key,
            format,
            salt_position: config.salt_position,
            encoding: config.encoding,
            caps: caps.clone(),
        };
        let backend = match (&config.database_url, &config.export) {
            (Some(url), None) => {
                let url = url.expose_secret();
                let dialect = Dialect::from_url(url)?;
                let queries = presets::build(config, dialect, &normalize)?;
                Backend::Sql(SqlStore::open(config, url, queries)?)
            }
            (None, Some(export)) => {
                let kind = export.kind()?;
                let columns = ResultColumns::from_columns(&config.columns);
                let index = Index::load(&export.path, kind, &columns, &rules)?;
                Backend::Export(ExportStore {
                    config: export.clone(),
                    kind,
                    columns,
                    index: ArcSwap::from_pointee(index),
                })
            }
            _ => {
                return Err(LegacyError::Config(
                    "set exactly one of database_url and [legacy.export]".into(),
                ));
            }
        };
        let metrics = LegacyMetrics::register(registry)?;
        if let Backend::Export(e) = &backend {
            metrics
                .users
                .set(i64::try_from(e.index.load().len()).unwrap_or(i64::MAX));
        }
        Ok(LegacyStore {
            inner: Arc::new(Inner {
                backend,
                rules,
                preset: config.preset,
                metrics,
                count_interval: config.count_interval,
            }),
        })
    }

    /// `sqlite`, `postgres`, `mysql` or `export`.
    pub fn backend(&self) -> &'static str {
        match &self.inner.backend {
            Backend::Sql(s) => s.backend(),
            Backend::Export(_) => "export",
        }
    }

    /// The configured preset.
    pub fn preset(&self) -> Preset {
        self.inner.preset
    }

    /// Which field keys users in dripgate (the ledger): the email or the login name.
    pub fn key_field(&self) -> KeyField {
        self.inner.rules.key
    }

    /// Normalizes a typed identifier with the configured rule.
    pub fn normalize(&self, identifier: &str) -> String {
        self.inner.rules.normalize.identifier(identifier)
    }

    /// The store's metrics.
    pub fn metrics(&self) -> &LegacyMetrics {
        &self.inner.metrics
    }

    /// Looks up the user who typed `identifier` (a login or an email). Never writes.
    ///
    /// A user is [`Lookup::Found`] only when exactly one row matches the identifier and no other
    /// row shares the user's key; otherwise [`Reason::DuplicateKey`]. SQL lookups take at most
    /// `query_timeout` in all.
    pub async fn lookup(&self, identifier: &str) -> Result<Lookup, LegacyError> {
        let started = Instant::now();
        let result = self.lookup_inner(identifier).await;
        let seconds = started.elapsed().as_secs_f64();
        let m = &self.inner.metrics;
        match &result {
            Ok(Lookup::Found(_)) => m.lookup("found", "none", seconds),
            Ok(Lookup::NotFound) => m.lookup("not_found", "none", seconds),
            Ok(Lookup::NotMigratable(r)) => m.lookup("not_migratable", r.as_str(), seconds),
            Err(e) => m.lookup("error", e.label(), seconds),
        }
        result
    }

    async fn lookup_inner(&self, identifier: &str) -> Result<Lookup, LegacyError> {
        let rules = &self.inner.rules;
        let ident = rules.normalize.identifier(identifier);
        if ident.is_empty() {
            return Ok(Lookup::NotFound);
        }
        match &self.inner.backend {
            Backend::Export(e) => {
                let index = e.index.load();
                Ok(decide(rules, index.find(&ident, rules)))
            }
            Backend::Sql(s) => {
                let rows = self.sql_find(s, &ident).await?;
                let lookup = decide(rules, rows.into_iter().map(|r| (r, false)).collect());
                // Typed a login: make sure no other row shares the user's key.
                if let Lookup::Found(user) = &lookup
                    && user.key != ident
                    && self.sql_find(s, &user.key).await?.len() > 1
                {
                    return Ok(Lookup::NotMigratable(Reason::DuplicateKey));
                }
                Ok(lookup)
            }
        }
    }

    /// Every migratable user the store matches for what was typed, by the store's own
    /// comparison: rows a database collation matches are kept even where the configured
    /// rule would not match them, because the legacy app, querying the same database, signs
    /// those users in. Used to route: a sign-in legacy could resolve to a migrated user must
    /// not be left to it.
    pub async fn candidates(&self, identifier: &str) -> Result<Vec<LegacyUser>, LegacyError> {
        let rules = &self.inner.rules;
        let ident = rules.normalize.identifier(identifier);
        if ident.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<RawRow> = match &self.inner.backend {
            Backend::Export(e) => e
                .index
                .load()
                .find(&ident, rules)
                .into_iter()
                .map(|(row, _)| row)
                .collect(),
            Backend::Sql(s) => s.find(&ident).await?,
        };
        Ok(rows.iter().filter_map(|r| rules.classify(r).ok()).collect())
    }

    /// Whether `named` (a login or email a legacy response gave) is `user`.
    pub fn names_user(&self, named: &str, user: &LegacyUser) -> bool {
        let normalize = &self.inner.rules.normalize;
        let named = normalize.identifier(named);
        named == user.key
            || named == normalize.email(&user.email)
            || user
                .login
                .as_deref()
                .is_some_and(|l| named == normalize.login(l))
    }

    async fn sql_find(&self, s: &SqlStore, ident: &str) -> Result<Vec<RawRow>, LegacyError> {
        let mut rows = s.find(ident).await?;
        if s.recheck() {
            rows.retain(|r| self.inner.rules.matches(r, ident));
        }
        Ok(rows)
    }

    /// Counts the users in the store (bounded by `query_timeout` for SQL).
    pub async fn count(&self) -> Result<u64, LegacyError> {
        match &self.inner.backend {
            Backend::Sql(s) => s.count().await,
            Backend::Export(e) => Ok(e.index.load().len() as u64),
        }
    }

    /// Refreshes the `dripgate_legacy_users` gauge once.
    pub async fn refresh_count(&self) -> Result<u64, LegacyError> {
        let m = &self.inner.metrics;
        match self.count().await {
            Ok(n) => {
                m.users.set(i64::try_from(n).unwrap_or(i64::MAX));
                m.refresh("ok");
                Ok(n)
            }
            Err(e) => {
                m.refresh(e.label());
                Err(e)
            }
        }
    }

    /// Spawns the task that refreshes `dripgate_legacy_users` every `count_interval` (first at
    /// once). Scrapes read the last value; they never query the store. Abort the handle to stop.
    pub fn spawn_count_refresher(&self) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        let every = self.inner.count_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = store.refresh_count().await {
                    tracing::warn!(error = %e, "Legacy user count refresh failed.");
                }
            }
        })
    }

    /// For an export store with a non-zero `reload_interval`: spawns the task that re-reads the
    /// file when its size or modification time changes. A file that fails to load leaves the
    /// previous index in use. `None` for SQL stores.
    pub fn spawn_export_reloader(&self) -> Option<tokio::task::JoinHandle<()>> {
        let Backend::Export(e) = &self.inner.backend else {
            return None;
        };
        let every = e.config.reload_interval;
        if every.is_zero() {
            return None;
        }
        let store = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                store.reload_if_changed().await;
            }
        }))
    }

    /// Spawns every background task this store needs (count refresher, export reloader).
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![self.spawn_count_refresher()];
        tasks.extend(self.spawn_export_reloader());
        tasks
    }

    /// Re-reads an export file if it changed since it was loaded; returns whether it was
    /// reloaded. A no-op for SQL stores.
    pub async fn reload_if_changed(&self) -> bool {
        let Backend::Export(e) = &self.inner.backend else {
            return false;
        };
        let current = e.index.load().stamp;
        match Stamp::of(&e.config.path) {
            Ok(now) if now == current => return false,
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(path = %e.config.path.display(), error = %err, "Legacy export file cannot be read; keeping the loaded copy.");
                self.inner.metrics.reload("error");
                return false;
            }
        }
        let store = self.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let Backend::Export(e) = &store.inner.backend else {
                return Err(LegacyError::Config("not an export store".into()));
            };
            Index::load(&e.config.path, e.kind, &e.columns, &store.inner.rules)
        })
        .await;
        match loaded {
            Ok(Ok(index)) => {
                let n = index.len();
                e.index.store(Arc::new(index));
                self.inner.metrics.reload("ok");
                self.inner
                    .metrics
                    .users
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
                tracing::info!(path = %e.config.path.display(), users = n, "Legacy export reloaded.");
                true
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "Legacy export reload failed; keeping the loaded copy.");
                self.inner.metrics.reload("error");
                false
            }
            Err(join) => {
                tracing::warn!(error = %join, "Legacy export reload task failed.");
                self.inner.metrics.reload("error");
                false
            }
        }
    }

    /// Reads every user and classifies them, streaming; `progress` is called with the number of
    /// rows read so far every 10 000 rows. Never writes.
    pub async fn census(
        &self,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Census, LegacyError> {
        let rules = &self.inner.rules;
        let preset = match &self.inner.backend {
            Backend::Export(_) => "export",
            Backend::Sql(_) => self.inner.preset.as_str(),
        };
        let mut tally = census::Tally::new(rules, self.backend(), preset);
        let mut seen = 0u64;
        let mut each = |row: RawRow| {
            tally.add(&row);
            seen += 1;
            if seen.is_multiple_of(10_000) {
                progress(seen);
            }
        };
        match &self.inner.backend {
            Backend::Sql(s) => {
                s.scan(&mut each).await?;
            }
            Backend::Export(e) => {
                let mut fields = |f| {
                    each(export::to_raw_row(f));
                    Ok(())
                };
                let (path, kind, cols) = (e.config.path.clone(), e.kind, &e.columns);
                export::read_rows(&path, kind, cols, &mut fields)?;
            }
        }
        Ok(tally.finish())
    }

    /// Whether users listed by [`Self::enumerate`] carry a creation time (SQL presets
    /// `wordpress`, `drupal7`, `django`; `generic` and `custom` with `columns.created`).
    /// Exports have none.
    pub fn has_created(&self) -> bool {
        match &self.inner.backend {
            Backend::Sql(s) => s.pages().is_some_and(|p| p.created),
            Backend::Export(_) => false,
        }
    }

    /// Lists every user, streaming: a SQL store page by page (keyset pagination on its id,
    /// one short query per page), an export file read row by row. Never writes; nothing but
    /// the current page is held.
    pub fn enumerate(&self) -> Result<Enumeration, LegacyError> {
        let source = match &self.inner.backend {
            Backend::Sql(s) => {
                if s.pages().is_none() {
                    return Err(LegacyError::Config(
                        "enumerating users needs census_query, and columns.id naming its id column"
                            .into(),
                    ));
                }
                Source::Sql {
                    after: None,
                    done: false,
                }
            }
            Backend::Export(_) => Source::Export(enumerate::read_export(self.clone())),
        };
        Ok(Enumeration {
            store: self.clone(),
            source,
        })
    }

    /// Closes the database pool (no-op for exports).
    pub async fn close(&self) {
        if let Backend::Sql(s) = &self.inner.backend {
            s.close().await;
        }
    }
}

/// One lookup's rows → the answer.
fn decide(rules: &Rules, mut rows: Vec<(RawRow, bool)>) -> Lookup {
    match rows.len() {
        0 => Lookup::NotFound,
        1 => match rows.pop() {
            Some((_, true)) => Lookup::NotMigratable(Reason::DuplicateKey),
            Some((row, false)) => match rules.classify(&row) {
                Ok(user) => Lookup::Found(user),
                Err(reason) => Lookup::NotMigratable(reason),
            },
            None => Lookup::NotFound,
        },
        _ => Lookup::NotMigratable(Reason::DuplicateKey),
    }
}
