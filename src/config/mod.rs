//! Typed configuration: one TOML file, `DRIPGATE_*` environment overrides, secrets from env or
//! files, and validation. `dripgate check-config` prints the effective result with secrets
//! redacted. Every key and its default is documented in config/dripgate.example.toml.

mod load;
mod secret;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use load::{ConfigError, apply_env_overrides, load_file, parse_str};
pub use secret::{Secret, SecretSource};

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
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

/// The legacy upstream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL of the legacy app (`http://host:port`); request paths are appended to it.
    pub url: String,
    /// Time allowed to open a TCP connection to the upstream (502 after it).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for the upstream to send its response head once the request body has been
    /// sent (504 after it); also how long the upstream may take no request body bytes.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    /// A request body from which no bytes arrive for this long is cut (408 if no response has
    /// started, else the connection closes), as nginx's `client_body_timeout`.
    #[serde(with = "humantime_serde")]
    pub body_inactivity_timeout: Duration,
    /// Idle pooled connections are closed after this (counted from their last response head);
    /// keep it below the upstream's keep-alive.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Most idle pooled connections kept to the upstream.
    pub pool_max_idle: usize,
    /// Send the client's Host header upstream (true) or the upstream URL's host (false).
    pub preserve_host: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:3000".to_owned(),
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(60),
            body_inactivity_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(4),
            pool_max_idle: 256,
            preserve_host: true,
        }
    }
}

/// Forwarded-header policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardingConfig {
    /// Peers (CIDRs) whose X-Forwarded-* / Forwarded headers are trusted and extended;
    /// from any other peer those headers are removed and set afresh.
    pub trusted_proxies: Vec<IpNet>,
    /// Also send an RFC 7239 `Forwarded` header upstream.
    pub forwarded_header: bool,
    /// Further headers a client could use to claim another origin or path; removed from peers
    /// that are not trusted proxies.
    #[serde(deserialize_with = "header_names")]
    pub untrusted_drop_headers: Vec<String>,
    /// Also remove, from peers that are not trusted proxies, every header whose name has an
    /// underscore (CGI and PHP read `X_Forwarded_For` as `X-Forwarded-For`).
    pub drop_underscore_headers: bool,
    /// Protocols a client may switch to through `Upgrade` (a tunnel, which no sign-in
    /// interception sees); a request offering any other is forwarded as a plain request.
    pub upgrade_protocols: Vec<String>,
}

/// The default of `forwarding.untrusted_drop_headers`.
pub const DEFAULT_UNTRUSTED_DROP_HEADERS: [&str; 9] = [
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-original-url",
    "x-rewrite-url",
];

impl Default for ForwardingConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            forwarded_header: false,
            untrusted_drop_headers: DEFAULT_UNTRUSTED_DROP_HEADERS.map(str::to_owned).to_vec(),
            drop_underscore_headers: true,
            upgrade_protocols: vec!["websocket".to_owned()],
        }
    }
}

/// Header names, checked and lower-cased as they are read.
fn header_names<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(de)?
        .into_iter()
        .map(|name| match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(parsed) => Ok(parsed.as_str().to_owned()),
            Err(_) => Err(serde::de::Error::custom(format!(
                "`{name}` is not a header name"
            ))),
        })
        .collect()
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

/// Sign-in interception.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigninConfig {
    /// The method + exact path pairs that are sign-ins.
    pub routes: Vec<SigninRoute>,
    /// Sign-in bodies up to this size are read; a larger one is forwarded untouched.
    pub max_body_bytes: usize,
    /// Time allowed for the client to send a sign-in body.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
}

impl Default for SigninConfig {
    fn default() -> Self {
        Self {
            routes: vec![SigninRoute {
                method: "POST".to_owned(),
                path: "/login".to_owned(),
                body: crate::signin::extract::BodyKind::Auto,
                identifier_field: default_identifier_field(),
                password_field: default_password_field(),
                legacy_failure: FailureSignature::default(),
            }],
            max_body_bytes: 64 * 1024,
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// One sign-in route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigninRoute {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Exact request path, without query, e.g. `/wp-login.php`.
    pub path: String,
    /// Body encoding: `auto` (from Content-Type), `form`, `json` or `multipart`.
    #[serde(default)]
    pub body: crate::signin::extract::BodyKind,
    /// Field holding the identifier (for JSON a key or a pointer such as `/user/email`).
    #[serde(default = "default_identifier_field")]
    pub identifier_field: String,
    /// Field holding the password.
    #[serde(default = "default_password_field")]
    pub password_field: String,
    /// What a failed legacy sign-in looks like; only sign-ins legacy accepted are verified.
    #[serde(default)]
    pub legacy_failure: FailureSignature,
}

fn default_identifier_field() -> String {
    "email".to_owned()
}

fn default_password_field() -> String {
    "password".to_owned()
}

/// How to recognise a legacy sign-in that failed. Empty: every sign-in is verified (the hash
/// check is then the only judge, at the price of CPU spent on wrong guesses).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureSignature {
    /// Response statuses that mean "wrong credentials", e.g. `[200, 401]` for a form re-shown.
    pub status: Vec<u16>,
    /// A `Location` containing this text means failure, e.g. `"/login?error"`.
    pub location_contains: Option<String>,
    /// A successful sign-in sets this cookie; its absence means failure.
    pub success_cookie: Option<String>,
}

impl FailureSignature {
    /// Whether a legacy response with this status and headers is a failed sign-in.
    pub fn is_failure(&self, status: http::StatusCode, headers: &http::HeaderMap) -> bool {
        if self.status.contains(&status.as_u16()) {
            return true;
        }
        if let Some(needle) = &self.location_contains {
            let location = headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if location.contains(needle.as_str()) {
                return true;
            }
        }
        if let Some(cookie) = &self.success_cookie {
            let prefix = format!("{cookie}=");
            let set = headers
                .get_all(http::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.trim_start().starts_with(&prefix));
            if !set {
                return true;
            }
        }
        false
    }
}

impl Config {
    /// Checks what types alone cannot: URLs, file pairs, distinct addresses.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        let url: http::Uri = self
            .upstream
            .url
            .parse()
            .map_err(|e| invalid("upstream.url", format!("not a URL: {e}")))?;
        if url.scheme_str() != Some("http") || url.authority().is_none() {
            return Err(invalid(
                "upstream.url",
                "must be an http:// URL with a host (TLS to the upstream is not supported yet)"
                    .to_owned(),
            ));
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
        if self.migration.phase == crate::migrate::Phase::Route && self.migration.route.is_none() {
            return Err(invalid(
                "migration.route",
                "phase route needs a route target (mode = \"redirect\" or \"forward\")".to_owned(),
            ));
        }
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

    /// The effective config as TOML, secrets shown only by their source.
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Render(e.to_string()))
    }
}
