//! Phases and routing: what dripgate does with a sign-in, switchable at run time.
//!
//! `observe` verifies and counts what would migrate (no provider writes), `migrate` provisions
//! while legacy keeps serving every sign-in, `route` also sends migrated users' sign-ins to the
//! new provider, optionally only for a canary share of them and only for allowed email domains;
//! `complete` sends every sign-in (and reset) to the provider and none to legacy.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The migration phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Verify and count; no provider writes.
    Observe,
    /// Provision at the provider; legacy serves every sign-in.
    #[default]
    Migrate,
    /// Provision, and send migrated users' sign-ins to the new provider.
    Route,
    /// The end state: every sign-in and reset goes to the provider, migrated or not; legacy's
    /// sign-in and forgot-password routes are no longer reachable through dripgate.
    Complete,
}

impl Phase {
    /// The name used in config, metrics and audit.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observe => "observe",
            Self::Migrate => "migrate",
            Self::Route => "route",
            Self::Complete => "complete",
        }
    }

    /// All phases.
    pub const ALL: [Phase; 4] = [
        Phase::Observe,
        Phase::Migrate,
        Phase::Route,
        Phase::Complete,
    ];

    /// Whether sign-ins of migrated users go to the provider (`route` and `complete`).
    pub fn routes(self) -> bool {
        matches!(self, Self::Route | Self::Complete)
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown phase `{s}` (observe, migrate, route, complete)"))
    }
}

/// How a routed sign-in reaches the new provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum RouteTarget {
    /// 303 to this URL; `{login_hint}` is replaced by the url-encoded identifier.
    Redirect {
        /// e.g. `https://auth.example.com/auth/login?login_hint={login_hint}`.
        url_template: String,
    },
    /// Forward the original request to a second upstream (e.g. the app's new version).
    Forward {
        /// `http://host:port` of the new upstream.
        upstream_url: String,
    },
}

/// In `route`, what to do with a sign-in when the ledger cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerUnavailable {
    /// Route users known migrated from the in-memory cache; everyone else goes to legacy.
    /// Keeps sign-ins available; a user migrated elsewhere may sign in at legacy meanwhile.
    #[default]
    CacheThenLegacy,
    /// Route users known migrated from the cache; refuse everyone else with 503. Never lets a
    /// possibly-migrated user sign in at legacy, at the price of availability.
    CacheThenDeny,
}

/// A phase the migration cannot run with what it was started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for {key}: {message}")]
pub struct PhaseUnsupported {
    /// The config key that is missing or wrong.
    pub key: &'static str,
    /// What is wrong.
    pub message: &'static str,
}

/// Whether `phase` can run with what the config (or the running engine) has: `migrate`,
/// `route` and `complete` need a provider, `route` and `complete` a route target. Start-up validation, `check-config`,
/// `POST /phase` and the SIGHUP reload all ask this one function, so they refuse alike.
pub fn check_phase(
    phase: Phase,
    has_provider: bool,
    has_route_target: bool,
) -> Result<(), PhaseUnsupported> {
    if phase != Phase::Observe && !has_provider {
        return Err(PhaseUnsupported {
            key: "migration.phase",
            message: "phases migrate and route need a [provider] section (complete too; observe does not)",
        });
    }
    if phase.routes() && !has_route_target {
        return Err(PhaseUnsupported {
            key: "migration.route",
            message: "phases route and complete need a route target (mode = \"redirect\" or \"forward\")",
        });
    }
    Ok(())
}

/// Whether an existing provider user with the same email is adopted or left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExistingUser {
    /// Set the password on it and link it (for providers pre-seeded with emails).
    #[default]
    Adopt,
    /// Leave it alone; mark the user `conflict` and audit it.
    Skip,
}

/// The `[migration]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationConfig {
    /// Initial phase; changeable at run time.
    pub phase: Phase,
    /// In `route`, the share (0–100) of migrated users whose sign-ins are routed.
    pub canary_percent: f64,
    /// Where routed sign-ins go.
    pub route: Option<RouteTarget>,
    /// Only users with these email domains are routed (empty: all).
    pub allow_domains: Vec<String>,
    /// Users with these email domains are never routed.
    pub deny_domains: Vec<String>,
    /// In `route`, behaviour when the ledger is unreachable.
    pub on_ledger_unavailable: LedgerUnavailable,
    /// An existing provider user with the same email.
    pub on_existing_user: OnExistingUser,
    /// When the provider's policy rejects a password, ask it to require a change at next sign-in.
    pub require_change_on_policy_block: bool,
    /// Migration jobs waiting beyond the running ones; more are shed, never the sign-in.
    pub queue_size: usize,
    /// Migrations run at once.
    pub workers: usize,
    /// This replica's name in audit events and leases (default: host name + pid).
    pub replica_id: Option<String>,
    /// The share (0–1) of legacy users the status page's ETA counts towards.
    pub target_share: f64,
    /// How often each replica reads the shared settings' version from the ledger (a change
    /// made on any replica is applied here within this time).
    #[serde(with = "humantime_serde")]
    pub settings_poll_interval: std::time::Duration,
    /// In `route` and `complete`, where a forgot-password request is sent: the provider's
    /// reset page, `{login_hint}` replaced by the url-encoded identifier as typed.
    pub reset_url_template: Option<String>,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        Self {
            phase: Phase::Migrate,
            canary_percent: 100.0,
            route: None,
            allow_domains: Vec::new(),
            deny_domains: Vec::new(),
            on_ledger_unavailable: LedgerUnavailable::CacheThenLegacy,
            on_existing_user: OnExistingUser::Adopt,
            require_change_on_policy_block: false,
            queue_size: 1024,
            workers: 8,
            replica_id: None,
            target_share: 0.8,
            settings_poll_interval: std::time::Duration::from_secs(2),
            reset_url_template: None,
        }
    }
}

