//! Legacy password-hash formats: parse, detect and verify in constant time.
//!
//! [`verify`] checks a password against a [`LegacyHash`] synchronously (CPU-bound: call it from
//! a blocking thread); [`VerifyPool`] runs it on tokio's blocking pool behind a bounded queue.
//! A wrong password is `Ok(false)`; a malformed, unsupported or over-cap hash is a typed
//! [`HashError`]; a locked value (`!`/`*` prefix) is always `Ok(false)`. See docs/HASH-FORMATS.md.

mod bcrypt;
mod config;
mod crypt;
mod detect;
mod digest;
mod django;
mod drupal;
mod error;
mod format;
mod legacy;
mod metrics;
mod password;
mod phc;
mod php;
mod phpass;
mod pool;
mod util;
mod wordpress;

pub use config::HashConfig;
pub use detect::detect;
pub use error::HashError;
pub use format::{Format, UnknownFormat};
pub use legacy::{DigestEncoding, LegacyHash, SaltPosition};
pub use metrics::HashMetrics;
pub use password::Password;
pub use phc::PasslibPbkdf2;
pub use pool::{VerifyError, VerifyPool};

use digest::Algo;

/// Checks `password` (raw bytes, exactly as submitted) against `hash`, within the work caps of
/// `caps`. `Ok(true)` only on an exact match; `Ok(false)` on a wrong password or a locked value
/// (`!` or `*` prefix); a typed [`HashError`] when the value cannot be checked. Never panics.
pub fn verify(hash: &LegacyHash, password: &[u8], caps: &HashConfig) -> Result<bool, HashError> {
    let format = hash.resolved_format().ok_or(HashError::Undetected)?;
    if password.len() > caps.max_password_bytes {
        return Err(HashError::PasswordTooLong {
            len: password.len(),
            max: caps.max_password_bytes,
        });
    }
    if is_locked(hash.hash()) {
        return Ok(false);
    }
    let salted = matches!(
        format,
        Format::Md5 | Format::Sha1 | Format::Sha256 | Format::Sha512
    );
    if !salted
        && (hash.salt().is_some() || hash.salt_position().is_some() || hash.encoding().is_some())
    {
        return Err(HashError::Settings {
            format,
            reason: "salt, salt_position and encoding apply only to md5, sha1, sha256 and sha512",
        });
    }
    util::no_panic(|| dispatch(format, hash, password, caps)).unwrap_or(Err(HashError::Internal {
        format,
        reason: "verifier panicked",
    }))
}

/// Whether a stored value is a locked or disabled account marker (shadow(5) `!`, `*`, `*LK*`,
/// and crypt's failure tokens `*0`/`*1`): such values never verify.
pub fn is_locked(stored: &str) -> bool {
    stored.starts_with('!') || stored.starts_with('*')
}

fn dispatch(
    format: Format,
    h: &LegacyHash,
    pw: &[u8],
    caps: &HashConfig,
) -> Result<bool, HashError> {
    let stored = h.hash();
    match format {
        Format::Bcrypt => bcrypt::verify(stored, pw, caps, format),
        Format::Md5 => digest::verify(h, pw, Algo::Md5, format),
        Format::Sha1 => digest::verify(h, pw, Algo::Sha1, format),
        Format::Sha256 => digest::verify(h, pw, Algo::Sha256, format),
        Format::Sha512 => digest::verify(h, pw, Algo::Sha512, format),
        Format::Crypt => crypt::verify(stored, pw, caps, format, crypt::Dialect::All),
        Format::Wordpress => wordpress::verify(stored, pw, caps),
        Format::Phpass => {
            if stored.starts_with("$P$") || stored.starts_with("$H$") {
                phpass::verify(stored, pw, caps, format, wordpress::WP_MAX_PASSWORD)
            } else {
                // phpass's CheckPassword falls back to crypt() for its non-portable hashes.
                crypt::verify(stored, pw, caps, format, crypt::Dialect::Php)
            }
        }
        Format::Drupal => drupal::verify(stored, pw, caps),
        Format::Django => django::verify(stored, pw, caps),
        Format::Argon2 => phc::verify_argon2(stored, pw, caps, format),
        Format::Pbkdf2 => phc::verify_pbkdf2(stored, pw, caps),
        Format::Scrypt => phc::verify_scrypt(stored, pw, caps),
    }
}
