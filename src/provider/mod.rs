//! New identity providers behind one trait: Kinde, Authgear, Keycloak, Auth0 and Cognito clients, the
//! generic HTTP contract's client, their token caches, client-side rate limits and retries. Their
//! fakes are in `testkit` (cargo feature `testkit`).
//!
//! The migration sequence the caller runs (see docs/PROVIDERS.md):
//! find by email → create (Authgear sets the password in the same call) → set password
//! (when [`CreatedUser::password_set`] is false) → optionally require a password change.
//! On [`ProviderError::AlreadyExists`] or a transient failure of create, find by email again:
//! the user may have been created by another replica or by a request whose answer was lost.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

pub mod auth0;
pub mod authgear;
pub mod cognito;
pub mod config;
mod der;
pub mod error;
pub mod generic;
pub mod hasher;
mod http;
pub mod import;
pub mod keycloak;
pub mod kinde;
pub mod limit;
pub mod metrics;
mod oauth;
pub mod token;

pub use config::ProviderConfig;
pub use error::{ErrorClass, ProviderError};
pub use hasher::{BlockingHasher, HasherError, PasswordHasher};
pub use import::{Argon2Params, HashingMethod, ImportedHash, Pbkdf2Params, SaltPlacement};
pub use metrics::ProviderMetrics;

/// Which identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Kinde (REST management API, M2M token).
    Kinde,
    /// Authgear (GraphQL Admin API, self-signed admin-key JWT).
    Authgear,
    /// Auth0 (Management API v2, client-credentials token).
    Auth0,
    /// Amazon Cognito user pools (AWS JSON 1.1, Signature Version 4).
    Cognito,
    /// An operator's own endpoint implementing the generic HTTP contract (HMAC-signed requests;
    /// docs/generic-http-provider.openapi.yaml).
    Http,
    /// Keycloak (Admin REST API, client-credentials token of a service-account client).
    Keycloak,
}

impl ProviderKind {
    /// The bounded label value used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kinde => "kinde",
            Self::Authgear => "authgear",
            Self::Auth0 => "auth0",
            Self::Cognito => "cognito",
            Self::Http => "http",
            Self::Keycloak => "keycloak",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider operation (bounded set, used in metric labels and errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Obtaining credentials (M2M token, signed admin JWT).
    Token,
    /// Find a user by email.
    FindUser,
    /// Create a user.
    CreateUser,
    /// Set a user's password.
    SetPassword,
    /// Require a password change at next sign-in.
    RequirePasswordChange,
    /// Import a legacy password hash.
    ImportHash,
    /// The cheap credentials check.
    Check,
    /// Read one user by id (reconciliation: `dripgate ledger verify`).
    GetUser,
}

impl Operation {
    /// The bounded label value used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::FindUser => "find_user",
            Self::CreateUser => "create_user",
            Self::SetPassword => "set_password",
            Self::RequirePasswordChange => "require_password_change",
            Self::ImportHash => "import_hash",
            Self::Check => "check",
            Self::GetUser => "get_user",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider's id for a user (Kinde `kp_…`; Authgear node id, unpadded base64url of `User:<uuid>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ProviderUserId(pub String);

impl ProviderUserId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUser {
    /// The provider's id.
    pub id: ProviderUserId,
    /// The email the provider has for the user (lower-cased by dripgate on create).
    pub email: Option<String>,
    /// The legacy id the provider stores, where it has a field for it (Kinde `provided_id`).
    pub legacy_id: Option<String>,
}

/// Whether the provider holds a password for a user, as far as its API tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordState {
    /// The user has a password (Authgear: a primary password authenticator).
    Set,
    /// The user has no password.
    NotSet,
    /// The provider's API does not say (Kinde's user record has no password field).
    Unknown,
}

/// A user read by id ([`Provider::get_user`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDetails {
    /// The user as the provider reports it.
    pub user: ProviderUser,
    /// Whether a password is set, where the provider can tell.
    pub password: PasswordState,
}

