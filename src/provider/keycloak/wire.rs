//! Keycloak request and response bodies, as the Admin REST API's OpenAPI file declares them
//! (`UserRepresentation`, `CredentialRepresentation`, `RealmRepresentation`): only the fields
//! dripgate sends or reads. The token endpoint is OpenID Connect's, not part of that file
//! (its bodies are in `provider::oauth`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::http::Answer;

/// `UserRepresentation` as read back (`GET …/users`, `GET …/users/{id}`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserRead {
    pub id: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub attributes: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub required_actions: Option<Vec<String>>,
}

/// `UserRepresentation` for `POST …/users`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NewUserRep<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub email_verified: bool,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<&'a str, [&'a str; 1]>,
}

/// `UserRepresentation` for `PUT …/users/{id}` setting the required actions only.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RequiredActionsRep<'a> {
    pub required_actions: &'a [String],
}

/// `CredentialRepresentation` with a plaintext value (`PUT …/reset-password`).
#[derive(Serialize)]
pub(super) struct PasswordCredential<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: &'a str,
    pub temporary: bool,
}

/// `CredentialRepresentation` of an imported hash: `secretData` and `credentialData` are JSON
/// documents in strings, as Keycloak's password hash providers store them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StoredCredential<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub secret_data: &'a str,
    pub credential_data: &'a str,
    pub temporary: bool,
}

/// `UserRepresentation` for `PUT …/users/{id}` adding one credential.
#[derive(Serialize)]
pub(super) struct CredentialsRep<'a> {
    pub credentials: [StoredCredential<'a>; 1],
}

/// `PasswordSecretData`: `{"value": b64, "salt": b64, "additionalParameters": {}}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SecretData<'a> {
    pub value: &'a str,
    pub salt: &'a str,
    pub additional_parameters: BTreeMap<&'static str, Vec<String>>,
}

/// `PasswordCredentialData`: `{"hashIterations": n, "algorithm": id, "additionalParameters": {}}`
/// (argon2's parameters are lists of strings there).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CredentialData {
    pub hash_iterations: u32,
    pub algorithm: &'static str,
    pub additional_parameters: BTreeMap<&'static str, Vec<String>>,
}

/// The parts of `RealmRepresentation` `provider check` reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RealmRead {
    pub password_policy: Option<String>,
}

/// An error body in either of Keycloak's shapes: `ErrorRepresentation`
/// (`{"errorMessage", "field", "params", "errors": […]}`) or the OAuth one (`{"error",
/// "error_description"}`). Returns the message keys/texts found, outermost first.
pub(super) fn error_messages(answer: &Answer) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(&answer.body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect(&v, &mut out);
    out
}

fn collect(v: &Value, out: &mut Vec<String>) {
    for key in ["errorMessage", "error", "error_description"] {
        if let Some(text) = v.get(key).and_then(Value::as_str) {
            out.push(text.to_string());
        }
    }
    if let Some(items) = v.get("errors").and_then(Value::as_array) {
        for item in items {
            collect(item, out);
        }
    }
}
