//! Auth0 Management API v2 client (spec: `shared/specs/next-providers/auth0/management-api-oas.json`,
//! copied to `tests/provider_specs/auth0-management-api-oas.json`).
//!
//! - Token: `POST /oauth/token` (form, `client_credentials`, `audience = https://{domain}/api/v2/`),
//!   cached, refreshed once on 401.
//! - Find: `GET /api/v2/users-by-email?email=` — **case-sensitive**; database connections store
//!   the email lower-cased, so the lower-cased email is sent and answers are compared
//!   case-insensitively; only users with an identity in the configured connection count.
//! - Create: `POST /api/v2/users` (201) with `connection`, `email`, `password`, `email_verified`,
//!   `verify_email: false`, a stable `user_id` derived from the legacy id, and
//!   `app_metadata.dripgate_legacy_id`; the password is set in the same call. 409 → looked up.
//! - Set password: `PATCH /api/v2/users/{id}` `{password, connection}`.
//! - Require a change: Auth0 has no flag; `app_metadata.dripgate_password_change_required = true`
//!   for a post-login Action to enforce.
//! - No per-user hash import (bulk import jobs only).

use std::sync::Mutex;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::json;

use super::config::{HttpConfig, LimitsConfig};
use super::http::build_client;
use super::limit::{Idempotency, Limiter};
use super::token::TokenCache;
use super::{
    Capabilities, CheckReport, CreatedUser, ImportedHash, NewUser, Operation, Password,
    PasswordState, Provider, ProviderError, ProviderKind, ProviderMetrics, ProviderUser,
    ProviderUserId, UserDetails,
};

mod check;
mod client;
pub mod config;
pub mod wire;

pub use config::{Auth0Config, Auth0PasswordTransfer};
pub use wire::stable_user_id;

use wire::{CHANGE_REQUIRED_KEY, CreateUser, LEGACY_ID_KEY, SetAppMetadata, SetPassword, User};

const KIND: ProviderKind = ProviderKind::Auth0;

/// The scopes the migration needs (`read:users` to find, `create:users`, `update:users`).
pub const REQUIRED_SCOPES: [&str; 3] = ["read:users", "create:users", "update:users"];

/// The Auth0 client.
pub struct Auth0Client {
    http: reqwest::Client,
    base: String,
    config: Auth0Config,
    limiter: Limiter,
    tokens: TokenCache,
    /// The scopes the last token response granted (for `provider check`).
    granted: Mutex<Option<String>>,
}

impl std::fmt::Debug for Auth0Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth0Client")
            .field("base", &self.base)
            .field("client_id", &self.config.client_id)
            .field("connection", &self.config.connection)
            .finish_non_exhaustive()
    }
}

fn invalid_body(op: Operation, what: &str, e: &dyn std::fmt::Display) -> ProviderError {
    ProviderError::Invalid {
        provider: KIND,
        operation: op,
        status: None,
        detail: format!("{what}: {e}"),
    }
}

fn encode<T: serde::Serialize>(body: &T) -> Result<zeroize::Zeroizing<Vec<u8>>, ProviderError> {
    serde_json::to_vec(body)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| ProviderError::Config(format!("encoding: {e}")))
}

/// The password as JSON text: Auth0 takes a string, so a password that is not UTF-8 cannot be
/// given to it (the user stays on legacy as for a policy refusal).
fn password_text<'a>(op: Operation, password: Password<'a>) -> Result<&'a str, ProviderError> {
    password
        .as_str()
        .ok_or_else(|| ProviderError::PasswordRejected {
            provider: KIND,
            operation: op,
            reasons: vec!["NotUtf8".into()],
        })
}

/// A profile name as the spec allows it (1–150 characters), else none.
fn name(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty() && v.chars().count() <= 150)
}

impl Auth0Client {
    /// Builds the client (no network traffic until the first call). The token bucket runs at
    /// the lower of `[provider.limits]` and the Auth0 plan's rate in `[provider.auth0]`.
    pub fn new(
        config: &Auth0Config,
        http: &HttpConfig,
        limits: &LimitsConfig,
        metrics: Option<ProviderMetrics>,
    ) -> Result<Self, ProviderError> {
        config.validate()?;
        let mut limits = limits.clone();
        limits.requests_per_second = limits.requests_per_second.min(config.requests_per_second);
        limits.burst = limits.burst.min(config.burst);
        Ok(Self {
            http: build_client(http)?,
            base: config.base_url(),
            config: config.clone(),
            limiter: Limiter::new(KIND, &limits, http.deadline, metrics),
            tokens: TokenCache::new(),
            granted: Mutex::new(None),
        })
    }

    fn listed(&self, user: User) -> Option<ProviderUser> {
        let legacy_id = user.legacy_id();
        Some(ProviderUser {
            id: ProviderUserId(user.user_id?),
            email: user.email,
            legacy_id,
        })
    }

