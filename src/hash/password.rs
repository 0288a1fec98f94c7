//! The submitted password: raw bytes, wrapped so they are zeroized on drop and never printed.

use std::fmt;

use secrecy::{ExposeSecret, SecretSlice};

/// A password as the bytes the client sent (not necessarily UTF-8), zeroized on drop.
///
/// Its `Debug` output is redacted.
pub struct Password(SecretSlice<u8>);

impl Password {
    /// Wraps `bytes`, taking ownership so no unzeroized copy is left behind.
    pub fn new(bytes: Vec<u8>) -> Self {
        Password(SecretSlice::from(bytes))
    }

    /// Copies `bytes` into a new wrapper (the caller remains responsible for its own copy).
    pub fn from_slice(bytes: &[u8]) -> Self {
        Password::new(bytes.to_vec())
    }

    /// The password bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether the password is empty.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl From<Vec<u8>> for Password {
    fn from(bytes: Vec<u8>) -> Self {
        Password::new(bytes)
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password::new(s.into_bytes())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let p = Password::from_slice(b"hunter2");
        assert!(!format!("{p:?}").contains("hunter2"));
        assert_eq!(p.expose(), b"hunter2");
        assert_eq!(p.len(), 7);
    }
}
