//! A fake Kinde: `POST /oauth2/token` and the management API paths dripgate uses, with the
//! spec's status codes and body shapes (see docs/PROVIDERS.md).
//!
//! Operation names (for counters and faults) are the spec's operationIds: `token`, `getUsers`,
//! `getUserData`, `createUser`, `updateUser`, `SetUserPassword`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::{Fault, Knobs, ServerHandle, Validator};

mod password;
mod routes;

pub use password::StoredPassword;
pub(crate) use password::verify as verify_stored;

/// Scopes dripgate needs.
pub const ALL_SCOPES: [&str; 4] = [
    "read:users",
    "create:users",
    "update:users",
    "update:user_passwords",
];

/// Fake settings.
#[derive(Debug, Clone)]
pub struct FakeKindeOptions {
    /// The M2M client id it accepts.
    pub client_id: String,
    /// The M2M client secret it accepts.
    pub client_secret: String,
    /// Scopes granted to the client.
    pub scopes: Vec<String>,
    /// Token lifetime (`expires_in`).
    pub token_lifetime: Duration,
    /// Accept the plaintext `{"password": …}` body some Kinde pages show (the spec does not).
    pub accept_plaintext_password: bool,
}

impl Default for FakeKindeOptions {
    fn default() -> Self {
        Self {
            client_id: "fake-m2m-client".into(),
            client_secret: "fake-m2m-secret".into(),
            scopes: ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
            token_lifetime: Duration::from_secs(86_400),
            accept_plaintext_password: false,
        }
    }
}

/// A user held by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeKindeUser {
    /// `kp_` + 32 hex.
    pub id: String,
    /// Email identity (as given).
    pub email: Option<String>,
    /// Whether the email identity is verified.
    pub email_verified: bool,
    /// `profile.given_name`.
    pub given_name: Option<String>,
    /// `profile.family_name`.
    pub family_name: Option<String>,
    /// `provided_id`.
    pub provided_id: Option<String>,
    /// The password, once set.
    pub password: Option<StoredPassword>,
    /// `is_password_reset_requested`.
    pub password_reset_requested: bool,
}

#[derive(Debug)]
struct Issued {
    expires_at: Instant,
    scopes: Vec<String>,
}

#[derive(Default)]
struct State {
    users: HashMap<String, FakeKindeUser>,
    tokens: HashMap<String, Issued>,
    knobs: Knobs,
    validator: Option<Validator>,
}

type Shared = super::FakeShared<FakeKindeOptions, State>;

/// A running fake Kinde; stops when dropped.
pub struct FakeKinde {
    shared: Arc<Shared>,
    _server: ServerHandle,
}

impl std::fmt::Debug for FakeKinde {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKinde")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl FakeKinde {
    /// Starts the fake on `addr` (e.g. `127.0.0.1:0`).
    pub async fn start(addr: &str, options: FakeKindeOptions) -> std::io::Result<Self> {
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

    /// The audience tokens must ask for: `<base_url>/api`.
    pub fn audience(&self) -> String {
        format!("{}/api", self.shared.base_url)
    }

    /// The fake's settings.
    pub fn options(&self) -> &FakeKindeOptions {
        &self.shared.options
    }

    /// Validates every request body with `validator` (e.g. built from the spec file).
    pub fn set_validator(&self, validator: Validator) {
        self.shared.lock().validator = Some(validator);
    }

    /// Every user.
    pub fn users(&self) -> Vec<FakeKindeUser> {
        let mut v: Vec<_> = self.shared.lock().users.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The user with this email (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Option<FakeKindeUser> {
        self.shared
            .lock()
            .users
            .values()
            .find(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .cloned()
    }

    /// Adds a user directly (as if created earlier), returning its id.
    pub fn insert_user(&self, email: &str) -> String {
        let id = new_id();
        let user = FakeKindeUser {
            id: id.clone(),
            email: Some(email.to_string()),
            email_verified: true,
            given_name: None,
            family_name: None,
            provided_id: None,
            password: None,
            password_reset_requested: false,
        };
        self.shared.lock().users.insert(id.clone(), user);
        id
    }

    /// Adds a user directly with a password of its own (stored as the plaintext body), as an
    /// account that existed at Kinde before any migration; returns its id.
    pub fn seed_user(&self, email: &str, password: &str) -> String {
        let id = self.insert_user(email);
        if let Some(user) = self.shared.lock().users.get_mut(&id) {
            user.password = Some(StoredPassword {
                method: "plaintext".into(),
                hash: password.to_owned(),
                salt: None,
                salt_position: None,
                iterations: None,
                variant: None,
                temporary: false,
            });
        }
        id
    }

    /// Deletes the user with this id, as an operator would at the provider; false when there
    /// was none.
    pub fn delete_user(&self, id: &str) -> bool {
        self.shared.lock().users.remove(id).is_some()
    }

    /// Changes the email identity of the user with this id.
    pub fn set_email(&self, id: &str, email: &str) {
        if let Some(u) = self.shared.lock().users.get_mut(id) {
            u.email = Some(email.to_owned());
        }
    }

    /// Calls seen for an operation (operationId, or `token`).
    pub fn calls(&self, operation: &str) -> u64 {
        self.shared.lock().knobs.calls(operation)
    }

    /// Queues `fault` for the next `n` calls of `operation`.
    pub fn fail_next(&self, operation: &str, n: usize, fault: Fault) {
        self.shared.lock().knobs.fail_next(operation, n, fault);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.shared.lock().knobs.clear_faults();
    }

    /// Makes every token issued so far expire now (the next use gets 401).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for t in self.shared.lock().tokens.values_mut() {
            t.expires_at = now;
        }
    }

    /// Requests that broke the spec (checked by the validator and the fake's own rules).
    pub fn spec_violations(&self) -> Vec<String> {
        self.shared.lock().knobs.violations()
    }

    /// When each call arrived.
    pub fn arrivals(&self) -> Vec<(String, Instant)> {
        self.shared.lock().knobs.arrivals()
    }
}

pub(super) fn new_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    format!("kp_{}", hex::encode(bytes))
}
