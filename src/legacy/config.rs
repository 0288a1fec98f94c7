//! `[legacy]` configuration: where users and hashes are read from, and how identifiers compare.
//!
//! ```toml
//! [legacy]
//! preset = "wordpress"
//! database_url = { env = "LEGACY_DATABASE_URL" }
//! table_prefix = "wp_"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::hash::{DigestEncoding, SaltPosition};
use crate::secret::Secret;

use super::LegacyError;
use super::normalize::NormalizeConfig;

/// Default time to get a database connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on one lookup, connection included.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Default interval between refreshes of the legacy user count gauge.
pub const DEFAULT_COUNT_INTERVAL: Duration = Duration::from_secs(300);
/// Default interval between checks of an export file for changes.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(30);
/// Default pool size.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// The `[legacy]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyConfig {
    /// Which schema to read: a product preset, `generic` (table + columns) or `custom` (queries).
    #[serde(default)]
    pub preset: Preset,
    /// Database URL (`sqlite://…`, `postgres://…`, `mysql://…`); a secret. Absent with `export`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<Secret>,
    /// Export file instead of a database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportConfig>,
    /// Table name prefix (`wordpress` default `wp_`, `drupal7` default empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_prefix: Option<String>,
    /// Table for `generic` (default `users`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Result/export column names for `generic`, `custom` and exports.
    #[serde(default)]
    pub columns: Columns,
    /// `custom`: the lookup query, one bound parameter (`$1` on PostgreSQL, `?` elsewhere; every
    /// `?` receives the identifier), returning the columns named in `columns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// `custom`: a query returning every user with the same columns (for census and the count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub census_query: Option<String>,
    /// Hash format: `auto` (detect from each value), a format name, or the preset's (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Salt position for salted md5/sha digests with a `columns.salt` column or fixed salt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt_position: Option<SaltPosition>,
    /// Digest text encoding for md5/sha digests (default: told from the length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<DigestEncoding>,
    /// Which field is the user's stable key in dripgate (the ledger): `email` (default) or `login`.
    #[serde(default)]
    pub key: KeyField,
    /// Identifier normalization (the legacy app's rule); default depends on the preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<NormalizeConfig>,
    /// Time to get a database connection.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Bound on one lookup, waiting for a connection included.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Most pooled database connections.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How often the `dripgate_legacy_users` gauge is refreshed.
    #[serde(default = "default_count_interval", with = "humantime_serde")]
    pub count_interval: Duration,
}

fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}
fn default_query_timeout() -> Duration {
    DEFAULT_QUERY_TIMEOUT
}
fn default_count_interval() -> Duration {
    DEFAULT_COUNT_INTERVAL
}
fn default_max_connections() -> u32 {
    DEFAULT_MAX_CONNECTIONS
}
fn default_reload_interval() -> Duration {
    DEFAULT_RELOAD_INTERVAL
}

/// Schema presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// WordPress `wp_users` (login by `user_login` or `user_email`), format `wordpress`.
    Wordpress,
    /// Drupal 7 `users` (`name`, `mail`, `pass`), format `drupal`.
    Drupal7,
    /// Django `auth_user` (`username`, `email`, `password`), format `django`.
    Django,
    /// Any table: `table` plus `columns` (default).
    #[default]
    Generic,
    /// Your own `query` and `census_query`.
    Custom,
}

impl Preset {
    /// Whether the preset's application verified every user's email, which is what the
    /// provider's `mark_email_verified` asserts: `Some(false)` where it is known not to
    /// (WordPress never verifies an email; Drupal 7's "require e-mail verification" setting,
    /// even when on, is recorded nowhere per user and does not cover accounts an administrator
    /// created; Django's `auth_user` has no verification), `None` for a generic or custom store,
    /// whose application only the operator knows.
    pub const fn emails_verified(self) -> Option<bool> {
        match self {
            Preset::Wordpress | Preset::Drupal7 | Preset::Django => Some(false),
            Preset::Generic | Preset::Custom => None,
        }
    }

    /// The config name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Preset::Wordpress => "wordpress",
            Preset::Drupal7 => "drupal7",
            Preset::Django => "django",
            Preset::Generic => "generic",
            Preset::Custom => "custom",
        }
    }
}

/// The user's stable key field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyField {
    /// The normalized email (default; the provider needs an email anyway).
    #[default]
    Email,
    /// The normalized login name.
    Login,
}

