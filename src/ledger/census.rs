//! The latest legacy store census, as recorded by `dripgate legacy census`: a summary of counts
//! (JSON text, written by the caller) and the ledger's clock when it was recorded. One row,
//! replaced by every census, so every replica's status page shows the same figures.

use super::{Backend, Ledger, LedgerError};

/// Largest summary accepted (a summary holds a few dozen counts).
pub const MAX_CENSUS_BYTES: usize = 64 * 1024;

/// The recorded census summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CensusRecord {
    /// The summary as recorded (JSON text; counts only).
    pub summary: String,
    /// When it was recorded, by the ledger's clock (ms since the Unix epoch).
    pub taken_at_ms: i64,
}

impl Ledger {
    /// Records `summary` (JSON text holding counts only, never a user key, email or hash) as
    /// the latest census, replacing the previous one; returns the time stamped.
    pub async fn record_census(&self, summary: &str) -> Result<i64, LedgerError> {
        if summary.len() > MAX_CENSUS_BYTES {
            return Err(LedgerError::Invalid("census summary longer than 64 KiB"));
        }
        self.run("record_census", async {
            let taken_at: i64 = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_scalar(q::CENSUS_RECORD)
                    .bind(summary)
                    .fetch_one(p)
                    .await
            })?;
            Ok(taken_at)
        })
        .await
    }

    /// The latest recorded census, if one was recorded.
    pub async fn latest_census(&self) -> Result<Option<CensusRecord>, LedgerError> {
        self.run("latest_census", async {
            let row: Option<(String, i64)> = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_as(q::CENSUS_LATEST).fetch_optional(p).await
            })?;
            Ok(row.map(|(summary, taken_at_ms)| CensusRecord {
                summary,
                taken_at_ms,
            }))
        })
        .await
    }
}
