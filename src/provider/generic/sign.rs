//! The request signature of the generic HTTP provider contract
//! (docs/generic-http-provider.openapi.yaml): HMAC-SHA256 over a canonical string that binds the
//! key id, a timestamp, a per-request nonce, the method, the request target, the idempotency
//! key and the SHA-256 of the body. The client signs with [`SigningKey::sign`]; a receiver (the
//! test kit's reference fake, or an operator's service) checks with [`SigningKey::verify`], its
//! replay window and its memory of nonces.

use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Which signing key (lets a receiver accept two during a rotation).
pub const KEY_ID: &str = "x-dripgate-key-id";
/// Unix seconds when the request was signed.
pub const TIMESTAMP: &str = "x-dripgate-timestamp";
/// 32 random hex characters, new for every request.
pub const NONCE: &str = "x-dripgate-nonce";
/// `v1=<hex HMAC-SHA256>`.
pub const SIGNATURE: &str = "x-dripgate-signature";
/// The same for every resend of one create.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The first line of the canonical string (the scheme's version).
const SCHEME: &str = "dripgate-v1";

/// What the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// `X-Dripgate-Key-Id`.
    pub key_id: &'a str,
    /// `X-Dripgate-Timestamp` (Unix seconds, decimal).
    pub timestamp: &'a str,
    /// `X-Dripgate-Nonce`.
    pub nonce: &'a str,
    /// The HTTP method, upper case.
    pub method: &'a str,
    /// Path and query exactly as sent (`/users?email=ada%40example.com`).
    pub target: &'a str,
    /// `Idempotency-Key`, or `""` when the request has none.
    pub idempotency_key: &'a str,
    /// The raw body (empty for GET).
    pub body: &'a [u8],
}

impl Signed<'_> {
    /// The canonical string: the fields above, one per line, the body as its SHA-256 in hex.
    pub fn canonical(&self) -> String {
        let body_hash = hex::encode(Sha256::digest(self.body));
        [
            SCHEME,
            self.key_id,
            self.timestamp,
            self.nonce,
            self.method,
            self.target,
            self.idempotency_key,
            &body_hash,
        ]
        .join("\n")
    }
}

/// An HMAC-SHA256 key (the key bytes are not retrievable from it; `Debug` shows nothing).
#[derive(Clone)]
pub struct SigningKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// A key from its bytes (HMAC takes any length; the config asks for at least 32).
    pub fn new(key: &[u8]) -> Option<Self> {
        <HmacSha256 as KeyInit>::new_from_slice(key)
            .ok()
            .map(|mac| Self { mac })
    }

    fn mac(&self, signed: &Signed<'_>) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(signed.canonical().as_bytes());
        mac
    }

    /// The `X-Dripgate-Signature` value: `v1=` and the hex HMAC-SHA256 of the canonical string.
    pub fn sign(&self, signed: &Signed<'_>) -> String {
        format!(
            "v1={}",
            hex::encode(self.mac(signed).finalize().into_bytes())
        )
    }

    /// Whether `header` (`v1=<hex>`) is the signature of `signed`, compared in constant time.
    pub fn verify(&self, signed: &Signed<'_>, header: &str) -> bool {
        let Some(expected) = header.strip_prefix("v1=").and_then(|h| hex::decode(h).ok()) else {
            return false;
        };
        self.mac(signed).verify_slice(&expected).is_ok()
    }
}

/// A fresh nonce (also the shape of an idempotency key): 16 random bytes as 32 hex characters.
pub fn nonce() -> String {
    hex::encode(rand::rng().random::<[u8; 16]>())
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample(body: &[u8]) -> Signed<'_> {
        Signed {
            key_id: "k1",
            timestamp: "1767225600",
            nonce: "00112233445566778899aabbccddeeff",
            method: "POST",
            target: "/v1/users",
            idempotency_key: "ffeeddccbbaa99887766554433221100",
            body,
        }
    }

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let key = SigningKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let body = br#"{"email":"ada@example.com"}"#;
        let sig = key.sign(&sample(body));
        assert!(sig.starts_with("v1=") && sig.len() == 67);
        assert!(key.verify(&sample(body), &sig));
        let other_key = SigningKey::new(b"another key of thirty-two bytes!").unwrap();
        assert!(!other_key.verify(&sample(body), &sig));
        assert!(!key.verify(&sample(br#"{"email":"eve@example.com"}"#), &sig));
        let mut other = sample(body);
        other.target = "/v1/users?x=1";
        assert!(!key.verify(&other, &sig));
        let mut other = sample(body);
        other.timestamp = "1767225601";
        assert!(!key.verify(&other, &sig));
        assert!(!key.verify(&sample(body), "v1=zz"));
        assert!(!key.verify(&sample(body), &sig.replace("v1=", "v2=")));
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }

    #[test]
    fn the_canonical_string_is_the_documented_one() {
        // docs/PROVIDERS.md shows this string; the body hash is SHA-256 of "" for a GET.
        let mut s = sample(b"");
        s.method = "GET";
        s.target = "/v1/users?email=ada%40example.com";
        s.idempotency_key = "";
        assert_eq!(
            s.canonical(),
            "dripgate-v1\nk1\n1767225600\n00112233445566778899aabbccddeeff\nGET\n\
             /v1/users?email=ada%40example.com\n\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
