//! The generic HTTP provider's bodies (docs/generic-http-provider.openapi.yaml): what dripgate
//! sends (only the contract's fields) and what it reads (unknown fields ignored, so a receiver
//! may say more).

use serde::{Deserialize, Serialize};

/// `POST /users` (`NewUser`).
#[derive(Serialize)]
pub(super) struct NewUserBody<'a> {
    pub email: &'a str,
    pub email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<&'a str>,
}

/// `PUT /users/{id}/password` (`PasswordUpdate`): exactly one field set.
#[derive(Serialize)]
pub(super) struct PasswordUpdate<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<PasswordHash<'a>>,
}

/// `PasswordHash`.
#[derive(Serialize)]
pub(super) struct PasswordHash<'a> {
    pub method: &'static str,
    pub hash: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salt_position: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'static str>,
}

/// `PUT /users/{id}/password-change-required` (`PasswordChangeRequired`).
#[derive(Serialize)]
pub(super) struct PasswordChangeRequired {
    pub required: bool,
}

/// `User`.
#[derive(Deserialize)]
pub(super) struct User {
    pub id: String,
    pub email: String,
    pub legacy_id: Option<String>,
}

/// `Capabilities`.
#[derive(Deserialize)]
pub(super) struct Capabilities {
    pub contract: String,
    #[serde(default)]
    pub operations: Vec<String>,
    #[serde(default)]
    pub hash_methods: Vec<String>,
}

/// `Error`.
#[derive(Deserialize, Default)]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    pub existing_id: Option<String>,
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// The contract's version, as `Capabilities.contract` names it.
pub const CONTRACT: &str = "dripgate-generic-http/1";
