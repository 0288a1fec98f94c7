//! The Keycloak fake's password credentials, stored as Keycloak stores them (`credentialData` and
//! `secretData` JSON documents), and verified as Keycloak's hash providers verify them:
//! `pbkdf2` (HMAC-SHA1), `pbkdf2-sha256`, `pbkdf2-sha512` (key length from the stored value)
//! and `argon2` (parameters from `additionalParameters`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// A stored password credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCredential {
    /// `credentialData.algorithm`.
    pub algorithm: String,
    /// `credentialData.hashIterations`.
    pub iterations: u32,
    /// `credentialData` as stored.
    pub credential_data: String,
    /// `secretData` as stored.
    pub secret_data: String,
    /// True when it came in as a hash (`secretData`), false when Keycloak hashed a `value`.
    pub imported: bool,
}

fn field<'a>(doc: &'a Value, key: &str) -> Result<&'a Value, String> {
    doc.get(key).ok_or_else(|| format!("{key} missing"))
}

impl FakeCredential {
    /// Parses an imported `credentialData`/`secretData` pair, refusing what Keycloak could
    /// not verify (unknown algorithm, missing or non-base64 value or salt, no iterations).
    pub fn import(credential_data: &str, secret_data: &str) -> Result<Self, String> {
        let data: Value =
            serde_json::from_str(credential_data).map_err(|e| format!("credentialData: {e}"))?;
        let secret: Value =
            serde_json::from_str(secret_data).map_err(|e| format!("secretData: {e}"))?;
        let algorithm = field(&data, "algorithm")?
            .as_str()
            .ok_or("algorithm is not a string")?;
        if !matches!(
            algorithm,
            "pbkdf2" | "pbkdf2-sha256" | "pbkdf2-sha512" | "argon2"
        ) {
            return Err(format!("no password hash provider {algorithm:?}"));
        }
        let iterations = field(&data, "hashIterations")?
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or("hashIterations is not a positive int32")?;
        for key in ["value", "salt"] {
            let text = field(&secret, key)?
                .as_str()
                .ok_or(format!("{key} is not a string"))?;
            STANDARD
                .decode(text)
                .map_err(|_| format!("{key} is not base64"))?;
        }
        Ok(Self {
            algorithm: algorithm.to_string(),
            iterations,
            credential_data: credential_data.to_string(),
            secret_data: secret_data.to_string(),
            imported: true,
        })
    }

    /// What Keycloak stores when it hashes a plaintext `value`: pbkdf2-sha256, 64-byte key.
    pub fn hash(password: &str, iterations: u32) -> Self {
        let salt: [u8; 16] = rand::random();
        let mut key = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, iterations, &mut key);
        Self {
            algorithm: "pbkdf2-sha256".into(),
            iterations,
            credential_data: json!({"hashIterations": iterations, "algorithm": "pbkdf2-sha256", "additionalParameters": {}}).to_string(),
            secret_data: json!({"value": STANDARD.encode(key), "salt": STANDARD.encode(salt), "additionalParameters": {}}).to_string(),
            imported: false,
        }
    }

    /// Whether `password` signs in with this credential.
    pub fn verify(&self, password: &[u8]) -> bool {
        let (Ok(data), Ok(secret)) = (
            serde_json::from_str::<Value>(&self.credential_data),
            serde_json::from_str::<Value>(&self.secret_data),
        ) else {
            return false;
        };
        let b64 = |k: &str| secret[k].as_str().and_then(|s| STANDARD.decode(s).ok());
        let (Some(want), Some(salt)) = (b64("value"), b64("salt")) else {
            return false;
        };
        let mut got = vec![0u8; want.len()];
        let rounds = self.iterations;
        match self.algorithm.as_str() {
            "pbkdf2" => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, &salt, rounds, &mut got),
            "pbkdf2-sha256" => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &salt, rounds, &mut got)
            }
            "pbkdf2-sha512" => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, &salt, rounds, &mut got)
            }
            "argon2" => {
                if !argon2_into(&data, rounds, password, &salt, &mut got) {
                    return false;
                }
            }
            _ => return false,
        }
        !want.is_empty() && subtle::ConstantTimeEq::ct_eq(got.as_slice(), want.as_slice()).into()
    }
}

/// Keycloak's argon2: `type` (`id`/`i`/`d`), `version` (`1.3`/`1.0`), `memory` (KiB),
/// `parallelism`, `hashLength`, each a one-element list of strings.
fn argon2_into(
    data: &Value,
    iterations: u32,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> bool {
    let param = |k: &str| {
        data["additionalParameters"][k][0]
            .as_str()
            .map(str::to_string)
    };
    let number = |k: &str| param(k).and_then(|v| v.parse::<u32>().ok());
    let algorithm = match param("type").as_deref() {
        Some("id") => argon2::Algorithm::Argon2id,
        Some("i") => argon2::Algorithm::Argon2i,
        Some("d") => argon2::Algorithm::Argon2d,
        _ => return false,
    };
    let version = match param("version").as_deref() {
        Some("1.3") => argon2::Version::V0x13,
        Some("1.0") => argon2::Version::V0x10,
        _ => return false,
    };
    let (Some(memory), Some(parallelism), Some(len)) = (
        number("memory"),
        number("parallelism"),
        number("hashLength"),
    ) else {
        return false;
    };
    if usize::try_from(len).ok() != Some(out.len()) || memory > 262_144 {
        return false;
    }
    let Ok(params) = argon2::Params::new(memory, iterations, parallelism, Some(out.len())) else {
        return false;
    };
    argon2::Argon2::new(algorithm, version, params)
        .hash_password_into(password, salt, out)
        .is_ok()
}
