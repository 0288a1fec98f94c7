//! Giving a Kinde user a password: `PUT /api/v1/users/{id}/password` with a fresh bcrypt of the
//! password the user just proved (`password_transfer = "bcrypt"`, and the fallback of
//! `"legacy_hash"`), the plaintext body (`"plaintext"`), or a verified legacy hash in Kinde's
//! wire form ([`ImportedHash`], converted by the caller).

use secrecy::ExposeSecret;
use serde::Serialize;
use zeroize::Zeroizing;

use super::wire::{PlaintextPasswordRequest, SetPasswordRequest, error_codes};
use super::{KIND, KindeClient};
use crate::provider::config::PasswordTransfer;
use crate::provider::error::clip;
use crate::provider::http::Answer;
use crate::provider::limit::Idempotency;
use crate::provider::{
    HashingMethod, ImportedHash, Operation, Password, ProviderError, ProviderUserId,
};

/// Encodes a body that carries a password or hash into a buffer zeroized on drop.
fn encode_secret<T: Serialize>(body: &T) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    serde_json::to_vec(body)
        .map(Zeroizing::new)
        .map_err(|e| ProviderError::Config(format!("encoding: {e}")))
}

/// The `SetUserPassword` body carrying an imported hash.
pub(super) fn import_body(
    hash: &ImportedHash,
    temporary: bool,
) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    encode_secret(&SetPasswordRequest {
        hashed_password: hash.hash.expose_secret(),
        hashing_method: hash.method.as_str(),
        salt: hash.salt.as_ref().map(|s| s.expose_secret()),
        salt_position: hash.salt_position.map(|p| p.as_str()),
        iterations: hash.pbkdf2.map(|p| p.iterations),
        variant: hash.pbkdf2.map(|p| p.variant),
        is_temporary_password: temporary,
    })
}

/// A 400 whose error code names the password is the policy's refusal of the password; for an
/// imported hash it is a refusal of the hash (`Invalid`), which the caller answers with bcrypt.
fn refuse_password(op: Operation, answer: &Answer) -> Option<ProviderError> {
    let codes = error_codes(answer);
    let names_password = codes
        .iter()
        .any(|(c, _)| c.to_ascii_uppercase().contains("PASSWORD"));
    (op == Operation::SetPassword && answer.status == 400 && names_password).then(|| {
        ProviderError::PasswordRejected {
            provider: KIND,
            operation: op,
            reasons: codes.into_iter().map(|(c, _)| clip(&c)).collect(),
        }
    })
}

impl KindeClient {
    /// The set-password body for the configured transfer mode: the plaintext body for
    /// `plaintext`, else a fresh bcrypt of the password (hashed by the configured hasher).
    async fn password_body(
        &self,
        password: Password<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let op = Operation::SetPassword;
        let temporary = self.config.is_temporary_password;
        if self.config.password_transfer == PasswordTransfer::Plaintext {
            let text = password
                .as_str()
                .ok_or_else(|| ProviderError::Unsupported {
                    provider: KIND,
                    operation: op,
                    detail: "plaintext transfer needs a UTF-8 password".into(),
                })?;
            return encode_secret(&PlaintextPasswordRequest {
                password: text,
                is_temporary_password: temporary,
            });
        }
        if password.bytes().len() > 72 {
            tracing::debug!(
                provider = "kinde",
                "password longer than 72 bytes: bcrypt uses the first 72"
            );
        }
        let bytes = Zeroizing::new(password.bytes().to_vec());
        let hash = self
            .hasher
            .bcrypt(bytes, self.config.bcrypt_cost)
            .await
            .map_err(|e| match e {
                crate::provider::HasherError::Aborted => ProviderError::Transient {
                    provider: KIND,
                    operation: op,
                    detail: "bcrypt task did not finish".into(),
                    not_sent: true,
                },
                e @ crate::provider::HasherError::Bcrypt(_) => ProviderError::Config(e.to_string()),
            })?;
        encode_secret(&SetPasswordRequest {
            hashed_password: &hash,
            hashing_method: HashingMethod::Bcrypt.as_str(),
            salt: None,
            salt_position: None,
            iterations: None,
            variant: None,
            is_temporary_password: temporary,
        })
    }

    /// `SetUserPassword` with the password the user just proved.
    pub(super) async fn set_password_now(
        &self,
        id: &ProviderUserId,
        password: Password<'_>,
    ) -> Result<(), ProviderError> {
        let body = self.password_body(password).await?;
        self.put_password(id, Operation::SetPassword, &body).await
    }

    /// `SetUserPassword` with an imported hash.
    pub(super) async fn import_hash(
        &self,
        id: &ProviderUserId,
        hash: &ImportedHash,
    ) -> Result<(), ProviderError> {
        let body = import_body(hash, self.config.is_temporary_password)?;
        self.put_password(id, Operation::ImportHash, &body).await
    }

    async fn put_password(
        &self,
        id: &ProviderUserId,
        op: Operation,
        body: &[u8],
    ) -> Result<(), ProviderError> {
        let mut url = self.url("/api/v1/users")?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::Config("kinde base_url cannot take a path".into()))?
            .push(id.as_str())
            .push("password");
        self.call(
            op,
            Idempotency::Idempotent,
            reqwest::Method::PUT,
            url,
            Some(body),
            refuse_password,
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::provider::{Pbkdf2Params, SaltPlacement};
    use serde_json::{Value, json};

    #[test]
    fn import_body_has_the_spec_field_names() {
        let mut md5 = ImportedHash::new(HashingMethod::Md5, "1f3870be274f6c49b3e31a0c6728957f");
        md5.salt = Some("x9Q".to_string().into());
        md5.salt_position = Some(SaltPlacement::Suffix);
        let v: Value = serde_json::from_slice(&import_body(&md5, false).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"hashed_password": "1f3870be274f6c49b3e31a0c6728957f", "hashing_method": "md5",
                   "salt": "x9Q", "salt_position": "suffix", "is_temporary_password": false})
        );
        let mut pbkdf2 = ImportedHash::new(HashingMethod::Pbkdf2, "aGFzaA==");
        pbkdf2.salt = Some("c2FsdA==".to_string().into());
        pbkdf2.pbkdf2 = Some(Pbkdf2Params {
            variant: "salted-pbkdf2-hmac-sha256",
            iterations: 29_000,
        });
        let v: Value = serde_json::from_slice(&import_body(&pbkdf2, true).unwrap()).unwrap();
        assert_eq!(v["hashing_method"], "pbkdf2");
        assert_eq!(v["variant"], "salted-pbkdf2-hmac-sha256");
        assert_eq!(v["iterations"], 29_000);
        assert_eq!(v["is_temporary_password"], true);
        assert!(v.get("salt_position").is_none());
    }
}
