//! Keycloak Admin REST API client (spec: `tests/provider_specs/keycloak-admin-api.json`,
//! Keycloak 26.6).
//!
//! - Token: `POST /realms/{realm}/protocol/openid-connect/token` (form, `client_credentials`)
//!   for a confidential client with a service account, cached.
//! - Find: `GET /admin/realms/{realm}/users?email=&exact=true` (Keycloak stores emails
//!   lower-cased; dripgate sends them lower-cased); create: `POST …/users` → 201 + `Location`
//!   (409 on a duplicate username or email); set password: `PUT …/users/{id}/reset-password`
//!   (204; 400 `invalidPassword…Message` on a policy refusal); force change and hash import:
//!   `PUT …/users/{id}` (`requiredActions`, `credentials` with `secretData`/`credentialData`).
//! - Errors: `ErrorRepresentation` (`errorMessage`) or the OAuth shape (`error`).
//!
//! `client` is the transport, `wire` the bodies, `password` the password and hash transfer,
//! `check` the `provider check` report.

use std::collections::BTreeMap;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::config::{HttpConfig, LimitsConfig};
use super::http::build_client;
use super::limit::{Idempotency, Limiter};
use super::oauth::OAuthTransport;
use super::{
    Capabilities, CheckReport, CreatedUser, HashingMethod, ImportedHash, NewUser, Operation,
    Password, Provider, ProviderError, ProviderKind, ProviderMetrics, ProviderUser, ProviderUserId,
};

mod check;
mod client;
pub mod config;
mod password;
mod wire;

pub use config::{KeycloakConfig, KeycloakPasswordTransfer};
use wire::{NewUserRep, RequiredActionsRep, UserRead};

const KIND: ProviderKind = ProviderKind::Keycloak;

/// The required action that makes a user choose a new password at the next sign-in.
pub const UPDATE_PASSWORD: &str = "UPDATE_PASSWORD";

/// The Keycloak client.
pub struct KeycloakClient {
    transport: OAuthTransport,
    base: String,
    config: KeycloakConfig,
}

impl std::fmt::Debug for KeycloakClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeycloakClient")
            .field("base", &self.base)
            .field("realm", &self.config.realm)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

fn invalid_body(
    op: Operation,
    status: u16,
    what: &str,
    e: &dyn std::fmt::Display,
) -> ProviderError {
    ProviderError::Invalid {
        provider: KIND,
        operation: op,
        status: Some(status),
        detail: format!("{what}: {e}"),
    }
}

fn encode<T: serde::Serialize>(body: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(body).map_err(|e| ProviderError::Config(format!("encoding: {e}")))
}

impl KeycloakClient {
    /// Builds the client (no network traffic until the first call).
    pub fn new(
        config: &KeycloakConfig,
        http: &HttpConfig,
        limits: &LimitsConfig,
        metrics: Option<ProviderMetrics>,
    ) -> Result<Self, ProviderError> {
        config.validate()?;
        Ok(Self {
            transport: OAuthTransport::new(
                &client::DIALECT,
                build_client(http)?,
                Limiter::new(KIND, limits, http.deadline, metrics),
            ),
            base: config.base_url.trim_end_matches('/').to_string(),
            config: config.clone(),
        })
    }

    fn legacy_id_of(&self, user: &UserRead) -> Option<String> {
        let key = self.config.legacy_id_attribute.as_str();
        (!key.is_empty())
            .then(|| user.attributes.as_ref()?.get(key)?.first().cloned())
            .flatten()
    }

