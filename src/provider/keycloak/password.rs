//! Giving a Keycloak user a password: `PUT …/users/{id}/reset-password` with the password the
//! user just proved (Keycloak hashes it and applies the realm's password policy), or a verified
//! legacy hash as a stored credential (`PUT …/users/{id}` with `credentials`), re-encoded from
//! dripgate's [`ImportedHash`] into Keycloak's `secretData`/`credentialData` JSON strings.

use std::collections::BTreeMap;

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::wire::{
    CredentialData, CredentialsRep, PasswordCredential, SecretData, StoredCredential,
};
use super::{KIND, KeycloakClient};
use crate::provider::limit::Idempotency;
use crate::provider::{
    HashingMethod, ImportedHash, Operation, Password, ProviderError, ProviderUserId,
};

fn encode_secret<T: serde::Serialize>(body: &T) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    serde_json::to_vec(body)
        .map(Zeroizing::new)
        .map_err(|e| ProviderError::Config(format!("encoding: {e}")))
}

fn unsupported(detail: &str) -> ProviderError {
    ProviderError::Unsupported {
        provider: KIND,
        operation: Operation::ImportHash,
        detail: detail.into(),
    }
}

/// Keycloak's algorithm ids a hashing method is imported as.
pub(super) fn algorithms(method: HashingMethod) -> &'static [&'static str] {
    match method {
        HashingMethod::Pbkdf2Sha1 => &["pbkdf2"],
        HashingMethod::Pbkdf2 => &["pbkdf2-sha256", "pbkdf2-sha512"],
        HashingMethod::Argon2 => &["argon2"],
        _ => &[],
    }
}

/// Keycloak's password hash provider id for a pbkdf2 hash: `pbkdf2` (SHA-1), `pbkdf2-sha256`,
/// `pbkdf2-sha512`. Keycloak takes the key length from the stored value.
fn pbkdf2_algorithm(hash: &ImportedHash) -> Option<&'static str> {
    let variant = hash.pbkdf2?.variant;
    match hash.method {
        HashingMethod::Pbkdf2Sha1 => Some("pbkdf2"),
        HashingMethod::Pbkdf2 if variant.contains("sha512") => Some("pbkdf2-sha512"),
        HashingMethod::Pbkdf2 if variant.contains("sha256") => Some("pbkdf2-sha256"),
        _ => None,
    }
}

/// `(credentialData, secretData)` of an imported hash, both JSON documents.
pub(super) fn credential_parts(
    hash: &ImportedHash,
) -> Result<(String, Zeroizing<String>), ProviderError> {
    let salt = hash
        .salt
        .as_ref()
        .ok_or_else(|| unsupported("a hash without a salt"))?;
    let (algorithm, iterations, parameters) = match (hash.method, hash.argon2) {
        (HashingMethod::Argon2, Some(a)) => {
            let hash_len = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                hash.hash.expose_secret(),
            )
            .map(|h| h.len())
            .map_err(|_| unsupported("argon2 hash is not base64"))?;
            let version = if a.version == 19 { "1.3" } else { "1.0" };
            let parameters = BTreeMap::from([
                ("hashLength", vec![hash_len.to_string()]),
                ("memory", vec![a.memory_kib.to_string()]),
                ("parallelism", vec![a.parallelism.to_string()]),
                ("type", vec![a.kind.to_string()]),
                ("version", vec![version.to_string()]),
            ]);
            ("argon2", a.iterations, parameters)
        }
        _ => {
            let algorithm = pbkdf2_algorithm(hash).ok_or_else(|| {
                unsupported("Keycloak imports pbkdf2, pbkdf2-sha256, pbkdf2-sha512 and argon2 only")
            })?;
            let iterations = hash.pbkdf2.map(|p| p.iterations).unwrap_or_default();
            (algorithm, iterations, BTreeMap::new())
        }
    };
    let credential_data = serde_json::to_string(&CredentialData {
        hash_iterations: iterations,
        algorithm,
        additional_parameters: parameters,
    })
    .map_err(|e| ProviderError::Config(format!("encoding: {e}")))?;
    let secret_data = serde_json::to_string(&SecretData {
        value: hash.hash.expose_secret(),
        salt: salt.expose_secret(),
        additional_parameters: BTreeMap::new(),
    })
    .map(Zeroizing::new)
    .map_err(|e| ProviderError::Config(format!("encoding: {e}")))?;
    Ok((credential_data, secret_data))
}

