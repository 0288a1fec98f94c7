//! Amazon Cognito user pools client (model: botocore `cognito-idp` 2016-04-18,
//! `tests/provider_specs/cognito-idp-service-2.json`).
//!
//! - AWS JSON 1.1: `POST /` with `X-Amz-Target: AWSCognitoIdentityProviderService.<Op>`,
//!   signed with Signature Version 4 (service `cognito-idp`; static keys, optional session token).
//! - Find: `ListUsers` (`Filter: email = "…"`) or `AdminGetUser` (email as username/alias);
//!   create: `AdminCreateUser` (`MessageAction: SUPPRESS`, no password: Cognito leaves the user
//!   in `FORCE_CHANGE_PASSWORD`); set password: `AdminSetUserPassword` (`Permanent: true`), so
//!   creating takes two calls and uses the ledger's `created` state; require a change:
//!   `AdminResetUserPassword`.
//! - Errors: `{"__type": "<Exception>", "message": …}`, mostly HTTP 400; throttling is
//!   `TooManyRequestsException`/`LimitExceededException` with no wait header.
//!
//! `transport` signs, sends, re-reads an expired session token and maps errors; `wire` holds
//! the bodies; `check` is `provider check`.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use url::Url;
use zeroize::Zeroizing;

use super::config::{HttpConfig, LimitsConfig};
use super::error::clip;
use super::http::build_client;
use super::limit::{Idempotency, Limiter};
use super::{
    Capabilities, CheckReport, CreatedUser, ImportedHash, NewUser, Operation, Password,
    PasswordState, Provider, ProviderError, ProviderKind, ProviderMetrics, ProviderUser,
    ProviderUserId, UserDetails,
};

mod check;
pub mod config;
mod transport;
mod wire;

pub use config::{
    CognitoConfig, CognitoLookup, CognitoPasswordTransfer, CognitoQuotas, CognitoUsername,
};
pub use transport::{CONTENT_TYPE, SERVICE, TARGET_PREFIX};

use transport::{Category, Keys, Quotas, plain};
use wire::{
    AdminCreateUser, AdminCreateUserResponse, AdminGetUserResponse, AdminSetUserPassword,
    Attribute, AwsError, ListUsers, ListUsersResponse, UserRef, attribute, filter_value,
};

const KIND: ProviderKind = ProviderKind::Cognito;

/// The longest `ListUsers` filter the model allows (`UserFilterType.max`).
const MAX_FILTER: usize = 256;
/// The longest password the model allows (`PasswordType.max`).
const MAX_PASSWORD: usize = 256;

/// The Cognito client.
pub struct CognitoClient {
    http: reqwest::Client,
    endpoint: Url,
    config: CognitoConfig,
    limiter: Limiter,
    quotas: Quotas,
    keys: Keys,
}

impl std::fmt::Debug for CognitoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CognitoClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("user_pool_id", &self.config.user_pool_id)
            .field("access_key_id", &self.config.access_key_id)
            .finish_non_exhaustive()
    }
}

fn invalid(op: Operation, status: Option<u16>, detail: impl Into<String>) -> ProviderError {
    ProviderError::Invalid {
        provider: KIND,
        operation: op,
        status,
        detail: detail.into(),
    }
}

fn encode<T: Serialize>(body: &T) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    serde_json::to_vec(body)
        .map(Zeroizing::new)
        .map_err(|e| ProviderError::Config(format!("encoding: {e}")))
}

/// `UsernameExistsException` / `AliasExistsException` on create: the user is there already.
fn duplicate(op: Operation, e: &AwsError) -> Option<ProviderError> {
    matches!(
        e.kind.as_str(),
        "UsernameExistsException" | "AliasExistsException"
    )
    .then_some(ProviderError::AlreadyExists {
        provider: KIND,
        operation: op,
        existing_id: None,
    })
}

/// The pool's password policy (or history) refused the password.
fn refused_password(op: Operation, e: &AwsError) -> Option<ProviderError> {
    matches!(
        e.kind.as_str(),
        "InvalidPasswordException" | "PasswordHistoryPolicyViolationException"
    )
    .then(|| ProviderError::PasswordRejected {
        provider: KIND,
        operation: op,
        reasons: [e.kind.clone(), e.message.clone()]
            .into_iter()
            .filter(|r| !r.is_empty())
            .map(|r| clip(&r))
            .collect(),
    })
}