/// The profile of a user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Email address (the login identifier); normalised to lower case by the clients.
    pub email: String,
    /// Given name, if the legacy store has one.
    pub given_name: Option<String>,
    /// Family name, if the legacy store has one.
    pub family_name: Option<String>,
    /// Stable reference to the legacy user id (stored where the provider has a field for it).
    pub legacy_id: Option<String>,
}

/// The result of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedUser {
    /// The new user's id.
    pub id: ProviderUserId,
    /// True when the password was set in the same call (Authgear); false means call
    /// [`Provider::set_password`] next (Kinde).
    pub password_set: bool,
}

/// A plaintext password the user just proved, borrowed from the caller (who zeroizes it).
#[derive(Clone, Copy)]
pub struct Password<'a> {
    bytes: &'a [u8],
}

impl<'a> Password<'a> {
    /// Borrows the password from secret bytes.
    pub fn from_secret_bytes(secret: &'a SecretSlice<u8>) -> Self {
        Self {
            bytes: secret.expose_secret(),
        }
    }

    /// Borrows the password from a secret string.
    pub fn from_secret_string(secret: &'a SecretString) -> Self {
        Self {
            bytes: secret.expose_secret().as_bytes(),
        }
    }

    /// The raw bytes (crate-internal: only the clients look at them).
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The password as UTF-8, if it is.
    pub(crate) fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes).ok()
    }
}

impl fmt::Debug for Password<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What a provider can do, so the caller can pick the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// create_user sets the password atomically in the same call.
    pub atomic_create_with_password: bool,
    /// The hashing methods [`Provider::import_legacy_hash`] accepts (empty: none).
    pub imports: &'static [HashingMethod],
    /// Configured to receive a verified legacy hash instead of the password where it takes the
    /// hash's method (Kinde `password_transfer = "legacy_hash"`); the caller falls back to
    /// [`Provider::set_password`] otherwise.
    pub prefers_legacy_hash: bool,
    /// Where a legacy id is stored (None: the provider has no field for it).
    pub stores_legacy_id: bool,
}

/// Result of the credentials check: one line per aspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// `(aspect, Ok(detail) | Err(detail))` lines, in order.
    pub lines: Vec<(String, Result<String, String>)>,
}

impl Capabilities {
    /// Whether `import_legacy_hash` takes this method.
    pub fn imports(&self, method: HashingMethod) -> bool {
        self.imports.contains(&method)
    }
}

impl CheckReport {
    /// True when every line is ok.
    pub fn ok(&self) -> bool {
        self.lines.iter().all(|(_, r)| r.is_ok())
    }
}

/// A new identity provider's management API.
///
/// Methods return boxed futures so that `Arc<dyn Provider>` works.
pub trait Provider: Send + Sync + fmt::Debug {
    /// Which provider this is.
    fn kind(&self) -> ProviderKind;

    /// What it can do.
    fn capabilities(&self) -> Capabilities;

