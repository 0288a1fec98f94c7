//! WordPress `wp_check_password()` (6.8+), branch for branch.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha384;

use super::digest::Algo;
use super::util::{ct_eq, hex_lower};
use super::{Format, HashConfig, HashError, bcrypt, php, phpass};

/// WordPress's limit on password length (`wp_check_password`, phpass `CheckPassword`).
pub(crate) const WP_MAX_PASSWORD: usize = 4096;

/// Verifies `pw` as `wp_check_password($pw, $hash)` does: no trimming of the input.
///
/// 1. a value of 32 characters or fewer is lower-case hex MD5, compared exactly;
/// 2. a password over 4096 bytes fails;
/// 3. `$wp…` is bcrypt over base64(HMAC-SHA384(key `wp-sha384`, pw));
/// 4. `$P$` is phpass (and `$H$` too, as WordPress before 6.8 accepted it);
/// 5. anything else goes to PHP's `password_verify`.
pub(crate) fn verify(hash: &str, pw: &[u8], caps: &HashConfig) -> Result<bool, HashError> {
    let format = Format::Wordpress;
    if hash.len() <= 32 {
        let md5 = hex_lower(&Algo::Md5.digest(&[pw]));
        return Ok(ct_eq(&md5, hash.as_bytes()));
    }
    if pw.len() > WP_MAX_PASSWORD {
        return Ok(false);
    }
    if let Some(rest) = hash.strip_prefix("$wp") {
        let parsed = bcrypt::parse(rest, caps, format)?;
        let mut mac = <Hmac<Sha384> as KeyInit>::new_from_slice(b"wp-sha384").map_err(|_| {
            HashError::Internal {
                format,
                reason: "HMAC key rejected",
            }
        })?;
        mac.update(pw);
        let tag = mac.finalize().into_bytes();
        let prehash =
            zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(tag));
        return bcrypt::verify_parsed(&parsed, prehash.as_bytes(), format);
    }
    if hash.starts_with("$P$") || hash.starts_with("$H$") {
        return phpass::verify(hash, pw, caps, format, WP_MAX_PASSWORD);
    }
    php::password_verify(hash, pw, caps, format)
}