    /// `GET …/users?{field}=<value>&exact=true`: the user whose `field` equals `value`
    /// (lower-case, as Keycloak stores usernames and emails).
    async fn search(
        &self,
        field: &str,
        value: &str,
    ) -> Result<Option<ProviderUser>, ProviderError> {
        let op = Operation::FindUser;
        if value.is_empty() {
            return Err(ProviderError::Invalid {
                provider: KIND,
                operation: op,
                status: None,
                detail: "empty email".into(),
            });
        }
        let mut url = self.admin_url(&["users"])?;
        url.query_pairs_mut()
            .append_pair(field, value)
            .append_pair("exact", "true");
        let answer = self
            .call(op, Idempotency::Idempotent, reqwest::Method::GET, url, None)
            .await?;
        let users: Vec<UserRead> = serde_json::from_slice(&answer.body)
            .map_err(|e| invalid_body(op, answer.status, "users response", &e))?;
        let found = users.into_iter().find_map(|u| {
            // Servers without `exact` support answer substring matches: keep the equal one.
            let have = if field == "email" {
                &u.email
            } else {
                &u.username
            };
            let matches = have
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(value));
            let legacy_id = self.legacy_id_of(&u);
            match (matches, u.id) {
                (true, Some(id)) => Some(ProviderUser {
                    id: ProviderUserId(id),
                    email: u.email,
                    legacy_id,
                }),
                _ => None,
            }
        });
        Ok(found)
    }

    async fn find(&self, email: &str) -> Result<Option<ProviderUser>, ProviderError> {
        self.search("email", &super::normalize_email(email)).await
    }

    async fn create(&self, user: &NewUser) -> Result<CreatedUser, ProviderError> {
        let op = Operation::CreateUser;
        let email = super::normalize_email(&user.email);
        let mut attributes = BTreeMap::new();
        if let (false, Some(id)) = (self.config.legacy_id_attribute.is_empty(), &user.legacy_id) {
            attributes.insert(self.config.legacy_id_attribute.as_str(), [id.as_str()]);
        }
        let body = encode(&NewUserRep {
            username: &email,
            email: &email,
            email_verified: self.config.mark_email_verified.unwrap_or(false),
            enabled: true,
            first_name: user.given_name.as_deref(),
            last_name: user.family_name.as_deref(),
            attributes,
        })?;
        let url = self.admin_url(&["users"])?;
        let result = self
            .call(
                op,
                Idempotency::NotIdempotent,
                reqwest::Method::POST,
                url,
                Some(&body),
            )
            .await;
        match result {
            Ok(answer) => {
                let id = answer
                    .headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                    .filter(|id| !id.is_empty())
                    .map(str::to_string);
                let id =
                    match id {
                        Some(id) => id,
                        // Created, but the answer lacks the id (a proxy ate the header): look it up.
                        None => self.find(&email).await?.map(|u| u.id.0).ok_or_else(|| {
                            invalid_body(op, answer.status, "create", &"no Location")
                        })?,
                    };
                Ok(CreatedUser {
                    id: ProviderUserId(id),
                    password_set: false,
                })
            }
            // "User exists with same username" / "… same email": find which one.
            Err(ProviderError::Invalid {
                status: Some(409), ..
            }) => {
                let existing = match self.find(&email).await? {
                    Some(u) => Some(u),
                    None => self.search("username", &email).await?,
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

    /// Adds `UPDATE_PASSWORD` to the user's required actions (a `PUT` replaces the list, so the
    /// current one is read first).
    async fn require_update_password(&self, id: &ProviderUserId) -> Result<(), ProviderError> {
        let op = Operation::RequirePasswordChange;
        let url = self.admin_url(&["users", id.as_str()])?;
        let answer = self
            .call(
                op,
                Idempotency::Idempotent,
                reqwest::Method::GET,
                url.clone(),
                None,
            )
            .await?;
        let user: UserRead = serde_json::from_slice(&answer.body)
            .map_err(|e| invalid_body(op, answer.status, "user", &e))?;
        let mut actions = user.required_actions.unwrap_or_default();
        if actions.iter().any(|a| a == UPDATE_PASSWORD) {
            return Ok(());
        }
        actions.push(UPDATE_PASSWORD.to_string());
        let body = encode(&RequiredActionsRep {
            required_actions: &actions,
        })?;
        self.call(
            op,
            Idempotency::Idempotent,
            reqwest::Method::PUT,
            url,
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// The methods [`Provider::import_legacy_hash`] takes with this configuration.
    fn imports(&self) -> &'static [HashingMethod] {
        if self.config.import_argon2 {
            &HashingMethod::KEYCLOAK
        } else {
            &HashingMethod::KEYCLOAK[..2]
        }
    }
}

impl Provider for KeycloakClient {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create_with_password: false,
            imports: self.imports(),
            prefers_legacy_hash: self.config.password_transfer
                == KeycloakPasswordTransfer::LegacyHash,
            stores_legacy_id: !self.config.legacy_id_attribute.is_empty(),
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
        self.reset_password(id, password).boxed()
    }

    fn require_password_change<'a>(
        &'a self,
        id: &'a ProviderUserId,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.require_update_password(id).boxed()
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn client(import_argon2: bool) -> KeycloakClient {
        let config: KeycloakConfig = toml::from_str(&format!(
            "base_url = \"https://sso.example.com\"\nrealm = \"r\"\nclient_id = \"c\"\n\
             client_secret = \"s\"\nimport_argon2 = {import_argon2}\n"
        ))
        .unwrap();
        KeycloakClient::new(
            &config,
            &HttpConfig::default(),
            &LimitsConfig::default(),
            None,
        )
        .unwrap()
    }

    fn algorithms(c: &KeycloakClient) -> String {
        c.capabilities()
            .imports
            .iter()
            .flat_map(|m| password::algorithms(*m).iter().copied())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// docs/PROVIDERS.md's capability table says what the client does.
    #[test]
    fn the_capability_table_row_matches_the_client() {
        let doc = include_str!("../../../docs/PROVIDERS.md");
        let table = doc
            .split("<!-- capability-table -->")
            .nth(1)
            .and_then(|t| t.split("<!-- /capability-table -->").next())
            .expect("docs/PROVIDERS.md has the capability table");
        let row = table
            .lines()
            .find(|l| l.starts_with("| Keycloak |"))
            .expect("a Keycloak row");
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let plain = client(false);
        let caps = plain.capabilities();
        assert_eq!(
            cells[2].starts_with("yes"),
            caps.atomic_create_with_password
        );
        assert_eq!(
            cells[3],
            format!("{}; argon2 with `import_argon2`", algorithms(&plain))
        );
        assert_eq!(
            algorithms(&client(true)),
            format!("{}, argon2", algorithms(&plain))
        );
        assert!(caps.stores_legacy_id);
        assert_eq!(cells[4], "attribute `dripgate_legacy_id`");
        assert!(cells[5].contains(UPDATE_PASSWORD));
        assert!(!caps.prefers_legacy_hash, "plaintext is the default");
        // The code-derived table above it: create sets the password, imports, legacy id.
        let reported = doc
            .lines()
            .filter(|l| l.starts_with("| Keycloak |"))
            .find(|l| !l.contains("(create, then set)"))
            .expect("a Keycloak row in the table of capabilities()");
        let cells: Vec<&str> = reported.split('|').map(str::trim).collect();
        assert_eq!(
            cells[2],
            if caps.atomic_create_with_password {
                "yes"
            } else {
                "no"
            }
        );
        assert_eq!(
            cells[3],
            format!("{}; argon2 with `import_argon2`", algorithms(&plain))
        );
        assert_eq!(cells[4], if caps.stores_legacy_id { "yes" } else { "no" });
    }
}
