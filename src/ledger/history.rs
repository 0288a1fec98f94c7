//! The migration's history, read from the rows' `migrated_at`: migrated users per hour over
//! the last days, users migrated in trailing windows, and users whose last attempt failed per
//! reason. Derived from the ledger itself (no extra table), so it survives restarts and every
//! replica sharing the ledger reads the same figures; only counts leave here, never a user key.

use std::collections::BTreeMap;

use super::{Backend, Ledger, LedgerError};

/// One hour in milliseconds: the series' bucket.
pub const HOUR_MS: i64 = 3_600_000;

/// Migrated users over time, by the ledger's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationHistory {
    /// The ledger's clock when read (ms since the Unix epoch).
    pub now_ms: i64,
    /// Start of the first hourly bucket (ms since the Unix epoch, on an hour boundary, UTC).
    pub start_ms: i64,
    /// Users first migrated in each hour from `start_ms`, oldest first; the last bucket is the
    /// current, unfinished hour. Users migrated and later moved out of `migrated` are not in it.
    pub hourly: Vec<u64>,
    /// Users migrated in the trailing hour (`now_ms` − 1 h, `now_ms`].
    pub last_hour: u64,
    /// Users migrated in the trailing 24 hours.
    pub last_24h: u64,
}

impl Ledger {
    /// The hourly series over the last `hours` hours (the current hour included) and the
    /// trailing-window counts, in three short reads (the clock, one GROUP BY, one COUNT) over
    /// the `migrated_at` index.
    pub async fn migration_history(&self, hours: usize) -> Result<MigrationHistory, LedgerError> {
        let hours = hours.clamp(1, 24 * 366);
        let now_ms = self.now_ms().await?;
        let current = now_ms.div_euclid(HOUR_MS);
        let first = current - (hours as i64 - 1);
        let start_ms = first * HOUR_MS;
        let hour_ago = now_ms - HOUR_MS;
        let day_ago = now_ms - 24 * HOUR_MS;
        self.run("history", async {
            let (rows, (recent, day)): (Vec<(i64, i64)>, (i64, i64)) =
                on_pool!(&self.inner.backend, |p, q| {
                    let rows = sqlx::query_as(q::HOURLY_MIGRATIONS)
                        .bind(start_ms)
                        .fetch_all(p)
                        .await?;
                    let since = sqlx::query_as(q::MIGRATED_SINCE)
                        .bind(hour_ago)
                        .bind(day_ago)
                        .fetch_one(p)
                        .await?;
                    Ok::<_, sqlx::Error>((rows, since))
                })?;
            let mut hourly = vec![0u64; hours];
            for (hour, n) in rows {
                // Rows stamped in the future (another replica's clock on SQLite cannot be, but
                // a restored backup can) count in the current hour.
                let at = usize::try_from((hour - first).min(current - first)).unwrap_or(0);
                if let Some(bucket) = hourly.get_mut(at) {
                    *bucket += u64::try_from(n).unwrap_or(0);
                }
            }
            Ok(MigrationHistory {
                now_ms,
                start_ms,
                hourly,
                last_hour: u64::try_from(recent).unwrap_or(0),
                last_24h: u64::try_from(day).unwrap_or(0),
            })
        })
        .await
    }

    /// Users not migrated whose last attempt failed, per stored reason (a bounded label such
    /// as `provider_unavailable`; never a user key or message text).
    pub async fn failures(&self) -> Result<BTreeMap<String, u64>, LedgerError> {
        self.run("failures", async {
            let rows: Vec<(String, i64)> = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_as(q::FAILURES).fetch_all(p).await
            })?;
            Ok(rows
                .into_iter()
                .map(|(reason, n)| (reason, u64::try_from(n).unwrap_or(0)))
                .collect())
        })
        .await
    }
}
