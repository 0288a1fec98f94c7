//! Kinde Management API client (spec: tests/provider_specs/kinde-management-api.yaml).
//!
//! - M2M token: `POST /oauth2/token` (form, `client_credentials`, `audience = <base>/api`), cached.
//! - Find: `GET /api/v1/users?email=`; create: `POST /api/v1/user` (200);
//!   set password: `PUT /api/v1/users/{id}/password` (`hashed_password` + `hashing_method`);
//!   force change: `PATCH /api/v1/user?id=` with `is_password_reset_requested`.
//! - Errors: `{"errors":[{code,message}]}`; 404 has `errors` as an object; some errors have no body.
//!
//! `client` is the transport (token cache, authenticated requests, error mapping), `wire` the
//! request and response bodies, `password` the password transfer.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::config::{HttpConfig, KindeConfig, LimitsConfig, PasswordTransfer};
use super::http::build_client;
use super::limit::{Idempotency, Limiter};
use super::oauth::OAuthTransport;
use super::{
    BlockingHasher, Capabilities, CheckReport, CreatedUser, HashingMethod, ImportedHash, NewUser,
    Operation, Password, PasswordHasher, PasswordState, Provider, ProviderError, ProviderKind,
    ProviderMetrics, ProviderUser, ProviderUserId, UserDetails,
};

mod client;
mod password;
mod wire;

use client::plain;
use wire::{
    CreateUserRequest, CreateUserResponse, Identity, IdentityDetails, Profile, UpdateUserRequest,
    UserRecord, UsersResponse,
};

const KIND: ProviderKind = ProviderKind::Kinde;

/// The Kinde client.
pub struct KindeClient {
    transport: OAuthTransport,
    base: String,
    config: KindeConfig,
    /// Computes the bcrypt of a password sent to Kinde, off the async workers.
    hasher: Arc<dyn PasswordHasher>,
}

impl std::fmt::Debug for KindeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindeClient")
            .field("base", &self.base)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

fn invalid_body(op: Operation, what: &str, e: &dyn std::fmt::Display) -> ProviderError {
    ProviderError::Invalid {
        provider: KIND,
        operation: op,
        status: Some(200),
        detail: format!("{what}: {e}"),
    }
}

