//! `dripgate provider check --config PATH`: obtain credentials, make one read call, print one
//! line per aspect, exit 0 when everything works and 1 otherwise.

use std::io::Write;
use std::path::Path;

use crate::provider::{CheckReport, ProviderConfig, ProviderError};

/// Loads the config file (with environment overrides and secrets) and returns `[provider]`.
pub fn load_config(path: &Path) -> Result<ProviderConfig, ProviderError> {
    let config =
        crate::config::load_file(path).map_err(|e| ProviderError::Config(e.to_string()))?;
    config.provider.ok_or_else(|| {
        ProviderError::Config(format!("{} has no [provider] section", path.display()))
    })
}

/// Runs the check against the configured provider.
pub async fn run(config: &ProviderConfig) -> CheckReport {
    match crate::provider::build(config, None, None) {
        Ok(provider) => provider.check_credentials().await,
        Err(e) => CheckReport {
            lines: vec![("config".into(), Err(e.to_string()))],
        },
    }
}

/// Writes the report, one line per aspect (`ok`/`FAIL`, aspect, detail).
pub fn print(report: &CheckReport, out: &mut dyn Write) -> std::io::Result<()> {
    for (aspect, result) in &report.lines {
        match result {
            Ok(detail) => writeln!(out, "ok    {aspect}: {detail}")?,
            Err(detail) => writeln!(out, "FAIL  {aspect}: {detail}")?,
        }
    }
    Ok(())
}

/// The whole command: load, check, print; returns the exit code (0 all ok, 1 otherwise).
pub async fn command(path: &Path, out: &mut dyn Write) -> u8 {
    let report = match load_config(path) {
        Ok(config) => run(&config).await,
        Err(e) => CheckReport {
            lines: vec![("config".into(), Err(e.to_string()))],
        },
    };
    // A failed write to stdout cannot be reported anywhere better.
    let _ = print(&report, out);
    if report.ok() { 0 } else { 1 }
}
