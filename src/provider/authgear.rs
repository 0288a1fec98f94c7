//! Authgear Admin API client (schema: tests/provider_specs/authgear-admin-schema.graphql).
//!
//! - `POST /_api/admin/graphql` with `Authorization: Bearer <RS256 JWT>` signed by the admin API
//!   key (`kid` = key id, `aud` = project id, short expiry), cached until shortly before expiry.
//! - GraphQL errors arrive with HTTP 200 and `extensions.{errorName,reason,info}`;
//!   bad credentials are HTTP 403 `text/plain` `Forbidden`.
//! - User ids are node ids: unpadded base64url of `User:<uuid>`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;
use zeroize::Zeroizing;

use super::config::{AuthgearConfig, HttpConfig, LimitsConfig};
use super::error::clip;
use super::http::{Answer, build_client, send};
use super::limit::{Idempotency, Limiter};
use super::token::{Token, TokenCache};
use super::{
    Capabilities, CheckReport, CreatedUser, ImportedHash, NewUser, Operation, Password,
    PasswordState, Provider, ProviderError, ProviderKind, ProviderMetrics, ProviderUser,
    ProviderUserId, UserDetails,
};

const KIND: ProviderKind = ProviderKind::Authgear;

/// Find users by the `email` standard attribute (exact, normalised, strongly consistent).
pub const FIND_QUERY: &str = "query FindUserByEmail($email: String!) { getUsersByStandardAttribute(attributeName: \"email\", attributeValue: $email) { id standardAttributes } }";
/// Create a user with an email login ID and a password, in one transaction.
pub const CREATE_MUTATION: &str = "mutation CreateUser($key: String!, $email: String!, $password: String, $expired: Boolean) { createUser(input: {definition: {loginID: {key: $key, value: $email}}, password: $password, sendPassword: false, setPasswordExpired: $expired}) { user { id standardAttributes } } }";
/// Replace a user's password.
pub const RESET_PASSWORD_MUTATION: &str = "mutation ResetPassword($id: ID!, $password: String!, $expired: Boolean) { resetPassword(input: {userID: $id, password: $password, sendPassword: false, setPasswordExpired: $expired}) { user { id } } }";
/// One user by node id, with whether a primary password authenticator exists.
pub const GET_USER_QUERY: &str = "query GetUser($id: ID!) { node(id: $id) { ... on User { id standardAttributes primaryPassword { id } } } }";
/// Require a password change at the next sign-in.
pub const SET_PASSWORD_EXPIRED_MUTATION: &str = "mutation ExpirePassword($id: ID!) { setPasswordExpired(input: {userID: $id, expired: true}) { user { id } } }";

/// The node id of the user with this raw id (`User:<uuid>`, base64url without padding).
pub fn user_node_id(raw_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("User:{raw_id}"))
}

/// The raw user id inside a node id, if it is a well-formed user node id.
pub fn user_raw_id(node_id: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(node_id).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("User:")
        .map(str::to_string)
}

/// The Authgear client.
pub struct AuthgearClient {
    http: reqwest::Client,
    endpoint: Url,
    config: AuthgearConfig,
    key: EncodingKey,
    limiter: Limiter,
    tokens: TokenCache,
}

impl std::fmt::Debug for AuthgearClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthgearClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("project_id", &self.config.project_id)
            .field("key_id", &self.config.key_id)
            .finish_non_exhaustive()
    }
}