    /// Finds the user with this email (case-insensitive), if any.
    fn find_user_by_email<'a>(
        &'a self,
        email: &'a str,
    ) -> BoxFuture<'a, Result<Option<ProviderUser>, ProviderError>>;

    /// Creates a user; where the provider can, sets `password` in the same call.
    fn create_user<'a>(
        &'a self,
        user: &'a NewUser,
        password: Option<Password<'a>>,
    ) -> BoxFuture<'a, Result<CreatedUser, ProviderError>>;

    /// Sets the user's password to the one the user just proved (Kinde: a fresh bcrypt of it,
    /// or the plaintext body with `password_transfer = "plaintext"`).
    fn set_password<'a>(
        &'a self,
        id: &'a ProviderUserId,
        password: Password<'a>,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Makes the user choose a new password at the next sign-in.
    fn require_password_change<'a>(
        &'a self,
        id: &'a ProviderUserId,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Gives the user a verified legacy hash as their password (a method listed in
    /// [`Capabilities::imports`]); the live migration uses it under `prefers_legacy_hash`.
    fn import_legacy_hash<'a>(
        &'a self,
        id: &'a ProviderUserId,
        hash: &'a ImportedHash,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Obtains credentials and makes one cheap read call.
    fn check_credentials(&self) -> BoxFuture<'_, CheckReport>;

    /// Reads the user with this provider id, for reconciliation (`dripgate ledger verify`),
    /// never on the sign-in path. Runs under the client's rate limiter like every call.
    ///
    /// `Ok(None)` only when the provider says that no user has this id (an HTTP 404, a GraphQL
    /// `null` node); any other failure is an error, so a check that could not be made is never
    /// read as drift. [`UserDetails::password`] is what the provider's API exposes about the
    /// password, and [`PasswordState::Unknown`] where it exposes nothing: never a guess.
    /// `ProviderUser::email` is the provider's primary email for the user.
    ///
    /// The default answers [`ProviderError::Unsupported`] (verify then reports the user as
    /// "unchecked"); a client implements it with its provider's get-user-by-id call.
    fn get_user<'a>(
        &'a self,
        id: &'a ProviderUserId,
    ) -> BoxFuture<'a, Result<Option<UserDetails>, ProviderError>> {
        let _ = id;
        let provider = self.kind();
        Box::pin(async move {
            Err(ProviderError::Unsupported {
                provider,
                operation: Operation::GetUser,
                detail: "this client cannot read a user by id".into(),
            })
        })
    }
}

/// Builds the configured provider client; password hashing it needs runs on `hasher` when
/// given (tokio's blocking pool otherwise).
pub fn build(
    config: &ProviderConfig,
    metrics: Option<ProviderMetrics>,
    hasher: Option<Arc<dyn PasswordHasher>>,
) -> Result<Arc<dyn Provider>, ProviderError> {
    config.validate()?;
    match config.kind {
        ProviderKind::Kinde => {
            let section = config.kinde.as_ref().ok_or_else(|| {
                ProviderError::Config("kind = \"kinde\" needs a [kinde] section".into())
            })?;
            let client = kinde::KindeClient::new(section, &config.http, &config.limits, metrics)?;
            Ok(Arc::new(match hasher {
                Some(hasher) => client.with_hasher(hasher),
                None => client,
            }))
        }
        ProviderKind::Authgear => {
            let section = config.authgear.as_ref().ok_or_else(|| {
                ProviderError::Config("kind = \"authgear\" needs an [authgear] section".into())
            })?;
            Ok(Arc::new(authgear::AuthgearClient::new(
                section,
                &config.http,
                &config.limits,
                metrics,
            )?))
        }
        ProviderKind::Auth0 => {
            let section = config.auth0.as_ref().ok_or_else(|| {
                ProviderError::Config("kind = \"auth0\" needs an [auth0] section".into())
            })?;
            Ok(Arc::new(auth0::Auth0Client::new(
                section,
                &config.http,
                &config.limits,
                metrics,
            )?))
        }
        ProviderKind::Cognito => {
            let section = config.cognito.as_ref().ok_or_else(|| {
                ProviderError::Config("kind = \"cognito\" needs a [cognito] section".into())
            })?;
            Ok(Arc::new(cognito::CognitoClient::new(
                section,
                &config.http,
                &config.limits,
                metrics,
            )?))
        }
        ProviderKind::Http => {
            let section = config.http_provider.as_ref().ok_or_else(|| {
                ProviderError::Config("kind = \"http\" needs an [http_provider] section".into())
            })?;
            Ok(Arc::new(generic::GenericHttpClient::new(
                section,
                &config.http,
                &config.limits,
                metrics,
            )?))
        }
        ProviderKind::Keycloak => {
            let section = config.keycloak.as_ref().ok_or_else(|| {
                ProviderError::Config("kind = \"keycloak\" needs a [keycloak] section".into())
            })?;
            Ok(Arc::new(keycloak::KeycloakClient::new(
                section,
                &config.http,
                &config.limits,
                metrics,
            )?))
        }
    }
}

/// Normalises an email for the provider: trimmed, lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}