/// `UserNotFoundException` on a lookup is an answer ("no such user"), not an error.
fn not_found_is_none(op: Operation, e: &AwsError) -> Option<ProviderError> {
    (e.kind == "UserNotFoundException").then_some(ProviderError::NotFound {
        provider: KIND,
        operation: op,
    })
}

impl CognitoClient {
    /// Builds the client (no network traffic until the first call). `[provider.limits]` gives
    /// the concurrency bound, retries and back-off; the request rate is per quota category.
    pub fn new(
        config: &CognitoConfig,
        http: &HttpConfig,
        limits: &LimitsConfig,
        metrics: Option<ProviderMetrics>,
    ) -> Result<Self, ProviderError> {
        config.validate()?;
        let endpoint = Url::parse(&config.endpoint())
            .map_err(|e| ProviderError::Config(format!("cognito endpoint: {e}")))?;
        let q = &config.quotas;
        let total = q.user_creation + q.user_account_recovery + q.user_read + q.user_list;
        let limits = LimitsConfig {
            requests_per_second: total.max(1),
            burst: total.max(1),
            ..limits.clone()
        };
        Ok(Self {
            http: build_client(http)?,
            endpoint,
            quotas: Quotas::new(&config.quotas),
            keys: Keys::new(config),
            limiter: Limiter::new(KIND, &limits, http.deadline, metrics),
            config: config.clone(),
        })
    }

    fn pool(&self) -> &str {
        &self.config.user_pool_id
    }

    fn to_user(&self, username: Option<String>, attributes: &[Attribute]) -> Option<ProviderUser> {
        let username = username?;
        let legacy_id = match (&self.config.legacy_id_attribute, self.config.username) {
            (Some(name), _) => attribute(attributes, name).map(str::to_string),
            (None, CognitoUsername::LegacyId) => Some(username.clone()),
            (None, CognitoUsername::Email) => None,
        };
        Some(ProviderUser {
            id: ProviderUserId(username),
            email: attribute(attributes, "email").map(str::to_string),
            legacy_id,
        })
    }

    async fn find(&self, email: &str) -> Result<Option<ProviderUser>, ProviderError> {
        let op = Operation::FindUser;
        let normalized = super::normalize_email(email);
        if normalized.is_empty() || normalized.chars().any(char::is_control) {
            return Err(invalid(
                op,
                None,
                "email is empty or has control characters",
            ));
        }
        match self.config.lookup {
            CognitoLookup::AdminGetUser => self.get_user(op, &normalized).await,
            CognitoLookup::ListUsers => {
                // `=` compares exactly (case-sensitive): dripgate creates lower-case emails; a
                // user made elsewhere with the legacy spelling is found by the second query.
                if let Some(user) = self.list_by_email(&normalized).await? {
                    return Ok(Some(user));
                }
                let as_given = email.trim();
                if as_given != normalized {
                    return self.list_by_email(as_given).await;
                }
                Ok(None)
            }
        }
    }

    async fn list_by_email(&self, email: &str) -> Result<Option<ProviderUser>, ProviderError> {
        let op = Operation::FindUser;
        let filter = format!("email = \"{}\"", filter_value(email));
        if filter.chars().count() > MAX_FILTER {
            return Err(invalid(
                op,
                None,
                "email too long for a ListUsers filter (256 characters)",
            ));
        }
        let body = encode(&ListUsers {
            user_pool_id: self.pool(),
            filter: Some(filter),
            limit: 2,
        })?;
        let answer = self
            .call(
                op,
                "ListUsers",
                Category::List,
                Idempotency::Idempotent,
                &body,
                plain,
            )
            .await?;
        let parsed: ListUsersResponse = serde_json::from_slice(&answer.body)
            .map_err(|e| invalid(op, Some(200), format!("ListUsers response: {e}")))?;
        let mut matching = parsed
            .users
            .into_iter()
            .filter(|u| attribute(&u.attributes, "email") == Some(email));
        let first = matching.next();
        if matching.next().is_some() {
            tracing::warn!(
                provider = "cognito",
                "more than one pool user has this email; using the first"
            );
        }
        Ok(first.and_then(|u| self.to_user(u.username, &u.attributes)))
    }

