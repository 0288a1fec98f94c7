//! SQLite backend: the embedded default, for a single replica with a local volume.
//!
//! The file is created if missing and opened in WAL mode with `synchronous = NORMAL` (durable
//! across process crashes; a power loss may lose the last commits, which the next sign-in
//! redoes) and a busy timeout equal to `ledger.query_timeout`. SQLite serializes writers, so the
//! claim upsert has exactly one winner; WAL does not work on network filesystems, so several
//! replicas need PostgreSQL.

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::LedgerConfig;
use super::error::LedgerError;
use super::queries::{Migration, ledger_queries};

ledger_queries!("CAST(unixepoch('subsec') * 1000 AS INTEGER)");

/// Schema versions, oldest first.
const MIGRATIONS: &[Migration] = &[
    (1, "init", include_str!("schema/sqlite/0001_init.sql")),
    (
        2,
        "migrated_at_index",
        include_str!("schema/sqlite/0002_migrated_at_index.sql"),
    ),
    (3, "census", include_str!("schema/sqlite/0003_census.sql")),
    (4, "handoff", include_str!("schema/sqlite/0004_handoff.sql")),
    (
        5,
        "settings",
        include_str!("schema/sqlite/0005_settings.sql"),
    ),
];

/// Opens (creating if missing) the SQLite file named by the config's URL.
pub(super) async fn connect(config: &LedgerConfig) -> Result<SqlitePool, LedgerError> {
    let options = SqliteConnectOptions::from_str(config.url.expose())
        .map_err(|e| LedgerError::Config(format!("ledger.url: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(config.query_timeout);
    SqlitePoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.query_timeout)
        .connect_with(options)
        .await
        .map_err(LedgerError::from)
}

/// Checks, creating nothing, that [`connect`] could open the file: its directory exists and
/// takes new files (SQLite adds `-wal` and `-shm` files beside it), and the file, when present,
/// is writable. For `check-config`.
pub(super) fn check(config: &LedgerConfig) -> Result<(), LedgerError> {
    let url = config.url.expose();
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| LedgerError::Config(format!("ledger.url: {e}")))?;
    let file = options.get_filename();
    if file.as_os_str() == ":memory:" || url.contains("mode=memory") {
        return Ok(());
    }
    let unusable = |what: String| Err(LedgerError::Config(what));
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return unusable(format!(
            "the directory {} of the ledger file does not exist",
            dir.display()
        ));
    }
    let probe = dir.join(format!(".dripgate-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => {
            return unusable(format!(
                "the directory {} of the ledger file is not writable: {e}",
                dir.display()
            ));
        }
    }
    if file.exists()
        && let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(file)
    {
        return unusable(format!(
            "the ledger file {} is not writable: {e}",
            file.display()
        ));
    }
    Ok(())
}

/// Brings the schema up to date inside one `BEGIN IMMEDIATE` transaction (which takes SQLite's
/// write lock first, so two processes opening one file cannot both migrate).
pub(super) async fn migrate(pool: &SqlitePool) -> Result<(), LedgerError> {
    let fail = |e: sqlx::Error| LedgerError::Migration(e.to_string());
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
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
        tracing::info!(version, name, "ledger schema migrated (sqlite)");
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
