//! `[provider.auth0]`: the tenant, the machine-to-machine application, the database connection
//! users are created in, and Auth0's published rate limit.
//!
//! ```toml
//! [provider]
//! kind = "auth0"
//! [provider.auth0]
//! domain = "mytenant.eu.auth0.com"
//! client_id = "…"
//! client_secret = { env = "AUTH0_CLIENT_SECRET" }
//! connection = "Username-Password-Authentication"
//! ```

use serde::{Deserialize, Serialize};
use url::Url;

use crate::provider::ProviderError;
use crate::secret::Secret;

/// How the password the user proved reaches Auth0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth0PasswordTransfer {
    /// The password itself, over TLS, in the create or update call (Auth0 hashes it; default).
    #[default]
    Password,
    /// Prefer the verified legacy hash. Auth0's Management API has no per-user hash import
    /// (only bulk import jobs), so every transfer falls back to the password, which Auth0
    /// hashes itself; each is counted in `dripgate_password_transfer_total`
    /// (`method="password"`, `result="fallback_password"`).
    LegacyHash,
}

/// Auth0 settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Auth0Config {
    /// The tenant's canonical domain, e.g. `mytenant.eu.auth0.com` (the Management API audience
    /// is `https://{domain}/api/v2/`). Required unless `base_url` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Where requests go: default `https://{domain}`; a custom domain or the fake's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Machine-to-machine application client id.
    pub client_id: String,
    /// Machine-to-machine application client secret.
    pub client_secret: Secret,
    /// Token audience; default `https://{domain}/api/v2/` (or `{base_url}/api/v2/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The database connection users are created in.
    #[serde(default = "default_connection")]
    pub connection: String,
    /// Create users with `email_verified = true`. Proving the legacy password proves nothing
    /// about the email: true only when the legacy app verified every user's email. Unset, it
    /// follows the legacy preset (`check-config` warns for a generic or custom store) and is
    /// `false` when nothing fills it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_email_verified: Option<bool>,
    /// How the password reaches Auth0.
    #[serde(default)]
    pub password_transfer: Auth0PasswordTransfer,
    /// Auth0's Management API rate for the plan (default: free tier, 2 requests per second).
    /// The client uses the lower of this and `[provider.limits] requests_per_second`.
    #[serde(default = "default_rate")]
    pub requests_per_second: u32,
    /// Auth0's burst for the plan (default: free tier, 2). The lower of this and
    /// `[provider.limits] burst` is used.
    #[serde(default = "default_rate")]
    pub burst: u32,
}

fn default_connection() -> String {
    "Username-Password-Authentication".into()
}

/// Auth0's free tier: Management API burst 2, sustained 2 per second.
fn default_rate() -> u32 {
    2
}

impl Auth0Config {
    /// What `email_verified` is sent as: `mark_email_verified`, false when unset.
    pub fn email_verified(&self) -> bool {
        self.mark_email_verified.unwrap_or(false)
    }

    /// Where requests go, without a trailing slash.
    pub fn base_url(&self) -> String {
        match (&self.base_url, &self.domain) {
            (Some(base), _) => base.trim_end_matches('/').to_string(),
            (None, Some(domain)) => format!("https://{}", domain.trim_end_matches('/')),
            (None, None) => String::new(),
        }
    }

    /// The token audience: configured, else the Management API of `domain` (or `base_url`).
    pub fn audience(&self) -> String {
        if let Some(a) = &self.audience {
            return a.clone();
        }
        match &self.domain {
            Some(domain) => format!("https://{}/api/v2/", domain.trim_end_matches('/')),
            None => format!("{}/api/v2/", self.base_url()),
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ProviderError> {
        let bad = |m: &str| Err(ProviderError::Config(format!("auth0.{m}")));
        if self.domain.is_none() && self.base_url.is_none() {
            return bad("domain (or base_url) must be set");
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty() || domain.contains('/') || domain.contains(':'))
        {
            return bad("domain is a host name such as mytenant.eu.auth0.com (no scheme, no path)");
        }
        let url = Url::parse(&self.base_url())
            .map_err(|e| ProviderError::Config(format!("auth0 base URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return bad("base_url must be an http(s) URL");
        }
        if self.client_id.is_empty() {
            return bad("client_id must be set");
        }
        if self.connection.is_empty() {
            return bad("connection must name the database connection");
        }
        if self.requests_per_second == 0 || self.burst == 0 {
            return bad("requests_per_second and burst must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Auth0Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_follow_the_domain_and_the_free_tier() {
        let c = parse("domain = \"t.eu.auth0.com\"\nclient_id = \"id\"\nclient_secret = \"s\"\n");
        c.validate().unwrap();
        assert_eq!(c.base_url(), "https://t.eu.auth0.com");
        assert_eq!(c.audience(), "https://t.eu.auth0.com/api/v2/");
        assert_eq!(c.connection, "Username-Password-Authentication");
        assert_eq!((c.requests_per_second, c.burst), (2, 2));
        assert_eq!(c.mark_email_verified, None);
        assert!(!c.email_verified());
        assert_eq!(c.password_transfer, Auth0PasswordTransfer::Password);
    }

    #[test]
    fn a_custom_domain_keeps_the_canonical_audience() {
        let c = parse(
            "domain = \"t.auth0.com\"\nbase_url = \"https://login.example.com/\"\nclient_id = \"id\"\nclient_secret = \"s\"\n",
        );
        assert_eq!(c.base_url(), "https://login.example.com");
        assert_eq!(c.audience(), "https://t.auth0.com/api/v2/");
    }

    #[test]
    fn invalid_settings_are_refused() {
        for text in [
            "client_id = \"id\"\nclient_secret = \"s\"\n",
            "domain = \"https://t.auth0.com\"\nclient_id = \"id\"\nclient_secret = \"s\"\n",
            "domain = \"t.auth0.com\"\nclient_id = \"\"\nclient_secret = \"s\"\n",
            "domain = \"t.auth0.com\"\nclient_id = \"i\"\nclient_secret = \"s\"\nconnection = \"\"\n",
            "domain = \"t.auth0.com\"\nclient_id = \"i\"\nclient_secret = \"s\"\nburst = 0\n",
        ] {
            assert!(parse(text).validate().is_err(), "{text}");
        }
        assert!(
            toml::from_str::<Auth0Config>(
                "domain = \"t\"\nclient_id = \"i\"\nclient_secret = \"s\"\nscope = \"x\"\n"
            )
            .is_err()
        );
    }
}
