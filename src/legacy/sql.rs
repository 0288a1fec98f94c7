//! SQL stores through sqlx: SQLite, PostgreSQL, MySQL/MariaDB.
//!
//! Connections are read-only where the database allows it (SQLite `mode=ro`, PostgreSQL
//! `default_transaction_read_only`, MySQL `SET SESSION TRANSACTION READ ONLY`), pooled, and
//! bounded: getting a connection waits at most `connect_timeout`, a lookup at most
//! `query_timeout` in all. Config queries are run as `AssertSqlSafe` because only the
//! identifier is bound into them, never formatted.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{AssertSqlSafe, Executor, Row};
use zeroize::Zeroizing;

use super::LegacyError;
use super::config::LegacyConfig;
use super::presets::{Dialect, Paging, Queries, ResultColumns};
use super::record::{RawHash, RawRow};

/// At most this many rows are read for one identifier; more than one is already ambiguous.
const MAX_MATCHES: usize = 4;

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Where an enumeration stands: the id of the last row read (an integer or a text id, bound
/// back as the same type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PageKey {
    /// An integer id.
    Int(i64),
    /// A text id.
    Text(String),
}

/// One page of an enumeration: rows with their creation times, and where the next page starts
/// (`None` when the page is empty).
pub(crate) struct Page {
    pub rows: Vec<(RawRow, Option<String>)>,
    pub last: Option<PageKey>,
}

/// A pooled SQL store.
pub(crate) struct SqlStore {
    /// `columns.created` of a custom query (a result column name).
    created_column: Option<String>,
    pool: Pool,
    dialect: Dialect,
    queries: Queries,
    lookup_sql: Arc<str>,
    connect_timeout: Duration,
    query_timeout: Duration,
}

/// Runs `$body` with `$p` bound to whichever pool this is (the body is compiled per backend).
macro_rules! with_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
            Pool::MySql($p) => $body,
        }
    };
}

