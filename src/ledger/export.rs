//! Reading the ledger out for operators, every row page by page (`dripgate ledger export`,
//! `dripgate ledger verify`). Pages are keyset-paginated on the
//! primary key (`user_key > last ORDER BY user_key LIMIT n`): each page is one indexed range
//! scan, so a ledger of millions of rows is streamed in constant memory, and a row inserted
//! during the export lands either in a later page or not at all, never twice.
//!
//! What a row exports is [`ExportRow`], declared once by `export_columns!`: the struct, its
//! serialization (CSV header and JSON keys) and the SELECT column list all come from that one
//! list, so exporting another column is one line there. Never a fingerprint or lease detail.

use serde::Serialize;

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

impl Ledger {
    /// The rows after `after` (by user key; `None`: from the first), at most `limit`, in user
    /// key order. Call again with the last row's key until a page comes back shorter than
    /// `limit`. Each page is one range scan of the primary key. There is deliberately no state
    /// filter here: with one, SQLite's planner reads the state index and sorts every row of the
    /// state for each page; callers keep the rows they want from the full pass instead.
    pub async fn export_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ExportRow>, LedgerError> {
        let sql = format!(
            "SELECT {} FROM ledger_users WHERE user_key > $1 ORDER BY user_key LIMIT $2",
            EXPORT_COLUMNS.join(", ")
        );
        // Every key is non-empty (`check_key`), so "" starts before the first.
        let after = after.unwrap_or("");
        let limit = i64::from(limit.max(1));
        self.run("export_page", async {
            let text = || sqlx::AssertSqlSafe(sql.as_str());
            let rows: Vec<ExportRow> = match &self.inner.backend {
                Backend::Sqlite(p) => {
                    sqlx::query_as(text())
                        .bind(after)
                        .bind(limit)
                        .fetch_all(p)
                        .await
                }
                Backend::Postgres(p) => {
                    sqlx::query_as(text())
                        .bind(after)
                        .bind(limit)
                        .fetch_all(p)
                        .await
                }
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
