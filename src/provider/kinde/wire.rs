//! Kinde request and response bodies, as the vendored spec declares them
//! (tests/provider_specs/kinde-management-api.yaml): only the fields dripgate sends or reads.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::http::Answer;

/// `GET /api/v1/users` (`users_response`).
#[derive(Deserialize)]
pub(super) struct UsersResponse {
    pub users: Option<Vec<ListedUser>>,
}

/// One entry of `users_response.users`.
#[derive(Deserialize)]
pub(super) struct ListedUser {
    pub id: Option<String>,
    pub email: Option<String>,
    pub provided_id: Option<String>,
}

/// `GET /api/v1/user?id=` (`getUserData`) success: the `user` schema, the fields read.
#[derive(Deserialize)]
pub(super) struct UserRecord {
    pub id: Option<String>,
    pub preferred_email: Option<String>,
    pub provided_id: Option<String>,
}

/// `POST /api/v1/user` (`createUser`) request.
#[derive(Serialize)]
pub(super) struct CreateUserRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile<'a>>,
    pub identities: [Identity<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provided_id: Option<&'a str>,
}

/// `createUser.profile`.
#[derive(Serialize)]
pub(super) struct Profile<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<&'a str>,
}

/// `createUser.identities[]` of type `email`.
#[derive(Serialize)]
pub(super) struct Identity<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub is_verified: bool,
    pub details: IdentityDetails<'a>,
}

/// `createUser.identities[].details`.
#[derive(Serialize)]
pub(super) struct IdentityDetails<'a> {
    pub email: &'a str,
}

/// `POST /api/v1/user` success (`create_user_response`).
#[derive(Deserialize)]
pub(super) struct CreateUserResponse {
    pub id: Option<String>,
}

/// `PUT /api/v1/users/{user_id}/password` (`SetUserPassword`) request: `hashed_password` is
/// required; `salt_position` is `prefix` or `suffix`; `iterations` and `variant` are pbkdf2's.
#[derive(Serialize)]
pub(super) struct SetPasswordRequest<'a> {
    pub hashed_password: &'a str,
    pub hashing_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salt_position: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'static str>,
    pub is_temporary_password: bool,
}

/// The plaintext body two Kinde documentation pages show (not in the spec).
#[derive(Serialize)]
pub(super) struct PlaintextPasswordRequest<'a> {
    pub password: &'a str,
    pub is_temporary_password: bool,
}

/// `PATCH /api/v1/user?id=` (`updateUser`) request, the one field dripgate sets.
#[derive(Serialize)]
pub(super) struct UpdateUserRequest {
    pub is_password_reset_requested: bool,
}

/// Error codes and messages from either error body shape (`errors` array, or an object on 404).
pub(super) fn error_codes(answer: &Answer) -> Vec<(String, String)> {
    let Ok(v) = serde_json::from_slice::<Value>(&answer.body) else {
        return Vec::new();
    };
    let one = |e: &Value| {
        let field = |name: &str| {
            e.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        (field("code"), field("message"))
    };
    match v.get("errors") {
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        Some(obj @ Value::Object(_)) => vec![one(obj)],
        _ => Vec::new(),
    }
}
