//! `dripgate ledger …`: the operator's tools on the migration ledger: export it, check it
//! against the provider (`ledger_verify.rs`), forget a user the provider no longer holds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};

use crate::audit::{Actor, AuditEvent, AuditKind, AuditLog};
use crate::config::Config;
use crate::ledger::{EXPORT_COLUMNS, EXPORT_PAGE_ROWS, ExportRow, Forgotten, Ledger, State};

/// `dripgate ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Write every ledger row (user key, state, provider user id, legacy format, attempts, last
    /// error, created/updated/migrated times in ms since the Unix epoch; never a hash or a
    /// fingerprint) as CSV or JSON lines, streamed page by page.
    /// Exit status: 0 written, 1 ledger or file error, 2 config error.
    #[command(
        after_help = "Examples:\n  dripgate ledger export --config /etc/dripgate/dripgate.toml --format csv --output ledger.csv\n  dripgate ledger export --config dripgate.toml --format jsonl --state migrated | jq -r .user_key"
    )]
    Export {
        /// Config file (TOML); its `[ledger]` section is used.
        #[arg(long, env = "DRIPGATE_CONFIG")]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write here (replaced once complete) instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Only rows in this state (`claimed`, `created`, `migrated`, `conflict`,
        /// `blocked_policy`).
        #[arg(long)]
        state: Option<String>,
    },
    /// Compare the ledger with the provider: every `migrated` user must exist there under the
    /// recorded id (else found by email), with the expected email and, where the provider can
    /// tell, a password. Prints counts; `--report` writes one JSON line per user checked.
    /// Exit status: 0 no drift, 1 drift found, 2 config error, 3 some users could not be checked.
    #[command(
        after_help = "Examples:\n  dripgate ledger verify --config /etc/dripgate/dripgate.toml --report verify.jsonl\n  dripgate ledger verify --config dripgate.toml --sample 500"
    )]
    Verify {
        /// Config file (TOML); its `[ledger]`, `[provider]` and `[legacy]` sections are used.
        #[arg(long, env = "DRIPGATE_CONFIG")]
        config: PathBuf,
        /// Check this many migrated users chosen at random instead of all of them.
        #[arg(long)]
        sample: Option<u32>,
        /// Write one JSON line per user checked here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Users checked at once (default: `provider.limits.max_concurrency`); the provider's
        /// rate limit applies on top.
        #[arg(long)]
        concurrency: Option<usize>,
    },
    /// Reset the ledger row of a user deleted at the provider after migration to "not
    /// migrated": their next legacy sign-in provisions them again. Audited (`user.forgotten`).
    /// Refused while a migration of the user holds a live lease, unless --force.
    /// Exit status: 0 forgotten, 1 unknown key, lease held or ledger error, 2 config error.
    #[command(
        after_help = "Example:\n  dripgate ledger forget --config /etc/dripgate/dripgate.toml alice@example.com --reason \"deleted at the provider, ticket 4711\""
    )]
    Forget {
        /// Config file (TOML); its `[ledger]` and `[audit]` sections are used.
        #[arg(long, env = "DRIPGATE_CONFIG")]
        config: PathBuf,
        /// Why (recorded in the audit event).
        #[arg(long, default_value = "")]
        reason: String,
        /// Who is doing it (recorded in the audit event); default: the login name.
        #[arg(long)]
        operator: Option<String>,
        /// Forget even while a lease is live (the running migration is fenced and stops).
        #[arg(long)]
        force: bool,
        /// The user's ledger key, as `ledger export` shows it (normalized, e.g. lower-cased email).
        key: String,
    },
}

/// `--format` of `ledger export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

pub(super) const EXIT_FAILED: u8 = 1;
pub(super) const EXIT_USAGE: u8 = 2;

