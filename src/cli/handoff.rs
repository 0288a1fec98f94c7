//! `dripgate handoff`: the end-of-window bulk hand-off of the users who never signed in.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;

use crate::config::Config;
use crate::handoff::{
    Filters, HandoffMetrics, Options, Policies, Progress, Summary, filter, policy,
};
use crate::migrate::Phase;

/// `dripgate handoff` arguments.
#[derive(Debug, Args)]
pub struct HandoffArgs {
    /// Config file (TOML): `[legacy]`, `[provider]`, `[ledger]`, `[migration]`, and `[handoff]`
    /// for policies; the flags below override `[handoff]`.
    #[arg(long, env = "DRIPGATE_CONFIG")]
    config: PathBuf,
    /// Print and report what would happen, per format and action; write nothing to the
    /// ledger, call no provider.
    #[arg(long)]
    dry_run: bool,
    /// Policy for one hash format, FORMAT=legacy_hash|reset|skip (repeatable), e.g.
    /// `--policy sha1=reset`.
    #[arg(long = "policy", value_name = "FORMAT=POLICY", value_parser = policy::parse_assignment)]
    policies: Vec<(String, policy::Policy)>,
    /// Policy for formats not named by `--policy` (default: `[handoff] default_policy`, else
    /// legacy_hash).
    #[arg(long)]
    default_policy: Option<policy::Policy>,
    /// What a legacy_hash user gets when the provider does not import the hash: reset or skip
    /// (default: `[handoff] fallback`, else reset).
    #[arg(long)]
    fallback: Option<policy::Policy>,
    /// Only users with an email in this domain (repeatable).
    #[arg(long = "domain", value_name = "DOMAIN")]
    domains: Vec<String>,
    /// Only users created before this day (YYYY-MM-DD), where the store has a creation column.
    #[arg(long, value_name = "YYYY-MM-DD")]
    created_before: Option<String>,
    /// Only the users listed in this file: one legacy id or user key per line.
    #[arg(long, value_name = "FILE")]
    ids_file: Option<PathBuf>,
    /// Append one JSON line per selected user here (no hash, no password).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Users handed off at once (default: `[handoff] concurrency`, else 4); the provider
    /// client's rate limit and Retry-After still apply.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Write the run's metrics (Prometheus text format) to this file every few seconds, for
    /// node_exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    metrics_file: Option<PathBuf>,
}

