//! The reference implementation of the generic HTTP provider contract
//! (docs/generic-http-provider.openapi.yaml), as a fake for tests and the demo: a real HTTP/1.1
//! server on loopback holding users in memory. An operator writing the receiving side can read
//! it as a sketch of what to check and in which order:
//!
//! 1. the signature (`auth`): known key id, timestamp inside the replay window, HMAC over the
//!    canonical string compared in constant time, then the nonce unused within the window;
//! 2. the request against the contract: path, method, query, headers, JSON body with no unknown
//!    fields (`routes`; in tests also the OpenAPI file itself through [`SpecValidator`]);
//! 3. the operation: creates remembered by `Idempotency-Key`, emails unique case-insensitively,
//!    the password policy, plaintext hashed (bcrypt) on receipt, imported hashes checked.
//!
//! Operation names (for counters and faults) are the contract's operationIds:
//! `getCapabilities`, `findUserByEmail`, `createUser`, `setPassword`, `requirePasswordChange`.
//! A request that breaks the contract is answered as the contract says (400/401) and recorded in
//! [`FakeGenericHttp::spec_violations`] or [`FakeGenericHttp::auth_refusals`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::kinde::StoredPassword;
use super::{Fault, Knobs, ServerHandle};

mod auth;
mod routes;

/// The key id the fake accepts by default.
pub const DEFAULT_KEY_ID: &str = "fake-key-1";
/// The signing key the fake accepts by default (test-only).
pub const DEFAULT_KEY: &str = "fake-generic-http-signing-key-0123456789";

/// Every hashing method the contract has; the fake verifies each.
pub const ALL_HASH_METHODS: [&str; 6] = ["bcrypt", "crypt", "md5", "sha256", "wordpress", "pbkdf2"];

/// Fake settings.
#[derive(Debug, Clone)]
pub struct FakeGenericHttpOptions {
    /// Signing keys accepted, by key id (two during a rotation).
    pub keys: Vec<(String, String)>,
    /// How far a request's timestamp may be from the fake's clock; nonces are remembered as long.
    pub replay_window: Duration,
    /// The password policy: shortest password accepted (`too_short`).
    pub min_password_length: usize,
    /// `PasswordHash.method` values imported (empty: no `import_hash`).
    pub hash_methods: Vec<String>,
    /// Implements `PUT /users/{id}/password-change-required`.
    pub require_password_change: bool,
    /// bcrypt cost of the hash stored for a plaintext password.
    pub bcrypt_cost: u32,
}

impl Default for FakeGenericHttpOptions {
    fn default() -> Self {
        Self {
            keys: vec![(DEFAULT_KEY_ID.into(), DEFAULT_KEY.into())],
            replay_window: Duration::from_secs(300),
            min_password_length: 8,
            hash_methods: ALL_HASH_METHODS.iter().map(|m| m.to_string()).collect(),
            require_password_change: true,
            bcrypt_cost: 10,
        }
    }
}

/// A user held by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeHttpUser {
    /// `usr_` + 24 hex.
    pub id: String,
    /// As given (lower-cased by dripgate).
    pub email: String,
    /// `email_verified`.
    pub email_verified: bool,
    /// `given_name`.
    pub given_name: Option<String>,
    /// `family_name`.
    pub family_name: Option<String>,
    /// `legacy_id`, echoed back in every `User`.
    pub legacy_id: Option<String>,
    /// The password: a bcrypt of the plaintext, or the imported hash.
    pub password: Option<StoredPassword>,
    /// `password_change_required`.
    pub password_change_required: bool,
}

/// A request as the contract validator sees it.
#[derive(Debug)]
pub struct SpecRequest<'a> {
    /// The operationId the fake routed it to.
    pub operation: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The path (percent-encoded, as sent).
    pub path: &'a str,
    /// The query parameters, decoded.
    pub query: &'a [(String, String)],
    /// The headers.
    pub headers: &'a hyper::HeaderMap,
    /// The raw body.
    pub body: &'a [u8],
}

