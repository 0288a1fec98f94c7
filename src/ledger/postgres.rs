//! PostgreSQL backend: the shared ledger for several replicas.
//!
//! "Now" is computed by the server in every statement, so replica clock skew cannot create two
//! live leases. Each connection gets `statement_timeout = ledger.query_timeout`, so a statement
//! abandoned by a client-side timeout does not keep running (and holding row locks) on the
//! server. Schema migrations run under a transaction-scoped advisory lock, so replicas starting
//! together migrate once. Connect options in the URL (e.g. `?options=-c search_path=ledger`) are
//! kept.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};

use super::LedgerConfig;
use super::error::LedgerError;
use super::queries::{Migration, ledger_queries};

ledger_queries!("(EXTRACT(EPOCH FROM now()) * 1000)::bigint");

/// Schema versions, oldest first.
const MIGRATIONS: &[Migration] = &[
    (1, "init", include_str!("schema/postgres/0001_init.sql")),
    (
        2,
        "migrated_at_index",
        include_str!("schema/postgres/0002_migrated_at_index.sql"),
    ),
    (3, "census", include_str!("schema/postgres/0003_census.sql")),
    (
        4,
        "handoff",
        include_str!("schema/postgres/0004_handoff.sql"),
    ),
    (
        5,
        "settings",
        include_str!("schema/postgres/0005_settings.sql"),
    ),
];

/// Advisory lock key taken while migrating ("dripgate" in ASCII).
const MIGRATION_LOCK: i64 = 0x6472_6970_6761_7465;

/// Connects to the server named by the config's URL.
pub(super) async fn connect(config: &LedgerConfig) -> Result<PgPool, LedgerError> {
    let statement_timeout = config.query_timeout.as_millis().max(1).to_string();
    let options = PgConnectOptions::from_str(config.url.expose())
        .map_err(|e| LedgerError::Config(format!("ledger.url: {e}")))?
        .application_name("dripgate-ledger")
        .options([("statement_timeout", statement_timeout.as_str())]);
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.query_timeout)
        .connect_with(options)
        .await
        .map_err(LedgerError::from)
}

/// Connects and runs one query, changing nothing. For `check-config`.
pub(super) async fn check(config: &LedgerConfig) -> Result<(), LedgerError> {
    let pool = connect(config).await?;
    let pinged = sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .map(|_| ())
        .map_err(LedgerError::from);
    pool.close().await;
    pinged
}

/// Brings the schema up to date in one transaction holding an advisory lock.
pub(super) async fn migrate(pool: &PgPool) -> Result<(), LedgerError> {
    let fail = |e: sqlx::Error| LedgerError::Migration(e.to_string());
    let mut tx = pool.begin().await.map_err(fail)?;
    // Migrations may take longer than a sign-in's query; waiting for another replica's
    // migration too.
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    sqlx::query(VERSIONS_TABLE)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    let applied: Vec<i64> = sqlx::query(VERSIONS)
        .fetch_all(&mut *tx)
        .await
        .map_err(fail)?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    super::warn_if_newer(&applied, MIGRATIONS);
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(fail)?;
        sqlx::query(VERSION_INSERT)
            .bind(*version)
            .bind(*name)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tracing::info!(version, name, "ledger schema migrated (postgres)");
    }
    tx.commit().await.map_err(fail)
}

#[cfg(test)]
mod tests {
    /// The runner applies missing versions in list order: the list must ascend, so a version
    /// merged later (4) is applied before the ones after it on a fresh ledger.
    #[test]
    fn schema_versions_ascend() {
        let versions: Vec<i64> = super::MIGRATIONS.iter().map(|m| m.0).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    }
}
