//! One hand-off run: enumerate, select, decide, hand off with bounded concurrency, report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::filter::Excluded;
use super::policy::Policy;
use super::report::{Counts, HandoffMetrics, Line, Report, UserResult};
use super::{HandoffError, Options};
use crate::failure::Classified;
use crate::ledger::{Method, State};
use crate::legacy::{LegacyUser, Listed, Lookup};
use crate::migrate::{Engine, Exit, HandOff, Outcome};

/// How far a run is, for the progress bar or log line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Legacy rows read.
    pub scanned: u64,
    /// Users in the store when the run started, if the store could count them.
    pub total: Option<u64>,
    /// Selected users finished (any result).
    pub done: u64,
    /// Users handed off by this run.
    pub handed_off: u64,
    /// Users whose hand-off failed in this run.
    pub failed: u64,
    /// Time since the run started.
    pub elapsed: Duration,
}

/// The end of a run.
#[derive(Debug)]
pub struct Summary {
    /// The run's id (in the ledger and every report line).
    pub run_id: String,
    /// What it did.
    pub counts: Counts,
    /// Whether every selected user was processed (a real run records this in the ledger).
    pub completed: bool,
}

struct Ctx {
    engine: Engine,
    options: Options,
    metrics: HandoffMetrics,
    run_id: String,
    counts: Mutex<Counts>,
    report: Mutex<Report>,
    report_failed: AtomicBool,
    scanned: AtomicU64,
    done: AtomicU64,
    started: Instant,
}

impl Ctx {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn progress(&self, total: Option<u64>) -> Progress {
        let counts = self.counts();
        Progress {
            scanned: self.scanned.load(Ordering::Relaxed),
            total,
            done: self.done.load(Ordering::Relaxed),
            handed_off: counts.result(UserResult::HandedOff) + counts.result(UserResult::Adopted),
            failed: counts.result(UserResult::Failed),
            elapsed: self.started.elapsed(),
        }
    }
}

/// Runs a hand-off with `engine` (its legacy store, ledger and provider). `on_progress` is
/// called every `options.progress_every` and once at the end.
pub async fn run(
    engine: &Engine,
    options: Options,
    metrics: HandoffMetrics,
    on_progress: Arc<dyn Fn(&Progress) + Send + Sync>,
) -> Result<Summary, HandoffError> {
    if !options.dry_run && engine.provider().is_none() {
        return Err(HandoffError::Config(
            "a hand-off needs a [provider] section".into(),
        ));
    }
    let mut pages = engine.legacy().enumerate()?;
    if options.filters.created_before.is_some() && !engine.legacy().has_created() {
        return Err(HandoffError::Config(format!(
            "--created-before: this legacy store ({} {}) has no creation-time column (SQL presets wordpress, drupal7, django, or columns.created with generic or custom)",
            engine.legacy().backend(),
            engine.legacy().preset().as_str()
        )));
    }
    let total = engine.legacy().count().await.ok();
    metrics
        .store_users
        .set(total.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)));
    let run_id = run_id();
    if !options.dry_run {
        engine
            .ledger()
            .start_handoff(&run_id, engine.replica())
            .await?;
    }
    let report = Report::open(options.report.as_deref())?;
    let concurrency = options.concurrency.max(1);
    let ctx = Arc::new(Ctx {
        engine: engine.clone(),
        options,
        metrics,
        run_id,
        counts: Mutex::new(Counts::default()),
        report: Mutex::new(report),
        report_failed: AtomicBool::new(false),
        scanned: AtomicU64::new(0),
        done: AtomicU64::new(0),
        started: Instant::now(),
    });
    let ticker = spawn_ticker(Arc::clone(&ctx), total, Arc::clone(&on_progress));
    let slots = Arc::new(Semaphore::new(concurrency));
    let listed = list_all(&ctx, &mut pages, &slots).await;
    // Wait for the workers: every permit back.
    let _all = slots
        .acquire_many(u32::try_from(concurrency).unwrap_or(u32::MAX))
        .await;
    ticker.abort();
    on_progress(&ctx.progress(total));
    finish(&ctx, listed).await
}

/// Reads every page and starts a worker per user, at most `slots` at once.
async fn list_all(
    ctx: &Arc<Ctx>,
    pages: &mut crate::legacy::Enumeration,
    slots: &Arc<Semaphore>,
) -> Result<(), HandoffError> {
    while let Some(page) = pages.next_page().await? {
        for listed in page {
            ctx.scanned.fetch_add(1, Ordering::Relaxed);
            ctx.metrics.scanned.inc();
            let Ok(permit) = Arc::clone(slots).acquire_owned().await else {
                return Ok(());
            };
            let ctx = Arc::clone(ctx);
            tokio::spawn(async move {
                let _permit = permit;
                one(&ctx, listed).await;
            });
        }
    }
    Ok(())
}

