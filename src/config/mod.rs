//! Typed configuration: one TOML file, `DRIPGATE_*` environment overrides, secrets from env or
//! files, and validation. `dripgate check-config` prints the effective result with secrets
//! redacted. Every key and its default is documented in config/dripgate.example.toml.

mod derived;
mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::proxy::config::{
    DEFAULT_UNTRUSTED_DROP_HEADERS, ForwardingConfig, ProxyConfigError, UpstreamConfig,
};
pub use crate::secret::{Secret, SecretSource};
pub use crate::signin::config::{
    FailureSignature, LegacyUserBinding, SigninConfig, SigninRoute, UnreadInRoute,
};
pub use load::{ConfigError, apply_env_overrides, load_file, parse_str};

/// The whole dripgate configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The public listener that clients connect to.
    pub server: ServerConfig,
    /// The admin listener: health, readiness, metrics, status.
    pub admin: AdminConfig,
    /// The legacy application every request is forwarded to.
    pub upstream: UpstreamConfig,
    /// X-Forwarded-* / Forwarded handling.
    pub forwarding: ForwardingConfig,
    /// Graceful shutdown timing.
    pub shutdown: ShutdownConfig,
    /// Logging.
    pub log: LogConfig,
    /// Which requests are sign-ins, and how their bodies are read.
    pub signin: SigninConfig,
    /// Legacy hash verification: work-factor caps and the verification pool.
    pub hash: crate::hash::HashConfig,
    /// The new identity provider; absent until the operator configures one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<crate::provider::ProviderConfig>,
    /// The legacy hash store (database or export); absent until the operator configures one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy: Option<crate::legacy::LegacyConfig>,
    /// Phases, routing and migration work limits.
    pub migration: crate::migrate::MigrationConfig,
    /// Where audit events go.
    pub audit: crate::audit::AuditConfig,
    /// The migration ledger (durable per-user migration state).
    #[serde(default)]
    pub ledger: crate::ledger::LedgerConfig,
    /// `dripgate handoff`: policies per hash format and concurrency.
    #[serde(default)]
    pub handoff: crate::handoff::HandoffConfig,
}

/// The public listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// TLS; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// A client must send its complete request head within this time (slowloris guard); over
    /// HTTP/1.1 it runs whenever no request is in flight, so it also ends resting keep-alive
    /// connections.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Largest request head (request line plus headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Most client connections served at once; further clients wait in the accept backlog
    /// (one per proxy worker is accepted and held until a slot frees).
    pub max_connections: usize,
    /// Proxy workers; 0 means one per CPU core available to the process. Each worker is a
    /// thread with its own event loop (tokio's current-thread scheduler), its own listening
    /// socket on the shared port and its own upstream connections.
    pub worker_threads: usize,
}

impl ServerConfig {
    /// The number of proxy workers `worker_threads` asks for.
    pub fn workers(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            max_connections: 4096,
            worker_threads: 0,
        }
    }
}

/// Certificate and key for the public listener (PEM files).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often the files are checked for changes (SIGHUP reloads at once); 0 disables polling.
    #[serde(default = "default_tls_reload_interval", with = "humantime_serde")]
    pub reload_interval: Duration,
}

fn default_tls_reload_interval() -> Duration {
    Duration::from_secs(10)
}