impl KeycloakClient {
    /// `reset-password` with the password the user just proved.
    pub(super) async fn reset_password(
        &self,
        id: &ProviderUserId,
        password: Password<'_>,
    ) -> Result<(), ProviderError> {
        let op = Operation::SetPassword;
        let text = password
            .as_str()
            .ok_or_else(|| ProviderError::Unsupported {
                provider: KIND,
                operation: op,
                detail: "Keycloak takes UTF-8 passwords only".into(),
            })?;
        if text.trim().is_empty() {
            // Keycloak answers "Empty password not allowed"; it is the policy's refusal.
            return Err(ProviderError::PasswordRejected {
                provider: KIND,
                operation: op,
                reasons: vec!["empty password".into()],
            });
        }
        let body = encode_secret(&PasswordCredential {
            kind: "password",
            value: text,
            temporary: self.config.temporary_password,
        })?;
        let url = self.admin_url(&["users", id.as_str(), "reset-password"])?;
        self.call(
            op,
            Idempotency::Idempotent,
            reqwest::Method::PUT,
            url,
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `PUT …/users/{id}` with the hash as a stored password credential (it replaces the user's
    /// password credential, if any; no policy check applies to it).
    pub(super) async fn import_hash(
        &self,
        id: &ProviderUserId,
        hash: &ImportedHash,
    ) -> Result<(), ProviderError> {
        let op = Operation::ImportHash;
        if !self.imports().contains(&hash.method) {
            return Err(unsupported("this hashing method is not imported"));
        }
        let (credential_data, secret_data) = credential_parts(hash)?;
        let body = encode_secret(&CredentialsRep {
            credentials: [StoredCredential {
                kind: "password",
                secret_data: &secret_data,
                credential_data: &credential_data,
                temporary: self.config.temporary_password,
            }],
        })?;
        let url = self.admin_url(&["users", id.as_str()])?;
        self.call(
            op,
            Idempotency::Idempotent,
            reqwest::Method::PUT,
            url,
            Some(&body),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::provider::{Argon2Params, Pbkdf2Params};
    use serde_json::{Value, json};

    fn pbkdf2(method: HashingMethod, variant: &'static str) -> ImportedHash {
        let mut h = ImportedHash::new(method, "a2V5");
        h.salt = Some("c2FsdA==".to_string().into());
        h.pbkdf2 = Some(Pbkdf2Params {
            variant,
            iterations: 27_500,
        });
        h
    }

    #[test]
    fn pbkdf2_variants_map_to_keycloaks_algorithm_ids() {
        for (method, variant, want) in [
            (
                HashingMethod::Pbkdf2Sha1,
                "salted-pbkdf2-hmac-sha1",
                "pbkdf2",
            ),
            (
                HashingMethod::Pbkdf2,
                "salted-pbkdf2-hmac-sha256",
                "pbkdf2-sha256",
            ),
            (
                HashingMethod::Pbkdf2,
                "salted-pbkdf2-hmac-sha256-512",
                "pbkdf2-sha256",
            ),
            (
                HashingMethod::Pbkdf2,
                "salted-pbkdf2-hmac-sha512-512",
                "pbkdf2-sha512",
            ),
        ] {
            let (data, secret) = credential_parts(&pbkdf2(method, variant)).unwrap();
            let data: Value = serde_json::from_str(&data).unwrap();
            let secret: Value = serde_json::from_str(&secret).unwrap();
            assert_eq!(
                data,
                json!({"hashIterations": 27_500, "algorithm": want, "additionalParameters": {}})
            );
            assert_eq!(
                secret,
                json!({"value": "a2V5", "salt": "c2FsdA==", "additionalParameters": {}})
            );
        }
        assert!(credential_parts(&ImportedHash::new(HashingMethod::Bcrypt, "$2b$")).is_err());
    }

    #[test]
    fn argon2_parameters_are_lists_of_strings() {
        let mut h = ImportedHash::new(HashingMethod::Argon2, "AAAAAAAAAAAAAAAAAAAAAA==");
        h.salt = Some("c2FsdA==".to_string().into());
        h.argon2 = Some(Argon2Params {
            kind: "id",
            version: 19,
            memory_kib: 7168,
            iterations: 5,
            parallelism: 1,
        });
        let (data, _) = credential_parts(&h).unwrap();
        let data: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(
            data,
            json!({"hashIterations": 5, "algorithm": "argon2", "additionalParameters": {
                "hashLength": ["16"], "memory": ["7168"], "parallelism": ["1"], "type": ["id"],
                "version": ["1.3"]}})
        );
    }
}
