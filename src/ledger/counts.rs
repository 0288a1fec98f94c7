//! Counting users by state, for `dripgate_ledger_users{state}`, the status page and the
//! migration progress; refreshed in the background every `ledger.counts_interval`.

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;

use super::model::State;
use super::{Backend, Inner, Ledger, LedgerError};

impl Ledger {
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

    /// Recounts users per state (and migrated users per method) now and sets
    /// `dripgate_ledger_users{state}` and `dripgate_ledger_migrated_users{method}` (the
    /// background task does this every `ledger.counts_interval`).
    pub async fn refresh_counts(&self) -> Result<BTreeMap<State, u64>, LedgerError> {
        let counts = self.counts().await?;
        self.inner.metrics.set_counts(&counts);
        let methods = self.method_counts().await?;
        self.inner.metrics.set_methods(&methods);
        Ok(counts)
    }
}

pub(super) fn spawn_counts_refresher(inner: Weak<Inner>, every: Duration) {
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
