//! The ledger's data: a user's migration state, its row, the claim that fences writes, and
//! the shape checks every value passes before it reaches the database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::LedgerError;

/// Longest accepted user key, in bytes (normalized e-mail addresses are at most 254).
pub const MAX_USER_KEY_BYTES: usize = 512;
/// Longest accepted lease owner name, in bytes.
pub const MAX_OWNER_BYTES: usize = 128;
/// Longest stored reason or legacy format label; longer or unusual ones are stored as `other`.
pub const MAX_LABEL_BYTES: usize = 64;

/// A user's migration state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Someone took the lease; no provider user is known yet.
    Claimed,
    /// The provider user exists (its id is recorded); the password may not be set yet.
    Created,
    /// The provider holds the user and a password that verifies; the migration is done.
    Migrated,
    /// A user with this identity already existed at the provider and was not adopted.
    Conflict,
    /// The provider rejected the password by policy; the user keeps signing in at legacy.
    BlockedPolicy,
}

impl State {
    /// Every state, in order.
    pub const ALL: [State; 5] = [
        State::Claimed,
        State::Created,
        State::Migrated,
        State::Conflict,
        State::BlockedPolicy,
    ];

    /// The name stored in the ledger and used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::Created => "created",
            Self::Migrated => "migrated",
            Self::Conflict => "conflict",
            Self::BlockedPolicy => "blocked_policy",
        }
    }

    /// Whether the state is final for the ordinary claim (`conflict`, `blocked_policy`,
    /// `migrated`); only a resync claim re-opens `migrated` and `blocked_policy`.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Migrated | Self::Conflict | Self::BlockedPolicy)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| LedgerError::Corrupt(format!("unknown state {s:?}")))
    }
}

/// How a migrated user's password last reached the provider (schema version 4; rows migrated
/// before it read as [`Method::Live`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A sign-in proved the password (first migration or resync).
    Live,
    /// `dripgate handoff` imported the legacy hash as it is.
    HandoffHash,
    /// `dripgate handoff` created the user without a password and required a change.
    HandoffReset,
}

impl Method {
    /// Every method, in order.
    pub const ALL: [Method; 3] = [Method::Live, Method::HandoffHash, Method::HandoffReset];

    /// The name stored in the ledger and used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::HandoffHash => "handoff_hash",
            Self::HandoffReset => "handoff_reset",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| LedgerError::Corrupt(format!("unknown method {s:?}")))
    }
}

/// A user's full ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    /// The normalized legacy user key.
    pub user_key: String,
    /// Where the migration stands.
    pub state: State,
    /// The user's id at the provider, once known.
    pub provider_user_id: Option<String>,
    /// How many times the user was claimed (first attempts, retries and resyncs).
    pub attempts: i64,
    /// The reason of the last failure (a label from a bounded set), cleared on success.
    pub last_error: Option<String>,
    /// The legacy hash format seen at the last claim.
    pub legacy_format: Option<String>,
    /// HMAC fingerprint of the legacy hash that was migrated (never the hash).
    pub hash_fingerprint: Option<String>,
    /// Who holds (or last held) the lease, while it is held.
    pub lease_owner: Option<String>,
    /// When the lease ends, in ms since the Unix epoch by the ledger's clock; 0 when released.
    pub lease_expires_at: i64,
    /// Bumped by every claim; fences writes of earlier claims.
    pub epoch: i64,
    /// When the row was created (ms since the Unix epoch).
    pub created_at: i64,
    /// When the row last changed (ms since the Unix epoch).
    pub updated_at: i64,
    /// When the user was first migrated (ms since the Unix epoch).
    pub migrated_at: Option<i64>,
    /// How the password last reached the provider (meaningful once `migrated`).
    pub method: Method,
}

/// What the routing hot path needs to know about a migrated user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigratedUser {
    /// The normalized legacy user key.
    pub user_key: String,
    /// The user's id at the provider.
    pub provider_user_id: String,
    /// Fingerprint of the legacy hash that was migrated, to notice a changed password.
    pub hash_fingerprint: Option<String>,
    /// When the user was first migrated (ms since the Unix epoch).
    pub migrated_at: i64,
}

/// A lease on one user, won by [`Ledger::claim`] or [`Ledger::claim_resync`]; pass it to the
/// fenced writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The normalized legacy user key.
    pub user_key: String,
    /// The epoch this claim holds; writes with an older epoch are refused.
    pub epoch: i64,
    /// The state when claimed: `claimed` (start from find-by-email), `created` (resume with
    /// `provider_user_id`), or `migrated` / `blocked_policy` for a resync claim.
    pub state: State,
    /// The provider user id recorded by an earlier attempt, if any.
    pub provider_user_id: Option<String>,
    /// Claims of this user so far, this one included.
    pub attempts: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct ClaimRow {
    pub(super) user_key: String,
    pub(super) epoch: i64,
    pub(super) state: String,
    pub(super) provider_user_id: Option<String>,
    pub(super) attempts: i64,
}

