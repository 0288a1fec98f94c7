//! What `check-config` opens beyond validation, so that it passes only where `serve` can start:
//! the TLS pair (and that key and certificate belong together), the legacy store (a SQL
//! connection and one lookup, or the export file), the provider client, the ledger (SQLite: the
//! file's directory is writable; PostgreSQL: a connection) and the audit file. Nothing is
//! created or changed. Errors read as `serve`'s own for the same fault.

use std::path::Path;

use super::ServerError;
use super::tls;
use crate::config::Config;
use crate::ledger::Ledger;
use crate::legacy::LegacyStore;

/// An identifier no legacy store holds: looking it up proves the connection and the query.
const PROBE_IDENTIFIER: &str = "dripgate-check-config@invalid.invalid";

/// Opens, and closes again, what serving `config` needs. `config` must already be validated.
pub async fn preflight(config: &Config) -> Result<(), ServerError> {
    if let Some(tls) = &config.server.tls {
        tls::check_files(tls)?;
    }
    // Without [legacy], serve opens nothing more (plain pass-through).
    let Some(legacy_config) = &config.legacy else {
        return Ok(());
    };
    let dependency =
        |what: &str, e: &dyn std::fmt::Display| ServerError::Dependency(format!("{what}: {e}"));
    let scratch = prometheus::Registry::new();
    let legacy = LegacyStore::open_with_caps(legacy_config, &config.hash, &scratch)
        .map_err(|e| dependency("legacy store", &e))?;
    let looked_up = legacy.lookup(PROBE_IDENTIFIER).await;
    legacy.close().await;
    looked_up.map_err(|e| dependency("legacy store", &e))?;
    if let Some(provider) = &config.provider {
        crate::provider::build(provider, None, None).map_err(|e| dependency("provider", &e))?;
    }
    Ledger::check(&config.ledger)
        .await
        .map_err(|e| dependency("ledger", &e))?;
    if let Some(file) = &config.audit.file {
        check_appendable(file).map_err(|e| dependency("audit log", &e))?;
    }
    Ok(())
}

/// Whether `serve` could open `file` for appending (creating it if missing), creating nothing.
fn check_appendable(file: &Path) -> Result<(), String> {
    if file.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(file)
            .map(|_| ())
            .map_err(|e| format!("cannot open audit file {}: {e}", file.display()));
    }
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".dripgate-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| {
            format!(
                "cannot create audit file {} (directory {}: {e})",
                file.display(),
                dir.display()
            )
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
