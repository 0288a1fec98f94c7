//! Provider configuration (`[provider]` in the config file).
//!
//! ```toml
//! [provider]
//! kind = "kinde"
//! [provider.kinde]
//! base_url = "https://mybiz.kinde.com"
//! client_id = "…"
//! client_secret = "…"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use url::Url;

use super::{ProviderError, ProviderKind};

/// The provider section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Which provider: `kinde`, `authgear`, `keycloak`, `auth0`, `cognito` or `http` (the
    /// generic HTTP contract).
    pub kind: ProviderKind,
    /// Kinde settings (required when `kind = "kinde"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinde: Option<KindeConfig>,
    /// Authgear settings (required when `kind = "authgear"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authgear: Option<AuthgearConfig>,
    /// Auth0 settings (required when `kind = "auth0"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth0: Option<super::auth0::Auth0Config>,
    /// Amazon Cognito settings (required when `kind = "cognito"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cognito: Option<super::cognito::CognitoConfig>,
    /// Generic HTTP provider settings (required when `kind = "http"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_provider: Option<super::generic::GenericHttpConfig>,
    /// Keycloak settings (required when `kind = "keycloak"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<super::keycloak::KeycloakConfig>,
    /// HTTP client settings.
    #[serde(default)]
    pub http: HttpConfig,
    /// Client-side rate limits and retries.
    #[serde(default)]
    pub limits: LimitsConfig,
}

