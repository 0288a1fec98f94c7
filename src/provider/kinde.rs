//! Kinde Management API client (spec: tests/provider_specs/kinde-management-api.yaml).
//!
//! - M2M token: `POST /oauth2/token` (form, `client_credentials`, `audience = <base>/api`), cached.
//! - Find: `GET /api/v1/users?email=`; create: `POST /api/v1/user` (200);
//!   set password: `PUT /api/v1/users/{id}/password` (`hashed_password` + `hashing_method`);
//!   force change: `PATCH /api/v1/user?id=` with `is_password_reset_requested`.
//! - Errors: `{"errors":[{code,message}]}`; 404 has `errors` as an object; some errors have no body.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;
use zeroize::Zeroizing;

use crate::hash::VerifyPool;

use super::config::{HttpConfig, KindeConfig, LimitsConfig, PasswordTransfer};
use super::error::clip;
use super::http::{Answer, build_client, send};
use super::limit::{Idempotency, Limiter};
use super::token::{Token, TokenCache};
use super::{
    Capabilities, CheckReport, CreatedUser, LegacyHash, NewUser, Operation, Password, Provider,
    ProviderError, ProviderKind, ProviderMetrics, ProviderUser, ProviderUserId, SaltPosition,
};

const KIND: ProviderKind = ProviderKind::Kinde;

/// The Kinde client.
pub struct KindeClient {
    http: reqwest::Client,
    base: String,
    config: KindeConfig,
    limiter: Limiter,
    tokens: TokenCache,
    /// Where the bcrypt of a password sent to Kinde runs (tokio's blocking pool when `None`).
    hash_pool: Option<VerifyPool>,
}

impl std::fmt::Debug for KindeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindeClient")
            .field("base", &self.base)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct UsersResponse {
    users: Option<Vec<ListedUser>>,
}

#[derive(Deserialize)]
struct ListedUser {
    id: Option<String>,
    email: Option<String>,
    provided_id: Option<String>,
}

#[derive(Deserialize)]
struct CreateUserResponse {
    id: Option<String>,
}

/// Error codes and messages from either error body shape (`errors` array or object).
fn error_codes(answer: &Answer) -> Vec<(String, String)> {
    let Ok(v) = serde_json::from_slice::<Value>(&answer.body) else {
        return Vec::new();
    };
    let one = |e: &Value| {
        (
            e.get("code")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            e.get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )
    };
    match v.get("errors") {
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        Some(obj @ Value::Object(_)) => vec![one(obj)],
        _ => Vec::new(),
    }
}

