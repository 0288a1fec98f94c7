//! The Kinde fake's passwords: what `SetUserPassword` stores (`hashed_password` +
//! `hashing_method`, or the plaintext body when allowed) and how a stored password is checked.

use md5::Digest;
use serde_json::{Value, json};

use super::routes::{errors, not_found};
use super::{FakeKinde, Shared, State};
use crate::testkit::json_response;

/// Password material as stored by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPassword {
    /// `hashing_method` (or `plaintext`).
    pub method: String,
    /// `hashed_password` (or the plaintext).
    pub hash: String,
    /// `salt`.
    pub salt: Option<String>,
    /// `salt_position`.
    pub salt_position: Option<String>,
    /// `is_temporary_password`.
    pub temporary: bool,
}

impl FakeKinde {
    /// Whether `plaintext` signs in as the user with `email` (bcrypt, md5, sha256, plaintext).
    pub fn verify_password(&self, email: &str, plaintext: &[u8]) -> bool {
        let Some(pw) = self.user_by_email(email).and_then(|u| u.password) else {
            return false;
        };
        verify(&pw, plaintext)
    }
}

pub(super) fn verify(pw: &StoredPassword, plaintext: &[u8]) -> bool {
    let salted = |salt: &Option<String>, pos: &Option<String>| -> Vec<u8> {
        let salt = salt.as_deref().unwrap_or_default().as_bytes();
        match pos.as_deref() {
            Some("suffix") => [plaintext, salt].concat(),
            _ => [salt, plaintext].concat(),
        }
    };
    match pw.method.as_str() {
        "bcrypt" => bcrypt::verify(plaintext, &pw.hash).unwrap_or(false),
        "md5" => hex::encode(md5::Md5::digest(salted(&pw.salt, &pw.salt_position)))
            .eq_ignore_ascii_case(&pw.hash),
        "sha256" => hex::encode(sha2::Sha256::digest(salted(&pw.salt, &pw.salt_position)))
            .eq_ignore_ascii_case(&pw.hash),
        "plaintext" => pw.hash.as_bytes() == plaintext,
        _ => false,
    }
}

const METHODS: [&str; 8] = [
    "bcrypt",
    "crypt",
    "md5",
    "sha256",
    "wordpress",
    "pbkdf2",
    "firebase-scrypt",
    "aspnet-identity-v2",
];

pub(super) fn set_password(
    s: &Shared,
    st: &mut State,
    id: String,
    body: &Value,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    if !st.users.contains_key(&id) {
        return not_found();
    }
    let temporary = body
        .get("is_temporary_password")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let stored = match (
        body.get("hashed_password").and_then(Value::as_str),
        body.get("password").and_then(Value::as_str),
    ) {
        (Some(hash), _) => {
            let method = body
                .get("hashing_method")
                .and_then(Value::as_str)
                .unwrap_or("bcrypt");
            if !METHODS.contains(&method) {
                return json_response(
                    400,
                    &errors("INVALID_HASHING_METHOD", "Unsupported hashing_method"),
                );
            }
            let salt = body.get("salt").and_then(Value::as_str).map(str::to_string);
            let salt_position = body
                .get("salt_position")
                .and_then(Value::as_str)
                .map(str::to_string);
            if method == "bcrypt"
                && !(hash.starts_with("$2a$")
                    || hash.starts_with("$2b$")
                    || hash.starts_with("$2y$"))
            {
                return json_response(400, &errors("INVALID_PASSWORD_HASH", "Not a bcrypt hash"));
            }
            if salt.is_some() && salt_position.is_none() && matches!(method, "md5" | "sha256") {
                return json_response(
                    400,
                    &errors(
                        "INVALID_SALT_POSITION",
                        "salt_position is required with a salt",
                    ),
                );
            }
            // Kinde rewrites $2b$ to $2a$ (same algorithm).
            let hash = hash
                .strip_prefix("$2b$")
                .map(|r| format!("$2a${r}"))
                .unwrap_or_else(|| hash.to_string());
            StoredPassword {
                method: method.to_string(),
                hash,
                salt,
                salt_position,
                temporary,
            }
        }
        (None, Some(plain)) if s.options.accept_plaintext_password => StoredPassword {
            method: "plaintext".into(),
            hash: plain.to_string(),
            salt: None,
            salt_position: None,
            temporary,
        },
        _ => {
            st.knobs
                .violation("SetUserPassword: 'hashed_password' is a required property".into());
            return json_response(
                400,
                &errors(
                    "INVALID_REQUEST",
                    "'hashed_password' is a required property",
                ),
            );
        }
    };
    if let Some(u) = st.users.get_mut(&id) {
        u.password = Some(stored);
    }
    json_response(200, &json!({"message": "Success", "code": "OK"}))
}
