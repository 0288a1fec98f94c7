//! A fake Auth0: `POST /oauth/token` and the Management API v2 paths dripgate uses, with the
//! spec's status codes, Auth0's error body (`{statusCode, error, message, errorCode}`), its
//! password policy errors, a rate limit answered with `X-RateLimit-Reset` in **epoch seconds**,
//! and `users-by-email` matching case-sensitively as the real one does (database connections
//! store emails lower-cased).
//!
//! Operation names (for counters and faults) are the spec's operationIds: `token`,
//! `get_users-by-email`, `post_users`, `get_users_by_id`, `patch_users_by_id`, `get_connections`.
//! Every request is checked by the validator plugged in with [`FakeAuth0::set_validator`] (the
//! tests build one from the spec file), called with the operationId and
//! `{"method", "path", "query": {name: value}, "content_type", "body"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::{Fault, Knobs, ServerHandle, Validator, serve};

mod policy;
mod routes;

pub use policy::FakePasswordPolicy;

/// Every scope the fake grants by default: the migration's three and `read:connections`.
pub const ALL_SCOPES: [&str; 4] = [
    "read:users",
    "create:users",
    "update:users",
    "read:connections",
];

/// The scope an operation needs (the spec's `oAuth2ClientCredentials` security of each one).
pub fn required_scope(operation: &str) -> Option<&'static str> {
    match operation {
        "get_users-by-email" | "get_users_by_id" => Some("read:users"),
        "post_users" => Some("create:users"),
        "patch_users_by_id" => Some("update:users"),
        "get_connections" => Some("read:connections"),
        _ => None,
    }
}

/// The fake's own Management API rate limit (token bucket over every API call; the token
/// endpoint is not counted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FakeRateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Bucket size.
    pub burst: f64,
}

impl FakeRateLimit {
    /// Auth0's free tier: burst 2, sustained 2 per second.
    pub const FREE_TIER: FakeRateLimit = FakeRateLimit {
        per_second: 2.0,
        burst: 2.0,
    };
}

/// Fake settings.
#[derive(Debug, Clone)]
pub struct FakeAuth0Options {
    /// The client id it accepts.
    pub client_id: String,
    /// The client secret it accepts.
    pub client_secret: String,
    /// Scopes granted to the client.
    pub scopes: Vec<String>,
    /// Token lifetime (`expires_in`).
    pub token_lifetime: Duration,
    /// The database connection (strategy `auth0`) users are created in.
    pub connection: String,
    /// The connection's password policy.
    pub policy: FakePasswordPolicy,
    /// The Management API rate limit (`None`: unlimited).
    pub rate_limit: Option<FakeRateLimit>,
}

impl Default for FakeAuth0Options {
    fn default() -> Self {
        Self {
            client_id: "fake-auth0-client".into(),
            client_secret: "fake-auth0-secret".into(),
            scopes: ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
            token_lifetime: Duration::from_secs(86_400),
            connection: "Username-Password-Authentication".into(),
            policy: FakePasswordPolicy::default(),
            rate_limit: Some(FakeRateLimit::FREE_TIER),
        }
    }
}

/// A user held by the fake.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeAuth0User {
    /// `auth0|<id>`.
    pub user_id: String,
    /// The email as stored (lower-cased for the database connection).
    pub email: String,
    /// `email_verified`.
    pub email_verified: bool,
    /// The connection of the user's identity.
    pub connection: String,
    /// `given_name`.
    pub given_name: Option<String>,
    /// `family_name`.
    pub family_name: Option<String>,
    /// `app_metadata` (an object).
    pub app_metadata: Value,
    /// bcrypt of the current password (database connection users).
    pub password_bcrypt: Option<String>,
    /// bcrypt of earlier passwords (for the history policy).
    pub previous_passwords: Vec<String>,
    /// Whether the user was created through `POST /api/v2/users` (rather than inserted).
    pub created_via_api: bool,
}

