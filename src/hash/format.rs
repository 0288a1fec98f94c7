//! The bounded set of hash format names used in config and in metric labels.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A legacy password-hash format family, as an operator names it in config.
///
/// The names are stable: they appear in config files and as the `format` label of metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// bcrypt `$2a$`, `$2b$`, `$2x$`, `$2y$`.
    Bcrypt,
    /// MD5 digest, optionally salted (prefix or suffix), hex or base64.
    Md5,
    /// SHA-1 digest, optionally salted (prefix or suffix), hex or base64.
    Sha1,
    /// SHA-256 digest, optionally salted (prefix or suffix), hex or base64.
    Sha256,
    /// SHA-512 digest, optionally salted (prefix or suffix), hex or base64.
    Sha512,
    /// crypt(3) strings: DES, BSDi `_`, `$1$`, `$apr1$`, `$5$`, `$6$`, `$sha1$`, `$2?$`.
    Crypt,
    /// WordPress `wp_check_password()`: `$wp$2y$`, phpass `$P$`, 32-hex MD5, `password_verify`.
    Wordpress,
    /// phpass portable hashes `$P$` / `$H$` (phpBB3, WordPress < 6.8, others).
    Phpass,
    /// Drupal 7+ `$S$`, `$P$`/`$H$`, upgraded `U$…`, and Drupal 10 `$2y$`.
    Drupal,
    /// Django `pbkdf2_sha256$`, `pbkdf2_sha1$`, `argon2$`, `bcrypt_sha256$`, `bcrypt$`, `md5$`, `sha1$`, `crypt$`.
    Django,
    /// PHC argon2 strings `$argon2id$`, `$argon2i$`, `$argon2d$` (PHP, Laravel, Symfony).
    Argon2,
    /// passlib PBKDF2 strings `$pbkdf2$`, `$pbkdf2-sha256$`, `$pbkdf2-sha512$`.
    Pbkdf2,
    /// PHC scrypt strings `$scrypt$ln=…,r=…,p=…$salt$hash`.
    Scrypt,
}

impl Format {
    /// Every format, in the order `dripgate hash formats` lists them.
    pub const ALL: [Format; 13] = [
        Format::Bcrypt,
        Format::Md5,
        Format::Sha1,
        Format::Sha256,
        Format::Sha512,
        Format::Crypt,
        Format::Wordpress,
        Format::Phpass,
        Format::Drupal,
        Format::Django,
        Format::Argon2,
        Format::Pbkdf2,
        Format::Scrypt,
    ];

    /// The stable name used in config and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::Bcrypt => "bcrypt",
            Format::Md5 => "md5",
            Format::Sha1 => "sha1",
            Format::Sha256 => "sha256",
            Format::Sha512 => "sha512",
            Format::Crypt => "crypt",
            Format::Wordpress => "wordpress",
            Format::Phpass => "phpass",
            Format::Drupal => "drupal",
            Format::Django => "django",
            Format::Argon2 => "argon2",
            Format::Pbkdf2 => "pbkdf2",
            Format::Scrypt => "scrypt",
        }
    }

    /// An example of the stored value's shape (prefix or layout), for `dripgate hash formats`.
    pub const fn example(self) -> &'static str {
        match self {
            Format::Bcrypt => "$2y$10$… (also $2a$ $2b$ $2x$)",
            Format::Md5 => "32 hex or 24 base64; salt + salt_position prefix|suffix",
            Format::Sha1 => "40 hex or 28 base64; salt + salt_position prefix|suffix",
            Format::Sha256 => "64 hex or 44 base64; salt + salt_position prefix|suffix",
            Format::Sha512 => "128 hex or 88 base64; salt + salt_position prefix|suffix",
            Format::Crypt => "$6$… $5$… $1$… $apr1$… $sha1$… _… 13-char DES, $2b$…",
            Format::Wordpress => "$wp$2y$… $P$B… 32-hex md5, $2y$…",
            Format::Phpass => "$P$… $H$…",
            Format::Drupal => "$S$D… U$S$… U$P$… $P$… $2y$…",
            Format::Django => "pbkdf2_sha256$… argon2$argon2id$… bcrypt_sha256$$2b$… md5$salt$…",
            Format::Argon2 => "$argon2id$v=19$m=65536,t=4,p=1$…",
            Format::Pbkdf2 => "$pbkdf2-sha256$29000$…",
            Format::Scrypt => "$scrypt$ln=16,r=8,p=1$…",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown hash format name (expected one of: bcrypt, md5, sha1, sha256, sha512, crypt, wordpress, phpass, drupal, django, argon2, pbkdf2, scrypt)"
)]
pub struct UnknownFormat;

/// A format named in the config or on the command line.
impl crate::failure::Classified for UnknownFormat {
    fn blame(&self) -> crate::failure::Blame {
        crate::failure::Blame::Config
    }

    fn retry(&self) -> crate::failure::Retry {
        crate::failure::Retry::Never
    }
}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .iter()
            .copied()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or(UnknownFormat)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert!("auto".parse::<Format>().is_err());
        assert_eq!("BCRYPT".parse::<Format>(), Ok(Format::Bcrypt));
    }
}
