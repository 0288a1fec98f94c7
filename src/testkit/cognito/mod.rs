//! A fake Amazon Cognito user pool: the AWS JSON 1.1 endpoint (`POST /`, `X-Amz-Target`) with
//! Signature Version 4 checked against the fake's own keys (`sigv4`, written apart from the
//! client's signer), every request body checked against the botocore model when one is loaded
//! (`model`), the operations dripgate calls, the pool's password policy, account quotas per
//! category (`TooManyRequestsException` past them), IAM denials, expiring session tokens, and
//! the fault knobs of the other fakes.
//!
//! Operation names (for counters and faults) are the model's: `AdminCreateUser`,
//! `AdminSetUserPassword`, `AdminGetUser`, `ListUsers`, `AdminResetUserPassword`,
//! `DescribeUserPool`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::{Fault, Knobs, ServerHandle, serve_shared};
use crate::provider::cognito::CognitoQuotas;

pub mod model;
mod ops;
mod routes;
pub mod sigv4;

pub use model::BotocoreModel;

/// The pool's password policy (`Policies.PasswordPolicy`); Cognito's default requires all four
/// character classes and at least 8 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePasswordPolicy {
    /// `MinimumLength`.
    pub min_length: usize,
    /// `RequireUppercase`.
    pub require_uppercase: bool,
    /// `RequireLowercase`.
    pub require_lowercase: bool,
    /// `RequireNumbers`.
    pub require_numbers: bool,
    /// `RequireSymbols`.
    pub require_symbols: bool,
}

impl Default for FakePasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            require_uppercase: true,
            require_lowercase: true,
            require_numbers: true,
            require_symbols: true,
        }
    }
}

/// Fake settings.
#[derive(Debug, Clone)]
pub struct FakeCognitoOptions {
    /// The region requests must be signed for.
    pub region: String,
    /// The pool id.
    pub user_pool_id: String,
    /// The pool's name.
    pub pool_name: String,
    /// The IAM access key id it accepts.
    pub access_key_id: String,
    /// Its secret access key.
    pub secret_access_key: String,
    /// A session token the requests must carry (temporary credentials), if any.
    pub session_token: Option<String>,
    /// `UsernameAttributes = [email]`: the email is the sign-in name and Cognito generates the
    /// username (a UUID). Otherwise usernames are the caller's and email is an alias.
    pub email_as_username: bool,
    /// Custom attributes in the schema, without `custom:` (e.g. `legacy_id`).
    pub custom_attributes: Vec<String>,
    /// The password policy.
    pub password_policy: FakePasswordPolicy,
    /// Account quotas per category (requests per second); `None`: unlimited.
    pub quotas: Option<CognitoQuotas>,
    /// IAM actions the credentials are not allowed (e.g. `AdminCreateUser`).
    pub denied_actions: Vec<String>,
}

impl Default for FakeCognitoOptions {
    fn default() -> Self {
        Self {
            region: "eu-west-1".into(),
            user_pool_id: "eu-west-1_FakePool1".into(),
            pool_name: "dripgate-fake-pool".into(),
            access_key_id: "AKIAFAKEDRIPGATE0001".into(),
            secret_access_key: "fake/secret+access/key/for/the/cognito/fake".into(),
            session_token: None,
            email_as_username: true,
            custom_attributes: vec!["legacy_id".into()],
            password_policy: FakePasswordPolicy::default(),
            quotas: Some(CognitoQuotas::default()),
            denied_actions: Vec::new(),
        }
    }
}

/// A user held by the fake (the admin view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCognitoUser {
    /// `Username` (a UUID when the pool signs in by email).
    pub username: String,
    /// `sub`.
    pub sub: String,
    /// Attributes by name (`email`, `email_verified`, `custom:legacy_id`…).
    pub attributes: BTreeMap<String, String>,
    /// `UserStatus`: `FORCE_CHANGE_PASSWORD`, `CONFIRMED`, `RESET_REQUIRED`.
    pub status: String,
    /// Salted SHA-256 of the permanent password, once set (the fake keeps no plaintext).
    password: Option<([u8; 16], [u8; 32])>,
}

impl FakeCognitoUser {
    /// The email attribute.
    pub fn email(&self) -> Option<&str> {
        self.attributes.get("email").map(String::as_str)
    }

    /// Whether a permanent password is set.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    fn password_matches(&self, plaintext: &[u8]) -> bool {
        self.password.is_some_and(|(salt, digest)| {
            let got = salted(&salt, plaintext);
            bool::from(got.ct_eq(&digest))
        })
    }
}

fn salted(salt: &[u8; 16], plaintext: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(plaintext);
    h.finalize().into()
}

#[derive(Default)]
struct State {
    users: Vec<FakeCognitoUser>,
    knobs: Knobs,
    exceptions: HashMap<String, VecDeque<String>>,
    model: Option<Arc<BotocoreModel>>,
    session_token: Option<String>,
    session_expired: bool,
    throttled: u64,
    auth_failures: Vec<String>,
    messages_sent: u64,
}

struct Shared {
    options: FakeCognitoOptions,
    base_url: String,
    quotas: Option<[DefaultDirectRateLimiter; 5]>,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        super::lock(&self.state)
    }
}

fn bucket(rps: u32) -> DefaultDirectRateLimiter {
    let n = std::num::NonZeroU32::new(rps.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(n).allow_burst(n))
}

