//! A fake Keycloak: the OpenID Connect token endpoint of one realm (client credentials for a
//! service-account client) and the Admin REST API paths dripgate uses, with Keycloak's status
//! codes and body shapes (see docs/PROVIDERS.md). With a spec loaded
//! ([`FakeKeycloakOptions::spec`]), every admin request is checked against the Admin REST
//! API's OpenAPI file ([`spec`]); a request that breaks it is answered 400 and recorded in
//! [`FakeKeycloak::spec_violations`].
//!
//! Operation names (for counters and faults): `token`, `getUsers`, `createUser`, `getUser`,
//! `updateUser`, `resetPassword`, `getRealm`, `getUserProfile`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Fault, Knobs, ServerHandle};

mod credential;
mod routes;
pub mod spec;
mod token;
mod users;

pub use credential::FakeCredential;
pub use spec::KeycloakSpec;

/// The `realm-management` roles of a service account that may migrate users (and read the
/// realm's password policy and user profile).
pub const ALL_ROLES: [&str; 3] = ["manage-users", "view-users", "view-realm"];

/// Fake settings.
#[derive(Debug, Clone)]
pub struct FakeKeycloakOptions {
    /// The realm (users and the token endpoint).
    pub realm: String,
    /// The service-account client id it accepts.
    pub client_id: String,
    /// That client's secret.
    pub client_secret: String,
    /// Whether "Service accounts roles" is on for the client.
    pub service_accounts_enabled: bool,
    /// The service account's `realm-management` roles.
    pub roles: Vec<String>,
    /// Access token lifespan (`expires_in`; Keycloak's default is 5 minutes).
    pub token_lifetime: Duration,
    /// Password policy `length(n)` (0: none).
    pub min_password_length: usize,
    /// Password policy `passwordHistory(1)`: a reset to the current password is refused.
    pub password_history: bool,
    /// Iterations of the pbkdf2-sha256 the fake stores set passwords with (Keycloak uses far
    /// more; the fake stays fast).
    pub hash_iterations: u32,
    /// Keep attributes the user profile does not declare ("unmanaged attributes":
    /// `ADMIN_EDIT`); false drops them as Keycloak ≥ 24 does by default.
    pub unmanaged_attributes: bool,
    /// The Admin REST API spec every admin request is checked against (None: not checked).
    pub spec: Option<Arc<KeycloakSpec>>,
}

impl Default for FakeKeycloakOptions {
    fn default() -> Self {
        Self {
            realm: "customers".into(),
            client_id: "dripgate".into(),
            client_secret: "fake-keycloak-secret".into(),
            service_accounts_enabled: true,
            roles: ALL_ROLES.iter().map(|s| s.to_string()).collect(),
            token_lifetime: Duration::from_secs(300),
            min_password_length: 8,
            password_history: true,
            hash_iterations: 1_000,
            unmanaged_attributes: true,
            spec: None,
        }
    }
}

impl FakeKeycloakOptions {
    /// The realm's `passwordPolicy` string.
    pub fn password_policy(&self) -> String {
        let mut rules = Vec::new();
        if self.min_password_length > 0 {
            rules.push(format!("length({})", self.min_password_length));
        }
        if self.password_history {
            rules.push("passwordHistory(1)".into());
        }
        rules.push("hashAlgorithm(pbkdf2-sha256)".into());
        rules.push(format!("hashIterations({})", self.hash_iterations));
        rules.join(" and ")
    }
}

/// A user held by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeKeycloakUser {
    /// A UUID.
    pub id: String,
    /// `username` (lower-cased, as Keycloak stores it).
    pub username: String,
    /// `email` (lower-cased, as Keycloak stores it).
    pub email: Option<String>,
    /// `emailVerified`.
    pub email_verified: bool,
    /// `enabled`.
    pub enabled: bool,
    /// `firstName`.
    pub first_name: Option<String>,
    /// `lastName`.
    pub last_name: Option<String>,
    /// `attributes`.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// `requiredActions`.
    pub required_actions: Vec<String>,
    /// The password credential, once set or imported.
    pub credential: Option<FakeCredential>,
}

#[derive(Debug)]
struct Issued {
    expires_at: Instant,
    roles: Vec<String>,
}

#[derive(Default)]
struct State {
    users: HashMap<String, FakeKeycloakUser>,
    tokens: HashMap<String, Issued>,
    knobs: Knobs,
}

type Shared = super::FakeShared<FakeKeycloakOptions, State>;

/// A running fake Keycloak; stops when dropped.
pub struct FakeKeycloak {
    shared: Arc<Shared>,
    _server: ServerHandle,
}

impl std::fmt::Debug for FakeKeycloak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKeycloak")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl FakeKeycloak {
    /// Starts the fake on `addr` (e.g. `127.0.0.1:0`).
    pub async fn start(addr: &str, options: FakeKeycloakOptions) -> std::io::Result<Self> {
        let (shared, server) =
            Shared::start(addr, "", options, State::default(), |s, req| async move {
                routes::handle(&s, req).await
            })
            .await?;
        Ok(Self {
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The fake's settings.
    pub fn options(&self) -> &FakeKeycloakOptions {
        &self.shared.options
    }

    /// Every user, by id.
    pub fn users(&self) -> Vec<FakeKeycloakUser> {
        let mut v: Vec<_> = self.shared.lock().users.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The user with this email (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Option<FakeKeycloakUser> {
        let email = email.to_lowercase();
        self.shared
            .lock()
            .users
            .values()
            .find(|u| u.email.as_deref() == Some(email.as_str()))
            .cloned()
    }

    /// Adds a user directly (as if created earlier, without a password), returning its id.
    pub fn insert_user(&self, email: &str, attributes: BTreeMap<String, Vec<String>>) -> String {
        let id = new_id();
        let email = email.to_lowercase();
        let user = FakeKeycloakUser {
            id: id.clone(),
            username: email.clone(),
            email: Some(email),
            email_verified: true,
            enabled: true,
            first_name: None,
            last_name: None,
            attributes,
            required_actions: Vec::new(),
            credential: None,
        };
        self.shared.lock().users.insert(id.clone(), user);
        id
    }

    /// Whether `password` signs in as the user with `email` (the credential as Keycloak would
    /// verify it; a user with `UPDATE_PASSWORD` pending still signs in, then must change it).
    pub fn verify_password(&self, email: &str, password: &[u8]) -> bool {
        self.user_by_email(email)
            .and_then(|u| u.credential)
            .is_some_and(|c| c.verify(password))
    }

    /// Calls seen for an operation.
    pub fn calls(&self, operation: &str) -> u64 {
        self.shared.lock().knobs.calls(operation)
    }

    /// Queues `fault` for the next `n` calls of `operation`.
    pub fn fail_next(&self, operation: &str, n: usize, fault: Fault) {
        self.shared.lock().knobs.fail_next(operation, n, fault);
    }

    /// Makes every token issued so far expire now (the next use gets 401).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for t in self.shared.lock().tokens.values_mut() {
            t.expires_at = now;
        }
    }

    /// Requests that broke the spec or Keycloak's own rules.
    pub fn spec_violations(&self) -> Vec<String> {
        self.shared.lock().knobs.violations()
    }

    /// When each call arrived.
    pub fn arrivals(&self) -> Vec<(String, Instant)> {
        self.shared.lock().knobs.arrivals()
    }
}

/// A random UUID (version 4 layout).
fn new_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}