/// The settings that change at run time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RuntimeSettings {
    /// Current phase.
    pub phase: Phase,
    /// Current canary share.
    pub canary_percent: f64,
}

/// Where the settings in force came from (`/status`'s `migration.settings_origin`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingsOrigin {
    /// `file` (the config file's initial value), `admin_api` (`POST /phase`) or
    /// `config_reload` (a SIGHUP with a changed file).
    pub source: String,
    /// Who changed it: for the admin API the token name and peer address.
    pub changed_by: Option<String>,
    /// When it was stored in the ledger (its clock, ms since the Unix epoch); null when the
    /// value was never stored (the ledger could not be reached at start-up).
    pub changed_at: Option<i64>,
    /// The ledger's settings version this replica applies; null when not from the ledger.
    pub version: Option<i64>,
}

impl SettingsOrigin {
    /// The config file's value, not (yet) stored in the ledger.
    pub fn file() -> Self {
        Self {
            source: "file".to_owned(),
            changed_by: None,
            changed_at: None,
            version: None,
        }
    }
}

/// The settings in force and their origin.
#[derive(Debug, Clone)]
struct Applied {
    settings: RuntimeSettings,
    origin: SettingsOrigin,
}

/// Shared, hot-switchable phase and canary share.
#[derive(Clone)]
pub struct PhaseState(Arc<ArcSwap<Applied>>);

impl PhaseState {
    /// Starts at `settings`, from the config file.
    pub fn new(settings: RuntimeSettings) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(Applied {
            settings,
            origin: SettingsOrigin::file(),
        })))
    }

    /// The current settings.
    pub fn get(&self) -> RuntimeSettings {
        self.0.load().settings
    }

    /// Where the current settings came from.
    pub fn origin(&self) -> SettingsOrigin {
        self.0.load().origin.clone()
    }

    /// Replaces the settings; returns the previous ones.
    pub fn set(&self, settings: RuntimeSettings) -> RuntimeSettings {
        let origin = self.0.load().origin.clone();
        self.set_with_origin(settings, origin)
    }

    /// Replaces the settings and their origin; returns the previous settings.
    pub fn set_with_origin(
        &self,
        settings: RuntimeSettings,
        origin: SettingsOrigin,
    ) -> RuntimeSettings {
        self.0.swap(Arc::new(Applied { settings, origin })).settings
    }
}

/// The stable bucket (0..10000) of a user key: the same user is always in or out of a canary.
pub fn canary_bucket(user_key: &str) -> u32 {
    let digest = Sha256::digest(user_key.as_bytes());
    let mut first = [0u8; 4];
    first.copy_from_slice(&digest[..4]);
    u32::from_be_bytes(first) % 10_000
}

/// Whether a migrated user with this key and email falls inside the routed population.
pub fn in_route_population(
    config: &MigrationConfig,
    canary_percent: f64,
    user_key: &str,
    email: &str,
) -> bool {
    let domain = email
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let listed = |list: &[String]| list.iter().any(|d| d.eq_ignore_ascii_case(&domain));
    if listed(&config.deny_domains) {
        return false;
    }
    if !config.allow_domains.is_empty() && !listed(&config.allow_domains) {
        return false;
    }
    f64::from(canary_bucket(user_key)) < canary_percent * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_share_is_within_three_points_on_10000_users() {
        let config = MigrationConfig::default();
        for percent in [5.0, 25.0, 50.0, 90.0] {
            let routed = (0..10_000)
                .filter(|i| {
                    let key = format!("user{i}@example.com");
                    in_route_population(&config, percent, &key, &key)
                })
                .count();
            let share = routed as f64 / 100.0;
            assert!(
                (share - percent).abs() <= 3.0,
                "{percent}% canary routed {share}%"
            );
        }
    }

    #[test]
    fn canary_is_stable_per_user_and_monotonic() {
        let config = MigrationConfig::default();
        for i in 0..1000 {
            let key = format!("u{i}@x.io");
            if in_route_population(&config, 10.0, &key, &key) {
                assert!(in_route_population(&config, 50.0, &key, &key));
            }
        }
    }

    #[test]
    fn domain_lists() {
        let config = MigrationConfig {
            allow_domains: vec!["example.com".into()],
            deny_domains: vec!["vip.example.com".into()],
            ..MigrationConfig::default()
        };
        assert!(in_route_population(&config, 100.0, "a", "a@Example.com"));
        assert!(!in_route_population(&config, 100.0, "b", "b@other.org"));
        let config = MigrationConfig {
            deny_domains: vec!["vip.example.com".into()],
            ..MigrationConfig::default()
        };
        assert!(!in_route_population(
            &config,
            100.0,
            "c",
            "c@vip.example.com"
        ));
        assert!(in_route_population(&config, 100.0, "d", "d@else.com"));
    }
}
