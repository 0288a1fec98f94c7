//! Reading the ledger out for operators: every row page by page (`dripgate ledger export`) and
//! a sample of migrated users (`dripgate ledger verify`). Pages are keyset-paginated on the
//! primary key (`user_key > last ORDER BY user_key LIMIT n`): each page is one indexed range
//! scan, so a ledger of millions of rows is streamed in constant memory, and a row inserted
//! during the export lands either in a later page or not at all, never twice.
//!
//! What a row exports is [`ExportRow`], declared once by `export_columns!`: the struct, its
//! serialization (CSV header and JSON keys) and the SELECT column list all come from that one
//! list, so exporting another column is one line there. Never a fingerprint or lease detail.

use serde::Serialize;

use super::model::{State, check_key};
use super::{Backend, Ledger, LedgerError};

/// Declares [`ExportRow`] and [`EXPORT_COLUMNS`] from one list of `column: type` lines; each
/// line's name is the ledger column it is read from and the export's field name.
macro_rules! export_columns {
    ($($(#[$doc:meta])* $name:ident: $ty:ty,)+) => {
        /// One ledger row as exported: no fingerprint, no lease, never a hash or password.
        /// Times are milliseconds since the Unix epoch (UTC) by the ledger's clock.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
        pub struct ExportRow {
            $($(#[$doc])* pub $name: $ty,)+
        }

        /// The exported columns, in order (the CSV header).
        pub const EXPORT_COLUMNS: &[&str] = &[$(stringify!($name)),+];
    };
}

export_columns! {
    /// The normalized legacy user key.
    user_key: String,
    /// `claimed`, `created`, `migrated`, `conflict` or `blocked_policy`.
    state: String,
    /// The user's id at the provider, once known.
    provider_user_id: Option<String>,
    /// The legacy hash format label seen at the last claim.
    legacy_format: Option<String>,
    /// Claims of the user so far (first attempt, retries, resyncs).
    attempts: i64,
    /// The last failure's label (cleared on success).
    last_error: Option<String>,
    /// When the row was created.
    created_at: i64,
    /// When the row last changed.
    updated_at: i64,
    /// When the user was first migrated.
    migrated_at: Option<i64>,
}

/// Rows per page of [`Ledger::export_page`]'s callers (a page is held in memory at once).
pub const EXPORT_PAGE_ROWS: u32 = 1000;

fn select(filter: &str, order: &str) -> String {
    format!(
        "SELECT {} FROM ledger_users WHERE {filter} ORDER BY {order} LIMIT $1",
        EXPORT_COLUMNS.join(", ")
    )
}

impl Ledger {
    /// The rows after `after` (by user key; `None`: from the first), at most `limit`, in user
    /// key order, optionally only those in `state`. Call again with the last row's key until a
    /// page comes back shorter than `limit`.
    pub async fn export_page(
        &self,
        after: Option<&str>,
        state: Option<State>,
        limit: u32,
    ) -> Result<Vec<ExportRow>, LedgerError> {
        if let Some(key) = after {
            check_key(key)?;
        }
        let sql = match (after.is_some(), state.is_some()) {
            (false, false) => select("1 = 1", "user_key"),
            (true, false) => select("user_key > $2", "user_key"),
            (false, true) => select("state = $2", "user_key"),
            (true, true) => select("user_key > $2 AND state = $3", "user_key"),
        };
        let limit = i64::from(limit.max(1));
        self.run("export_page", async {
            macro_rules! fetch {
                ($pool:expr) => {{
                    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(limit);
                    if let Some(key) = after {
                        query = query.bind(key);
                    }
                    if let Some(state) = state {
                        query = query.bind(state.as_str());
                    }
                    query.fetch_all($pool).await
                }};
            }
            let rows: Vec<ExportRow> = match &self.inner.backend {
                Backend::Sqlite(p) => fetch!(p),
                Backend::Postgres(p) => fetch!(p),
            }?;
            Ok(rows)
        })
        .await
    }

    /// Up to `n` `migrated` users chosen at random (the database's `random()`), for a sampled
    /// `dripgate ledger verify`.
    pub async fn sample_migrated(&self, n: u32) -> Result<Vec<ExportRow>, LedgerError> {
        let sql = select("state = 'migrated'", "random()");
        let n = i64::from(n);
        self.run("sample_migrated", async {
            let text = || sqlx::AssertSqlSafe(sql.as_str());
            let rows: Vec<ExportRow> = match &self.inner.backend {
                Backend::Sqlite(p) => sqlx::query_as(text()).bind(n).fetch_all(p).await,
                Backend::Postgres(p) => sqlx::query_as(text()).bind(n).fetch_all(p).await,
            }?;
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_columns_hold_no_secret() {
        for column in EXPORT_COLUMNS {
            assert!(
                !column.contains("fingerprint") && !column.contains("hash"),
                "{column}"
            );
        }
        assert_eq!(EXPORT_COLUMNS[0], "user_key");
    }
}