/// Runs a `dripgate ledger` subcommand.
pub fn run(cmd: LedgerCommand) -> ExitCode {
    let path = match &cmd {
        LedgerCommand::Export { config, .. }
        | LedgerCommand::Verify { config, .. }
        | LedgerCommand::Forget { config, .. } => config.clone(),
    };
    let config = match crate::config::load_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dripgate: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match super::command_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = runtime.block_on(async move {
        match cmd {
            LedgerCommand::Export {
                format,
                output,
                state,
                ..
            } => export_command(&config, format, output.as_deref(), state.as_deref()).await,
            LedgerCommand::Verify {
                sample,
                report,
                concurrency,
                ..
            } => {
                let options = super::ledger_verify::Options {
                    sample,
                    report,
                    concurrency,
                };
                super::ledger_verify::command(&config, &options).await
            }
            LedgerCommand::Forget {
                reason,
                operator,
                force,
                key,
                ..
            } => forget_command(&config, key.trim(), &reason, operator, force).await,
        }
    });
    ExitCode::from(code)
}

/// Opens the configured ledger for a one-shot command: no periodic recount, no cache, one or
/// two connections.
pub(super) async fn open_ledger(config: &Config) -> Result<Ledger, String> {
    let mut ledger = config.ledger.clone();
    ledger.counts_interval = std::time::Duration::ZERO;
    ledger.cache.max_entries = 0;
    ledger.max_connections = ledger.max_connections.clamp(1, 2);
    Ledger::open(&ledger, &prometheus::Registry::new())
        .await
        .map_err(|e| format!("ledger: {e}"))
}

async fn export_command(
    config: &Config,
    format: ExportFormat,
    output: Option<&Path>,
    state: Option<&str>,
) -> u8 {
    let state = match state.map(str::parse::<State>).transpose() {
        Ok(s) => s,
        Err(_) => {
            eprintln!(
                "dripgate: --state must be one of {}",
                State::ALL.map(State::as_str).join(", ")
            );
            return EXIT_USAGE;
        }
    };
    let ledger = match open_ledger(config).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dripgate: {e}");
            return EXIT_FAILED;
        }
    };
    let result = match output {
        Some(path) => export_to_file(&ledger, format, state, path).await,
        None => {
            let stdout = std::io::stdout();
            export(
                &ledger,
                format,
                state,
                std::io::BufWriter::new(stdout.lock()),
            )
            .await
        }
    };
    ledger.close().await;
    match result {
        Ok(rows) => {
            let to = output.map_or("standard output".to_owned(), |p| p.display().to_string());
            eprintln!("dripgate: exported {rows} ledger rows to {to}");
            0
        }
        Err(e) => {
            eprintln!("dripgate: {e}");
            EXIT_FAILED
        }
    }
}

/// Exports into `path.partial`, renamed to `path` once complete, so a failed export never
/// leaves a file that looks whole.
async fn export_to_file(
    ledger: &Ledger,
    format: ExportFormat,
    state: Option<State>,
    path: &Path,
) -> Result<u64, String> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let rows = match export(ledger, format, state, std::io::BufWriter::new(file)).await {
        Ok(rows) => rows,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, path).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            path.display()
        )
    })?;
    Ok(rows)
}

/// Every row of the ledger (only those in `state`, if given), read page by page as the stream
/// is polled: one page of [`EXPORT_PAGE_ROWS`] in memory at a time. A state is kept from the
/// full pass over the primary key ([`Ledger::export_page`] says why).
pub fn rows(ledger: Ledger, state: Option<State>) -> BoxStream<'static, Result<ExportRow, String>> {
    let state = state.map(State::as_str);
    stream::unfold(Some((ledger, None::<String>)), |cursor| async move {
        let (ledger, after) = cursor?;
        let page = match ledger.export_page(after.as_deref(), EXPORT_PAGE_ROWS).await {
            Ok(page) => page,
            Err(e) => return Some((vec![Err(format!("ledger: {e}"))], None)),
        };
        let next = match page.last() {
            Some(last) if page.len() >= EXPORT_PAGE_ROWS as usize => {
                Some((ledger, Some(last.user_key.clone())))
            }
            _ => None,
        };
        Some((page.into_iter().map(Ok).collect::<Vec<_>>(), next))
    })
    .flat_map(stream::iter)
    .try_filter(move |row| std::future::ready(state.is_none_or(|s| row.state == s)))
    .boxed()
}

