//! The generic HTTP provider: dripgate calls an operator's own endpoints, described by the
//! contract docs/generic-http-provider.openapi.yaml, for an in-house or unsupported identity
//! system.
//!
//! - Find: `GET /users?email=` (200 user, 404 `user_not_found` or 204 none).
//! - Create: `POST /users` with the password the user just proved (one call, so the password is
//!   set atomically) and an `Idempotency-Key`: a create whose answer was lost is resent with
//!   the same key, and the receiver answers with the first result instead of a second user.
//! - Set password / import a legacy hash: `PUT /users/{id}/password`; require a change:
//!   `PUT /users/{id}/password-change-required` (optional); `GET /capabilities`.
//! - Every request is signed (HMAC-SHA256 over key id, timestamp, nonce, method, target,
//!   idempotency key and body hash; [`sign`]); the receiver enforces a replay window.
//!
//! `transport` signs, sends and maps answers; `wire` holds the bodies; `check` is
//! `dripgate provider check`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use secrecy::ExposeSecret;
use serde::Serialize;
use zeroize::Zeroizing;

use super::config::{HttpConfig, LimitsConfig};
use super::http::build_client;
use super::limit::{Idempotency, Limiter};
use super::{
    Capabilities, CheckReport, CreatedUser, HashingMethod, ImportedHash, NewUser, Operation,
    Password, Provider, ProviderError, ProviderKind, ProviderMetrics, ProviderUser, ProviderUserId,
};

mod check;
pub mod config;
pub mod sign;
mod transport;
mod wire;

pub use config::{GenericHttpConfig, HttpPasswordTransfer};
pub use wire::CONTRACT;

use transport::{Call, only_2xx};

const KIND: ProviderKind = ProviderKind::Http;

/// The generic HTTP provider client.
pub struct GenericHttpClient {
    http: reqwest::Client,
    base: String,
    config: GenericHttpConfig,
    key: sign::SigningKey,
    limiter: Limiter,
    imports: &'static [HashingMethod],
}

impl std::fmt::Debug for GenericHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenericHttpClient")
            .field("base", &self.base)
            .field("key_id", &self.config.key_id)
            .finish_non_exhaustive()
    }
}

/// One `'static` slice per distinct set of methods ([`Capabilities::imports`] is `'static`):
/// at most 2^6 sets exist, so this holds at most 64 small slices for the process's life.
fn interned(methods: Vec<HashingMethod>) -> &'static [HashingMethod] {
    static SETS: OnceLock<Mutex<HashMap<Vec<HashingMethod>, &'static [HashingMethod]>>> =
        OnceLock::new();
    let mut sets = SETS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sets.entry(methods.clone())
        .or_insert_with(|| Box::leak(methods.into_boxed_slice()))
}

fn invalid_body(op: Operation, what: &str, e: &dyn std::fmt::Display) -> ProviderError {
    ProviderError::Invalid {
        provider: KIND,
        operation: op,
        status: None,
        detail: format!("{what}: {e}"),
    }
}

/// Encodes a body that carries a password or hash into a buffer zeroized on drop.
fn encode_secret<T: Serialize>(body: &T) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    serde_json::to_vec(body)
        .map(Zeroizing::new)
        .map_err(|e| ProviderError::Config(format!("encoding: {e}")))
}

fn utf8<'a>(op: Operation, password: Password<'a>) -> Result<&'a str, ProviderError> {
    password.as_str().ok_or_else(|| ProviderError::Unsupported {
        provider: KIND,
        operation: op,
        detail: "the contract sends passwords as JSON strings: this one is not UTF-8".into(),
    })
}

/// A user id as one path segment.
fn segment(id: &ProviderUserId) -> String {
    percent_encoding::utf8_percent_encode(id.as_str(), percent_encoding::NON_ALPHANUMERIC)
        .to_string()
}

/// Find's 404 with `user_not_found` is an answer, not a failure.
fn not_found_answer(answer: &crate::provider::http::Answer) -> bool {
    answer.status == 404 && transport::error_body(answer).code == "user_not_found"
}

impl GenericHttpClient {
    /// Builds the client (no network traffic until the first call).
    pub fn new(
        config: &GenericHttpConfig,
        http: &HttpConfig,
        limits: &LimitsConfig,
        metrics: Option<ProviderMetrics>,
    ) -> Result<Self, ProviderError> {
        config.validate()?;
        let key = sign::SigningKey::new(config.signing_key.expose().as_bytes())
            .ok_or_else(|| ProviderError::Config("http_provider.signing_key unusable".into()))?;
        Ok(Self {
            http: build_client(http)?,
            base: config.base_url.trim_end_matches('/').to_string(),
            imports: interned(config.import_methods()?),
            config: config.clone(),
            key,
            limiter: Limiter::new(KIND, limits, http.deadline, metrics),
        })
    }

    fn prefers_legacy_hash(&self) -> bool {
        self.config.password_transfer == HttpPasswordTransfer::LegacyHash
    }