fn describe_errors(answer: &Answer) -> String {
    let codes = error_codes(answer);
    if codes.is_empty() {
        return format!("status {}", answer.status);
    }
    clip(
        &codes
            .iter()
            .map(|(c, m)| {
                if m.is_empty() {
                    c.clone()
                } else {
                    format!("{c}: {m}")
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// Maps a non-success answer (other than 401/403, handled by the caller) to a typed error.
fn map_failure(operation: Operation, answer: &Answer) -> ProviderError {
    match answer.status {
        429 => ProviderError::RateLimited {
            provider: KIND,
            operation,
            retry_after: answer.retry_after(),
        },
        404 => ProviderError::NotFound {
            provider: KIND,
            operation,
        },
        401 | 403 => ProviderError::Auth {
            provider: KIND,
            operation,
            detail: auth_detail(answer),
        },
        408 | 500..=599 => ProviderError::Transient {
            provider: KIND,
            operation,
            detail: describe_errors(answer),
            not_sent: false,
        },
        status => ProviderError::Invalid {
            provider: KIND,
            operation,
            status: Some(status),
            detail: describe_errors(answer),
        },
    }
}

fn auth_detail(answer: &Answer) -> String {
    match answer.status {
        401 => "token rejected (401) after one refresh".into(),
        _ => format!(
            "forbidden (403) after one refresh: the M2M application lacks a scope this call needs ({})",
            describe_errors(answer)
        ),
    }
}

impl KindeClient {
    /// Builds the client (no network traffic until the first call).
    pub fn new(
        config: &KindeConfig,
        http: &HttpConfig,
        limits: &LimitsConfig,
        metrics: Option<ProviderMetrics>,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            http: build_client(http)?,
            base: config.base_url.trim_end_matches('/').to_string(),
            config: config.clone(),
            limiter: Limiter::new(KIND, limits, http.deadline, metrics),
            tokens: TokenCache::new(),
            hash_pool: None,
        })
    }

    /// Runs the bcrypt of passwords sent to Kinde on dripgate's hash pool (bounded, background
    /// priority) instead of tokio's blocking pool.
    pub fn with_hash_pool(mut self, pool: VerifyPool) -> Self {
        self.hash_pool = Some(pool);
        self
    }

    fn url(&self, path: &str) -> Result<Url, ProviderError> {
        Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ProviderError::Config(format!("kinde base_url: {e}")))
    }

    async fn fetch_token(
        &self,
        deadline: Instant,
    ) -> Result<(SecretString, Duration), ProviderError> {
        let op = Operation::Token;
        self.limiter.admit(op, deadline).await?;
        let started = Instant::now();
        let result = self.fetch_token_once().await;
        self.limiter
            .observe(op, result.as_ref().map(|_| ()), started);
        result
    }

    async fn fetch_token_once(&self) -> Result<(SecretString, Duration), ProviderError> {
        let op = Operation::Token;
        let audience = self.config.audience();
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("client_secret", self.config.client_secret.expose_secret())
                .append_pair("audience", &audience);
            if let Some(scope) = &self.config.scope {
                form.append_pair("scope", scope);
            }
            Zeroizing::new(form.finish())
        };
        let request = self
            .http
            .post(self.url("/oauth2/token")?)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body.as_bytes().to_vec());
        let answer = send(KIND, op, request).await?;
        if answer.status == 200 {
            let parsed: TokenResponse =
                serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Invalid {
                    provider: KIND,
                    operation: op,
                    status: Some(200),
                    detail: format!("token response: {e}"),
                })?;
            let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600).max(1));
            return Ok((SecretString::from(parsed.access_token), lifetime));
        }
        if let Ok(err) = serde_json::from_slice::<OAuthError>(&answer.body)
            && matches!(answer.status, 400 | 401 | 403)
        {
            let hint = match err.error.as_str() {
                "invalid_client" => "client id or secret rejected",
                "unauthorized_client" => {
                    "application not authorised for this audience (check `audience`)"
                }
                "invalid_scope" => "scope not granted to the application",
                "invalid_request" => "malformed token request",
                _ => "token request refused",
            };
            let desc = err
                .error_description
                .map(|d| format!(" ({})", clip(&d)))
                .unwrap_or_default();
            return Err(ProviderError::Auth {
                provider: KIND,
                operation: op,
                detail: format!("{}: {hint}{desc}", clip(&err.error)),
            });
        }
        Err(map_failure(op, &answer))
    }

    async fn token(&self, deadline: Instant) -> Result<Token, ProviderError> {
        self.tokens.get(|| self.fetch_token(deadline)).await
    }

    /// Sends an authenticated request; on 401/403 refreshes the token once and resends once.
    async fn authed<B>(
        &self,
        op: Operation,
        deadline: Instant,
        build: B,
    ) -> Result<Answer, ProviderError>
    where
        B: Fn(&str) -> Result<reqwest::RequestBuilder, ProviderError>,
    {
        let token = self.token(deadline).await?;
        let answer = send(KIND, op, build(token.value.expose_secret())?).await?;
        if !matches!(answer.status, 401 | 403) {
            return Ok(answer);
        }
        tracing::debug!(provider = "kinde", operation = %op, status = answer.status, "token rejected; refreshing once");
        self.tokens.invalidate(token.generation).await;
        let token = self.token(deadline).await?;
        send(KIND, op, build(token.value.expose_secret())?).await
    }

    fn json_request(
        &self,
        method: reqwest::Method,
        url: Url,
        token: &str,
        body: Option<&[u8]>,
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            r = r
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        r
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
            .limiter
            .run(op, Idempotency::Idempotent, |deadline| {
                let url = url.clone();
                async move {
                    let a = self
                        .authed(op, deadline, |t| {
                            Ok(self.json_request(reqwest::Method::GET, url.clone(), t, None))
                        })
                        .await?;
                    if a.status == 200 {
                        Ok(a)
                    } else {
                        Err(map_failure(op, &a))
                    }
                }
            })
            .await?;
        let parsed: UsersResponse =
            serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Invalid {
                provider: KIND,
                operation: op,
                status: Some(200),
                detail: format!("users response: {e}"),
            })?;
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
        let mut profile = serde_json::Map::new();
        if let Some(g) = &user.given_name {
            profile.insert("given_name".into(), json!(g));
        }
        if let Some(f) = &user.family_name {
            profile.insert("family_name".into(), json!(f));
        }
        let mut body = json!({
            "identities": [{
                "type": "email",
                "is_verified": self.config.mark_email_verified,
                "details": {"email": email},
            }],
        });
        if !profile.is_empty() {
            body["profile"] = Value::Object(profile);
        }
        if let Some(legacy) = &user.legacy_id {
            body["provided_id"] = json!(legacy);
        }
        let body = serde_json::to_vec(&body)
            .map_err(|e| ProviderError::Config(format!("encoding: {e}")))?;
        let url = self.url("/api/v1/user")?;
        let result =
            self.limiter
                .run(op, Idempotency::NotIdempotent, |deadline| {
                    let url = url.clone();
                    let body = &body;
                    async move {
                        let a = self
                            .authed(op, deadline, |t| {
                                Ok(self.json_request(
                                    reqwest::Method::POST,
                                    url.clone(),
                                    t,
                                    Some(body),
                                ))
                            })
                            .await?;
                        if a.status == 200 {
                            Ok(a)
                        } else {
                            Err(map_failure(op, &a))
                        }
                    }
                })
                .await;
        match result {
            Ok(answer) => {
                let parsed: CreateUserResponse =
                    serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Invalid {
                        provider: KIND,
                        operation: op,
                        status: Some(200),
                        detail: format!("create response: {e}"),
                    })?;
                let id = parsed.id.ok_or_else(|| ProviderError::Invalid {
                    provider: KIND,
                    operation: op,
                    status: Some(200),
                    detail: "create response has no id".into(),
                })?;
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

    /// The set-password body for the configured transfer mode.
    async fn password_body(
        &self,
        password: Password<'_>,
        legacy: Option<&LegacyHash>,
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let op = Operation::SetPassword;
        let temporary = self.config.is_temporary_password;
        match (self.config.password_transfer, legacy) {
            (PasswordTransfer::LegacyHash, Some(legacy)) => legacy_body(legacy, temporary),
            (PasswordTransfer::Plaintext, _) => {
                let text = password
                    .as_str()
                    .ok_or_else(|| ProviderError::Unsupported {
                        provider: KIND,
                        operation: op,
                        detail: "plaintext transfer needs a UTF-8 password".into(),
                    })?;
                encode_secret_json(&json!({"password": text, "is_temporary_password": temporary}))
            }
            _ => {
                let bytes = Zeroizing::new(password.bytes().to_vec());
                if bytes.len() > 72 {
                    tracing::debug!(
                        provider = "kinde",
                        "password longer than 72 bytes: bcrypt uses the first 72"
                    );
                }
                let cost = self.config.bcrypt_cost;
                let job = move || bcrypt::hash(&*bytes, cost).map(Zeroizing::new);
                let hashed = match &self.hash_pool {
                    Some(pool) => pool.run(job).await.map_err(|e| e.to_string()),
                    None => tokio::task::spawn_blocking(job)
                        .await
                        .map_err(|e| e.to_string()),
                };
                let hash = hashed
                    .map_err(|detail| ProviderError::Transient {
                        provider: KIND,
                        operation: op,
                        detail: format!("bcrypt task: {detail}"),
                        not_sent: true,
                    })?
                    .map_err(|e| ProviderError::Config(format!("bcrypt: {e}")))?;
                encode_secret_json(&json!({
                    "hashed_password": hash.as_str(),
                    "hashing_method": "bcrypt",
                    "is_temporary_password": temporary,
                }))
            }
        }
    }

    async fn put_password(
        &self,
        id: &ProviderUserId,
        op: Operation,
        body: &[u8],
    ) -> Result<(), ProviderError> {
        let mut url = self.url("/api/v1/users")?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::Config("kinde base_url cannot take a path".into()))?
            .push(id.as_str())
            .push("password");
        self.limiter
            .run(op, Idempotency::Idempotent, |deadline| {
                let url = url.clone();
                async move {
                    let a = self
                        .authed(op, deadline, |t| {
                            Ok(self.json_request(reqwest::Method::PUT, url.clone(), t, Some(body)))
                        })
                        .await?;
                    match a.status {
                        200 => Ok(()),
                        400 if error_codes(&a)
                            .iter()
                            .any(|(c, _)| c.to_ascii_uppercase().contains("PASSWORD")) =>
                        {
                            Err(ProviderError::PasswordRejected {
                                provider: KIND,
                                operation: op,
                                reasons: error_codes(&a)
                                    .into_iter()
                                    .map(|(c, _)| clip(&c))
                                    .collect(),
                            })
                        }
                        _ => Err(map_failure(op, &a)),
                    }
                }
            })
            .await
    }

    async fn patch_reset_flag(&self, id: &ProviderUserId) -> Result<(), ProviderError> {
        let op = Operation::RequirePasswordChange;
        let mut url = self.url("/api/v1/user")?;
        url.query_pairs_mut().append_pair("id", id.as_str());
        let body = br#"{"is_password_reset_requested":true}"#;
        self.limiter
            .run(op, Idempotency::Idempotent, |deadline| {
                let url = url.clone();
                async move {
                    let a = self
                        .authed(op, deadline, |t| {
                            Ok(self.json_request(
                                reqwest::Method::PATCH,
                                url.clone(),
                                t,
                                Some(body),
                            ))
                        })
                        .await?;
                    if a.status == 200 {
                        Ok(())
                    } else {
                        Err(map_failure(op, &a))
                    }
                }
            })
            .await
    }

    async fn check(&self) -> CheckReport {
        let mut lines = Vec::new();
        let deadline = self.limiter.deadline_from_now();
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
            self.limiter
                .run(op, Idempotency::Idempotent, |deadline| {
                    let url = url.clone();
                    async move {
                        let a = self
                            .authed(op, deadline, |t| {
                                Ok(self.json_request(reqwest::Method::GET, url.clone(), t, None))
                            })
                            .await?;
                        if a.status == 200 {
                            Ok(())
                        } else {
                            Err(map_failure(op, &a))
                        }
                    }
                })
                .await
        }
        .await;
        lines.push((
            "read users (scope read:users)".to_string(),
            result
                .map(|()| "GET /api/v1/users answered 200".to_string())
                .map_err(|e| e.to_string()),
        ));
        CheckReport { lines }
    }
}