async fn finish(ctx: &Ctx, listed: Result<(), HandoffError>) -> Result<Summary, HandoffError> {
    let mut counts = ctx.counts().clone();
    counts.scanned = ctx.scanned.load(Ordering::Relaxed);
    let reported = !ctx.report_failed.load(Ordering::Relaxed);
    let completed = listed.is_ok() && reported && counts.unfinished() == 0;
    if !ctx.options.dry_run {
        let json = serde_json::to_string(&counts).unwrap_or_default();
        let ledger = ctx.engine.ledger();
        let recorded = ledger.finish_handoff(&ctx.run_id, completed, &json).await;
        listed?;
        recorded?;
        if completed {
            // The marker the switch to phase `complete` asks for.
            ledger.record_handoff_completed(&ctx.run_id).await?;
        }
    } else {
        listed?;
    }
    if !reported {
        return Err(HandoffError::Report(std::io::Error::other(
            "some report lines could not be written",
        )));
    }
    Ok(Summary {
        run_id: ctx.run_id.clone(),
        counts,
        completed,
    })
}

/// Calls `on_progress` periodically; in a real run also records the counts in the ledger
/// every few seconds, for `/status`.
fn spawn_ticker(
    ctx: Arc<Ctx>,
    total: Option<u64>,
    on_progress: Arc<dyn Fn(&Progress) + Send + Sync>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ctx.options.progress_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recorded = Instant::now();
        loop {
            tick.tick().await;
            on_progress(&ctx.progress(total));
            if !ctx.options.dry_run && recorded.elapsed() >= Duration::from_secs(5) {
                recorded = Instant::now();
                let mut counts = ctx.counts().clone();
                counts.scanned = ctx.scanned.load(Ordering::Relaxed);
                let json = serde_json::to_string(&counts).unwrap_or_default();
                if let Err(e) = ctx
                    .engine
                    .ledger()
                    .handoff_progress(&ctx.run_id, &json)
                    .await
                {
                    tracing::warn!(error = %e, "hand-off: cannot record progress in the ledger");
                }
            }
        }
    })
}

/// A run id: the start time in ms and the process id.
fn run_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("h{ms}-{}", std::process::id())
}

/// What the ledger says about a listed user, before any work.
enum Known {
    /// Not migrated (or no row): select.
    Open,
    /// Migrated by a sign-in: not selected.
    Live,
    /// Migrated by a hand-off (its method and the provider id): listed again.
    HandedOff(Method, Option<String>),
}

async fn one(ctx: &Ctx, listed: Listed) {
    let user = match listed.user {
        Ok(user) => user,
        Err(reason) => {
            *ctx.counts()
                .not_migratable
                .entry(reason.as_str().to_owned())
                .or_default() += 1;
            return;
        }
    };
    if let Err(why) = ctx.options.filters.select(&user, listed.created.as_deref()) {
        let mut counts = ctx.counts();
        match why {
            Excluded::Filtered => counts.filtered += 1,
            Excluded::CreatedUnknown => counts.created_unknown += 1,
        }
        return;
    }
    let known = match ctx.engine.ledger().get(&user.key).await {
        Ok(Some(r)) if r.state == State::Migrated && r.method == Method::Live => Known::Live,
        Ok(Some(r)) if r.state == State::Migrated => Known::HandedOff(r.method, r.provider_user_id),
        Ok(_) => Known::Open,
        Err(e) => {
            let action = ctx.options.policies.of(user.format);
            let end = End::failed(e.label());
            return done(ctx, &user, action, false, end);
        }
    };
    match known {
        Known::Live => ctx.counts().already_migrated += 1,
        Known::HandedOff(method, provider_user_id) => {
            let action = match method {
                Method::HandoffReset => Policy::Reset,
                _ => Policy::LegacyHash,
            };
            let end = End {
                result: UserResult::AlreadyHandedOff,
                provider_user_id,
                error: None,
            };
            done(ctx, &user, action, false, end);
        }
        Known::Open => select(ctx, user).await,
    }
}

