//! `GET /status` on the admin listener: the documented, versioned JSON shape
//! (`"schema": "dripgate.status/v1"`, docs/STATUS.md) that the status page (`GET /`) and
//! `dripgate status` read. Counts only: no user key, email, password or hash ever appears.
//!
//! Progress, rates, the ETA and the hourly series come from the ledger (its `migrated_at`
//! column, read with one GROUP BY), so they survive restarts and agree across replicas that
//! share a PostgreSQL ledger; the legacy user count is the last background count of the legacy
//! store (`dripgate_legacy_users`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::admin::AdminState;
use super::health::DependencyStatus;
use crate::ledger::{HOUR_MS, MigrationHistory, State};
use crate::migrate::{Engine, RuntimeSettings, SettingsOrigin};

/// The `schema` value of this shape; a change that removes or renames a field gets a new one.
pub const SCHEMA: &str = "dripgate.status/v1";
/// Days of hourly buckets in `migration.series`.
pub const SERIES_DAYS: usize = 14;
/// How the rate the ETA uses is measured.
pub const ETA_RATE_METHOD: &str = "trailing_24h";
/// `migration.signins_scope`: each replica counts only the sign-ins it handled, in memory.
pub const SIGNINS_SCOPE: &str = "this_replica";

/// The whole `/status` document.
#[derive(Serialize)]
pub struct Status<'a> {
    schema: &'static str,
    version: &'static str,
    ready: bool,
    uptime_seconds: u64,
    upstream: &'a str,
    dependencies: BTreeMap<String, DependencyStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    migration: Option<MigrationStatus>,
}

/// `migration`: present when `[legacy]` (and so the migration engine) is configured.
#[derive(Serialize)]
struct MigrationStatus {
    settings: RuntimeSettings,
    /// Where `settings` came from (file, admin API and by whom, config reload) and when.
    settings_origin: SettingsOrigin,
    /// When the latest hand-off run completed (ms, the ledger's clock): null when none did or
    /// the ledger could not be read. The switch to `complete` needs one (or `force`).
    handoff_completed_at: Option<i64>,
    /// Users per ledger state (null when the ledger could not be read).
    ledger_users: Option<BTreeMap<String, u64>>,
    /// Null when the ledger could not be read.
    progress: Option<Progress>,
    rate: Option<Rate>,
    eta: Option<Eta>,
    series: Option<Series>,
    /// Users not migrated whose last attempt failed, by reason (null when unreadable).
    failures: Option<BTreeMap<String, u64>>,
    /// Sign-ins this process handled in the last hour, by outcome label (every label present).
    signins_last_hour: BTreeMap<&'static str, u64>,
    /// Whose sign-ins `signins_last_hour` counts: [`SIGNINS_SCOPE`].
    signins_scope: &'static str,
    /// The latest `dripgate legacy census` recorded in the ledger (null when none was recorded
    /// or the ledger could not be read).
    census: Option<CensusStatus>,
    /// Migrated users per method (`live`, `handoff_hash`, `handoff_reset`; null when the
    /// ledger could not be read).
    migrated_by_method: Option<BTreeMap<String, u64>>,
    /// The latest `dripgate handoff` run recorded in the ledger (null when none ran or the
    /// ledger could not be read).
    handoff: Option<HandoffStatus>,
}

/// `migration.handoff`.
#[derive(Serialize)]
struct HandoffStatus {
    run_id: String,
    /// When it started and ended, ms since the Unix epoch (the ledger's clock); `finished_at`
    /// is null while it runs, or when it was killed.
    started_at: i64,
    finished_at: Option<i64>,
    /// Whether it processed every selected user.
    completed: bool,
    /// When the latest completed run ended (null when none completed).
    last_completed_at: Option<i64>,
    /// Its counts as recorded (every few seconds while it runs): counts and labels only.
    counts: Option<serde_json::Value>,
}

/// `migration.census`.
#[derive(Serialize)]
struct CensusStatus {
    /// When the census was recorded, ms since the Unix epoch (the ledger's clock).
    taken_at: i64,
    /// The census summary as recorded: counts and labels only.
    summary: serde_json::Value,
}