    async fn find(&self, email: &str) -> Result<Option<ProviderUser>, ProviderError> {
        let op = Operation::FindUser;
        let email = super::normalize_email(email);
        if email.is_empty() {
            return Err(invalid_body(op, "email", &"empty"));
        }
        let mut url = self.url("/api/v2/users-by-email")?;
        url.query_pairs_mut().append_pair("email", &email);
        let answer = self
            .call(op, Idempotency::Idempotent, reqwest::Method::GET, url, None)
            .await?;
        let users: Vec<User> = serde_json::from_slice(&answer.body)
            .map_err(|e| invalid_body(op, "users-by-email response", &e))?;
        Ok(users
            .into_iter()
            .filter(|u| {
                u.in_connection(&self.config.connection)
                    && u.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(&email))
            })
            .find_map(|u| self.listed(u)))
    }

    /// `GET /api/v2/users/{id}`; `None` on 404.
    async fn fetch_user(&self, id: &str) -> Result<Option<User>, ProviderError> {
        let op = Operation::FindUser;
        let url = self.user_url(id)?;
        match self
            .call(op, Idempotency::Idempotent, reqwest::Method::GET, url, None)
            .await
        {
            Ok(answer) => serde_json::from_slice(&answer.body)
                .map(Some)
                .map_err(|e| invalid_body(op, "user response", &e)),
            Err(ProviderError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The user read back for reconciliation. Auth0's user profile does not say whether a
    /// password is set, so the password is `Unknown`.
    async fn details(&self, id: &ProviderUserId) -> Result<Option<UserDetails>, ProviderError> {
        let user = self.fetch_user(id.as_str()).await?;
        Ok(user.and_then(|u| self.listed(u)).map(|user| UserDetails {
            user,
            password: PasswordState::Unknown,
        }))
    }

    async fn create(
        &self,
        user: &NewUser,
        password: Option<Password<'_>>,
    ) -> Result<CreatedUser, ProviderError> {
        let op = Operation::CreateUser;
        let password = password.ok_or_else(|| ProviderError::Unsupported {
            provider: KIND,
            operation: op,
            detail: "Auth0 creates database-connection users with their password".into(),
        })?;
        let email = super::normalize_email(&user.email);
        let user_id = user.legacy_id.as_deref().map(stable_user_id);
        let body = encode(&CreateUser {
            connection: &self.config.connection,
            email: &email,
            password: password_text(op, password)?,
            email_verified: self.config.email_verified(),
            verify_email: false,
            user_id: user_id.as_deref(),
            given_name: name(user.given_name.as_deref()),
            family_name: name(user.family_name.as_deref()),
            app_metadata: user
                .legacy_id
                .as_ref()
                .map(|id| json!({ LEGACY_ID_KEY: id })),
        })?;
        // With a caller-chosen user_id a resent create cannot make a second user (409), so
        // transient failures are retried like reads; without one, only when surely not sent.
        let idempotency = if user_id.is_some() {
            Idempotency::Idempotent
        } else {
            Idempotency::NotIdempotent
        };
        let url = self.url("/api/v2/users")?;
        match self
            .call(op, idempotency, reqwest::Method::POST, url, Some(&body))
            .await
        {
            Ok(answer) => {
                let created: User = serde_json::from_slice(&answer.body)
                    .map_err(|e| invalid_body(op, "create response", &e))?;
                let id = created
                    .user_id
                    .ok_or_else(|| invalid_body(op, "create response", &"no user_id"))?;
                Ok(CreatedUser {
                    id: ProviderUserId(id),
                    password_set: true,
                })
            }
            Err(ProviderError::AlreadyExists { .. }) => {
                Err(self.existing(op, &email, user_id.as_deref()).await)
            }
            Err(e) => Err(e),
        }
    }

    /// After a 409: the user with this email in the connection, else the one with the stable
    /// id (an earlier attempt of this create whose answer was lost).
    async fn existing(&self, op: Operation, email: &str, user_id: Option<&str>) -> ProviderError {
        let mut found = self.find(email).await.ok().flatten();
        if found.is_none()
            && let Some(id) = user_id
        {
            found = self
                .fetch_user(&format!("auth0|{id}"))
                .await
                .ok()
                .flatten()
                .and_then(|u| self.listed(u));
        }
        ProviderError::AlreadyExists {
            provider: KIND,
            operation: op,
            existing_id: found.map(|u| u.id),
        }
    }

    async fn set_password_now(
        &self,
        id: &ProviderUserId,
        password: Password<'_>,
    ) -> Result<(), ProviderError> {
        let op = Operation::SetPassword;
        let body = encode(&SetPassword {
            password: password_text(op, password)?,
            connection: &self.config.connection,
        })?;
        let url = self.user_url(id.as_str())?;
        self.call(
            op,
            Idempotency::Idempotent,
            reqwest::Method::PATCH,
            url,
            Some(&body),
        )
        .await
        .map(drop)
    }

    async fn mark_change_required(&self, id: &ProviderUserId) -> Result<(), ProviderError> {
        let op = Operation::RequirePasswordChange;
        let body = encode(&SetAppMetadata {
            app_metadata: json!({ CHANGE_REQUIRED_KEY: true }),
        })?;
        let url = self.user_url(id.as_str())?;
        self.call(
            op,
            Idempotency::Idempotent,
            reqwest::Method::PATCH,
            url,
            Some(&body),
        )
        .await
        .map(drop)
    }
}

impl Provider for Auth0Client {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create_with_password: true,
            imports: &[],
            prefers_legacy_hash: self.config.password_transfer == Auth0PasswordTransfer::LegacyHash,
            stores_legacy_id: true,
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
        password: Option<Password<'a>>,
    ) -> BoxFuture<'a, Result<CreatedUser, ProviderError>> {
        self.create(user, password).boxed()
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
        self.mark_change_required(id).boxed()
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
                detail: check::NO_HASH_IMPORT.into(),
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
        self.details(id).boxed()
    }
}
