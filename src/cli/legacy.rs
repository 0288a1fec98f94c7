//! `dripgate legacy …`: look into the legacy hash store before and during a migration.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::hash::HashConfig;
use crate::ledger::{Ledger, LedgerConfig};
use crate::legacy::{CensusSummary, LegacyConfig, LegacyStore, LegacyUser, Lookup};

/// `dripgate legacy` subcommands.
#[derive(Debug, Subcommand)]
pub enum LegacyCommand {
    /// Count users, classify every hash by format and work factor, count the users that cannot be
    /// migrated and why. Streams the store (read-only) and shows progress on a terminal, then
    /// records the summary (counts only) in the configured ledger for the status page.
    /// Exit status: 0 done, 1 store error, 2 config error.
    #[command(
        after_help = "Example:\n  dripgate legacy census --config /etc/dripgate/dripgate.toml --json"
    )]
    Census {
        /// Config file (TOML); its `[legacy]` section is used.
        #[arg(long, env = "DRIPGATE_CONFIG")]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Do not record the summary (counts only) in the configured ledger for the status page.
        #[arg(long)]
        no_record: bool,
    },
    /// Show the record a sign-in with IDENTIFIER would use, hash redacted.
    /// Exit status: 0 found, 1 not found, not migratable or store error, 2 config error.
    #[command(
        after_help = "Example:\n  dripgate legacy lookup --config /etc/dripgate/dripgate.toml alice@example.com"
    )]
    Lookup {
        /// Config file (TOML); its `[legacy]` section is used.
        #[arg(long, env = "DRIPGATE_CONFIG")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The login or email a user would type.
        identifier: String,
    },
}

const EXIT_STORE: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// Runs a `dripgate legacy` subcommand.
pub fn run(cmd: LegacyCommand) -> ExitCode {
    let path = match &cmd {
        LegacyCommand::Census { config, .. } | LegacyCommand::Lookup { config, .. } => config,
    };
    let (config, caps, ledger) = match load(path) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("dripgate: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match super::command_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let store = match LegacyStore::open_with_caps(&config, &caps, &prometheus::Registry::new())
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("dripgate: {e}");
                let code = if e.kind() == crate::legacy::ErrorKind::Config {
                    EXIT_USAGE
                } else {
                    EXIT_STORE
                };
                return ExitCode::from(code);
            }
        };
        let code = match cmd {
            LegacyCommand::Census {
                json, no_record, ..
            } => {
                let ledger = (!no_record).then_some(&ledger);
                census(&store, json, ledger).await
            }
            LegacyCommand::Lookup {
                json, identifier, ..
            } => lookup(&store, &identifier, json).await,
        };
        store.close().await;
        code
    })
}

/// The `[legacy]` section, the `[hash]` caps the census classifies against and the `[ledger]`
/// section the census records its summary in.
fn load(path: &Path) -> Result<(LegacyConfig, HashConfig, LedgerConfig), String> {
    let config = crate::config::load_file(path).map_err(|e| e.to_string())?;
    let legacy = config
        .legacy
        .ok_or_else(|| format!("{} has no [legacy] section", path.display()))?;
    Ok((legacy, config.hash, config.ledger))
}

async fn census(store: &LegacyStore, json: bool, ledger: Option<&LedgerConfig>) -> ExitCode {
    let tty = std::io::stderr().is_terminal();
    let total = if tty { store.count().await.ok() } else { None };
    let mut progress = |n: u64| {
        if tty {
            let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
            eprint!("\r  read {n}{of} users…");
        }
    };
    let result = store.census(&mut progress).await;
    if tty {
        eprint!("\r\x1b[2K");
    }
    let census = match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dripgate: {e}");
            return ExitCode::from(EXIT_STORE);
        }
    };
    let text = if json {
        match serde_json::to_string_pretty(&census) {
            Ok(t) => t + "\n",
            Err(e) => {
                eprintln!("dripgate: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        census.to_text()
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    if let Some(ledger) = ledger
        && let Err(e) = record(ledger, &census.summary()).await
    {
        eprintln!("dripgate: warning: the census was not recorded in the ledger: {e}");
    }
    ExitCode::SUCCESS
}

/// Records the census summary (counts only) as the latest census in the ledger, for the status
/// page and `/status`.
async fn record(config: &LedgerConfig, summary: &CensusSummary) -> Result<(), String> {
    let summary = serde_json::to_string(summary).map_err(|e| e.to_string())?;
    let mut config = config.clone();
    // A one-off connection: no periodic recount, no cache.
    config.counts_interval = std::time::Duration::ZERO;
    config.cache.max_entries = 0;
    config.max_connections = 1;
    let ledger = Ledger::open(&config, &prometheus::Registry::new())
        .await
        .map_err(|e| e.to_string())?;
    let recorded = ledger.record_census(&summary).await.map(|_| ());
    ledger.close().await;
    recorded.map_err(|e| e.to_string())
}

fn user_json(u: &LegacyUser) -> serde_json::Value {
    serde_json::json!({
        "result": "found",
        "key": u.key,
        "legacy_id": u.legacy_id,
        "login": u.login,
        "email": u.email,
        "given_name": u.given_name,
        "family_name": u.family_name,
        "format": u.format.as_str(),
        "work_factor": u.params,
        "hash": format!("[redacted, {} characters]", u.hash.hash().chars().count()),
        "salt": u.hash.salt().map(|_| "[redacted]"),
    })
}

async fn lookup(store: &LegacyStore, identifier: &str, json: bool) -> ExitCode {
    let (value, code) = match store.lookup(identifier).await {
        Ok(Lookup::Found(u)) => (user_json(&u), ExitCode::SUCCESS),
        Ok(Lookup::NotFound) => (
            serde_json::json!({"result": "not_found", "normalized": store.normalize(identifier)}),
            ExitCode::from(EXIT_STORE),
        ),
        Ok(Lookup::NotMigratable(r)) => (
            serde_json::json!({"result": "not_migratable", "reason": r.as_str()}),
            ExitCode::from(EXIT_STORE),
        ),
        Err(e) => {
            eprintln!("dripgate: {e}");
            return ExitCode::from(EXIT_STORE);
        }
    };
    let text = if json {
        value.to_string()
    } else {
        let mut lines = String::new();
        if let Some(map) = value.as_object() {
            for (k, v) in map {
                if v.is_null() {
                    continue;
                }
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                lines.push_str(&format!("{k:<12} {v}\n"));
            }
        }
        lines.trim_end().to_owned()
    };
    println!("{text}");
    code
}