impl TryFrom<ClaimRow> for Claim {
    type Error = LedgerError;

    fn try_from(row: ClaimRow) -> Result<Self, Self::Error> {
        Ok(Claim {
            user_key: row.user_key,
            epoch: row.epoch,
            state: row.state.parse()?,
            provider_user_id: row.provider_user_id,
            attempts: row.attempts,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RecordRow {
    pub(super) user_key: String,
    pub(super) state: String,
    pub(super) provider_user_id: Option<String>,
    pub(super) attempts: i64,
    pub(super) last_error: Option<String>,
    pub(super) legacy_format: Option<String>,
    pub(super) hash_fingerprint: Option<String>,
    pub(super) lease_owner: Option<String>,
    pub(super) lease_expires_at: i64,
    pub(super) epoch: i64,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) migrated_at: Option<i64>,
    pub(super) method: String,
}

impl TryFrom<RecordRow> for UserRecord {
    type Error = LedgerError;

    fn try_from(row: RecordRow) -> Result<Self, Self::Error> {
        Ok(UserRecord {
            user_key: row.user_key,
            state: row.state.parse()?,
            provider_user_id: row.provider_user_id,
            attempts: row.attempts,
            last_error: row.last_error,
            legacy_format: row.legacy_format,
            hash_fingerprint: row.hash_fingerprint,
            lease_owner: row.lease_owner,
            lease_expires_at: row.lease_expires_at,
            epoch: row.epoch,
            created_at: row.created_at,
            updated_at: row.updated_at,
            migrated_at: row.migrated_at,
            method: row.method.parse()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MigratedRow {
    pub(super) user_key: String,
    pub(super) provider_user_id: Option<String>,
    pub(super) hash_fingerprint: Option<String>,
    pub(super) migrated_at: Option<i64>,
}

pub(super) fn check_key(user_key: &str) -> Result<(), LedgerError> {
    if user_key.is_empty() || user_key.len() > MAX_USER_KEY_BYTES {
        return Err(LedgerError::Invalid("user key empty or too long"));
    }
    Ok(())
}

pub(super) fn check_owner(owner: &str) -> Result<(), LedgerError> {
    if owner.is_empty() || owner.len() > MAX_OWNER_BYTES {
        return Err(LedgerError::Invalid("lease owner empty or too long"));
    }
    Ok(())
}

pub(super) fn check_provider_id(id: &str) -> Result<(), LedgerError> {
    if id.is_empty() || id.len() > MAX_USER_KEY_BYTES {
        return Err(LedgerError::Invalid("provider user id empty or too long"));
    }
    Ok(())
}

/// A fingerprint is exactly what [`Ledger::fingerprint`] returns: 64 lower-case hex digits.
/// This refuses, for instance, a legacy hash passed by mistake.
pub(super) fn check_fingerprint(fingerprint: &str) -> Result<(), LedgerError> {
    let ok = fingerprint.len() == 64
        && fingerprint
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(LedgerError::Invalid(
            "fingerprint must come from Ledger::fingerprint",
        ))
    }
}

/// Reasons and format names are labels from bounded sets; anything else (too long, unusual
/// characters: possibly user input) is stored as `other`, so no secret can end up in the ledger.
pub(super) fn bounded_label(label: &str) -> &str {
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL_BYTES
        && label.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b':')
        });
    if ok {
        label
    } else {
        tracing::warn!("ledger: a reason or format label was not a short label; stored as `other`");
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            bounded_label("provider_unavailable"),
            "provider_unavailable"
        );
        assert_eq!(bounded_label("bcrypt"), "bcrypt");
        assert_eq!(bounded_label("Hunter2 password!"), "other");
        assert_eq!(bounded_label(""), "other");
        assert_eq!(bounded_label(&"a".repeat(65)), "other");
    }

    #[test]
    fn states_round_trip() {
        for state in State::ALL {
            assert_eq!(state.as_str().parse::<State>().ok(), Some(state));
        }
        assert!("nope".parse::<State>().is_err());
    }

    #[test]
    fn fingerprint_shape_is_checked() {
        assert!(check_fingerprint(&"a".repeat(64)).is_ok());
        assert!(check_fingerprint("$2y$10$abc").is_err());
        assert!(check_fingerprint(&"A".repeat(64)).is_err());
    }
}
