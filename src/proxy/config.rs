//! `[upstream]` and `[forwarding]`: how dripgate connects to an upstream and which forwarded
//! headers it trusts, drops and sets.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A proxy setting that is well-formed but not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for {key}: {message}")]
pub struct ProxyConfigError {
    /// The dotted key.
    pub key: String,
    /// What is wrong.
    pub message: String,
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