#[derive(Debug)]
struct Issued {
    expires_at: Instant,
    scopes: Vec<String>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
struct State {
    users: HashMap<String, FakeAuth0User>,
    tokens: HashMap<String, Issued>,
    knobs: Knobs,
    validator: Option<Validator>,
    bucket: Option<Bucket>,
    rate_limited: u64,
    in_flight: u64,
    max_in_flight: u64,
}

struct Shared {
    options: FakeAuth0Options,
    base_url: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running fake Auth0; stops when dropped.
pub struct FakeAuth0 {
    shared: Arc<Shared>,
    _server: ServerHandle,
}

impl std::fmt::Debug for FakeAuth0 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAuth0")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl FakeAuth0 {
    /// Starts the fake on `addr` (e.g. `127.0.0.1:0`).
    pub async fn start(addr: &str, options: FakeAuth0Options) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            options,
            base_url,
            state: Mutex::new(State::default()),
        });
        let s = shared.clone();
        let server = serve(listener, move |req| {
            let s = s.clone();
            async move { routes::handle(&s, req).await }
        })?;
        Ok(Self {
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT` (the client's `base_url`).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The audience tokens must ask for: `<base_url>/api/v2/`.
    pub fn audience(&self) -> String {
        format!("{}/api/v2/", self.shared.base_url)
    }

    /// The fake's settings.
    pub fn options(&self) -> &FakeAuth0Options {
        &self.shared.options
    }

    /// Checks every request with `validator` (e.g. built from the spec file).
    pub fn set_validator(&self, validator: Validator) {
        self.shared.lock().validator = Some(validator);
    }

    /// Every user, by id.
    pub fn users(&self) -> Vec<FakeAuth0User> {
        let mut v: Vec<_> = self.shared.lock().users.values().cloned().collect();
        v.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        v
    }

    /// The users whose email equals `email` ignoring case (an admin's view, not the API's).
    pub fn users_by_email(&self, email: &str) -> Vec<FakeAuth0User> {
        self.users()
            .into_iter()
            .filter(|u| u.email.eq_ignore_ascii_case(email))
            .collect()
    }

    /// The database-connection user with this email (ignoring case), if any.
    pub fn user_by_email(&self, email: &str) -> Option<FakeAuth0User> {
        let connection = &self.shared.options.connection;
        self.users_by_email(email)
            .into_iter()
            .find(|u| &u.connection == connection)
    }

    /// Adds a user directly (as if created earlier, e.g. by a social login or an import);
    /// the email is stored exactly as given.
    pub fn insert_user(&self, user: FakeAuth0User) {
        self.shared.lock().users.insert(user.user_id.clone(), user);
    }

    /// A database-connection user with `email` (lower-cased) and no password, for
    /// [`FakeAuth0::insert_user`].
    pub fn new_user(&self, email: &str) -> FakeAuth0User {
        FakeAuth0User {
            user_id: format!("auth0|{}", routes::object_id()),
            email: email.to_lowercase(),
            email_verified: true,
            connection: self.shared.options.connection.clone(),
            given_name: None,
            family_name: None,
            app_metadata: Value::Object(Default::default()),
            password_bcrypt: None,
            previous_passwords: Vec::new(),
            created_via_api: false,
        }
    }

    /// Whether `plaintext` signs in as the database-connection user with `email`.
    pub fn verify_password(&self, email: &str, plaintext: &[u8]) -> bool {
        self.user_by_email(email)
            .and_then(|u| u.password_bcrypt)
            .is_some_and(|h| bcrypt::verify(plaintext, &h).unwrap_or(false))
    }

    /// Calls seen for an operation (operationId, or `token`).
    pub fn calls(&self, operation: &str) -> u64 {
        self.shared.lock().knobs.calls(operation)
    }

    /// Calls answered 429 by the fake's own rate limit (not by injected faults).
    pub fn rate_limited(&self) -> u64 {
        self.shared.lock().rate_limited
    }

    /// The most Management API requests the fake was handling at once.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.lock().max_in_flight
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

    /// Requests that broke the spec (the validator's findings and the fake's own rules).
    pub fn spec_violations(&self) -> Vec<String> {
        self.shared.lock().knobs.violations()
    }

    /// When each call arrived.
    pub fn arrivals(&self) -> Vec<(String, Instant)> {
        self.shared.lock().knobs.arrivals()
    }
}
