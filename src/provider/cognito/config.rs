//! `[provider.cognito]`: the user pool, the IAM credentials that sign, and the quota budget.
//!
//! ```toml
//! [provider]
//! kind = "cognito"
//! [provider.cognito]
//! region = "eu-west-1"
//! user_pool_id = "eu-west-1_AbCdEf123"
//! access_key_id = "AKIA…"
//! secret_access_key = { env = "AWS_SECRET_ACCESS_KEY" }
//! legacy_id_attribute = "custom:legacy_id"
//! ```

use serde::{Deserialize, Serialize};
use url::Url;

use crate::provider::ProviderError;
use crate::secret::Secret;

/// What dripgate sends as `Username` in `AdminCreateUser`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CognitoUsername {
    /// The (lower-cased) email: pools that sign in by email (`UsernameAttributes = [email]`,
    /// Cognito then keeps a generated UUID as the username) or use emails as usernames.
    #[default]
    Email,
    /// The legacy user id: a stable, caller-chosen username, so a create whose answer was lost
    /// and is retried meets its own user (`UsernameExistsException`) instead of making a second.
    LegacyId,
}

/// How a user is found by email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CognitoLookup {
    /// `ListUsers` with `Filter: email = "…"` (any pool; exact, case-sensitive; `UserList` quota).
    #[default]
    ListUsers,
    /// `AdminGetUser` with the email as `Username` (pools where email is the username or an
    /// alias; case-insensitive where the pool is; the larger `UserRead` quota).
    AdminGetUser,
}

/// What happens to the password under `legacy_hash` (Cognito imports no hash per user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CognitoPasswordTransfer {
    /// `AdminSetUserPassword` with the password the user just proved (the only per-user way).
    #[default]
    Password,
    /// Asks for the legacy hash; Cognito takes none, so every migration falls back to the
    /// password, counted in `dripgate_password_transfer_total{result="fallback_password"}`.
    LegacyHash,
}

/// Cognito's published request-rate quotas (requests per second, per AWS account and region,
/// shared by every pool and every application of the account there). dripgate keeps one token
/// bucket per category; lower them to leave room for the account's other users of Cognito.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CognitoQuotas {
    /// `UserCreation` (`AdminCreateUser`): 50.
    pub user_creation: u32,
    /// `UserAccountRecovery` (`AdminSetUserPassword`, `AdminResetUserPassword`): 30.
    pub user_account_recovery: u32,
    /// `UserRead` (`AdminGetUser`): 120.
    pub user_read: u32,
    /// `UserList` (`ListUsers`): 30.
    pub user_list: u32,
    /// `UserPoolRead` (`DescribeUserPool`, only `provider check`): 15.
    pub user_pool_read: u32,
}

impl Default for CognitoQuotas {
    fn default() -> Self {
        Self {
            user_creation: 50,
            user_account_recovery: 30,
            user_read: 120,
            user_list: 30,
            user_pool_read: 15,
        }
    }
}

/// Amazon Cognito user pool settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CognitoConfig {
    /// AWS region of the pool, e.g. `eu-west-1`.
    pub region: String,
    /// The user pool id, `<region>_<id>`.
    pub user_pool_id: String,
    /// IAM access key id.
    pub access_key_id: String,
    /// IAM secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials (STS); re-read from its file or variable when
    /// Cognito answers `ExpiredTokenException`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
    /// Endpoint override (a VPC endpoint, the fake); default `https://cognito-idp.<region>.amazonaws.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// What `Username` is on create.
    #[serde(default)]
    pub username: CognitoUsername,
    /// How users are found by email.
    #[serde(default)]
    pub lookup: CognitoLookup,
    /// The attribute holding the legacy user id (e.g. `custom:legacy_id`; the pool's schema must
    /// have it). None: not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_id_attribute: Option<String>,
    /// Tell the provider the email is verified on create. Proving the legacy password proves
    /// nothing about the email: set it to true only when the legacy app verified every user's
    /// email. Unset, it follows the legacy preset (`false` for WordPress, Drupal 7 and Django,
    /// which record no verification; docs/PROVIDERS.md) and is `false` with a `check-config`
    /// warning for a generic or custom store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_email_verified: Option<bool>,
    /// `password` (default) or `legacy_hash` (falls back to the password, counted).
    #[serde(default)]
    pub password_transfer: CognitoPasswordTransfer,
    /// Per-category request rates.
    #[serde(default)]
    pub quotas: CognitoQuotas,
}

impl CognitoConfig {
    /// The endpoint URL: the override, or the regional one.
    pub fn endpoint(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://cognito-idp.{}.amazonaws.com/", self.region))
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ProviderError> {
        let bad = |m: String| Err(ProviderError::Config(format!("cognito.{m}")));
        let region_ok = !self.region.is_empty()
            && self
                .region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && self.region.contains('-');
        if !region_ok {
            return bad(format!(
                "region {:?} is not an AWS region name",
                self.region
            ));
        }
        let Some((pool_region, pool_suffix)) = self.user_pool_id.split_once('_') else {
            return bad("user_pool_id must look like <region>_<id>".into());
        };
        if pool_region != self.region
            || pool_suffix.is_empty()
            || !pool_suffix.chars().all(|c| c.is_ascii_alphanumeric())
            || self.user_pool_id.len() > 55
        {
            return bad(format!(
                "user_pool_id {:?} must be <region>_<id> in region {}",
                self.user_pool_id, self.region
            ));
        }
        if self.access_key_id.trim().is_empty() {
            return bad("access_key_id must be set".into());
        }
        if let Some(endpoint) = &self.endpoint {
            let url = Url::parse(endpoint)
                .map_err(|e| ProviderError::Config(format!("cognito.endpoint: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return bad(format!("endpoint {endpoint} must be an http(s) URL"));
            }
        }
        if let Some(a) = &self.legacy_id_attribute {
            let reserved = ["email", "email_verified", "sub", "username"];
            if a.is_empty() || a.chars().count() > 32 || reserved.contains(&a.as_str()) {
                return bad(format!(
                    "legacy_id_attribute {a:?} must be a pool attribute such as custom:legacy_id (1-32 characters)"
                ));
            }
        }
        let q = &self.quotas;
        let all = [
            q.user_creation,
            q.user_account_recovery,
            q.user_read,
            q.user_list,
            q.user_pool_read,
        ];
        if all.contains(&0) {
            return bad("quotas: every category needs at least 1 request per second".into());
        }
        Ok(())
    }
}