/// Checks a request against the contract (in tests: built from the OpenAPI file).
pub type SpecValidator = Arc<dyn Fn(&SpecRequest<'_>) -> Result<(), String> + Send + Sync>;

/// What a create answered, kept under its `Idempotency-Key`.
#[derive(Debug, Clone)]
struct Remembered {
    email: String,
    user_id: String,
}

#[derive(Default)]
struct State {
    users: HashMap<String, FakeHttpUser>,
    idempotency: HashMap<String, Remembered>,
    nonces: HashMap<String, Instant>,
    knobs: Knobs,
    refusals: Vec<String>,
    validator: Option<SpecValidator>,
}

impl State {
    fn user_by_email(&self, email: &str) -> Option<&FakeHttpUser> {
        self.users
            .values()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }
}

type Shared = super::FakeShared<FakeGenericHttpOptions, State>;

/// A running generic HTTP provider fake; stops when dropped.
pub struct FakeGenericHttp {
    shared: Arc<Shared>,
    _server: ServerHandle,
}

impl std::fmt::Debug for FakeGenericHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGenericHttp")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl FakeGenericHttp {
    /// Starts the fake on `addr` (e.g. `127.0.0.1:0`); the contract's paths are under
    /// `<base_url>` = `http://ADDR/v1` (a base path, as a real deployment may have).
    pub async fn start(addr: &str, options: FakeGenericHttpOptions) -> std::io::Result<Self> {
        let (shared, server) = Shared::start(
            addr,
            routes::BASE_PATH,
            options,
            State::default(),
            |s, req| async move { routes::handle(&s, req).await },
        )
        .await?;
        Ok(Self {
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT/v1`: the `base_url` dripgate is configured with.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The fake's settings.
    pub fn options(&self) -> &FakeGenericHttpOptions {
        &self.shared.options
    }

    /// Checks every request with `validator` too (e.g. built from the OpenAPI file).
    pub fn set_validator(&self, validator: SpecValidator) {
        self.shared.lock().validator = Some(validator);
    }

    /// Every user, by id.
    pub fn users(&self) -> Vec<FakeHttpUser> {
        let mut v: Vec<_> = self.shared.lock().users.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The user with this email (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Option<FakeHttpUser> {
        self.shared.lock().user_by_email(email).cloned()
    }

    /// Adds a user directly (as if created by other means), without a password; returns its id.
    pub fn insert_user(&self, email: &str, legacy_id: Option<&str>) -> String {
        let id = new_id();
        let user = FakeHttpUser {
            id: id.clone(),
            email: email.to_string(),
            email_verified: true,
            given_name: None,
            family_name: None,
            legacy_id: legacy_id.map(str::to_string),
            password: None,
            password_change_required: false,
        };
        self.shared.lock().users.insert(id.clone(), user);
        id
    }

    /// Whether `plaintext` is the password of the user with `email` (bcrypt of a plaintext, or
    /// any imported hash method, checked with dripgate's own verifiers).
    pub fn verify_password(&self, email: &str, plaintext: &[u8]) -> bool {
        self.user_by_email(email)
            .and_then(|u| u.password)
            .is_some_and(|p| super::kinde::verify_stored(&p, plaintext))
    }

    /// Calls seen for an operation (operationId).
    pub fn calls(&self, operation: &str) -> u64 {
        self.shared.lock().knobs.calls(operation)
    }

    /// Queues `fault` for the next `n` calls of `operation`.
    pub fn fail_next(&self, operation: &str, n: usize, fault: Fault) {
        self.shared.lock().knobs.fail_next(operation, n, fault);
    }

    /// Requests that broke the contract (path, method, query, headers, body).
    pub fn spec_violations(&self) -> Vec<String> {
        self.shared.lock().knobs.violations()
    }

    /// Requests refused with 401, with the code (`bad_signature`, `stale_timestamp`, …).
    pub fn auth_refusals(&self) -> Vec<String> {
        self.shared.lock().refusals.clone()
    }

    /// When each call arrived.
    pub fn arrivals(&self) -> Vec<(String, Instant)> {
        self.shared.lock().knobs.arrivals()
    }
}

fn new_id() -> String {
    format!("usr_{}", hex::encode(rand::rng().random::<[u8; 12]>()))
}