/// The admin listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener; keep it off the public network.
    pub listen: SocketAddr,
    /// Bearer token that state-changing endpoints (`POST /phase`) require. Required when
    /// `listen` is not a loopback address; when set, it is required on any address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The caller's name in audit events when the token was presented (never the token).
    pub token_name: String,
    /// Further `Host` names (optionally `name:port`) accepted on state-changing requests, for
    /// an admin listener reached through a name; the listener's own `ip:port` (and
    /// `localhost:port` on loopback) are always accepted.
    pub allowed_hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token: None,
            token_name: "admin".to_owned(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Shortest accepted `admin.token`: long enough that guessing it over the network is hopeless.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

impl AdminConfig {
    /// Checks the token rule (required off loopback), the token name and the host names.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        match &self.token {
            None if !self.listen.ip().is_loopback() => {
                return Err(invalid(
                    "admin.token",
                    format!(
                        "required because admin.listen ({}) is not a loopback address: without it \
                         anyone who reaches the admin port could switch the migration phase; set \
                         admin.token (e.g. {{ env = \"DRIPGATE_ADMIN_TOKEN\" }}) or listen on \
                         127.0.0.1",
                        self.listen
                    ),
                ));
            }
            Some(token) if token.expose().chars().count() < MIN_ADMIN_TOKEN_LEN => {
                return Err(invalid(
                    "admin.token",
                    format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters"),
                ));
            }
            _ => {}
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
        };
        if !name_ok(&self.token_name) {
            return Err(invalid(
                "admin.token_name",
                "must be 1-64 characters of A-Z a-z 0-9 . _ - @".to_owned(),
            ));
        }
        for (i, host) in self.allowed_hosts.iter().enumerate() {
            let ok = host.parse::<http::uri::Authority>().is_ok_and(|a| {
                a.as_str() == host.as_str() && !host.contains('@') && !a.host().is_empty()
            });
            if !ok {
                return Err(invalid(
                    &format!("admin.allowed_hosts[{i}]"),
                    "must be a host name or name:port, as a Host header carries it".to_owned(),
                ));
            }
        }
        Ok(())
    }
}

/// Graceful shutdown timing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// After SIGTERM, /readyz reports 503 but new connections are still served for this long,
    /// so load balancers can take the instance out first.
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Then in-flight requests get this long to finish before connections are closed.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(25),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `dripgate=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<ProxyConfigError> for ConfigError {
    fn from(e: ProxyConfigError) -> Self {
        ConfigError::Invalid {
            key: e.key,
            message: e.message,
        }
    }
}

/// [`crate::migrate::phase::check_phase`] as a config error.
pub fn check_phase(
    phase: crate::migrate::Phase,
    has_provider: bool,
    has_route_target: bool,
) -> Result<(), ConfigError> {
    crate::migrate::phase::check_phase(phase, has_provider, has_route_target).map_err(|e| {
        ConfigError::Invalid {
            key: e.key.to_owned(),
            message: e.message.to_owned(),
        }
    })
}

/// An upstream URL: `http://host[:port]`, with no credentials. dripgate does not authenticate
/// to upstreams; credentials in the URL would be printed wherever the URL is (start-up log,
/// `/status`) and carried in the authority it forwards with, so they are refused, without
/// echoing them.
fn check_upstream_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let invalid = |message: &str| ConfigError::Invalid {
        key: key.to_owned(),
        message: message.to_owned(),
    };
    // Looked for before parsing: a parse error must not quote a password either.
    let authority_end = url.find("://").map_or(url.len(), |i| {
        let start = i + 3;
        start
            + url[start..]
                .find(['/', '?', '#'])
                .unwrap_or(url.len() - start)
    });
    if url[..authority_end].contains('@') {
        return Err(invalid(
            "credentials (user:password@) in the upstream URL are not supported: they would be \
             logged and forwarded; remove them",
        ));
    }
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| invalid(&format!("not a URL: {e}")))?;
    if parsed.scheme_str() != Some("http") || parsed.authority().is_none() {
        return Err(invalid(
            "must be an http:// URL with a host (TLS to the upstream is not supported yet)",
        ));
    }
    Ok(())
}

