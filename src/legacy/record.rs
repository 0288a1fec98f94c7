//! The record a store returns, and the rules that turn a raw row into it or into a reason the
//! user cannot be migrated.

use std::fmt;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::hash::{DigestEncoding, Format, HashConfig, LegacyHash, SaltPosition};

use super::config::KeyField;
use super::normalize::NormalizeConfig;
use super::shape;

/// A legacy user who can be migrated.
#[derive(Clone)]
pub struct LegacyUser {
    /// The user's stable key in dripgate: the normalized email (or login, by config).
    pub key: String,
    /// The legacy store's own id of the user (as text).
    pub legacy_id: String,
    /// The login name, where the store has one.
    pub login: Option<String>,
    /// The email address as stored (trimmed).
    pub email: String,
    /// Given name, where known.
    pub given_name: Option<String>,
    /// Family name, where known.
    pub family_name: Option<String>,
    /// The stored hash and how to verify it.
    pub hash: LegacyHash,
    /// The hash's format (configured or detected).
    pub format: Format,
    /// The hash's work factor (`cost=10`, `count_log2=13`, …), where it has one.
    pub params: Option<String>,
}

impl fmt::Debug for LegacyUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyUser")
            .field("key", &self.key)
            .field("legacy_id", &self.legacy_id)
            .field("login", &self.login)
            .field("email", &self.email)
            .field("given_name", &self.given_name)
            .field("family_name", &self.family_name)
            .field("hash", &self.hash)
            .field("format", &self.format)
            .field("params", &self.params)
            .finish()
    }
}

/// The answer to a lookup.
// One per sign-in, moved once: boxing the user would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Lookup {
    /// One user matches and can be migrated.
    Found(LegacyUser),
    /// No user matches.
    NotFound,
    /// A user matches but cannot be migrated; the sign-in stays with the legacy app.
    NotMigratable(Reason),
}

/// Why a legacy user cannot be migrated: a bounded set, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The row has no email (NULL or empty); the provider needs one.
    NoEmail,
    /// The row has no id.
    NoId,
    /// The hash is NULL or empty.
    EmptyHash,
    /// The hash is binary and not text.
    UnreadableHash,
    /// The hash's shape is known but it is cut short or otherwise malformed.
    TruncatedHash,
    /// The hash's format is not configured and cannot be detected, or the format name is unknown.
    UnknownFormat,
    /// The format is known but this variant is not verified by dripgate.
    UnsupportedHash,
    /// No password can ever verify against the stored value where the legacy app checks it:
    /// WordPress compares every value of 32 characters or fewer with the lower-case hex MD5
    /// of the password, so a DES or BSDi crypt hash, a short md5-crypt hash, an upper-case
    /// hex digest or a placeholder such as `x` there never matches any password.
    UnverifiableHash,
    /// The salt settings do not fit the format (config error).
    BadHashSettings,
    /// The hash asks for more work than the `[hash]` caps allow (bcrypt cost, crypt rounds,
    /// phpass count, PBKDF2 iterations, argon2/scrypt memory): it would never be verified.
    WorkFactorOverCap,
    /// The account is locked or disabled (`!` / `*` prefix).
    LockedAccount,
    /// Two or more rows share this identifier or key after normalization; none is chosen.
    DuplicateKey,
}

impl Reason {
    /// Every reason, in report order.
    pub const ALL: [Reason; 12] = [
        Reason::NoEmail,
        Reason::NoId,
        Reason::EmptyHash,
        Reason::UnreadableHash,
        Reason::TruncatedHash,
        Reason::UnknownFormat,
        Reason::UnsupportedHash,
        Reason::UnverifiableHash,
        Reason::BadHashSettings,
        Reason::WorkFactorOverCap,
        Reason::LockedAccount,
        Reason::DuplicateKey,
    ];