#[derive(Serialize)]
struct Progress {
    /// Users in state `migrated`.
    migrated_users: u64,
    /// Users in the legacy store at its last count (null until counted).
    legacy_users: Option<u64>,
    /// `legacy_users - migrated_users` (null until counted).
    not_migrated_users: Option<u64>,
    /// `migrated_users / legacy_users`, 0 to 1 (null until counted).
    share: Option<f64>,
    /// The ledger's clock when read, ms since the Unix epoch.
    as_of_ms: i64,
}

#[derive(Serialize)]
struct Rate {
    /// Users migrated in the trailing hour, which is also users/hour over it.
    last_hour: u64,
    /// Users migrated in the trailing 24 hours.
    last_24h: u64,
    /// The headline rate, users per hour, measured as `rate_method` says.
    users_per_hour: f64,
    rate_method: &'static str,
    /// `last_24h / 24`.
    users_per_hour_24h: f64,
}

#[derive(Serialize)]
struct Eta {
    /// `migration.target_share`.
    target_share: f64,
    /// Users to migrate before the target is reached (null until the legacy store is counted).
    users_to_target: Option<u64>,
    /// Whether the share has reached the target.
    reached: bool,
    /// Seconds to the target at `rate_method`'s rate: 0 when reached, null when the rate is
    /// zero or the legacy count unknown.
    seconds: Option<u64>,
    /// `as_of_ms + seconds * 1000`, or null.
    at_ms: Option<i64>,
    users_per_hour: f64,
    rate_method: &'static str,
}

#[derive(Serialize)]
struct Series {
    /// Each bucket's length in seconds (3600).
    bucket_seconds: u64,
    /// Start of the first bucket, ms since the Unix epoch (UTC hour boundary).
    start_ms: i64,
    /// Users first migrated in each bucket, oldest first; the last is the current hour.
    migrations: Vec<u64>,
}

/// Builds `/status` from the admin state.
pub async fn build(state: &AdminState) -> Status<'_> {
    let migration = match &state.engine {
        Some(engine) => Some(migration(engine).await),
        None => None,
    };
    Status {
        schema: SCHEMA,
        version: env!("CARGO_PKG_VERSION"),
        ready: state.health.is_ready(),
        uptime_seconds: state.started.elapsed().as_secs(),
        upstream: &state.upstream,
        dependencies: state.health.dependencies(),
        migration,
    }
}

async fn migration(engine: &Engine) -> MigrationStatus {
    let ledger = engine.ledger();
    let (counts, history, failures, census, handoff) = tokio::join!(
        ledger.counts(),
        ledger.migration_history(SERIES_DAYS * 24),
        ledger.failures(),
        ledger.latest_census(),
        ledger.handoff_completed_at()
    );
    let (methods, latest_run, completed) = tokio::join!(
        ledger.method_counts(),
        ledger.latest_handoff(),
        ledger.last_completed_handoff()
    );
    let counts = counts.ok();
    let legacy = u64::try_from(engine.legacy().metrics().users.get())
        .ok()
        .filter(|n| *n > 0);
    let migrated = counts
        .as_ref()
        .and_then(|c| c.get(&State::Migrated).copied());
    let target_share = engine.config().target_share;
    let figures = match (migrated, history.ok()) {
        (Some(migrated), Some(history)) => Some(figures(migrated, legacy, target_share, history)),
        _ => None,
    };
    let (progress, rate, eta, series) = match figures {
        Some((p, r, e, s)) => (Some(p), Some(r), Some(e), Some(s)),
        None => (None, None, None, None),
    };
    MigrationStatus {
        settings: engine.phase().get(),
        settings_origin: engine.phase().origin(),
        handoff_completed_at: handoff.ok().flatten(),
        ledger_users: counts.map(|counts| {
            counts
                .into_iter()
                .map(|(s, n)| (s.as_str().to_owned(), n))
                .collect()
        }),
        progress,
        rate,
        eta,
        series,
        failures: failures.ok(),
        signins_last_hour: engine.metrics().signins_last_hour(),
        signins_scope: SIGNINS_SCOPE,
        census: census.ok().flatten().and_then(|c| {
            Some(CensusStatus {
                taken_at: c.taken_at_ms,
                summary: serde_json::from_str(&c.summary).ok()?,
            })
        }),
        migrated_by_method: methods.ok().map(|m| {
            m.into_iter()
                .map(|(method, n)| (method.as_str().to_owned(), n))
                .collect()
        }),
        handoff: latest_run.ok().flatten().map(|run| HandoffStatus {
            run_id: run.run_id,
            started_at: run.started_at_ms,
            finished_at: run.finished_at_ms,
            completed: run.completed,
            last_completed_at: completed.ok().flatten().and_then(|c| c.finished_at_ms),
            counts: run.counts.and_then(|c| serde_json::from_str(&c).ok()),
        }),
    }
}