    async fn get_user(
        &self,
        op: Operation,
        username: &str,
    ) -> Result<Option<ProviderUser>, ProviderError> {
        Ok(self.admin_get_user(op, username).await?.map(|d| d.user))
    }

    /// `AdminGetUser`; the password state from `UserStatus`: `CONFIRMED` and `UNCONFIRMED` have
    /// a password of their own, `FORCE_CHANGE_PASSWORD` (created, never given one: the ledger's
    /// `created`), `RESET_REQUIRED` and `EXTERNAL_PROVIDER` have none usable, others are unknown.
    async fn admin_get_user(
        &self,
        op: Operation,
        username: &str,
    ) -> Result<Option<UserDetails>, ProviderError> {
        let body = encode(&UserRef {
            user_pool_id: self.pool(),
            username,
        })?;
        let result = self
            .call(
                op,
                "AdminGetUser",
                Category::Read,
                Idempotency::Idempotent,
                &body,
                not_found_is_none,
            )
            .await;
        let answer = match result {
            Ok(a) => a,
            Err(ProviderError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let parsed: AdminGetUserResponse = serde_json::from_slice(&answer.body)
            .map_err(|e| invalid(op, Some(200), format!("AdminGetUser response: {e}")))?;
        let password = match parsed.user_status.as_deref() {
            Some("CONFIRMED" | "UNCONFIRMED") => PasswordState::Set,
            Some("FORCE_CHANGE_PASSWORD" | "RESET_REQUIRED" | "EXTERNAL_PROVIDER") => {
                PasswordState::NotSet
            }
            _ => PasswordState::Unknown,
        };
        Ok(self
            .to_user(parsed.username, &parsed.user_attributes)
            .map(|user| UserDetails { user, password }))
    }

    fn new_attributes(&self, user: &NewUser, email: &str) -> Vec<Attribute> {
        let mut attributes = vec![Attribute {
            name: "email".into(),
            value: Some(email.to_string()),
        }];
        if self.config.mark_email_verified.unwrap_or(false) {
            attributes.push(Attribute {
                name: "email_verified".into(),
                value: Some("true".into()),
            });
        }
        for (name, value) in [
            ("given_name", &user.given_name),
            ("family_name", &user.family_name),
        ] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                attributes.push(Attribute {
                    name: name.into(),
                    value: Some(v.clone()),
                });
            }
        }
        if let (Some(name), Some(id)) = (&self.config.legacy_id_attribute, &user.legacy_id) {
            attributes.push(Attribute {
                name: name.clone(),
                value: Some(id.clone()),
            });
        }
        attributes
    }