/// A selected user: re-read as a sign-in would, decide, hand off (or not, in a dry run).
async fn select(ctx: &Ctx, listed: LegacyUser) {
    let user = match ctx.engine.legacy().lookup(&listed.key).await {
        Ok(Lookup::Found(user)) => user,
        Ok(_) => {
            let action = ctx.options.policies.of(listed.format);
            let end = End::plain(UserResult::NotMigratable);
            return done(ctx, &listed, action, false, end);
        }
        Err(e) => {
            let action = ctx.options.policies.of(listed.format);
            return done(ctx, &listed, action, false, End::failed(e.label()));
        }
    };
    let capabilities = match ctx.engine.provider() {
        Some(p) => p.capabilities(),
        None => crate::provider::Capabilities {
            atomic_create_with_password: false,
            imports: &[],
            prefers_legacy_hash: false,
            stores_legacy_id: false,
        },
    };
    let decision = ctx.options.policies.decide(&user, &capabilities);
    let end = match (&decision.hand_off, ctx.options.dry_run) {
        (None, _) => End::plain(UserResult::Skipped),
        (Some(_), true) => End::plain(UserResult::WouldHandOff),
        (Some(how), false) => {
            ctx.metrics.in_flight.inc();
            let end = hand_off(ctx, &user, how).await;
            ctx.metrics.in_flight.dec();
            end
        }
    };
    done(ctx, &user, decision.action, decision.fallback, end);
}

/// How one user ended.
struct End {
    result: UserResult,
    provider_user_id: Option<String>,
    error: Option<&'static str>,
}

impl End {
    fn plain(result: UserResult) -> Self {
        Self {
            result,
            provider_user_id: None,
            error: None,
        }
    }

    fn failed(label: &'static str) -> Self {
        Self {
            result: UserResult::Failed,
            provider_user_id: None,
            error: Some(label),
        }
    }
}

/// The engine's hand-off, waiting (bounded) while someone else holds the user: a sign-in
/// finishes within its lease, a killed run's lease expires.
async fn hand_off(ctx: &Ctx, user: &LegacyUser, how: &HandOff) -> End {
    let deadline = Instant::now() + ctx.options.hold_wait;
    let mut pause = Duration::from_millis(200);
    let exit = loop {
        let exit = ctx.engine.hand_off(user, how).await;
        if exit.outcome != Outcome::InProgress || Instant::now() + pause > deadline {
            break exit;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    };
    let mut end = end_of(&exit);
    if matches!(
        end.result,
        UserResult::HandedOff | UserResult::Adopted | UserResult::AlreadyMigrated
    ) && let Ok(Some(record)) = ctx.engine.ledger().get(&user.key).await
    {
        end.provider_user_id = record.provider_user_id;
    }
    end
}

fn end_of(exit: &Exit) -> End {
    let result = match exit.outcome {
        // Recovered: an earlier run's (or a killed run's) own create, found by its legacy id.
        Outcome::Migrated | Outcome::Recovered => UserResult::HandedOff,
        Outcome::Adopted => UserResult::Adopted,
        Outcome::AlreadyMigrated => UserResult::AlreadyMigrated,
        Outcome::InProgress => UserResult::InProgress,
        Outcome::Conflict => UserResult::Conflict,
        Outcome::BlockedByPolicy => UserResult::BlockedByPolicy,
        _ => UserResult::Failed,
    };
    let error = (result == UserResult::Failed).then(|| match (&exit.cause, exit.outcome) {
        (Some(cause), _) => cause.label,
        (None, Outcome::Fallback(stage)) => stage.as_str(),
        (None, outcome) => outcome.as_str(),
    });
    End {
        result,
        provider_user_id: None,
        error,
    }
}

/// Counts, reports and logs one selected user.
fn done(ctx: &Ctx, user: &LegacyUser, action: Policy, fallback: bool, end: End) {
    let format = user.format.as_str();
    {
        let mut counts = ctx.counts();
        counts.selected += 1;
        counts.add(format, action, fallback, end.result);
    }
    ctx.metrics.user(action, end.result);
    ctx.done.fetch_add(1, Ordering::Relaxed);
    if end.result == UserResult::Failed {
        tracing::warn!(user = %user.key, error = end.error, "hand-off failed; the next run retries");
    }
    let line = Line {
        run_id: &ctx.run_id,
        key: &user.key,
        legacy_id: &user.legacy_id,
        format,
        action,
        fallback,
        result: end.result,
        provider_user_id: end.provider_user_id.as_deref(),
        error: end.error,
    };
    let written = ctx
        .report
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .write(&line);
    if let Err(e) = written {
        ctx.report_failed.store(true, Ordering::Relaxed);
        tracing::error!(error = %e, "hand-off: cannot write the report");
    }
}