    /// The stable label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::NoEmail => "no_email",
            Reason::NoId => "no_id",
            Reason::EmptyHash => "empty_hash",
            Reason::UnreadableHash => "unreadable_hash",
            Reason::TruncatedHash => "truncated_hash",
            Reason::UnknownFormat => "unknown_format",
            Reason::UnsupportedHash => "unsupported_hash",
            Reason::UnverifiableHash => "unverifiable_hash",
            Reason::BadHashSettings => "bad_hash_settings",
            Reason::WorkFactorOverCap => "work_factor_over_cap",
            Reason::LockedAccount => "locked_account",
            Reason::DuplicateKey => "duplicate_key",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored hash value as read: text, bytes (`VARBINARY`/`BLOB`) or NULL.
#[derive(Clone, Default)]
pub(crate) enum RawHash {
    /// NULL.
    #[default]
    Null,
    /// Text.
    Text(Zeroizing<String>),
    /// Bytes.
    Bytes(Zeroizing<Vec<u8>>),
}

/// A row as read from a store, before classification. Never logged.
#[derive(Clone, Default)]
pub(crate) struct RawRow {
    pub id: Option<String>,
    pub login: Option<String>,
    pub email: Option<String>,
    pub hash: RawHash,
    pub format: Option<String>,
    pub salt: Option<Vec<u8>>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

/// How rows become records: normalization, key field and hash settings.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub normalize: NormalizeConfig,
    pub key: KeyField,
    /// `None` means detect from each value.
    pub format: Option<Format>,
    pub salt_position: Option<SaltPosition>,
    pub encoding: Option<DigestEncoding>,
    /// The work-factor caps verification applies; a hash over them cannot migrate.
    pub caps: HashConfig,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

impl Rules {
    /// The normalized key of a row (`None` when its key field is missing).
    pub fn key_of(&self, row: &RawRow) -> Option<String> {
        match self.key {
            KeyField::Email => non_empty(row.email.as_deref()).map(|e| self.normalize.email(e)),
            KeyField::Login => non_empty(row.login.as_deref()).map(|l| self.normalize.login(l)),
        }
    }

    /// Whether `ident` (normalized) names this row by login or email.
    pub fn matches(&self, row: &RawRow, ident: &str) -> bool {
        non_empty(row.login.as_deref()).is_some_and(|l| self.normalize.login(l) == ident)
            || non_empty(row.email.as_deref()).is_some_and(|e| self.normalize.email(e) == ident)
    }

    /// The row's hash, with the format and salt settings applied.
    pub fn hash_of(&self, row: &RawRow) -> Result<LegacyHash, Reason> {
        let text = match &row.hash {
            RawHash::Null => return Err(Reason::EmptyHash),
            RawHash::Text(t) => Zeroizing::new(t.as_str().to_owned()),
            RawHash::Bytes(b) => match std::str::from_utf8(b) {
                Ok(t) => Zeroizing::new(t.to_owned()),
                // A raw MD5/SHA-1/SHA-256/SHA-512 digest in a BINARY column: use its hex form.
                Err(_) if matches!(b.len(), 16 | 20 | 32 | 64) => Zeroizing::new(hex::encode(b)),
                Err(_) => return Err(Reason::UnreadableHash),
            },
        };
        let format = match non_empty(row.format.as_deref()) {
            Some("auto") => None,
            Some(name) => Some(name.parse::<Format>().map_err(|_| Reason::UnknownFormat)?),
            None => self.format,
        };
        let mut h = LegacyHash::with_format(format, text.as_str()).with_encoding(self.encoding);
        if let Some(salt) = row.salt.as_ref().filter(|s| !s.is_empty()) {
            h = h
                .with_salt(Some(salt.clone()))
                .with_salt_position(self.salt_position);
        }
        Ok(h)
    }

    /// Classifies a row: a migratable user or the first reason it is not.
    pub fn classify(&self, row: &RawRow) -> Result<LegacyUser, Reason> {
        let email = non_empty(row.email.as_deref()).ok_or(Reason::NoEmail)?;
        let legacy_id = non_empty(row.id.as_deref()).ok_or(Reason::NoId)?;
        let key = self.key_of(row).ok_or(Reason::NoEmail)?;
        let hash = self.hash_of(row)?;
        let (format, params) = shape::inspect(&hash, &self.caps)?;
        Ok(LegacyUser {
            key,
            legacy_id: legacy_id.to_owned(),
            login: non_empty(row.login.as_deref()).map(str::to_owned),
            email: email.to_owned(),
            given_name: non_empty(row.given_name.as_deref()).map(str::to_owned),
            family_name: non_empty(row.family_name.as_deref()).map(str::to_owned),
            hash,
            format,
            params,
        })
    }
}
