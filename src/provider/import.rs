//! What a provider is sent when it imports a password hash instead of receiving the password:
//! the providers' wire vocabulary (Kinde's `SetUserPassword` fields, which the Keycloak client
//! re-encodes as a credential), independent of how
//! dripgate parses legacy hashes. The caller (`migrate::transfer`) converts a verified legacy
//! hash into an [`ImportedHash`]; the clients only serialise it.

use std::fmt;

use secrecy::SecretString;

/// A hashing method a provider can verify an imported hash with (Kinde's `hashing_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashingMethod {
    /// bcrypt `$2a$`/`$2b$`/`$2y$` (Kinde stores `$2b$` as `$2a$`).
    Bcrypt,
    /// A crypt(3) string.
    Crypt,
    /// MD5, lower-case hex, optionally with a salt string before or after the password.
    Md5,
    /// SHA-256, lower-case hex, optionally with a salt string before or after the password.
    Sha256,
    /// WordPress (phpass portable `$P$`).
    Wordpress,
    /// PBKDF2 with a FusionAuth-named `variant`, a base64 salt and base64 hash.
    Pbkdf2,
    /// Firebase's modified scrypt (needs the project's signer key; dripgate never sends it).
    FirebaseScrypt,
    /// ASP.NET Identity v2 (base64 `PasswordHash` as-is; dripgate never sends it).
    AspnetIdentityV2,
    /// PBKDF2-HMAC-SHA1 (variant `salted-pbkdf2-hmac-sha1`, base64 salt and key): Keycloak's
    /// `pbkdf2`; not a Kinde method.
    Pbkdf2Sha1,
    /// argon2 with [`ImportedHash::argon2`] parameters, base64 salt and hash: Keycloak ≥ 24;
    /// not a Kinde method.
    Argon2,
}

impl HashingMethod {
    /// Every method Kinde's spec lists, in its order.
    pub const KINDE: [HashingMethod; 8] = [
        Self::Bcrypt,
        Self::Crypt,
        Self::Md5,
        Self::Sha256,
        Self::Wordpress,
        Self::Pbkdf2,
        Self::FirebaseScrypt,
        Self::AspnetIdentityV2,
    ];

    /// What Keycloak imports as a stored password credential (`argon2` only where enabled).
    pub const KEYCLOAK: [HashingMethod; 3] = [Self::Pbkdf2Sha1, Self::Pbkdf2, Self::Argon2];

    /// The wire name (Kinde's `hashing_method` enum value; dripgate's name for the methods Kinde
    /// lacks); also the metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bcrypt => "bcrypt",
            Self::Crypt => "crypt",
            Self::Md5 => "md5",
            Self::Sha256 => "sha256",
            Self::Wordpress => "wordpress",
            Self::Pbkdf2 => "pbkdf2",
            Self::FirebaseScrypt => "firebase-scrypt",
            Self::AspnetIdentityV2 => "aspnet-identity-v2",
            Self::Pbkdf2Sha1 => "pbkdf2-sha1",
            Self::Argon2 => "argon2",
        }
    }
}

impl fmt::Display for HashingMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the salt string goes relative to the password (Kinde's `salt_position`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltPlacement {
    /// `H(salt ‖ password)`: `prefix`.
    Prefix,
    /// `H(password ‖ salt)`: `suffix`.
    Suffix,
}

impl SaltPlacement {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Prefix => "prefix",
            Self::Suffix => "suffix",
        }
    }
}

/// PBKDF2 parameters (Kinde's `variant` and `iterations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pbkdf2Params {
    /// FusionAuth's variant name, e.g. `salted-pbkdf2-hmac-sha256`.
    pub variant: &'static str,
    /// The iteration count.
    pub iterations: u32,
}

/// argon2 parameters, as the PHC string gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// `id`, `i` or `d`.
    pub kind: &'static str,
    /// 16 (`0x10`) or 19 (`0x13`).
    pub version: u32,
    /// `m`, KiB.
    pub memory_kib: u32,
    /// `t`.
    pub iterations: u32,
    /// `p`.
    pub parallelism: u32,
}

/// A verified legacy hash in the provider's wire form.
///
/// `Debug` never shows the hash or the salt.
pub struct ImportedHash {
    /// The method.
    pub method: HashingMethod,
    /// `hashed_password`, in the encoding the method expects.
    pub hash: SecretString,
    /// `salt` (a plain string for md5/sha256, base64 for pbkdf2).
    pub salt: Option<SecretString>,
    /// `salt_position` (md5/sha256 with a salt).
    pub salt_position: Option<SaltPlacement>,
    /// `variant` and `iterations` (pbkdf2).
    pub pbkdf2: Option<Pbkdf2Params>,
    /// The argon2 parameters (argon2; salt and hash are base64).
    pub argon2: Option<Argon2Params>,
}

impl ImportedHash {
    /// A hash without salt or parameters.
    pub fn new(method: HashingMethod, hash: impl Into<String>) -> Self {
        Self {
            method,
            hash: SecretString::from(hash.into()),
            salt: None,
            salt_position: None,
            pbkdf2: None,
            argon2: None,
        }
    }
}

impl fmt::Debug for ImportedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportedHash")
            .field("method", &self.method)
            .field("hash", &"<redacted>")
            .field("salt", &self.salt.as_ref().map(|_| "<redacted>"))
            .field("salt_position", &self.salt_position)
            .field("pbkdf2", &self.pbkdf2)
            .field("argon2", &self.argon2)
            .finish()
    }
}
