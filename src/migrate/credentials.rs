//! What a sign-in gives the migration: the identifier and password the client submitted, as
//! the sign-in handler read them.

use secrecy::SecretSlice;

/// The credentials a client submitted.
pub struct Credentials {
    /// The identifier as typed, with surrounding whitespace and control characters removed
    /// (not yet normalized).
    pub identifier: String,
    /// The password bytes, zeroized on drop.
    pub password: SecretSlice<u8>,
    /// The user legacy's success response named (`legacy_user` of the route), when
    /// configured: the migration goes ahead only if it is the user read here.
    pub legacy_user: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identifier", &self.identifier)
            .field("password", &"<redacted>")
            .field("legacy_user", &self.legacy_user)
            .finish()
    }
}
