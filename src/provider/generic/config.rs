//! `[provider.http_provider]`: the generic HTTP provider's endpoint, signing key and what the
//! endpoint implements.
//!
//! ```toml
//! [provider]
//! kind = "http"
//! [provider.http_provider]
//! base_url = "https://idp.internal.example/dripgate/v1"
//! key_id = "2026-01"
//! signing_key = { env = "DRIPGATE_HTTP_PROVIDER_KEY" }
//! require_password_change = true
//! import_hash_methods = ["bcrypt", "pbkdf2"]
//! password_transfer = "legacy_hash"
//! ```

use serde::{Deserialize, Serialize};

use crate::provider::{HashingMethod, ProviderError};
use crate::secret::Secret;

/// Shortest signing key accepted (bytes of the configured string).
pub const MIN_KEY_LEN: usize = 32;

/// The hashing methods the contract has (`HashMethod` in the OpenAPI file).
pub const CONTRACT_METHODS: [HashingMethod; 6] = [
    HashingMethod::Bcrypt,
    HashingMethod::Crypt,
    HashingMethod::Md5,
    HashingMethod::Sha256,
    HashingMethod::Wordpress,
    HashingMethod::Pbkdf2,
];

/// How the endpoint receives the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpPasswordTransfer {
    /// The plaintext the user just proved, in the create call (default).
    #[default]
    Plaintext,
    /// The verified legacy hash where the endpoint imports its method (create without a
    /// password, then `PUT /users/{id}/password`), else the plaintext.
    LegacyHash,
}

/// The generic HTTP provider's settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenericHttpConfig {
    /// The contract's base URL; its path is part of every signed request target.
    pub base_url: String,
    /// Sent as `X-Dripgate-Key-Id`.
    pub key_id: String,
    /// The HMAC-SHA256 key (its UTF-8 bytes, at least 32), shared with the endpoint.
    pub signing_key: Secret,
    /// The endpoint implements `PUT /users/{id}/password-change-required`.
    #[serde(default)]
    pub require_password_change: bool,
    /// `PasswordHash.method` values the endpoint imports (empty: no hash import).
    #[serde(default)]
    pub import_hash_methods: Vec<String>,
    /// How the password is sent.
    #[serde(default)]
    pub password_transfer: HttpPasswordTransfer,
    /// Tell the provider the email is verified on create. Proving the legacy password proves
    /// nothing about the email: set it to true only when the legacy app verified every user's
    /// email. Unset, it follows the legacy preset (`false` for WordPress, Drupal 7 and Django,
    /// which record no verification; docs/PROVIDERS.md) and is `false` with a `check-config`
    /// warning for a generic or custom store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_email_verified: Option<bool>,
}

fn config_error(text: String) -> ProviderError {
    ProviderError::Config(format!("http_provider: {text}"))
}

impl GenericHttpConfig {
    /// Checks what serde cannot: the URL, the key id's shape, the key's length, the methods.
    pub fn validate(&self) -> Result<(), ProviderError> {
        super::super::config::check_base_url(&self.base_url)?;
        let id_ok = (1..=64).contains(&self.key_id.len())
            && self
                .key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Err(config_error(
                "key_id must be 1 to 64 characters of A-Z a-z 0-9 . _ -".into(),
            ));
        }
        if self.signing_key.expose().len() < MIN_KEY_LEN {
            return Err(config_error(format!(
                "signing_key must be at least {MIN_KEY_LEN} bytes (e.g. `openssl rand -hex 32`)"
            )));
        }
        let methods = self.import_methods()?;
        if self.password_transfer == HttpPasswordTransfer::LegacyHash && methods.is_empty() {
            return Err(config_error(
                "password_transfer = \"legacy_hash\" needs import_hash_methods".into(),
            ));
        }
        Ok(())
    }

    /// `import_hash_methods` as methods, in the contract's order, each once.
    pub fn import_methods(&self) -> Result<Vec<HashingMethod>, ProviderError> {
        for name in &self.import_hash_methods {
            if !CONTRACT_METHODS.iter().any(|m| m.as_str() == name) {
                return Err(config_error(format!(
                    "import_hash_methods: {name:?} is not one of {}",
                    CONTRACT_METHODS.map(HashingMethod::as_str).join(", ")
                )));
            }
        }
        Ok(CONTRACT_METHODS
            .into_iter()
            .filter(|m| self.import_hash_methods.iter().any(|n| n == m.as_str()))
            .collect())
    }
}