    async fn find(&self, email: &str) -> Result<Option<ProviderUser>, ProviderError> {
        let op = Operation::FindUser;
        let email = super::normalize_email(email);
        let mut url = self.url("/users")?;
        url.query_pairs_mut().append_pair("email", &email);
        let answer = self
            .call(Call {
                op,
                idempotency: Idempotency::Idempotent,
                method: reqwest::Method::GET,
                url,
                body: None,
                idempotency_key: None,
                also_ok: not_found_answer,
            })
            .await?;
        if matches!(answer.status, 204 | 404) {
            return Ok(None);
        }
        let user: wire::User = serde_json::from_slice(&answer.body)
            .map_err(|e| invalid_body(op, "user response", &e))?;
        // An endpoint that answers with another user is not trusted to mean this one.
        if !user.email.trim().eq_ignore_ascii_case(&email) {
            return Err(invalid_body(op, "user response", &"the email differs"));
        }
        Ok(Some(ProviderUser {
            id: ProviderUserId(user.id),
            email: Some(user.email),
            legacy_id: user.legacy_id,
        }))
    }

    async fn create(
        &self,
        user: &NewUser,
        password: Option<Password<'_>>,
    ) -> Result<CreatedUser, ProviderError> {
        let op = Operation::CreateUser;
        let email = super::normalize_email(&user.email);
        // Under `legacy_hash` the hash follows in a PUT (the trait's create has no hash).
        let password = match password.filter(|_| !self.prefers_legacy_hash()) {
            Some(p) => Some(utf8(op, p)?),
            None => None,
        };
        let body = encode_secret(&wire::NewUserBody {
            email: &email,
            email_verified: self.config.mark_email_verified.unwrap_or(false),
            given_name: user.given_name.as_deref(),
            family_name: user.family_name.as_deref(),
            legacy_id: user.legacy_id.as_deref(),
            password,
        })?;
        let key = sign::nonce();
        let answer = self
            .call(Call {
                op,
                // The key makes resending safe: the receiver answers a resend with the first result.
                idempotency: Idempotency::Idempotent,
                method: reqwest::Method::POST,
                url: self.url("/users")?,
                body: Some(&body),
                idempotency_key: Some(&key),
                also_ok: only_2xx,
            })
            .await;
        match answer {
            Ok(answer) => {
                let created: wire::User = serde_json::from_slice(&answer.body)
                    .map_err(|e| invalid_body(op, "create response", &e))?;
                Ok(CreatedUser {
                    id: ProviderUserId(created.id),
                    password_set: password.is_some(),
                })
            }
            Err(ProviderError::AlreadyExists {
                existing_id: None, ..
            }) => Err(ProviderError::AlreadyExists {
                provider: KIND,
                operation: op,
                existing_id: self.find(&email).await.ok().flatten().map(|u| u.id),
            }),
            Err(e) => Err(e),
        }
    }

    async fn put_password(
        &self,
        op: Operation,
        id: &ProviderUserId,
        body: &[u8],
    ) -> Result<(), ProviderError> {
        self.call(Call {
            op,
            idempotency: Idempotency::Idempotent,
            method: reqwest::Method::PUT,
            url: self.url(&format!("/users/{}/password", segment(id)))?,
            body: Some(body),
            idempotency_key: None,
            also_ok: only_2xx,
        })
        .await
        .map(drop)
    }

    async fn set_password_now(
        &self,
        id: &ProviderUserId,
        password: Password<'_>,
    ) -> Result<(), ProviderError> {
        let op = Operation::SetPassword;
        let body = encode_secret(&wire::PasswordUpdate {
            password: Some(utf8(op, password)?),
            password_hash: None,
        })?;
        self.put_password(op, id, &body).await
    }

    async fn import_hash(
        &self,
        id: &ProviderUserId,
        hash: &ImportedHash,
    ) -> Result<(), ProviderError> {
        let op = Operation::ImportHash;
        if !self.imports.contains(&hash.method) {
            return Err(ProviderError::Unsupported {
                provider: KIND,
                operation: op,
                detail: format!(
                    "import_hash_methods does not list {} for this endpoint",
                    hash.method
                ),
            });
        }
        let body = encode_secret(&wire::PasswordUpdate {
            password: None,
            password_hash: Some(wire::PasswordHash {
                method: hash.method.as_str(),
                hash: hash.hash.expose_secret(),
                salt: hash.salt.as_ref().map(|s| s.expose_secret()),
                salt_position: hash.salt_position.map(|p| p.as_str()),
                iterations: hash.pbkdf2.map(|p| p.iterations),
                variant: hash.pbkdf2.map(|p| p.variant),
            }),
        })?;
        // A refused hash is `Invalid` (422 `unsupported_hash_method`/`invalid_hash`): the caller
        // then sends the password instead.
        self.put_password(op, id, &body).await
    }

    async fn require_change(&self, id: &ProviderUserId) -> Result<(), ProviderError> {
        let op = Operation::RequirePasswordChange;
        if !self.config.require_password_change {
            return Err(ProviderError::Unsupported {
                provider: KIND,
                operation: op,
                detail: "require_password_change is off for this endpoint".into(),
            });
        }
        let body = serde_json::to_vec(&wire::PasswordChangeRequired { required: true })
            .map_err(|e| ProviderError::Config(format!("encoding: {e}")))?;
        self.call(Call {
            op,
            idempotency: Idempotency::Idempotent,
            method: reqwest::Method::PUT,
            url: self.url(&format!("/users/{}/password-change-required", segment(id)))?,
            body: Some(&body),
            idempotency_key: None,
            also_ok: only_2xx,
        })
        .await
        .map(drop)
    }
}

impl Provider for GenericHttpClient {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create_with_password: !self.prefers_legacy_hash(),
            imports: self.imports,
            prefers_legacy_hash: self.prefers_legacy_hash(),
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
        self.require_change(id).boxed()
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
}
