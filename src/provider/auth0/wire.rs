//! Auth0 request and response bodies as the Management API spec declares them
//! (`CreateUserRequestContent`, `UpdateUserRequestContent`, `UserResponseSchema`): only the
//! fields dripgate sends or reads. Error bodies are `{statusCode, error, message, errorCode}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::provider::http::Answer;

/// Where the legacy id is kept on the Auth0 user (`app_metadata` is not user-editable).
pub const LEGACY_ID_KEY: &str = "dripgate_legacy_id";
/// The `app_metadata` marker `require_password_change` sets (Auth0 has no such flag; a
/// post-login Action enforces it).
pub const CHANGE_REQUIRED_KEY: &str = "dripgate_password_change_required";

/// The `user_id` dripgate chooses for a legacy id: lower-case hex of
/// SHA-256(`"dripgate:" ‖ legacy id`) — 64 characters of `[0-9a-f]`, inside the spec's
/// `^\S*$`, ≤ 255. The same legacy user always gets the same id, so a create resent after a
/// lost answer is refused with 409 instead of making a second user. Auth0 prefixes it with
/// the connection's strategy: the user is `auth0|<hex>`.
pub fn stable_user_id(legacy_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"dripgate:");
    h.update(legacy_id.as_bytes());
    hex::encode(h.finalize())
}

/// `POST /oauth/token` success.
#[derive(Deserialize)]
pub(super) struct TokenResponse {
    pub access_token: String,
    pub expires_in: Option<u64>,
    /// The granted scopes, space-separated.
    pub scope: Option<String>,
}

/// `POST /oauth/token` failure (RFC 6749 §5.2).
#[derive(Deserialize)]
pub(super) struct OAuthError {
    pub error: String,
    pub error_description: Option<String>,
}

/// `POST /api/v2/users` (`CreateUserRequestContent`).
#[derive(Serialize)]
pub(super) struct CreateUser<'a> {
    pub connection: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub email_verified: bool,
    pub verify_email: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_metadata: Option<Value>,
}

/// `PATCH /api/v2/users/{id}` setting the password (`UpdateUserRequestContent`); it may not
/// carry `email`, `email_verified` or `username` in the same call.
#[derive(Serialize)]
pub(super) struct SetPassword<'a> {
    pub password: &'a str,
    pub connection: &'a str,
}

/// `PATCH /api/v2/users/{id}` setting `app_metadata` only.
#[derive(Serialize)]
pub(super) struct SetAppMetadata {
    pub app_metadata: Value,
}

/// One user of `GET /api/v2/users-by-email` or `GET /api/v2/users/{id}` (`UserResponseSchema`).
#[derive(Deserialize)]
pub(super) struct User {
    pub user_id: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub identities: Vec<Identity>,
    pub app_metadata: Option<Value>,
}

/// `UserIdentitySchema`: the fields dripgate reads.
#[derive(Deserialize)]
pub(super) struct Identity {
    pub connection: Option<String>,
}

impl User {
    /// The legacy id dripgate stored in `app_metadata`.
    pub fn legacy_id(&self) -> Option<String> {
        self.app_metadata
            .as_ref()?
            .get(LEGACY_ID_KEY)?
            .as_str()
            .map(str::to_string)
    }

    /// Whether one of the user's identities is in `connection`.
    pub fn in_connection(&self, connection: &str) -> bool {
        self.identities
            .iter()
            .any(|i| i.connection.as_deref() == Some(connection))
    }
}

/// `GET /api/v2/connections` item (`ConnectionForList`): the fields `provider check` reads.
#[derive(Deserialize)]
pub(super) struct Connection {
    pub name: Option<String>,
    pub strategy: Option<String>,
    pub options: Option<Value>,
}

/// The error body's `message` and `errorCode`.
pub(super) fn error_fields(answer: &Answer) -> (String, String) {
    let Ok(v) = serde_json::from_slice::<Value>(&answer.body) else {
        return (String::new(), String::new());
    };
    let field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (field("message"), field("errorCode"))
}

/// Auth0's password policy errors, named at the start of the 400 message
/// (`PasswordStrengthError: Password is too weak`).
pub(super) const PASSWORD_ERRORS: [&str; 4] = [
    "PasswordStrengthError",
    "PasswordDictionaryError",
    "PasswordHistoryError",
    "PasswordNoUserInfoError",
];

/// The policy error a 400 names, if any (also an `errorCode` of `invalid_password`).
pub(super) fn password_error(answer: &Answer) -> Option<String> {
    if answer.status != 400 {
        return None;
    }
    let (message, code) = error_fields(answer);
    PASSWORD_ERRORS
        .iter()
        .find(|name| message.starts_with(*name) || code == **name)
        .map(|name| (*name).to_string())
        .or_else(|| (code == "invalid_password").then(|| code.clone()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_stable_user_id_is_fixed_hex_and_differs_per_legacy_id() {
        let a = stable_user_id("4711");
        assert_eq!(a, stable_user_id("4711"));
        assert_ne!(a, stable_user_id("4712"));
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // Pinned: changing the derivation would make resumed creates duplicate users.
        assert_eq!(
            a,
            "4e711c842fc1821fb5f89af0ab8731c2e5e04488c75b2e031d79610be7ebaf23"
        );
    }
}