/// Writes every row (in `state`, if given) to `out`; returns the number of rows written.
pub async fn export<W: Write>(
    ledger: &Ledger,
    format: ExportFormat,
    state: Option<State>,
    out: W,
) -> Result<u64, String> {
    let mut sink = RowSink::new(format, out)?;
    let mut rows_read = rows(ledger.clone(), state);
    let mut written = 0u64;
    while let Some(row) = rows_read.next().await {
        sink.write(&row?)?;
        written += 1;
    }
    sink.finish()?;
    Ok(written)
}

/// Where exported rows go, in either format; both are derived from [`ExportRow`]'s fields.
enum RowSink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Jsonl(W),
}

fn write_error(e: impl std::fmt::Display) -> String {
    format!("cannot write the export: {e}")
}

impl<W: Write> RowSink<W> {
    fn new(format: ExportFormat, out: W) -> Result<Self, String> {
        Ok(match format {
            ExportFormat::Csv => {
                let mut csv = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(out);
                // Written here, not from the first row, so an empty export has its header too.
                csv.write_record(EXPORT_COLUMNS).map_err(write_error)?;
                Self::Csv(Box::new(csv))
            }
            ExportFormat::Jsonl => Self::Jsonl(out),
        })
    }

    fn write(&mut self, row: &ExportRow) -> Result<(), String> {
        match self {
            Self::Csv(csv) => csv.serialize(row).map_err(write_error),
            Self::Jsonl(out) => {
                serde_json::to_writer(&mut *out, row).map_err(write_error)?;
                out.write_all(b"\n").map_err(write_error)
            }
        }
    }

    fn finish(self) -> Result<(), String> {
        match self {
            Self::Csv(mut csv) => csv.flush().map_err(write_error),
            Self::Jsonl(mut out) => out.flush().map_err(write_error),
        }
    }
}

/// The operator's text for the audit event: one line, at most 200 characters.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn operator_name(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .map(|n| one_line(&n))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

async fn forget_command(
    config: &Config,
    key: &str,
    reason: &str,
    operator: Option<String>,
    force: bool,
) -> u8 {
    let ledger = match open_ledger(config).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dripgate: {e}");
            return EXIT_FAILED;
        }
    };
    let result = ledger.forget(key, force).await;
    ledger.close().await;
    let before = match result {
        Ok(Forgotten::Reset(before)) => before,
        Ok(Forgotten::Unknown) => {
            eprintln!(
                "dripgate: {key:?} is not in the ledger (keys are normalized, e.g. lower-cased \
                 email: see `dripgate ledger export`)"
            );
            return EXIT_FAILED;
        }
        Ok(Forgotten::LeaseHeld(row)) => {
            eprintln!(
                "dripgate: a migration of {key:?} is running (lease held by {}); nothing \
                 changed. Try again in {}, or pass --force to fence it",
                row.lease_owner.as_deref().unwrap_or("another holder"),
                humantime_serde::re::humantime::format_duration(config.ledger.lease)
            );
            return EXIT_FAILED;
        }
        Err(e) => {
            eprintln!("dripgate: ledger: {e}");
            return EXIT_FAILED;
        }
    };
    let reason = one_line(reason);
    let event = AuditEvent::new(
        AuditKind::UserForgotten,
        Some(key),
        config.migration.phase.as_str(),
        "cli",
    )
    .provider_user(before.provider_user_id.as_deref())
    .reason(crate::ledger::FORGOTTEN)
    .detail(format!(
        "was {}{}{reason}",
        before.state,
        if reason.is_empty() { "" } else { "; " }
    ))
    .actor(&Actor::cli(&operator_name(operator)));
    if let Err(e) = AuditLog::write_one(&config.audit, &event) {
        eprintln!("dripgate: warning: the ledger row was reset but not audited: {e}");
    }
    println!(
        "forgot {key} (was {}, provider user id {}); its next legacy sign-in provisions it again.\n\
         Running dripgate replicas may still route it to the provider from their cache of \
         migrated users for up to {} (ledger.cache.ttl).",
        before.state,
        before.provider_user_id.as_deref().unwrap_or("none"),
        humantime_serde::re::humantime::format_duration(config.ledger.cache.ttl)
    );
    0
}