    async fn create(&self, user: &NewUser) -> Result<CreatedUser, ProviderError> {
        let op = Operation::CreateUser;
        let email = super::normalize_email(&user.email);
        let username = match self.config.username {
            CognitoUsername::Email => email.clone(),
            CognitoUsername::LegacyId => user
                .legacy_id
                .clone()
                .filter(|id| !id.is_empty())
                .ok_or_else(|| {
                    invalid(
                        op,
                        None,
                        "username = \"legacy_id\" but the user has no legacy id",
                    )
                })?,
        };
        let body = encode(&AdminCreateUser {
            user_pool_id: self.pool(),
            username: &username,
            user_attributes: self.new_attributes(user, &email),
            message_action: "SUPPRESS",
        })?;
        let result = self
            .call(
                op,
                "AdminCreateUser",
                Category::Creation,
                Idempotency::NotIdempotent,
                &body,
                duplicate,
            )
            .await;
        match result {
            Ok(answer) => {
                let parsed: AdminCreateUserResponse = serde_json::from_slice(&answer.body)
                    .map_err(|e| {
                        invalid(op, Some(200), format!("AdminCreateUser response: {e}"))
                    })?;
                let id = parsed.user.and_then(|u| u.username).ok_or_else(|| {
                    invalid(
                        op,
                        Some(200),
                        "AdminCreateUser response has no User.Username",
                    )
                })?;
                Ok(CreatedUser {
                    id: ProviderUserId(id),
                    password_set: false,
                })
            }
            Err(ProviderError::AlreadyExists { .. }) => {
                // Our own username (a retried create), else the email (an alias clash).
                let mine = match self.config.username {
                    CognitoUsername::LegacyId => self.get_user(op, &username).await?,
                    CognitoUsername::Email => None,
                };
                let existing = match mine {
                    Some(user) => Some(user),
                    None => self.find(&email).await?,
                };
                Err(ProviderError::AlreadyExists {
                    provider: KIND,
                    operation: op,
                    existing_id: existing.map(|u| u.id),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn set_password_now(
        &self,
        id: &ProviderUserId,
        password: Password<'_>,
    ) -> Result<(), ProviderError> {
        let op = Operation::SetPassword;
        let rejected = |why: &str| ProviderError::PasswordRejected {
            provider: KIND,
            operation: op,
            reasons: vec![why.to_string()],
        };
        // The model's `PasswordType` (at most 256, at least one non-space): refused here, unsent.
        let text = password
            .as_str()
            .ok_or_else(|| rejected("password is not UTF-8"))?;
        if text.chars().count() > MAX_PASSWORD {
            return Err(rejected("password longer than 256 characters"));
        }
        if text.trim().is_empty() {
            return Err(rejected("password is empty or only spaces"));
        }
        let body = encode(&AdminSetUserPassword {
            user_pool_id: self.pool(),
            username: id.as_str(),
            password: text,
            permanent: true,
        })?;
        self.call(
            op,
            "AdminSetUserPassword",
            Category::AccountRecovery,
            Idempotency::Idempotent,
            &body,
            refused_password,
        )
        .await
        .map(drop)
    }

    async fn reset_password(&self, id: &ProviderUserId) -> Result<(), ProviderError> {
        let op = Operation::RequirePasswordChange;
        let body = encode(&UserRef {
            user_pool_id: self.pool(),
            username: id.as_str(),
        })?;
        self.call(
            op,
            "AdminResetUserPassword",
            Category::AccountRecovery,
            Idempotency::Idempotent,
            &body,
            plain,
        )
        .await
        .map(drop)
    }
}

impl Provider for CognitoClient {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create_with_password: false,
            imports: &[],
            prefers_legacy_hash: self.config.password_transfer
                == CognitoPasswordTransfer::LegacyHash,
            stores_legacy_id: self.config.legacy_id_attribute.is_some()
                || self.config.username == CognitoUsername::LegacyId,
        }
    }

    fn find_user_by_email<'a>(
        &'a self,
        email: &'a str,
    ) -> BoxFuture<'a, Result<Option<ProviderUser>, ProviderError>> {
        self.find(email).boxed()
    }

    fn create_user<'a>(
        &'a self,
        user: &'a NewUser,
        _password: Option<Password<'a>>,
    ) -> BoxFuture<'a, Result<CreatedUser, ProviderError>> {
        self.create(user).boxed()
    }

    fn set_password<'a>(
        &'a self,
        id: &'a ProviderUserId,
        password: Password<'a>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.set_password_now(id, password).boxed()
    }

    fn require_password_change<'a>(
        &'a self,
        id: &'a ProviderUserId,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.reset_password(id).boxed()
    }

    fn import_legacy_hash<'a>(
        &'a self,
        _id: &'a ProviderUserId,
        _hash: &'a ImportedHash,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        async {
            Err(ProviderError::Unsupported {
                provider: KIND,
                operation: Operation::ImportHash,
                detail: "Cognito imports password hashes only through CSV import jobs".into(),
            })
        }
        .boxed()
    }

    fn check_credentials(&self) -> BoxFuture<'_, CheckReport> {
        self.check().boxed()
    }

    fn get_user<'a>(
        &'a self,
        id: &'a ProviderUserId,
    ) -> BoxFuture<'a, Result<Option<UserDetails>, ProviderError>> {
        self.admin_get_user(Operation::GetUser, id.as_str()).boxed()
    }
}
