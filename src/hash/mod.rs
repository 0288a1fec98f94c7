//! Legacy password-hash formats: parse, detect and verify in constant time.
//!
//! [`verify`] checks a password against a [`LegacyHash`] synchronously (CPU-bound: call it from
//! a blocking thread); [`VerifyPool`] runs it on tokio's blocking pool behind a bounded queue.
//! A wrong password is `Ok(false)`; a malformed, unsupported or over-cap hash is a typed
//! [`HashError`]; a locked value (`!`/`*` prefix) is always `Ok(false)`. See docs/HASH-FORMATS.md.

mod config;
mod detect;
mod error;
mod format;
mod legacy;
mod password;

pub use config::HashConfig;
pub use detect::detect;
pub use error::HashError;
pub use format::{Format, UnknownFormat};
pub use legacy::{DigestEncoding, LegacyHash, SaltPosition};
pub use password::Password;

/// Checks `password` (raw bytes, exactly as submitted) against `hash`, within the work caps of
/// `caps`. `Ok(true)` only on an exact match; `Ok(false)` on a wrong password or a locked value.
pub fn verify(hash: &LegacyHash, password: &[u8], caps: &HashConfig) -> Result<bool, HashError> {
    let format = hash.resolved_format().ok_or(HashError::Undetected)?;
    if password.len() > caps.max_password_bytes {
        return Err(HashError::PasswordTooLong {
            len: password.len(),
            max: caps.max_password_bytes,
        });
    }
    let _ = format;
    Err(HashError::unsupported(format, "not implemented yet"))
}
