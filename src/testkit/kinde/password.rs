//! The Kinde fake's passwords: what `SetUserPassword` stores (`hashed_password` +
//! `hashing_method` with its salt and parameters, or the plaintext body when allowed) and how a
//! stored password is checked: bcrypt, crypt, md5, sha256 and wordpress with dripgate's own
//! verifiers (`crate::hash`), pbkdf2 as FusionAuth's variants compute it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::hash::{DigestEncoding, Format, HashConfig, LegacyHash, SaltPosition};

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
    /// `iterations` (pbkdf2).
    pub iterations: Option<u32>,
    /// `variant` (pbkdf2).
    pub variant: Option<String>,
    /// `is_temporary_password`.
    pub temporary: bool,
}

impl FakeKinde {
    /// Whether `plaintext` signs in as the user with `email`, as Kinde would check the stored
    /// password (every `hashing_method` dripgate sends, and the plaintext body).
    pub fn verify_password(&self, email: &str, plaintext: &[u8]) -> bool {
        let Some(pw) = self.user_by_email(email).and_then(|u| u.password) else {
            return false;
        };
        verify(&pw, plaintext)
    }
}

pub(crate) fn verify(pw: &StoredPassword, plaintext: &[u8]) -> bool {
    let with = |format| LegacyHash::new(format, pw.hash.as_str());
    let digest = |format| {
        let h = with(format).with_encoding(Some(DigestEncoding::Hex));
        match (&pw.salt, pw.salt_position.as_deref()) {
            (Some(salt), Some("suffix")) => h.salted(salt.as_bytes(), SaltPosition::Suffix),
            (Some(salt), _) => h.salted(salt.as_bytes(), SaltPosition::Prefix),
            (None, _) => h,
        }
    };
    let hash = match pw.method.as_str() {
        "bcrypt" => with(Format::Bcrypt),
        "crypt" => with(Format::Crypt),
        "wordpress" => with(Format::Wordpress),
        "md5" => digest(Format::Md5),
        "sha256" => digest(Format::Sha256),
        "pbkdf2" => return verify_pbkdf2(pw, plaintext),
        "plaintext" => return pw.hash.as_bytes() == plaintext,
        _ => return false,
    };
    crate::hash::verify(&hash, plaintext, &HashConfig::default()).unwrap_or(false)
}

/// FusionAuth's PBKDF2 variants: `salted-pbkdf2-hmac-sha256` (32-byte key),
/// `salted-pbkdf2-hmac-sha256-512` and `salted-pbkdf2-hmac-sha512-512` (64-byte keys); base64
/// salt and hash; 24 000 iterations when none are given.
fn verify_pbkdf2(pw: &StoredPassword, plaintext: &[u8]) -> bool {
    let (Some(salt), Ok(want)) = (
        pw.salt.as_deref().and_then(|s| STANDARD.decode(s).ok()),
        STANDARD.decode(&pw.hash),
    ) else {
        return false;
    };
    let rounds = pw.iterations.unwrap_or(24_000);
    let mut key = vec![0u8; want.len()];
    match (pw.variant.as_deref(), want.len()) {
        (Some("salted-pbkdf2-hmac-sha256"), 32) | (Some("salted-pbkdf2-hmac-sha256-512"), 64) => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(plaintext, &salt, rounds, &mut key);
        }
        (Some("salted-pbkdf2-hmac-sha512-512"), 64) => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha512>(plaintext, &salt, rounds, &mut key);
        }
        _ => return false,
    }
    key == want
}

/// The spec's pbkdf2 rules: `variant` and a base64 `salt` required, `iterations` and `variant`
/// for pbkdf2 only. The text of a violation, if any.
fn pbkdf2_violation(method: &str, body: &Value) -> Option<&'static str> {
    let has = |field: &str| body.get(field).is_some();
    if method != "pbkdf2" {
        return (has("iterations") || has("variant"))
            .then_some("iterations and variant are for pbkdf2 only");
    }
    let salt_ok = body
        .get("salt")
        .and_then(Value::as_str)
        .is_some_and(|s| STANDARD.decode(s).is_ok());
    if !salt_ok {
        return Some("pbkdf2 needs a base64 salt");
    }
    let variant = body.get("variant").and_then(Value::as_str);
    (!matches!(
        variant,
        Some(
            "salted-pbkdf2-hmac-sha256"
                | "salted-pbkdf2-hmac-sha256-512"
                | "salted-pbkdf2-hmac-sha512-512"
        )
    ))
    .then_some("pbkdf2 needs a variant")
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
            if let Some(violation) = pbkdf2_violation(method, body) {
                st.knobs.violation(format!("SetUserPassword: {violation}"));
                return json_response(400, &errors("INVALID_REQUEST", violation));
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
                iterations: body
                    .get("iterations")
                    .and_then(Value::as_u64)
                    .and_then(|i| u32::try_from(i).ok()),
                variant: body
                    .get("variant")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                temporary,
            }
        }
        (None, Some(plain)) if s.options.accept_plaintext_password => StoredPassword {
            method: "plaintext".into(),
            hash: plain.to_string(),
            salt: None,
            salt_position: None,
            iterations: None,
            variant: None,
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