impl Config {
    /// `[signin.forgot_password]`: methods, paths, limits, and the reset page they go to.
    fn validate_forgot_password(&self) -> Result<(), ConfigError> {
        let template = self.migration.reset_url_template.as_deref();
        self.signin
            .forgot_password
            .validate(template)
            .map_err(|(key, message)| ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
    }

    /// Checks what types alone cannot: URLs, file pairs, distinct addresses.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        check_upstream_url("upstream.url", &self.upstream.url)?;
        if let Some(crate::migrate::phase::RouteTarget::Forward { upstream_url }) =
            &self.migration.route
        {
            check_upstream_url("migration.route.upstream_url", upstream_url)?;
        }
        if self.server.listen == self.admin.listen && self.server.listen.port() != 0 {
            return Err(invalid(
                "admin.listen",
                "must differ from server.listen".to_owned(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(invalid(
                "server.max_connections",
                "must be at least 1".to_owned(),
            ));
        }
        if self.server.max_header_bytes < 8192 {
            return Err(invalid(
                "server.max_header_bytes",
                "must be at least 8192".to_owned(),
            ));
        }
        for (i, route) in self.signin.routes.iter().enumerate() {
            if http::Method::from_bytes(route.method.as_bytes()).is_err() {
                return Err(invalid(
                    &format!("signin.routes[{i}].method"),
                    "not an HTTP method".to_owned(),
                ));
            }
            if !route.path.starts_with('/') || route.path.contains('?') {
                return Err(invalid(
                    &format!("signin.routes[{i}].path"),
                    "must start with '/' and carry no query".to_owned(),
                ));
            }
            if route
                .legacy_user
                .as_ref()
                .is_some_and(|b| b.header.is_none() && b.cookie.is_none())
            {
                return Err(invalid(
                    &format!("signin.routes[{i}].legacy_user"),
                    "needs a header or a cookie".to_owned(),
                ));
            }
        }
        self.validate_forgot_password()?;
        if self.signin.buffer_budget_bytes < self.signin.max_body_bytes {
            return Err(invalid(
                "signin.buffer_budget_bytes",
                "must be at least signin.max_body_bytes".to_owned(),
            ));
        }
        if let Some(provider) = &self.provider {
            provider
                .validate()
                .map_err(|e| invalid("provider", e.to_string()))?;
        }
        if let Some(legacy) = &self.legacy {
            legacy
                .validate()
                .map_err(|e| invalid("legacy", e.to_string()))?;
        }
        self.ledger
            .validate()
            .map_err(|e| invalid("ledger", e.to_string()))?;
        if !(0.0..=100.0).contains(&self.migration.canary_percent) {
            return Err(invalid(
                "migration.canary_percent",
                "must be within 0..=100".to_owned(),
            ));
        }
        if !(self.migration.target_share > 0.0 && self.migration.target_share <= 1.0) {
            return Err(invalid(
                "migration.target_share",
                "must be within (0, 1]".to_owned(),
            ));
        }
        // Only the route target here: whether the phase has its provider is asked by
        // `validate_serving`, since the legacy and provider tools read configs not ready to serve.
        check_phase(self.migration.phase, true, self.migration.route.is_some())?;
        if let Some(tls) = &self.server.tls {
            for (key, path) in [
                ("server.tls.cert_file", &tls.cert_file),
                ("server.tls.key_file", &tls.key_file),
            ] {
                if !path.is_file() {
                    return Err(invalid(
                        key,
                        format!("{} is not a readable file", path.display()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// [`Config::validate`] plus what only serving needs: the admin listener's rules (a token
    /// off loopback) and, with `[legacy]`, a phase the migration can run ([`check_phase`]). The
    /// one check `serve` (at start and on SIGHUP), `BoundServer::bind` and `check-config` run,
    /// so they refuse a config alike and with the same message.
    pub fn validate_serving(&self) -> Result<(), ConfigError> {
        self.validate()?;
        self.admin.validate()?;
        if self.legacy.is_some() {
            check_phase(
                self.migration.phase,
                self.provider.is_some(),
                self.migration.route.is_some(),
            )?;
        }
        Ok(())
    }

    /// The effective config as TOML, secrets shown only by their source.
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Render(e.to_string()))
    }
}

#[cfg(test)]
mod admin_and_upstream_tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn invalid_key(config: &Config) -> String {
        match config.validate() {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    fn invalid_key_serving(config: &Config) -> String {
        config.validate().unwrap();
        match config.validate_serving() {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn complete_needs_a_route_target_and_reset_routes_a_reset_page() {
        let mut config = Config::default();
        config.migration.phase = crate::migrate::Phase::Complete;
        assert_eq!(invalid_key(&config), "migration.route");
        config.migration.route = Some(crate::migrate::phase::RouteTarget::Redirect {
            url_template: "https://auth.example.test/login?login_hint={login_hint}".into(),
        });
        config.validate().unwrap();
        config.signin.forgot_password.routes = vec![crate::signin::config::ForgotPasswordRoute {
            method: "POST".into(),
            path: "/forgot".into(),
            case_insensitive_path: false,
            body: crate::signin::extract::BodyKind::Form,
            identifier_field: "email".into(),
            query: Vec::new(),
        }];
        assert_eq!(invalid_key(&config), "migration.reset_url_template");
        config.migration.reset_url_template =
            Some("https://auth.example.test/reset?login_hint={login_hint}".into());
        config.validate().unwrap();
        config.signin.forgot_password.routes[0].path = "forgot".into();
        assert_eq!(
            invalid_key(&config),
            "signin.forgot_password.routes[0].path"
        );
        config.signin.forgot_password.routes[0].path = "/forgot".into();
        config.signin.forgot_password.routes[0].query = vec!["action".into()];
        assert_eq!(
            invalid_key(&config),
            "signin.forgot_password.routes[0].query"
        );
        config.signin.forgot_password.routes[0].query = vec!["action=lostpassword".into()];
        config.validate().unwrap();
        config.signin.forgot_password.per_client = 0;
        assert_eq!(invalid_key(&config), "signin.forgot_password");
    }

    #[test]
    fn admin_token_is_required_off_loopback_only() {
        let mut config = Config::default();
        config.admin.listen = "0.0.0.0:9090".parse().unwrap();
        assert_eq!(invalid_key_serving(&config), "admin.token");
        config.admin.token = Some(Secret::inline("short"));
        assert_eq!(invalid_key_serving(&config), "admin.token");
        config.admin.token = Some(Secret::inline("0123456789abcdef"));
        config.validate_serving().unwrap();
        config.admin.listen = "[::1]:9090".parse().unwrap();
        config.admin.token = None;
        config.validate_serving().unwrap();
        config.admin.token_name = "has space".to_owned();
        assert_eq!(invalid_key_serving(&config), "admin.token_name");
        config.admin.token_name = "admin".to_owned();
        config.admin.allowed_hosts = vec!["admin.internal:9090".to_owned(), "a/b".to_owned()];
        assert_eq!(invalid_key_serving(&config), "admin.allowed_hosts[1]");
    }

    #[test]
    fn upstream_credentials_are_refused_without_echo() {
        let mut config = Config::default();
        for url in [
            "http://user:hunter2@127.0.0.1:3000",
            "http://hunter2@127.0.0.1:3000/x",
            "http://user:hunter2@[::1]:3000",
        ] {
            config.upstream.url = url.to_owned();
            let err = config.validate().unwrap_err().to_string();
            assert!(
                err.contains("upstream.url") && err.contains("credentials"),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
        // An `@` after the authority is a path, not credentials.
        config.upstream.url = "http://127.0.0.1:3000/a@b".to_owned();
        config.validate().unwrap();
        config.migration.route = Some(crate::migrate::phase::RouteTarget::Forward {
            upstream_url: "http://u:hunter2@127.0.0.1:4000".to_owned(),
        });
        assert_eq!(invalid_key(&config), "migration.route.upstream_url");
    }

    #[test]
    fn phases_need_what_they_use() {
        use crate::migrate::Phase;
        check_phase(Phase::Observe, false, false).unwrap();
        check_phase(Phase::Migrate, true, false).unwrap();
        check_phase(Phase::Route, true, true).unwrap();
        let key = |r: Result<(), ConfigError>| match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            key(check_phase(Phase::Migrate, false, true)),
            "migration.phase"
        );
        assert_eq!(
            key(check_phase(Phase::Route, true, false)),
            "migration.route"
        );
    }
}
