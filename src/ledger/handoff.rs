//! Hand-off runs (`dripgate handoff`, schema version 4): one row per real run, with its counts,
//! so a run is reportable while it goes and after, and so a later step (the `complete` phase)
//! can ask whether a hand-off ever processed every selected user. Counts only: never a user
//! key, an email or a hash.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{Method, bounded_label, check_owner};
use super::{Backend, Ledger, LedgerError};

/// Largest counts summary accepted (a few dozen counters).
const MAX_COUNTS_BYTES: usize = 64 * 1024;

/// One recorded hand-off run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandoffRun {
    /// The run's id (a label: letters, digits, `-`, `_`, `.`, `:`).
    pub run_id: String,
    /// Who ran it (host and process, as a lease owner).
    pub owner: String,
    /// When it started, by the ledger's clock (ms since the Unix epoch).
    pub started_at_ms: i64,
    /// When it ended (`None`: running, or killed before it could record the end).
    pub finished_at_ms: Option<i64>,
    /// Whether it processed every selected user (no failure left, nobody still held).
    pub completed: bool,
    /// Its counts as recorded (JSON text), if any yet.
    pub counts: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    run_id: String,
    owner: String,
    started_at: i64,
    finished_at: Option<i64>,
    completed: i64,
    counts: Option<String>,
}

impl From<RunRow> for HandoffRun {
    fn from(r: RunRow) -> Self {
        HandoffRun {
            run_id: r.run_id,
            owner: r.owner,
            started_at_ms: r.started_at,
            finished_at_ms: r.finished_at,
            completed: r.completed == 1,
            counts: r.counts,
        }
    }
}

fn check_counts(counts: &str) -> Result<(), LedgerError> {
    if counts.len() > MAX_COUNTS_BYTES {
        return Err(LedgerError::Invalid("hand-off counts longer than 64 KiB"));
    }
    Ok(())
}

fn check_run_id(run_id: &str) -> Result<(), LedgerError> {
    if bounded_label(run_id) != run_id {
        return Err(LedgerError::Invalid(
            "hand-off run id must be a short label",
        ));
    }
    Ok(())
}

impl Ledger {
    /// Records the start of a real hand-off run; returns the time stamped.
    pub async fn start_handoff(&self, run_id: &str, owner: &str) -> Result<i64, LedgerError> {
        check_run_id(run_id)?;
        check_owner(owner)?;
        self.run("start_handoff", async {
            let at: i64 = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_scalar(q::HANDOFF_RUN_START)
                    .bind(run_id)
                    .bind(owner)
                    .fetch_one(p)
                    .await
            })?;
            Ok(at)
        })
        .await
    }

    /// Records a running hand-off's counts (JSON, counts only).
    pub async fn handoff_progress(&self, run_id: &str, counts: &str) -> Result<(), LedgerError> {
        check_counts(counts)?;
        self.run("handoff_progress", async {
            on_pool!(&self.inner.backend, |p, q| {
                sqlx::query(q::HANDOFF_RUN_PROGRESS)
                    .bind(run_id)
                    .bind(counts)
                    .execute(p)
                    .await
                    .map(|_| ())
            })?;
            Ok(())
        })
        .await
    }

    /// Records the end of a hand-off run: `completed` when it processed every selected user.
    pub async fn finish_handoff(
        &self,
        run_id: &str,
        completed: bool,
        counts: &str,
    ) -> Result<(), LedgerError> {
        check_counts(counts)?;
        self.run("finish_handoff", async {
            on_pool!(&self.inner.backend, |p, q| {
                sqlx::query(q::HANDOFF_RUN_FINISH)
                    .bind(run_id)
                    .bind(i64::from(completed))
                    .bind(counts)
                    .execute(p)
                    .await
                    .map(|_| ())
            })?;
            Ok(())
        })
        .await
    }

    /// The latest hand-off run that processed every selected user, if any did: what switching
    /// to the `complete` phase asks for.
    pub async fn last_completed_handoff(&self) -> Result<Option<HandoffRun>, LedgerError> {
        self.handoff_run("last_completed_handoff", true).await
    }

    /// The latest hand-off run, finished or not (for `/status`).
    pub async fn latest_handoff(&self) -> Result<Option<HandoffRun>, LedgerError> {
        self.handoff_run("latest_handoff", false).await
    }

    async fn handoff_run(
        &self,
        operation: &'static str,
        completed: bool,
    ) -> Result<Option<HandoffRun>, LedgerError> {
        self.run(operation, async {
            let row: Option<RunRow> = on_pool!(&self.inner.backend, |p, q| {
                let sql = if completed {
                    q::HANDOFF_RUN_LAST_COMPLETED
                } else {
                    q::HANDOFF_RUN_LATEST
                };
                sqlx::query_as(sql).fetch_optional(p).await
            })?;
            Ok(row.map(HandoffRun::from))
        })
        .await
    }

    /// Migrated users per [`Method`] (every method present, zero included).
    pub async fn method_counts(&self) -> Result<BTreeMap<Method, u64>, LedgerError> {
        self.run("method_counts", async {
            let rows: Vec<(String, i64)> = on_pool!(&self.inner.backend, |p, q| {
                sqlx::query_as(q::METHOD_COUNTS).fetch_all(p).await
            })?;
            let mut counts: BTreeMap<Method, u64> =
                Method::ALL.into_iter().map(|m| (m, 0)).collect();
            for (method, n) in rows {
                counts.insert(method.parse()?, u64::try_from(n).unwrap_or(0));
            }
            Ok(counts)
        })
        .await
    }
}