const EXIT_INCOMPLETE: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// Runs `dripgate handoff`: 0 when every selected user was processed (or a dry run), 1 when
/// some are left for another run (failures, users held) or the run stopped, 2 on a config error.
pub fn run(args: HandoffArgs) -> ExitCode {
    let (config, options) = match load(&args) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("dripgate handoff: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    crate::logging::init(&config.log);
    let runtime = match crate::server::serve_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dripgate handoff: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(hand_off(config, options, args.metrics_file))
}

/// The config file and the options from it and the flags.
fn load(args: &HandoffArgs) -> Result<(Config, Options), String> {
    let mut config = crate::config::load_file(&args.config).map_err(|e| e.to_string())?;
    if config.legacy.is_none() {
        return Err(format!("{} has no [legacy] section", args.config.display()));
    }
    if !args.dry_run && config.provider.is_none() {
        return Err(format!(
            "{} has no [provider] section",
            args.config.display()
        ));
    }
    if !args.dry_run && config.migration.phase == Phase::Observe {
        return Err(
            "migration.phase is observe: nothing may be created at the provider; switch to migrate or route first (or use --dry-run)"
                .into(),
        );
    }
    // A batch process: no periodic recount of the ledger, no long-lived cache.
    config.ledger.counts_interval = Duration::ZERO;
    let mut section = config.handoff.clone();
    section.policy.extend(args.policies.iter().cloned());
    if let Some(p) = args.default_policy {
        section.default_policy = p;
    }
    if let Some(p) = args.fallback {
        section.fallback = p;
    }
    let policies = Policies::new(&section)?;
    let ids = match &args.ids_file {
        Some(path) => Some(filter::read_ids(
            &std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        )),
        None => None,
    };
    let filters = Filters {
        domains: args
            .domains
            .iter()
            .map(|d| d.trim().to_ascii_lowercase())
            .collect(),
        created_before: args.created_before.clone(),
        ids,
    };
    filters.check()?;
    let lease = config.ledger.lease;
    let options = Options {
        policies,
        filters,
        dry_run: args.dry_run,
        concurrency: args.concurrency.unwrap_or(section.concurrency).max(1),
        report: args.report.clone(),
        hold_wait: lease * 2 + Duration::from_secs(1),
        progress_every: Duration::from_millis(250),
    };
    Ok((config, options))
}

async fn hand_off(config: Config, options: Options, metrics_file: Option<PathBuf>) -> ExitCode {
    let registry = prometheus::Registry::new();
    let engine = match crate::server::build_engine(&config, &registry).await {
        Ok(Some(engine)) => engine,
        Ok(None) => {
            eprintln!("dripgate handoff: no [legacy] section");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("dripgate handoff: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let metrics = match HandoffMetrics::register(&registry) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("dripgate handoff: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dry_run = options.dry_run;
    let printer = Arc::new(Printer::new(registry, metrics_file));
    let on_progress = {
        let printer = Arc::clone(&printer);
        Arc::new(move |p: &Progress| printer.show(p))
    };
    let result = crate::handoff::run(&engine, options, metrics, on_progress).await;
    printer.end();
    engine.legacy().close().await;
    engine.ledger().close().await;
    match result {
        Ok(summary) => summarize(&summary, dry_run),
        Err(e) => {
            eprintln!("dripgate handoff: stopped: {e}; run it again to continue");
            ExitCode::from(EXIT_INCOMPLETE)
        }
    }
}

fn summarize(summary: &Summary, dry_run: bool) -> ExitCode {
    let title = if dry_run {
        "dry run: nothing was changed; what a run would do"
    } else {
        "hand-off"
    };
    println!("{title} (run {})", summary.run_id);
    print!("{}", summary.counts.to_text());
    if dry_run || summary.completed {
        if !dry_run {
            println!("completed: every selected user was processed");
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "incomplete: {} users failed or were held by someone else; run it again to retry them",
        summary.counts.unfinished()
    );
    ExitCode::from(EXIT_INCOMPLETE)
}

/// Progress on a terminal (one redrawn line with rate and ETA), else a log line every 10 s;
/// and the metrics file.
struct Printer {
    tty: bool,
    registry: prometheus::Registry,
    metrics_file: Option<PathBuf>,
    last: Mutex<Instant>,
}

impl Printer {
    fn new(registry: prometheus::Registry, metrics_file: Option<PathBuf>) -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            registry,
            metrics_file,
            last: Mutex::new(Instant::now()),
        }
    }

    fn show(&self, p: &Progress) {
        if self.tty {
            eprint!("\r\x1b[2K{}", line(p));
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() < Duration::from_secs(if self.tty { 2 } else { 10 }) {
            return;
        }
        *last = Instant::now();
        if !self.tty {
            tracing::info!(
                scanned = p.scanned,
                total = p.total,
                done = p.done,
                handed_off = p.handed_off,
                failed = p.failed,
                "hand-off progress: {}",
                line(p)
            );
        }
        if let Some(path) = &self.metrics_file {
            write_metrics(&self.registry, path);
        }
    }

    fn end(&self) {
        if self.tty {
            eprintln!();
        }
        if let Some(path) = &self.metrics_file {
            write_metrics(&self.registry, path);
        }
    }
}

/// `read 12000 of 100000 [####------] 12% · 840 handed off, 4.8/s · ETA 3h 02m`.
fn line(p: &Progress) -> String {
    let secs = p.elapsed.as_secs_f64().max(0.001);
    let rate = p.handed_off as f64 / secs;
    let scan_rate = p.scanned as f64 / secs;
    let (bar, eta) = match p.total.filter(|t| *t > 0) {
        Some(total) => {
            let share = (p.scanned as f64 / total as f64).min(1.0);
            let filled = (share * 20.0).round() as usize;
            let left = total.saturating_sub(p.scanned) as f64;
            let eta = (scan_rate > 0.0).then(|| left / scan_rate);
            (
                format!(
                    " of {total} [{}{}] {:.0}%",
                    "#".repeat(filled),
                    "-".repeat(20 - filled.min(20)),
                    share * 100.0
                ),
                eta,
            )
        }
        None => (String::new(), None),
    };
    let eta = eta.map_or_else(|| "ETA ?".to_owned(), |s| format!("ETA {}", duration(s)));
    format!(
        "read {}{bar} · {} handed off, {rate:.1}/s · {} failed · {eta}",
        p.scanned, p.handed_off, p.failed
    )
}

fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn write_metrics(registry: &prometheus::Registry, path: &Path) {
    let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather());
    let tmp = path.with_extension("tmp");
    let written = text
        .map_err(std::io::Error::other)
        .and_then(|t| std::fs::write(&tmp, t))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "hand-off: cannot write the metrics file");
    }
}
