//! A stored legacy hash together with what is needed to check it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Format, detect};

/// Where a separate salt goes relative to the password in a salted digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaltPosition {
    /// `H(salt ‖ password)`.
    Prefix,
    /// `H(password ‖ salt)`.
    Suffix,
}

impl SaltPosition {
    /// The config name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SaltPosition::Prefix => "prefix",
            SaltPosition::Suffix => "suffix",
        }
    }
}

impl FromStr for SaltPosition {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "prefix" => Ok(SaltPosition::Prefix),
            "suffix" => Ok(SaltPosition::Suffix),
            _ => Err("salt position must be prefix or suffix"),
        }
    }
}

/// The text form of a salted digest (`md5`, `sha1`, `sha256`, `sha512`).
///
/// Hex is decoded case-insensitively whichever of `hex`/`hex_upper` is named; when no encoding
/// is given it is told from the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestEncoding {
    /// Hexadecimal, lower case as written by most tools.
    Hex,
    /// Hexadecimal, upper case (.NET, some DB tools).
    HexUpper,
    /// Standard padded base64.
    Base64,
}

impl DigestEncoding {
    /// The config name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DigestEncoding::Hex => "hex",
            DigestEncoding::HexUpper => "hex_upper",
            DigestEncoding::Base64 => "base64",
        }
    }
}

impl FromStr for DigestEncoding {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hex" => Ok(DigestEncoding::Hex),
            "hex_upper" => Ok(DigestEncoding::HexUpper),
            "base64" => Ok(DigestEncoding::Base64),
            _ => Err("encoding must be hex, hex_upper or base64"),
        }
    }
}

/// A stored legacy hash: its format (or `None` to detect it), the value byte for byte as the
/// store holds it, and for salted digests the separate salt, its position and the encoding.
///
/// `Debug` never shows the hash or the salt; both are zeroized on drop.
#[derive(Clone)]
pub struct LegacyHash {
    format: Option<Format>,
    hash: Zeroizing<String>,
    salt: Option<Zeroizing<Vec<u8>>>,
    salt_position: Option<SaltPosition>,
    encoding: Option<DigestEncoding>,
}

impl LegacyHash {
    /// A hash of a known format.
    pub fn new(format: Format, hash: impl Into<String>) -> Self {
        LegacyHash {
            format: Some(format),
            hash: Zeroizing::new(hash.into()),
            salt: None,
            salt_position: None,
            encoding: None,
        }
    }

    /// A hash whose format is detected from the value at verification time (see [`detect`]).
    pub fn auto(hash: impl Into<String>) -> Self {
        LegacyHash {
            format: None,
            hash: Zeroizing::new(hash.into()),
            salt: None,
            salt_position: None,
            encoding: None,
        }
    }

    /// A hash with an optional format: `None` means detect.
    pub fn with_format(format: Option<Format>, hash: impl Into<String>) -> Self {
        let mut h = LegacyHash::auto(hash);
        h.format = format;
        h
    }

    /// Sets the separate salt (used as its literal bytes) and where it goes.
    #[must_use]
    pub fn salted(mut self, salt: impl Into<Vec<u8>>, position: SaltPosition) -> Self {
        self.salt = Some(Zeroizing::new(salt.into()));
        self.salt_position = Some(position);
        self
    }

    /// Sets the separate salt without a position (the position must then be set too).
    #[must_use]
    pub fn with_salt(mut self, salt: Option<Vec<u8>>) -> Self {
        self.salt = salt.map(Zeroizing::new);
        self
    }

    /// Sets the salt position.
    #[must_use]
    pub fn with_salt_position(mut self, position: Option<SaltPosition>) -> Self {
        self.salt_position = position;
        self
    }

    /// Sets the digest text encoding (salted digests only).
    #[must_use]
    pub fn with_encoding(mut self, encoding: Option<DigestEncoding>) -> Self {
        self.encoding = encoding;
        self
    }

    /// The configured format, `None` if it is to be detected.
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// The configured format, or the detected one.
    pub fn resolved_format(&self) -> Option<Format> {
        self.format.or_else(|| detect(&self.hash))
    }

    /// The stored value.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The separate salt, if any.
    pub fn salt(&self) -> Option<&[u8]> {
        self.salt.as_ref().map(|s| s.as_slice())
    }

    /// The salt position, if any.
    pub fn salt_position(&self) -> Option<SaltPosition> {
        self.salt_position
    }

    /// The digest encoding, if any.
    pub fn encoding(&self) -> Option<DigestEncoding> {
        self.encoding
    }
}

impl fmt::Debug for LegacyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyHash")
            .field("format", &self.format)
            .field("hash", &"[REDACTED]")
            .field("salt", &self.salt.as_ref().map(|_| "[REDACTED]"))
            .field("salt_position", &self.salt_position)
            .field("encoding", &self.encoding)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_hash_and_salt() {
        let h = LegacyHash::new(Format::Md5, "0123456789abcdef0123456789abcdef")
            .salted("pepper", SaltPosition::Suffix);
        let d = format!("{h:?}");
        assert!(!d.contains("0123456789"));
        assert!(!d.contains("pepper"));
        assert!(d.contains("Md5"));
    }
}