impl ProviderConfig {
    /// Checks the values that serde cannot.
    pub fn validate(&self) -> Result<(), ProviderError> {
        match self.kind {
            ProviderKind::Kinde if self.kinde.is_none() => {
                return Err(ProviderError::Config(
                    "kind = \"kinde\" needs a [provider.kinde] section".into(),
                ));
            }
            ProviderKind::Authgear if self.authgear.is_none() => {
                return Err(ProviderError::Config(
                    "kind = \"authgear\" needs a [provider.authgear] section".into(),
                ));
            }
            ProviderKind::Auth0 if self.auth0.is_none() => {
                return Err(ProviderError::Config(
                    "kind = \"auth0\" needs a [provider.auth0] section".into(),
                ));
            }
            ProviderKind::Cognito if self.cognito.is_none() => {
                return Err(ProviderError::Config(
                    "kind = \"cognito\" needs a [provider.cognito] section".into(),
                ));
            }
            ProviderKind::Http if self.http_provider.is_none() => {
                return Err(ProviderError::Config(
                    "kind = \"http\" needs a [provider.http_provider] section".into(),
                ));
            }
            ProviderKind::Keycloak if self.keycloak.is_none() => {
                return Err(ProviderError::Config(
                    "kind = \"keycloak\" needs a [provider.keycloak] section".into(),
                ));
            }
            _ => {}
        }
        if let Some(a) = &self.auth0 {
            a.validate()?;
        }
        if let Some(c) = &self.cognito {
            c.validate()?;
        }
        if let Some(k) = &self.keycloak {
            k.validate()?;
        }
        if let Some(k) = &self.kinde {
            check_base_url(&k.base_url)?;
            if !(4..=31).contains(&k.bcrypt_cost) {
                return Err(ProviderError::Config(
                    "kinde.bcrypt_cost must be between 4 and 31".into(),
                ));
            }
        }
        if let Some(a) = &self.authgear {
            check_base_url(&a.base_url)?;
            if a.project_id.is_empty() || a.key_id.is_empty() {
                return Err(ProviderError::Config(
                    "authgear.project_id and authgear.key_id must be set".into(),
                ));
            }
        }
        if let Some(g) = &self.http_provider {
            g.validate()?;
        }
        let l = &self.limits;
        if l.requests_per_second == 0
            || l.burst == 0
            || l.max_concurrency == 0
            || l.max_attempts == 0
        {
            return Err(ProviderError::Config(
                "limits.requests_per_second, burst, max_concurrency and max_attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

pub(crate) fn check_base_url(url: &str) -> Result<(), ProviderError> {
    let url = Url::parse(url).map_err(|e| ProviderError::Config(format!("base_url {url}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ProviderError::Config(format!(
            "base_url {url} must be an http(s) URL"
        )));
    }
    Ok(())
}

/// How Kinde receives the password (Kinde's spec takes only hashes; see docs/PROVIDERS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordTransfer {
    /// A fresh bcrypt hash of the password the user just proved (default).
    #[default]
    Bcrypt,
    /// The verified legacy hash itself where Kinde supports the format, else bcrypt.
    LegacyHash,
    /// The plaintext `password` body some Kinde pages show (only for accounts that accept it).
    Plaintext,
}

/// Kinde settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KindeConfig {
    /// `https://<subdomain>.kinde.com` (or a custom domain, or the fake's URL).
    pub base_url: String,
    /// M2M application client id.
    pub client_id: String,
    /// M2M application client secret.
    pub client_secret: Secret,
    /// Token audience; default `<base_url>/api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Scopes to request (space-joined); default none (the app's granted scopes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// How the password is sent.
    #[serde(default)]
    pub password_transfer: PasswordTransfer,
    /// bcrypt cost for `password_transfer = "bcrypt"`.
    #[serde(default = "default_bcrypt_cost")]
    pub bcrypt_cost: u32,
    /// Send `is_temporary_password = true` (the user must set a new password after sign-in).
    #[serde(default)]
    pub is_temporary_password: bool,
    /// Tell Kinde the email identity is verified on create (`is_verified`). Proving the legacy
    /// password proves nothing about the email: set it to true only when the legacy app
    /// verified every user's email. Unset, it follows the legacy preset (`false` for WordPress,
    /// Drupal 7 and Django, which record no verification; docs/PROVIDERS.md) and is `false`
    /// with a `check-config` warning for a generic or custom store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_email_verified: Option<bool>,
}

impl ProviderConfig {
    /// The configured provider's `mark_email_verified` and the name of its section (Authgear's
    /// create has no such flag: `None`).
    pub fn email_verification(&self) -> Option<(&'static str, Option<bool>)> {
        match self.kind {
            ProviderKind::Kinde => self
                .kinde
                .as_ref()
                .map(|c| ("kinde", c.mark_email_verified)),
            ProviderKind::Keycloak => self
                .keycloak
                .as_ref()
                .map(|c| ("keycloak", c.mark_email_verified)),
            ProviderKind::Cognito => self
                .cognito
                .as_ref()
                .map(|c| ("cognito", c.mark_email_verified)),
            ProviderKind::Auth0 => self
                .auth0
                .as_ref()
                .map(|c| ("auth0", c.mark_email_verified)),
            ProviderKind::Http => self
                .http_provider
                .as_ref()
                .map(|c| ("http_provider", c.mark_email_verified)),
            ProviderKind::Authgear => None,
        }
    }

    /// The configured provider's `mark_email_verified`, to fill in a default.
    pub fn email_verification_mut(&mut self) -> Option<&mut Option<bool>> {
        match self.kind {
            ProviderKind::Kinde => self.kinde.as_mut().map(|c| &mut c.mark_email_verified),
            ProviderKind::Keycloak => self.keycloak.as_mut().map(|c| &mut c.mark_email_verified),
            ProviderKind::Cognito => self.cognito.as_mut().map(|c| &mut c.mark_email_verified),
            ProviderKind::Auth0 => self.auth0.as_mut().map(|c| &mut c.mark_email_verified),
            ProviderKind::Http => self
                .http_provider
                .as_mut()
                .map(|c| &mut c.mark_email_verified),
            ProviderKind::Authgear => None,
        }
    }
}

impl KindeConfig {
    /// What `is_verified` is sent as: `mark_email_verified`, false when unset.
    pub fn email_verified(&self) -> bool {
        self.mark_email_verified.unwrap_or(false)
    }

    /// The token audience: configured, or `<base_url>/api`.
    pub fn audience(&self) -> String {
        self.audience
            .clone()
            .unwrap_or_else(|| format!("{}/api", self.base_url.trim_end_matches('/')))
    }
}

fn default_bcrypt_cost() -> u32 {
    12
}

/// Authgear settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthgearConfig {
    /// `https://<project>.authgear.cloud` or the admin server's address.
    pub base_url: String,
    /// Project (app) id: the JWT audience.
    pub project_id: String,
    /// The admin API key id (`kid`) shown in the portal.
    pub key_id: String,
    /// The admin API private key, PEM (PKCS#1 or PKCS#8 RSA).
    pub private_key_pem: Secret,
    /// Lifetime of each signed admin JWT.
    #[serde(default = "default_jwt_lifetime", with = "humantime_serde")]
    pub jwt_lifetime: Duration,
    /// The login-ID key for email (project config), usually `email`.
    #[serde(default = "default_login_id_key")]
    pub login_id_key: String,
    /// Create users with `setPasswordExpired = true`.
    #[serde(default)]
    pub set_password_expired: bool,
}

fn default_jwt_lifetime() -> Duration {
    Duration::from_secs(300)
}

fn default_login_id_key() -> String {
    "email".into()
}

/// HTTP client settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Timeout of one HTTP request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// TCP+TLS connect timeout.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Total time one operation may take, retries and waits included.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Extra CA bundle (PEM) trusted in addition to the system roots.
    pub ca_bundle: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(15),
            ca_bundle: None,
        }
    }
}

/// Client-side rate limit, concurrency bound and retry policy.
///
/// Kinde documents a requests-per-minute limiter and a concurrency limiter but publishes no
/// numbers; the defaults stay well below what a tenant sees in practice (and Authgear's documented
/// default of 60 requests per minute per IP applies to end-user features, not the Admin API).
/// Keycloak has no admin API limit at all: the same defaults apply (about 1.7 migrations/s at
/// three requests each); raise them for a Keycloak sized for more.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Sustained requests per second.
    pub requests_per_second: u32,
    /// Burst size.
    pub burst: u32,
    /// Requests in flight at once.
    pub max_concurrency: u32,
    /// Attempts per operation (1 = no retry).
    pub max_attempts: u32,
    /// First back-off (doubled each retry, full jitter).
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Largest back-off.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Largest wait honoured from `RateLimit-Reset` / `Retry-After`.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            requests_per_second: 5,
            burst: 10,
            max_concurrency: 4,
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        }
    }
}
