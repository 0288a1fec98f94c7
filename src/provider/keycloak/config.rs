//! `[provider.keycloak]`: the realm, the service-account client, and how passwords travel.
//!
//! ```toml
//! [provider]
//! kind = "keycloak"
//! [provider.keycloak]
//! base_url = "https://sso.example.com"      # Keycloak ≤ 16 (WildFly): "https://sso.example.com/auth"
//! realm = "customers"
//! client_id = "dripgate"
//! client_secret = { env = "KEYCLOAK_CLIENT_SECRET" }
//! ```

use serde::{Deserialize, Serialize};

use crate::provider::ProviderError;
use crate::secret::Secret;

/// How Keycloak receives the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeycloakPasswordTransfer {
    /// `PUT …/reset-password` with the password the user just proved; Keycloak hashes it with
    /// the realm's algorithm and checks it against the realm's password policy (default).
    #[default]
    Plaintext,
    /// The verified legacy hash itself as a stored credential (`secretData`/`credentialData`)
    /// where Keycloak has a provider for its algorithm (PBKDF2-SHA1/256/512, argon2 when
    /// `import_argon2`); the password otherwise. Imported hashes skip the password policy.
    LegacyHash,
}

/// Keycloak settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeycloakConfig {
    /// The server's address; include `/auth` for Keycloak ≤ 16 (WildFly distribution).
    pub base_url: String,
    /// The realm the users live in (its name, not its id).
    pub realm: String,
    /// The confidential client with "Service accounts roles" on; its service account needs the
    /// `realm-management` roles `manage-users` and `view-users`.
    pub client_id: String,
    /// That client's secret (client authentication "Client Id and Secret").
    pub client_secret: Secret,
    /// The realm the client lives in, when it is not `realm` (e.g. `master`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_realm: Option<String>,
    /// How the password is sent.
    #[serde(default)]
    pub password_transfer: KeycloakPasswordTransfer,
    /// Send argon2 legacy hashes as argon2 credentials (Keycloak ≥ 24). Off by default: importing
    /// them has been reported failing (keycloak/keycloak#38177); try it on your version first.
    #[serde(default)]
    pub import_argon2: bool,
    /// The user attribute that keeps the legacy id (`""`: not stored). Keycloak ≥ 24 drops
    /// attributes its user profile does not declare unless "unmanaged attributes" are enabled;
    /// `dripgate provider check` says which applies.
    #[serde(default = "default_legacy_id_attribute")]
    pub legacy_id_attribute: String,
    /// Tell the provider the email is verified on create. Proving the legacy password proves
    /// nothing about the email: set it to true only when the legacy app verified every user's
    /// email. Unset, it follows the legacy preset (`false` for WordPress, Drupal 7 and Django,
    /// which record no verification; docs/PROVIDERS.md) and is `false` with a `check-config`
    /// warning for a generic or custom store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_email_verified: Option<bool>,
    /// Give the password as temporary (`temporary: true`): the user must choose a new one at
    /// the first Keycloak sign-in.
    #[serde(default)]
    pub temporary_password: bool,
}

fn default_legacy_id_attribute() -> String {
    "dripgate_legacy_id".into()
}

impl KeycloakConfig {
    /// The realm whose token endpoint issues the client's token.
    pub fn token_realm(&self) -> &str {
        self.token_realm.as_deref().unwrap_or(&self.realm)
    }

    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), ProviderError> {
        super::super::config::check_base_url(&self.base_url)?;
        for (key, realm) in [
            ("realm", self.realm.as_str()),
            ("token_realm", self.token_realm()),
        ] {
            if realm.is_empty() || realm.contains('/') {
                return Err(ProviderError::Config(format!(
                    "keycloak.{key} must be a realm name (non-empty, no '/')"
                )));
            }
        }
        if self.client_id.is_empty() {
            return Err(ProviderError::Config(
                "keycloak.client_id must be set".into(),
            ));
        }
        if self.legacy_id_attribute.len() > 255 {
            return Err(ProviderError::Config(
                "keycloak.legacy_id_attribute is longer than 255 characters".into(),
            ));
        }
        Ok(())
    }
}