/// Column names. For SQL presets they are fixed; for `generic` they name table columns, for
/// `custom` result columns, for exports CSV header names or JSON keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Columns {
    /// Stable legacy user id.
    pub id: String,
    /// Login name; `""` when the store has none (users sign in by email).
    pub login: String,
    /// Email address.
    pub email: String,
    /// The stored password hash.
    pub hash: String,
    /// Per-row format name (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Separate salt for salted digests (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Given name (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Family name (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// When the user was created (optional; `generic` stores only): the `--created-before`
    /// filter of `dripgate handoff` reads it (a date/time, or Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            id: "id".into(),
            login: "login".into(),
            email: "email".into(),
            hash: "hash".into(),
            format: None,
            salt: None,
            given_name: None,
            family_name: None,
            created: None,
        }
    }
}

/// An export file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The file.
    pub path: PathBuf,
    /// `csv` (with a header row) or `jsonl` (one object per line); default from the extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ExportKind>,
    /// How often the file is checked for changes (0 disables reloading).
    #[serde(default = "default_reload_interval", with = "humantime_serde")]
    pub reload_interval: Duration,
}

/// Export file kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportKind {
    /// Comma-separated values with a header row.
    Csv,
    /// JSON Lines: one object per line.
    Jsonl,
}

impl ExportConfig {
    /// The kind, from config or from the file extension.
    pub fn kind(&self) -> Result<ExportKind, LegacyError> {
        if let Some(k) = self.kind {
            return Ok(k);
        }
        match self.path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(ExportKind::Csv),
            Some("jsonl" | "ndjson" | "json") => Ok(ExportKind::Jsonl),
            _ => Err(LegacyError::Config(format!(
                "export.kind is not set and {} has no .csv or .jsonl extension",
                self.path.display()
            ))),
        }
    }
}

impl LegacyConfig {
    /// A config reading `url` with `preset` and defaults otherwise (tests, tools).
    pub fn sql(preset: Preset, url: impl Into<String>) -> Self {
        LegacyConfig {
            preset,
            database_url: Some(Secret::inline(url.into())),
            export: None,
            table_prefix: None,
            table: None,
            columns: Columns::default(),
            query: None,
            census_query: None,
            format: None,
            salt_position: None,
            encoding: None,
            key: KeyField::Email,
            normalize: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            count_interval: DEFAULT_COUNT_INTERVAL,
        }
    }

    /// A config reading the export file at `path` (kind from the extension) with `columns`.
    pub fn export(path: impl Into<PathBuf>, columns: Columns) -> Self {
        let mut c = LegacyConfig::sql(Preset::Generic, String::new());
        c.database_url = None;
        c.columns = columns;
        c.export = Some(ExportConfig {
            path: path.into(),
            kind: None,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
        });
        c
    }

    /// Checks what serde cannot; called from `Config::validate`.
    pub fn validate(&self) -> Result<(), LegacyError> {
        let bad = |m: &str| Err(LegacyError::Config(m.to_owned()));
        match (&self.database_url, &self.export) {
            (Some(_), Some(_)) => return bad("set database_url or export, not both"),
            (None, None) => {
                return bad("set database_url (a database) or [legacy.export] (a file)");
            }
            _ => {}
        }
        if self.export.is_some() && !matches!(self.preset, Preset::Generic) {
            return bad("an export uses preset = \"generic\" with [legacy.columns]");
        }
        if let Some(e) = &self.export {
            e.kind()?;
        }
        if self.preset == Preset::Custom && self.query.is_none() {
            return bad("preset = \"custom\" needs query");
        }
        if self.preset != Preset::Custom && (self.query.is_some() || self.census_query.is_some()) {
            return bad("query and census_query need preset = \"custom\"");
        }
        if self.query_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("connect_timeout and query_timeout must be above zero");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.count_interval < Duration::from_secs(1) {
            return bad("count_interval must be at least 1s");
        }
        if let Some(f) = &self.format
            && f != "auto"
            && f.parse::<crate::hash::Format>().is_err()
        {
            return Err(LegacyError::Config(format!(
                "format {f:?} is not \"auto\" or a hash format name (see `dripgate hash formats`)"
            )));
        }
        super::presets::check_identifiers(self)?;
        Ok(())
    }
}
