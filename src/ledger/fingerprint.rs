//! HMAC-SHA256 fingerprints of migrated legacy hashes.
//!
//! The ledger records *which* legacy hash a user was migrated with, so that a password changed
//! at legacy later (a new hash) is noticed and re-synced, without ever storing the hash: only
//! `hex(HMAC-SHA256(key, legacy_hash))`. The key comes from `ledger.fingerprint_key` or is
//! generated once and kept in the ledger's `ledger_meta` table.

use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;

use super::error::LedgerError;

type HmacSha256 = Hmac<Sha256>;

/// Name of the generated key in `ledger_meta`.
pub(super) const META_KEY: &str = "fingerprint_key";

/// A keyed fingerprinter (the key is not retrievable from it).
#[derive(Clone)]
pub struct Fingerprinter {
    mac: HmacSha256,
}

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinter(<key redacted>)")
    }
}

impl Fingerprinter {
    /// A fingerprinter keyed with `key`.
    pub fn new(key: &[u8]) -> Result<Self, LedgerError> {
        let mac = HmacSha256::new_from_slice(key)
            .map_err(|_| LedgerError::Config("unusable fingerprint key".to_owned()))?;
        Ok(Self { mac })
    }

    /// `hex(HMAC-SHA256(key, legacy_hash))`.
    pub fn fingerprint(&self, legacy_hash: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(legacy_hash);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `fingerprint` is the fingerprint of `legacy_hash`, compared in constant time.
    pub fn matches(&self, legacy_hash: &[u8], fingerprint: &str) -> bool {
        let Ok(expected) = hex::decode(fingerprint) else {
            return false;
        };
        let mut mac = self.mac.clone();
        mac.update(legacy_hash);
        mac.verify_slice(&expected).is_ok()
    }
}

/// A fresh random key, hex-encoded, for `ledger_meta`.
pub(super) fn generate_key_hex() -> String {
    let key: [u8; 32] = rand::rng().random();
    hex::encode(key)
}

/// The key bytes stored in `ledger_meta`.
pub(super) fn decode_key_hex(hex_key: &str) -> Result<Vec<u8>, LedgerError> {
    match hex::decode(hex_key) {
        Ok(key) if key.len() >= 16 => Ok(key),
        _ => Err(LedgerError::Corrupt(
            "ledger_meta.fingerprint_key is not a hex key of at least 16 bytes".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fingerprint_is_keyed_and_checked() {
        let a = Fingerprinter::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let b = Fingerprinter::new(b"another key of sufficient length").unwrap();
        let hash = b"$2y$10$abcdefghijklmnopqrstuuN8Kq1r0eV5sQ0mQyJX6XjQ3lQmW2mG";
        let fa = a.fingerprint(hash);
        assert_eq!(fa.len(), 64);
        assert_ne!(fa, b.fingerprint(hash));
        assert!(a.matches(hash, &fa));
        assert!(!a.matches(b"other hash", &fa));
        assert!(!a.matches(hash, "not hex"));
        assert!(!a.matches(hash, &fa[..62]));
        assert!(!fa.contains("abcdefghij"));
        let generated = generate_key_hex();
        assert_eq!(decode_key_hex(&generated).unwrap().len(), 32);
        assert!(decode_key_hex("zz").is_err());
    }
}