impl KindeClient {
    /// Builds the client (no network traffic until the first call). Passwords are hashed on
    /// tokio's blocking pool until [`KindeClient::with_hasher`] says otherwise.
    pub fn new(
        config: &KindeConfig,
        http: &HttpConfig,
        limits: &LimitsConfig,
        metrics: Option<ProviderMetrics>,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            transport: OAuthTransport::new(
                &client::DIALECT,
                build_client(http)?,
                Limiter::new(KIND, limits, http.deadline, metrics),
            ),
            base: config.base_url.trim_end_matches('/').to_string(),
            config: config.clone(),
            hasher: Arc::new(BlockingHasher),
        })
    }

    /// Runs the bcrypt of passwords sent to Kinde on `hasher` (`serve`: dripgate's hash pool,
    /// bounded and at background priority).
    pub fn with_hasher(mut self, hasher: Arc<dyn PasswordHasher>) -> Self {
        self.hasher = hasher;
        self
    }

    async fn find(&self, email: &str) -> Result<Option<ProviderUser>, ProviderError> {
        let op = Operation::FindUser;
        let email = super::normalize_email(email);
        if email.contains(',') || email.is_empty() {
            return Err(ProviderError::Invalid {
                provider: KIND,
                operation: op,
                status: None,
                detail:
                    "email is empty or contains a comma (Kinde's filter is a comma-separated list)"
                        .into(),
            });
        }
        let mut url = self.url("/api/v1/users")?;
        url.query_pairs_mut().append_pair("email", &email);
        let answer = self
            .call(
                op,
                Idempotency::Idempotent,
                reqwest::Method::GET,
                url,
                None,
                plain,
            )
            .await?;
        let parsed: UsersResponse = serde_json::from_slice(&answer.body)
            .map_err(|e| invalid_body(op, "users response", &e))?;
        let found = parsed.users.unwrap_or_default().into_iter().find_map(|u| {
            let matches = u
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(&email));
            match (matches, u.id) {
                (true, Some(id)) => Some(ProviderUser {
                    id: ProviderUserId(id),
                    email: u.email,
                    legacy_id: u.provided_id,
                }),
                _ => None,
            }
        });
        Ok(found)
    }

    async fn create(&self, user: &NewUser) -> Result<CreatedUser, ProviderError> {
        let op = Operation::CreateUser;
        let email = super::normalize_email(&user.email);
        let profile =
            (user.given_name.is_some() || user.family_name.is_some()).then_some(Profile {
                given_name: user.given_name.as_deref(),
                family_name: user.family_name.as_deref(),
            });
        let body = serde_json::to_vec(&CreateUserRequest {
            profile,
            identities: [Identity {
                kind: "email",
                is_verified: self.config.email_verified(),
                details: IdentityDetails { email: &email },
            }],
            provided_id: user.legacy_id.as_deref(),
        })
        .map_err(|e| ProviderError::Config(format!("encoding: {e}")))?;
        let url = self.url("/api/v1/user")?;
        let result = self
            .call(
                op,
                Idempotency::NotIdempotent,
                reqwest::Method::POST,
                url,
                Some(&body),
                plain,
            )
            .await;
        match result {
            Ok(answer) => {
                let parsed: CreateUserResponse = serde_json::from_slice(&answer.body)
                    .map_err(|e| invalid_body(op, "create response", &e))?;
                let id = parsed
                    .id
                    .ok_or_else(|| invalid_body(op, "create response", &"no id"))?;
                Ok(CreatedUser {
                    id: ProviderUserId(id),
                    password_set: false,
                })
            }
            // Kinde does not document the duplicate-email answer: any 400 is checked by a lookup.
            Err(ProviderError::Invalid {
                status: Some(400),
                detail,
                ..
            }) => match self.find(&email).await {
                Ok(Some(existing)) => Err(ProviderError::AlreadyExists {
                    provider: KIND,
                    operation: op,
                    existing_id: Some(existing.id),
                }),
                _ => Err(ProviderError::Invalid {
                    provider: KIND,
                    operation: op,
                    status: Some(400),
                    detail,
                }),
            },
            Err(e) => Err(e),
        }
    }

    /// `GET /api/v1/user?id=` (`getUserData`). The spec documents no 404 for an unknown id;
    /// a 404 (what Kinde answers for a missing user elsewhere) is "no such user", anything else
    /// an error. Kinde's user record says nothing of a password: [`PasswordState::Unknown`].
    async fn get(&self, id: &ProviderUserId) -> Result<Option<UserDetails>, ProviderError> {
        let op = Operation::GetUser;
        let mut url = self.url("/api/v1/user")?;
        url.query_pairs_mut().append_pair("id", id.as_str());
        let answer = match self
            .call(
                op,
                Idempotency::Idempotent,
                reqwest::Method::GET,
                url,
                None,
                plain,
            )
            .await
        {
            Ok(answer) => answer,
            Err(ProviderError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let parsed: UserRecord = serde_json::from_slice(&answer.body)
            .map_err(|e| invalid_body(op, "user response", &e))?;
        let id = parsed
            .id
            .ok_or_else(|| invalid_body(op, "user response", &"no id"))?;
        Ok(Some(UserDetails {
            user: ProviderUser {
                id: ProviderUserId(id),
                email: parsed.preferred_email,
                legacy_id: parsed.provided_id,
            },
            password: PasswordState::Unknown,
        }))
    }

    async fn patch_reset_flag(&self, id: &ProviderUserId) -> Result<(), ProviderError> {
        let op = Operation::RequirePasswordChange;
        let mut url = self.url("/api/v1/user")?;
        url.query_pairs_mut().append_pair("id", id.as_str());
        let body = serde_json::to_vec(&UpdateUserRequest {
            is_password_reset_requested: true,
        })
        .map_err(|e| ProviderError::Config(format!("encoding: {e}")))?;
        self.call(
            op,
            Idempotency::Idempotent,
            reqwest::Method::PATCH,
            url,
            Some(&body),
            plain,
        )
        .await
        .map(drop)
    }

    async fn check(&self) -> CheckReport {
        let mut lines = Vec::new();
        let deadline = self.transport.limiter().deadline_from_now();
        match self.token(deadline).await {
            Ok(_) => lines.push((
                "token".to_string(),
                Ok(format!(
                    "M2M token obtained for audience {}",
                    self.config.audience()
                )),
            )),
            Err(e) => {
                lines.push(("token".to_string(), Err(e.to_string())));
                return CheckReport { lines };
            }
        }
        let op = Operation::Check;
        let result = async {
            let mut url = self.url("/api/v1/users")?;
            url.query_pairs_mut().append_pair("page_size", "1");
            self.call(
                op,
                Idempotency::Idempotent,
                reqwest::Method::GET,
                url,
                None,
                plain,
            )
            .await
        }
        .await;
        lines.push((
            "read users (scope read:users)".to_string(),
            result
                .map(|_| "GET /api/v1/users answered 200".to_string())
                .map_err(|e| e.to_string()),
        ));
        CheckReport { lines }
    }
}

impl Provider for KindeClient {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create_with_password: false,
            imports: &HashingMethod::KINDE,
            prefers_legacy_hash: self.config.password_transfer == PasswordTransfer::LegacyHash,
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
        self.patch_reset_flag(id).boxed()
    }

    fn import_legacy_hash<'a>(
        &'a self,
        id: &'a ProviderUserId,
        hash: &'a ImportedHash,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.import_hash(id, hash).boxed()
    }

    fn check_credentials(&self) -> BoxFuture<'_, CheckReport> {
        self.check().boxed()
    }

    fn get_user<'a>(
        &'a self,
        id: &'a ProviderUserId,
    ) -> BoxFuture<'a, Result<Option<UserDetails>, ProviderError>> {
        self.get(id).boxed()
    }
}