impl SqlStore {
    /// Creates the pool (lazily: no connection is made until the first query).
    pub fn open(config: &LegacyConfig, url: &str, queries: Queries) -> Result<Self, LegacyError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(LegacyError::Config(
                "the legacy SQL store must be opened inside a tokio runtime".into(),
            ));
        }
        let dialect = Dialect::from_url(url)?;
        let bad_url = |e: sqlx::Error| {
            // The URL may hold a password: name only the problem.
            LegacyError::Config(format!(
                "database_url is not a valid {} URL: {}",
                dialect.as_str(),
                redact_url_error(&e)
            ))
        };
        let max = config.max_connections;
        let acquire = config.connect_timeout;
        let idle = Duration::from_secs(60);
        let pool = match dialect {
            Dialect::Sqlite => {
                let opts = SqliteConnectOptions::from_str(url)
                    .map_err(bad_url)?
                    .read_only(true);
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(acquire)
                        .idle_timeout(idle)
                        .connect_lazy_with(opts),
                )
            }
            Dialect::Postgres => {
                let statement_timeout = config.query_timeout.as_millis().to_string();
                let opts = PgConnectOptions::from_str(url).map_err(bad_url)?.options([
                    ("default_transaction_read_only", "on"),
                    ("statement_timeout", statement_timeout.as_str()),
                ]);
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(acquire)
                        .idle_timeout(idle)
                        .connect_lazy_with(opts),
                )
            }
            Dialect::MySql => {
                let opts = MySqlConnectOptions::from_str(url).map_err(bad_url)?;
                Pool::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(acquire)
                        .idle_timeout(idle)
                        .after_connect(|conn, _meta| {
                            Box::pin(async move {
                                conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                                Ok(())
                            })
                        })
                        .connect_lazy_with(opts),
                )
            }
        };
        Ok(SqlStore {
            created_column: config.columns.created.clone(),
            pool,
            dialect,
            lookup_sql: Arc::from(queries.lookup.as_str()),
            queries,
            connect_timeout: config.connect_timeout,
            query_timeout: config.query_timeout,
        })
    }

    /// The backend label.
    pub fn backend(&self) -> &'static str {
        self.dialect.as_str()
    }

    /// Whether lookup results must be re-checked against the identifier.
    pub fn recheck(&self) -> bool {
        self.queries.recheck
    }

    fn err(&self, e: sqlx::Error) -> LegacyError {
        LegacyError::from_sqlx(self.backend(), e, self.connect_timeout)
    }

    fn timeout(&self) -> LegacyError {
        LegacyError::Timeout {
            backend: self.backend(),
            stage: "query",
            after: self.query_timeout,
        }
    }

    /// The rows matching `ident` (at most [`MAX_MATCHES`]), within `query_timeout`.
    pub async fn find(&self, ident: &str) -> Result<Vec<RawRow>, LegacyError> {
        let work = async {
            let cols = &self.queries.columns;
            with_pool!(&self.pool, p => {
                let mut q = sqlx::query(AssertSqlSafe(Arc::clone(&self.lookup_sql)));
                for _ in 0..self.queries.binds {
                    q = q.bind(ident.to_owned());
                }
                let rows: Vec<_> = q.fetch(p).take(MAX_MATCHES).try_collect().await
                    .map_err(|e| self.err(e))?;
                rows.iter().map(|r| ReadRow::read(r, cols).map_err(|e| self.err(e))).collect()
            })
        };
        tokio::time::timeout(self.query_timeout, work)
            .await
            .map_err(|_| self.timeout())?
    }

    /// The number of users (`count` query), within `query_timeout`.
    pub async fn count(&self) -> Result<u64, LegacyError> {
        let Some(sql) = self.queries.count.clone() else {
            return Err(LegacyError::Config(
                "counting users needs census_query with preset = \"custom\"".into(),
            ));
        };
        let work = async {
            with_pool!(&self.pool, p => {
                let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(p).await
                    .map_err(|e| self.err(e))?;
                Ok(u64::try_from(n).unwrap_or(0))
            })
        };
        tokio::time::timeout(self.query_timeout, work)
            .await
            .map_err(|_| self.timeout())?
    }

    /// Streams every user to `each`; no row is kept. No overall timeout (an operator command).
    pub async fn scan(&self, each: &mut (dyn FnMut(RawRow) + Send)) -> Result<u64, LegacyError> {
        let Some(sql) = self.queries.census.clone() else {
            return Err(LegacyError::Config(
                "a census needs census_query with preset = \"custom\"".into(),
            ));
        };
        let cols = &self.queries.columns;
        let mut n = 0u64;
        with_pool!(&self.pool, p => {
            let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(p);
            while let Some(row) = rows.try_next().await.map_err(|e| self.err(e))? {
                each(ReadRow::read(&row, cols).map_err(|e| self.err(e))?);
                n += 1;
            }
        });
        Ok(n)
    }

    /// Whether users can be enumerated page by page (`page`).
    pub fn pages(&self) -> Option<&Paging> {
        self.queries.paging.as_ref()
    }

    /// One page of users after `after` (the first page for `None`), each with its creation
    /// time where the store has one, and the key of the page's last row; within `query_timeout`.
    pub async fn page(&self, after: Option<&PageKey>) -> Result<Page, LegacyError> {
        let Some(paging) = &self.queries.paging else {
            return Err(LegacyError::Config(
                "enumerating users needs census_query, and columns.id naming its id column".into(),
            ));
        };
        let cols = &self.queries.columns;
        // Presets alias the creation column; a custom query names it in `columns.created`.
        let created = match (paging.created, self.queries.recheck) {
            (false, _) => None,
            (true, true) => Some("dg_created"),
            (true, false) => self.created_column.as_deref(),
        };
        let work = async {
            with_pool!(&self.pool, p => {
                let q = match after {
                    None => sqlx::query(AssertSqlSafe(paging.first.clone())),
                    Some(PageKey::Int(n)) => sqlx::query(AssertSqlSafe(paging.next.clone())).bind(*n),
                    Some(PageKey::Text(t)) => {
                        sqlx::query(AssertSqlSafe(paging.next.clone())).bind(t.clone())
                    }
                };
                let rows = q.fetch_all(p).await.map_err(|e| self.err(e))?;
                let mut page = Page { rows: Vec::with_capacity(rows.len()), last: None };
                for row in &rows {
                    let raw = ReadRow::read(row, cols).map_err(|e| self.err(e))?;
                    let when = match created {
                        Some(name) => row.text(name).map_err(|e| self.err(e))?,
                        None => None,
                    };
                    page.rows.push((raw, when));
                }
                if let Some(row) = rows.last() {
                    page.last = Some(match row.try_get::<Option<i64>, _>(cols.id.as_str()) {
                        Ok(Some(n)) => PageKey::Int(n),
                        _ => PageKey::Text(row.text(&cols.id).map_err(|e| self.err(e))?.unwrap_or_default()),
                    });
                }
                Ok(page)
            })
        };
        tokio::time::timeout(self.query_timeout, work)
            .await
            .map_err(|_| self.timeout())?
    }

    /// Closes the pool.
    pub async fn close(&self) {
        with_pool!(&self.pool, p => p.close().await);
    }
}