/// Maps GraphQL `errors` (HTTP 200) to a typed error.
fn map_graphql_errors(operation: Operation, errors: &[Value]) -> ProviderError {
    let mut first_invalid = None;
    for e in errors {
        let ext = e.get("extensions");
        let name = ext
            .and_then(|x| x.get("errorName"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let reason = ext
            .and_then(|x| x.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let info = ext.and_then(|x| x.get("info"));
        let message = e.get("message").and_then(Value::as_str).unwrap_or_default();
        let cause = info
            .and_then(|i| i.get("cause"))
            .and_then(|c| c.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match (name, reason) {
            (_, "InvariantViolated") if cause == "DuplicatedIdentity" => {
                return ProviderError::AlreadyExists {
                    provider: KIND,
                    operation,
                    existing_id: None,
                };
            }
            (_, "PasswordPolicyViolated") => {
                let reasons = info
                    .and_then(|i| i.get("causes"))
                    .and_then(Value::as_array)
                    .map(|cs| {
                        cs.iter()
                            .filter_map(|c| c.get("Name").and_then(Value::as_str).map(clip))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                return ProviderError::PasswordRejected {
                    provider: KIND,
                    operation,
                    reasons,
                };
            }
            ("NotFound", _) => {
                return ProviderError::NotFound {
                    provider: KIND,
                    operation,
                };
            }
            ("TooManyRequest", _) => {
                return ProviderError::RateLimited {
                    provider: KIND,
                    operation,
                    retry_after: None,
                };
            }
            ("Unauthorized" | "Forbidden", _) => {
                return ProviderError::Auth {
                    provider: KIND,
                    operation,
                    detail: clip(&format!("{reason}: {message}")),
                };
            }
            ("InternalError" | "ServiceUnavailable" | "DataRace", _) => {
                return ProviderError::Transient {
                    provider: KIND,
                    operation,
                    detail: clip(&format!("{name}/{reason}: {message}")),
                    not_sent: false,
                };
            }
            _ => {
                if first_invalid.is_none() {
                    let what = if name.is_empty() {
                        message.to_string()
                    } else {
                        format!("{name}/{reason}: {message}")
                    };
                    first_invalid = Some(clip(&what));
                }
            }
        }
    }
    if first_invalid.as_deref() == Some("unexpected error") {
        return ProviderError::Transient {
            provider: KIND,
            operation,
            detail: "unexpected error".into(),
            not_sent: false,
        };
    }
    ProviderError::Invalid {
        provider: KIND,
        operation,
        status: Some(200),
        detail: first_invalid.unwrap_or_else(|| "GraphQL error".into()),
    }
}

/// Maps a non-200 answer (other than the 403 handled by the caller).
fn map_http_failure(operation: Operation, answer: &Answer) -> ProviderError {
    let detail = || {
        if answer.is_json() {
            serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .and_then(|v| {
                    let e = v.get("error")?;
                    Some(format!(
                        "{}/{}: {}",
                        e.get("name")?.as_str()?,
                        e.get("reason").and_then(Value::as_str).unwrap_or_default(),
                        e.get("message").and_then(Value::as_str).unwrap_or_default()
                    ))
                })
                .map(|s| clip(&s))
                .unwrap_or_else(|| format!("status {}", answer.status))
        } else {
            clip(&format!(
                "status {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ))
        }
    };
    match answer.status {
        429 => ProviderError::RateLimited { provider: KIND, operation, retry_after: answer.retry_after() },
        401 | 403 => ProviderError::Auth {
            provider: KIND,
            operation,
            detail: "admin API key rejected (403 Forbidden) after re-signing: check key_id, the private key and project_id".into(),
        },
        408 | 500..=599 => ProviderError::Transient { provider: KIND, operation, detail: detail(), not_sent: false },
        status => ProviderError::Invalid { provider: KIND, operation, status: Some(status), detail: detail() },
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AuthgearClient {
    /// Builds the client; fails if the private key is not an RSA PEM key.
    pub fn new(
        config: &AuthgearConfig,
        http: &HttpConfig,
        limits: &LimitsConfig,
        metrics: Option<ProviderMetrics>,
    ) -> Result<Self, ProviderError> {
        let der = super::der::rsa_private_pkcs1(config.private_key_pem.expose_secret().as_bytes())
            .map(Zeroizing::new)
            .ok_or_else(|| {
                ProviderError::Config(
                    "authgear.private_key_pem is not an RSA private key in PEM (PKCS#1 or PKCS#8)"
                        .into(),
                )
            })?;
        let endpoint = Url::parse(&format!(
            "{}/_api/admin/graphql",
            config.base_url.trim_end_matches('/')
        ))
        .map_err(|e| ProviderError::Config(format!("authgear base_url: {e}")))?;
        Ok(Self {
            http: build_client(http)?,
            endpoint,
            config: config.clone(),
            key: EncodingKey::from_rsa_der(&der),
            limiter: Limiter::new(KIND, limits, http.deadline, metrics),
            tokens: TokenCache::new(),
        })
    }

    fn sign(&self) -> Result<(SecretString, Duration), ProviderError> {
        let now = unix_now();
        let lifetime = self.config.jwt_lifetime.max(Duration::from_secs(10));
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.config.key_id.clone());
        header.typ = Some("JWT".into());
        let jti: [u8; 12] = rand::rng().random();
        let claims = json!({
            "aud": [self.config.project_id],
            "iat": now,
            "exp": now + lifetime.as_secs(),
            "jti": URL_SAFE_NO_PAD.encode(jti),
        });
        let jwt =
            jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| ProviderError::Auth {
                provider: KIND,
                operation: Operation::Token,
                detail: format!("signing the admin JWT failed: {e}"),
            })?;
        Ok((SecretString::from(jwt), lifetime))
    }

    async fn token(&self) -> Result<Token, ProviderError> {
        self.tokens.get(|| async { self.sign() }).await
    }

    /// One GraphQL request with auth retry (403 → re-sign once); returns `data` or a typed error.
    async fn graphql_once(&self, op: Operation, body: &[u8]) -> Result<Value, ProviderError> {
        let build = |token: &str| {
            self.http
                .post(self.endpoint.clone())
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, "application/json")
                .body(body.to_vec())
        };
        let token = self.token().await?;
        let mut answer = send(KIND, op, build(token.value.expose_secret())).await?;
        if matches!(answer.status, 401 | 403) {
            tracing::debug!(provider = "authgear", operation = %op, "admin JWT rejected; re-signing once");
            self.tokens.invalidate(token.generation).await;
            let token = self.token().await?;
            answer = send(KIND, op, build(token.value.expose_secret())).await?;
        }
        if answer.status != 200 {
            return Err(map_http_failure(op, &answer));
        }
        let v: Value =
            serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Invalid {
                provider: KIND,
                operation: op,
                status: Some(200),
                detail: format!("GraphQL response is not JSON: {e}"),
            })?;
        if let Some(errors) = v
            .get("errors")
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
        {
            return Err(map_graphql_errors(op, errors));
        }
        v.get("data")
            .cloned()
            .filter(|d| !d.is_null())
            .ok_or_else(|| ProviderError::Invalid {
                provider: KIND,
                operation: op,
                status: Some(200),
                detail: "GraphQL response has no data".into(),
            })
    }

    async fn graphql(
        &self,
        op: Operation,
        idempotency: Idempotency,
        body: &[u8],
    ) -> Result<Value, ProviderError> {
        self.limiter
            .run(op, idempotency, |_deadline| self.graphql_once(op, body))
            .await
    }

    fn body(query: &str, variables: Value) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        serde_json::to_vec(&json!({"query": query, "variables": variables}))
            .map(Zeroizing::new)
            .map_err(|e| ProviderError::Config(format!("encoding: {e}")))
    }

    fn user_from(v: &Value) -> Option<ProviderUser> {
        let id = v.get("id")?.as_str()?.to_string();
        let email = v
            .get("standardAttributes")
            .and_then(|a| a.get("email"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(ProviderUser {
            id: ProviderUserId(id),
            email,
            legacy_id: None,
        })
    }

    async fn find(&self, email: &str) -> Result<Option<ProviderUser>, ProviderError> {
        let op = Operation::FindUser;
        let email = super::normalize_email(email);
        let body = Self::body(FIND_QUERY, json!({"email": email}))?;
        let data = self.graphql(op, Idempotency::Idempotent, &body).await?;
        let users = data
            .get("getUsersByStandardAttribute")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if users.len() > 1 {
            tracing::warn!(
                provider = "authgear",
                count = users.len(),
                "several users share this email; using the first"
            );
        }
        Ok(users.iter().find_map(Self::user_from))
    }

    fn password_text<'a>(op: Operation, password: Password<'a>) -> Result<&'a str, ProviderError> {
        let text = password
            .as_str()
            .ok_or_else(|| ProviderError::Unsupported {
                provider: KIND,
                operation: op,
                detail: "Authgear takes the password as a UTF-8 string".into(),
            })?;
        if text.is_empty() {
            // Authgear would generate a random password for "": never send it.
            return Err(ProviderError::PasswordRejected {
                provider: KIND,
                operation: op,
                reasons: vec!["EmptyPassword".into()],
            });
        }
        Ok(text)
    }

    async fn create(
        &self,
        user: &NewUser,
        password: Option<Password<'_>>,
    ) -> Result<CreatedUser, ProviderError> {
        let op = Operation::CreateUser;
        let email = super::normalize_email(&user.email);
        let password = password.map(|p| Self::password_text(op, p)).transpose()?;
        let body = Self::body(
            CREATE_MUTATION,
            json!({
                "key": self.config.login_id_key,
                "email": email,
                "password": password,
                "expired": self.config.set_password_expired,
            }),
        )?;
        match self.graphql(op, Idempotency::NotIdempotent, &body).await {
            Ok(data) => {
                let user = data
                    .get("createUser")
                    .and_then(|c| c.get("user"))
                    .and_then(Self::user_from)
                    .ok_or_else(|| ProviderError::Invalid {
                        provider: KIND,
                        operation: op,
                        status: Some(200),
                        detail: "createUser returned no user id".into(),
                    })?;
                Ok(CreatedUser {
                    id: user.id,
                    password_set: password.is_some(),
                })
            }
            Err(ProviderError::AlreadyExists { .. }) => {
                let existing_id = self.find(&email).await.ok().flatten().map(|u| u.id);
                Err(ProviderError::AlreadyExists {
                    provider: KIND,
                    operation: op,
                    existing_id,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn reset_password(
        &self,
        id: &ProviderUserId,
        password: Password<'_>,
    ) -> Result<(), ProviderError> {
        let op = Operation::SetPassword;
        let text = Self::password_text(op, password)?;
        let body = Self::body(
            RESET_PASSWORD_MUTATION,
            json!({"id": id.as_str(), "password": text, "expired": self.config.set_password_expired}),
        )?;
        self.graphql(op, Idempotency::Idempotent, &body)
            .await
            .map(|_| ())
    }

    /// `node(id:)` as a `User`: `null` (or another type) is "no such user"; the password is
    /// set when the user has a primary password authenticator.
    async fn get(&self, id: &ProviderUserId) -> Result<Option<UserDetails>, ProviderError> {
        let op = Operation::GetUser;
        let body = Self::body(GET_USER_QUERY, json!({"id": id.as_str()}))?;
        let data = match self.graphql(op, Idempotency::Idempotent, &body).await {
            Ok(data) => data,
            Err(ProviderError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(node) = data.get("node").filter(|n| !n.is_null()) else {
            return Ok(None);
        };
        let Some(user) = Self::user_from(node) else {
            return Ok(None);
        };
        let password = match node.get("primaryPassword") {
            Some(Value::Null) => PasswordState::NotSet,
            Some(Value::Object(_)) => PasswordState::Set,
            _ => PasswordState::Unknown,
        };
        Ok(Some(UserDetails { user, password }))
    }

    async fn expire_password(&self, id: &ProviderUserId) -> Result<(), ProviderError> {
        let op = Operation::RequirePasswordChange;
        let body = Self::body(SET_PASSWORD_EXPIRED_MUTATION, json!({"id": id.as_str()}))?;
        self.graphql(op, Idempotency::Idempotent, &body)
            .await
            .map(|_| ())
    }

    async fn check(&self) -> CheckReport {
        let mut lines = Vec::new();
        match self.token().await {
            Ok(_) => lines.push((
                "admin key".to_string(),
                Ok(format!(
                    "admin JWT signed (kid {}, aud {})",
                    self.config.key_id, self.config.project_id
                )),
            )),
            Err(e) => {
                lines.push(("admin key".to_string(), Err(e.to_string())));
                return CheckReport { lines };
            }
        }
        let result = async {
            let body = Self::body(
                FIND_QUERY,
                json!({"email": "dripgate-credentials-check@invalid.example"}),
            )?;
            self.graphql(Operation::Check, Idempotency::Idempotent, &body)
                .await
        }
        .await;
        lines.push((
            "admin API read (getUsersByStandardAttribute)".to_string(),
            result
                .map(|_| format!("{} answered", self.endpoint))
                .map_err(|e| e.to_string()),
        ));
        CheckReport { lines }
    }
}

impl Provider for AuthgearClient {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create_with_password: true,
            imports: &[],
            prefers_legacy_hash: false,
            stores_legacy_id: false,
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
        self.reset_password(id, password).boxed()
    }

    fn require_password_change<'a>(
        &'a self,
        id: &'a ProviderUserId,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.expire_password(id).boxed()
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
                detail: "the Admin API takes plaintext only; bcrypt hashes go through the bulk User Import API (not implemented)".into(),
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
        self.get(id).boxed()
    }
}