fn figures(
    migrated: u64,
    legacy: Option<u64>,
    target_share: f64,
    history: MigrationHistory,
) -> (Progress, Rate, Eta, Series) {
    let as_of_ms = history.now_ms;
    let progress = Progress {
        migrated_users: migrated,
        legacy_users: legacy,
        not_migrated_users: legacy.map(|l| l.saturating_sub(migrated)),
        share: legacy.map(|l| (migrated as f64 / l as f64).min(1.0)),
        as_of_ms,
    };
    let per_hour_24h = history.last_24h as f64 / 24.0;
    let rate = Rate {
        last_hour: history.last_hour,
        last_24h: history.last_24h,
        users_per_hour: history.last_hour as f64,
        rate_method: "trailing_1h",
        users_per_hour_24h: per_hour_24h,
    };
    let users_to_target =
        legacy.map(|l| ((l as f64 * target_share).ceil() as u64).saturating_sub(migrated));
    let reached = users_to_target == Some(0);
    let seconds = match users_to_target {
        Some(0) => Some(0),
        Some(n) if per_hour_24h > 0.0 => Some((n as f64 / per_hour_24h * 3600.0).ceil() as u64),
        _ => None,
    };
    let eta = Eta {
        target_share,
        users_to_target,
        reached,
        seconds,
        at_ms: seconds
            .map(|s| as_of_ms.saturating_add(i64::try_from(s).unwrap_or(i64::MAX / 2000) * 1000)),
        users_per_hour: per_hour_24h,
        rate_method: ETA_RATE_METHOD,
    };
    let series = Series {
        bucket_seconds: (HOUR_MS / 1000) as u64,
        start_ms: history.start_ms,
        migrations: history.hourly,
    };
    (progress, rate, eta, series)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(last_hour: u64, last_24h: u64) -> MigrationHistory {
        MigrationHistory {
            now_ms: 10 * HOUR_MS,
            start_ms: 0,
            hourly: vec![0; 10],
            last_hour,
            last_24h,
        }
    }

    #[test]
    fn eta_is_null_at_rate_zero_zero_when_reached_and_counted_otherwise() {
        let (p, _, e, _) = figures(10, Some(100), 0.8, history(0, 0));
        assert_eq!(p.share, Some(0.1));
        assert_eq!(e.users_to_target, Some(70));
        assert_eq!(e.seconds, None);
        assert!(!e.reached);
        // 48 in 24 h: 2 users/hour, 70 users to go: 35 hours.
        let (_, r, e, _) = figures(10, Some(100), 0.8, history(5, 48));
        assert_eq!(r.users_per_hour, 5.0);
        assert_eq!(e.users_per_hour, 2.0);
        assert_eq!(e.seconds, Some(35 * 3600));
        assert_eq!(e.at_ms, Some(10 * HOUR_MS + 35 * HOUR_MS));
        let (_, _, e, _) = figures(80, Some(100), 0.8, history(0, 0));
        assert!(e.reached);
        assert_eq!(e.seconds, Some(0));
        let (p, _, e, _) = figures(3, None, 0.8, history(3, 3));
        assert_eq!((p.share, e.seconds, e.users_to_target), (None, None, None));
    }
}
