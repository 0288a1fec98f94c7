//! PHP's `password_verify()`: bcrypt, argon2i/argon2id, and everything PHP's `crypt()` knows.

use super::crypt::{self, Dialect};
use super::{Format, HashConfig, HashError, phc};

/// Verifies `pw` as PHP's `password_verify($pw, $hash)` would.
pub(crate) fn password_verify(
    hash: &str,
    pw: &[u8],
    caps: &HashConfig,
    format: Format,
) -> Result<bool, HashError> {
    if hash.starts_with("$argon2i$") || hash.starts_with("$argon2id$") {
        phc::verify_argon2(hash, pw, caps, format)
    } else {
        crypt::verify(hash, pw, caps, format, Dialect::Php)
    }
}