/// sqlx's URL errors may quote the URL; keep only the kind of problem.
fn redact_url_error(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Configuration(_) => "unparsable URL or option",
        _ => "invalid URL",
    }
}

/// A cell read as text: strings as they are, integers formatted, bytes as UTF-8.
enum Cell {
    Text(String),
    Bytes(Vec<u8>),
}

/// Reading a backend's row into a [`RawRow`] by column name.
trait ReadRow {
    fn cell(&self, name: &str) -> Result<Option<Cell>, sqlx::Error>;

    fn text(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        Ok(self.cell(name)?.map(|c| match c {
            Cell::Text(t) => t,
            Cell::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
        }))
    }

    fn opt_text(&self, name: Option<&String>) -> Result<Option<String>, sqlx::Error> {
        name.map_or(Ok(None), |n| self.text(n))
    }

    fn read(&self, cols: &ResultColumns) -> Result<RawRow, sqlx::Error> {
        let hash = match self.cell(&cols.hash)? {
            None => RawHash::Null,
            Some(Cell::Text(t)) => RawHash::Text(Zeroizing::new(t)),
            Some(Cell::Bytes(b)) => RawHash::Bytes(Zeroizing::new(b)),
        };
        let salt = match &cols.salt {
            Some(n) => self.cell(n)?.map(|c| match c {
                Cell::Text(t) => t.into_bytes(),
                Cell::Bytes(b) => b,
            }),
            None => None,
        };
        Ok(RawRow {
            id: self.text(&cols.id)?,
            login: self.opt_text(cols.login.as_ref())?,
            email: self.text(&cols.email)?,
            hash,
            format: self.opt_text(cols.format.as_ref())?,
            salt,
            given_name: self.opt_text(cols.given_name.as_ref())?,
            family_name: self.opt_text(cols.family_name.as_ref())?,
        })
    }
}

/// Implements [`ReadRow`] for a row type, trying text, the listed integer types, then bytes.
macro_rules! read_row {
    ($row:ty, [$($int:ty),*]) => {
        impl ReadRow for $row {
            fn cell(&self, name: &str) -> Result<Option<Cell>, sqlx::Error> {
                if let Ok(v) = self.try_get::<Option<String>, _>(name) {
                    return Ok(v.map(Cell::Text));
                }
                $(
                    if let Ok(v) = self.try_get::<Option<$int>, _>(name) {
                        return Ok(v.map(|n| Cell::Text(n.to_string())));
                    }
                )*
                self.try_get::<Option<Vec<u8>>, _>(name).map(|v| v.map(Cell::Bytes))
            }
        }
    };
}

read_row!(SqliteRow, [i64]);
read_row!(PgRow, [i64, i32, i16]);
read_row!(MySqlRow, [u64, i64, u32, i32]);