fn encode_secret_json(v: &Value) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    serde_json::to_vec(v)
        .map(Zeroizing::new)
        .map_err(|e| ProviderError::Config(format!("encoding: {e}")))
}

/// The set-password body carrying a verified legacy hash.
fn legacy_body(legacy: &LegacyHash, temporary: bool) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    let mut body = serde_json::Map::new();
    body.insert("hashed_password".into(), json!(legacy.hash.expose_secret()));
    body.insert("hashing_method".into(), json!(legacy.method.kinde_name()));
    if let Some(salt) = &legacy.salt {
        body.insert("salt".into(), json!(salt.expose_secret()));
    }
    if let Some(pos) = legacy.salt_position {
        let pos = match pos {
            SaltPosition::Prefix => "prefix",
            SaltPosition::Suffix => "suffix",
        };
        body.insert("salt_position".into(), json!(pos));
    }
    if let Some(i) = legacy.iterations {
        body.insert("iterations".into(), json!(i));
    }
    if let Some(v) = &legacy.variant {
        body.insert("variant".into(), json!(v));
    }
    body.insert("is_temporary_password".into(), json!(temporary));
    encode_secret_json(&Value::Object(body))
}

impl Provider for KindeClient {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create_with_password: false,
            imports_legacy_hashes: true,
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
        legacy: Option<&'a LegacyHash>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        async move {
            let body = self.password_body(password, legacy).await?;
            self.put_password(id, Operation::SetPassword, &body).await
        }
        .boxed()
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
        hash: &'a LegacyHash,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        async move {
            let body = legacy_body(hash, self.config.is_temporary_password)?;
            self.put_password(id, Operation::ImportHash, &body).await
        }
        .boxed()
    }

    fn check_credentials(&self) -> BoxFuture<'_, CheckReport> {
        self.check().boxed()
    }
}