/// A running fake Cognito; stops when dropped.
pub struct FakeCognito {
    shared: Arc<Shared>,
    _server: ServerHandle,
}

impl std::fmt::Debug for FakeCognito {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCognito")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl FakeCognito {
    /// Starts the fake on `addr` (e.g. `127.0.0.1:0`).
    pub async fn start(addr: &str, options: FakeCognitoOptions) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let quotas = options.quotas.as_ref().map(|q| {
            [
                bucket(q.user_creation),
                bucket(q.user_account_recovery),
                bucket(q.user_read),
                bucket(q.user_list),
                bucket(q.user_pool_read),
            ]
        });
        let state = State {
            session_token: options.session_token.clone(),
            ..State::default()
        };
        let shared = Arc::new(Shared {
            options,
            base_url,
            quotas,
            state: Mutex::new(state),
        });
        let server = serve_shared(listener, &shared, |s, req| async move {
            routes::handle(&s, req).await
        })?;
        Ok(Self {
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT` (the endpoint override).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The fake's settings.
    pub fn options(&self) -> &FakeCognitoOptions {
        &self.shared.options
    }

    /// Checks every request body against `model` (the botocore model of `cognito-idp`).
    pub fn set_model(&self, model: Arc<BotocoreModel>) {
        self.shared.lock().model = Some(model);
    }

    /// Every user, by username.
    pub fn users(&self) -> Vec<FakeCognitoUser> {
        let mut v = self.shared.lock().users.clone();
        v.sort_by(|a, b| a.username.cmp(&b.username));
        v
    }

    /// The user whose email attribute is `email` (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Option<FakeCognitoUser> {
        self.shared
            .lock()
            .users
            .iter()
            .find(|u| u.email().is_some_and(|e| e.eq_ignore_ascii_case(email)))
            .cloned()
    }

    /// Whether `plaintext` signs in as the user with `email`: a confirmed user whose permanent
    /// password it is.
    pub fn verify_password(&self, email: &str, plaintext: &[u8]) -> bool {
        self.user_by_email(email)
            .is_some_and(|u| u.status == "CONFIRMED" && u.password_matches(plaintext))
    }

    /// Adds a confirmed user without a password (as if created earlier by someone else);
    /// returns its username.
    pub fn insert_user(&self, email: &str, legacy_id: Option<&str>) -> String {
        let mut attributes = BTreeMap::new();
        attributes.insert("email".to_string(), email.to_string());
        attributes.insert("email_verified".to_string(), "true".to_string());
        if let Some(id) = legacy_id {
            attributes.insert("custom:legacy_id".to_string(), id.to_string());
        }
        let sub = new_uuid();
        let username = if self.shared.options.email_as_username {
            sub.clone()
        } else {
            email.to_string()
        };
        attributes.insert("sub".to_string(), sub.clone());
        self.shared.lock().users.push(FakeCognitoUser {
            username: username.clone(),
            sub,
            attributes,
            status: "CONFIRMED".into(),
            password: None,
        });
        username
    }

    /// Calls seen for an operation.
    pub fn calls(&self, operation: &str) -> u64 {
        self.shared.lock().knobs.calls(operation)
    }

    /// Queues `fault` for the next `n` calls of `operation` (`RateLimit` answers
    /// `TooManyRequestsException`, `PasswordPolicy` `InvalidPasswordException`).
    pub fn fail_next(&self, operation: &str, n: usize, fault: Fault) {
        self.shared.lock().knobs.fail_next(operation, n, fault);
    }

    /// Answers the next `n` calls of `operation` with the AWS error `exception` (HTTP 400),
    /// e.g. `LimitExceededException`.
    pub fn fail_next_exception(&self, operation: &str, n: usize, exception: &str) {
        let mut st = self.shared.lock();
        let q = st.exceptions.entry(operation.to_string()).or_default();
        q.extend(std::iter::repeat_n(exception.to_string(), n));
    }

    /// Makes the session token expire: requests with it get `ExpiredTokenException` until
    /// [`FakeCognito::rotate_session_token`].
    pub fn expire_tokens(&self) {
        self.shared.lock().session_expired = true;
    }

    /// Accepts `token` as the session token from now on (the old one stops working).
    pub fn rotate_session_token(&self, token: &str) {
        let mut st = self.shared.lock();
        st.session_token = Some(token.to_string());
        st.session_expired = false;
    }

    /// Requests that broke the model or the protocol.
    pub fn spec_violations(&self) -> Vec<String> {
        self.shared.lock().knobs.violations()
    }

    /// Requests refused by the signature or credential checks, with the reason.
    pub fn auth_failures(&self) -> Vec<String> {
        self.shared.lock().auth_failures.clone()
    }

    /// Requests answered `TooManyRequestsException` because a quota was exhausted.
    pub fn throttled(&self) -> u64 {
        self.shared.lock().throttled
    }

    /// Invitation messages Cognito would have sent (a create without `MessageAction: SUPPRESS`).
    pub fn messages_sent(&self) -> u64 {
        self.shared.lock().messages_sent
    }

    /// When each call arrived.
    pub fn arrivals(&self) -> Vec<(String, Instant)> {
        self.shared.lock().knobs.arrivals()
    }
}

pub(super) fn new_uuid() -> String {
    let b: [u8; 16] = rand::rng().random();
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
