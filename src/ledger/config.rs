//! Ledger configuration (`[ledger]` in the config file).
//!
//! ```toml
//! [ledger]
//! url = "sqlite://dripgate-ledger.db"       # or { env = "DRIPGATE_LEDGER_URL" } for postgres://…
//! lease = "60s"
//! query_timeout = "2s"
//! max_connections = 8
//! counts_interval = "30s"
//! [ledger.cache]
//! max_entries = 100000
//! ttl = "10m"
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

use super::LedgerError;

/// The ledger section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerConfig {
    /// Where the ledger lives: `sqlite://path` (created if missing; one replica only) or
    /// `postgres://…` (shared by several replicas). A secret, since URLs may carry passwords.
    pub url: Secret,
    /// How long a claim keeps other sign-ins (on any replica) from working on the same user;
    /// longer than find + create + set-password at the provider, retries included.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Key of the HMAC fingerprint of migrated legacy hashes (at least 16 bytes). When absent, a
    /// random key is generated once and kept in the ledger's `ledger_meta` table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_key: Option<Secret>,
    /// Most pooled database connections.
    pub max_connections: u32,
    /// Time allowed for one ledger operation, waiting for a pooled connection included.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// How often `dripgate_ledger_users{state}` is recounted; 0 disables the recount.
    #[serde(with = "humantime_serde")]
    pub counts_interval: Duration,
    /// The in-process cache of migrated users.
    pub cache: LedgerCacheConfig,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            url: Secret::inline(DEFAULT_URL),
            lease: Duration::from_secs(60),
            fingerprint_key: None,
            max_connections: 8,
            query_timeout: Duration::from_secs(2),
            counts_interval: Duration::from_secs(30),
            cache: LedgerCacheConfig::default(),
        }
    }
}

/// The default ledger: a SQLite file in the working directory.
pub const DEFAULT_URL: &str = "sqlite://dripgate-ledger.db";

/// The cache of migrated users (positive entries only).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerCacheConfig {
    /// Most users kept; 0 disables the cache.
    pub max_entries: u64,
    /// An entry is dropped this long after it was loaded, so a change made by another replica
    /// (or by an operator) is seen at the latest after this time.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for LedgerCacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            ttl: Duration::from_secs(600),
        }
    }
}

/// Which database a ledger URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl BackendKind {
    /// The backend for `url`, from its scheme.
    pub fn from_url(url: &str) -> Result<Self, LedgerError> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            _ => Err(LedgerError::Config(
                "ledger.url must start with sqlite:// or postgres://".to_owned(),
            )),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl LedgerConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), LedgerError> {
        let bad = |m: &str| Err(LedgerError::Config(m.to_owned()));
        BackendKind::from_url(self.url.expose())?;
        if self.lease < Duration::from_millis(100) {
            return bad("ledger.lease must be at least 100ms");
        }
        if self.query_timeout.is_zero() {
            return bad("ledger.query_timeout must be above 0");
        }
        if self.max_connections == 0 {
            return bad("ledger.max_connections must be at least 1");
        }
        if let Some(key) = &self.fingerprint_key
            && key.expose().len() < 16
        {
            return bad("ledger.fingerprint_key must be at least 16 bytes");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let c: LedgerConfig = toml::from_str("").unwrap();
        assert_eq!(c.url.expose(), DEFAULT_URL);
        assert_eq!(c.lease, Duration::from_secs(60));
        assert_eq!(c.query_timeout, Duration::from_secs(2));
        c.validate().unwrap();
        assert!(toml::from_str::<LedgerConfig>("bogus = 1").is_err());
        let c: LedgerConfig = toml::from_str(
            "url = \"postgres://u:pw@db/x\"\nlease = \"30s\"\n[cache]\nttl = \"1m\"",
        )
        .unwrap();
        assert_eq!(
            BackendKind::from_url(c.url.expose()).unwrap(),
            BackendKind::Postgres
        );
        assert!(!toml::to_string(&c).unwrap().contains("pw@"));
    }

    #[test]
    fn validation() {
        let c: LedgerConfig = toml::from_str("url = \"mysql://x\"").unwrap();
        assert!(c.validate().is_err());
        let c: LedgerConfig = toml::from_str("fingerprint_key = \"short\"").unwrap();
        assert!(c.validate().is_err());
        let c: LedgerConfig = toml::from_str("lease = \"0s\"").unwrap();
        assert!(c.validate().is_err());
    }
}

#[cfg(test)]
mod config_file_tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn ledger_section_in_the_main_config_with_env_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "postgres://u:pw@db/ledger\n").unwrap();
        let env = vec![
            (
                "DRIPGATE_LEDGER__URL_FILE".to_owned(),
                path.display().to_string(),
            ),
            ("DRIPGATE_LEDGER__LEASE".to_owned(), "45s".to_owned()),
        ];
        let config =
            crate::config::parse_str("[ledger]\nquery_timeout = \"1s\"\n", "t", env).unwrap();
        assert_eq!(config.ledger.url.expose(), "postgres://u:pw@db/ledger");
        assert_eq!(config.ledger.lease, std::time::Duration::from_secs(45));
        assert_eq!(
            config.ledger.query_timeout,
            std::time::Duration::from_secs(1)
        );
        let shown = config.to_redacted_toml().unwrap();
        assert!(shown.contains("[ledger]"));
        assert!(!shown.contains("pw@db"), "{shown}");
        let default = crate::config::parse_str("", "t", Vec::new()).unwrap();
        assert_eq!(default.ledger.url.expose(), super::DEFAULT_URL);
    }
}
