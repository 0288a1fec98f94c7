//! Drupal `user_check_password()` (7.x) and `PhpPassword::check()` (10.1+).

use super::digest::Algo;
use super::util::hex_lower;
use super::{Format, HashConfig, HashError, php, phpass};

/// Drupal's `DRUPAL_MAX_PASSWORD_LENGTH` / `PasswordInterface::PASSWORD_MAX_LENGTH`.
pub(crate) const DRUPAL_MAX_PASSWORD: usize = 512;

/// Verifies `pw` as Drupal does. `U$…` hashes were re-wrapped from Drupal 6 MD5: their input is
/// the lower-case hex MD5 of the password.
pub(crate) fn verify(hash: &str, pw: &[u8], caps: &HashConfig) -> Result<bool, HashError> {
    let format = Format::Drupal;
    let (stored, md5_input);
    let pw: &[u8] = if let Some(rest) = hash.strip_prefix('U') {
        if !rest.starts_with('$') {
            return Err(HashError::malformed(
                format,
                "upgraded Drupal hash must start with U$",
            ));
        }
        stored = rest;
        md5_input = hex_lower(&Algo::Md5.digest(&[pw]));
        &md5_input
    } else {
        stored = hash;
        pw
    };
    if stored.starts_with("$S$") || stored.starts_with("$P$") || stored.starts_with("$H$") {
        phpass::verify(stored, pw, caps, format, DRUPAL_MAX_PASSWORD)
    } else if stored.starts_with("$2") || stored.starts_with("$argon2") {
        if pw.len() > DRUPAL_MAX_PASSWORD {
            return Ok(false);
        }
        php::password_verify(stored, pw, caps, format)
    } else {
        Err(HashError::malformed(format, "not a Drupal password hash"))
    }
}
