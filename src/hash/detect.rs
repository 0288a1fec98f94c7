//! Format detection from the shape of a stored value.

use super::Format;

/// The `./0-9A-Za-z` alphabet of crypt(3), phpass and bcrypt.
pub(crate) fn is_crypt64(b: u8) -> bool {
    b == b'.' || b == b'/' || b.is_ascii_alphanumeric()
}

fn all_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn looks_base64(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// Detects the format of a self-describing stored value, or of a bare hex/base64 digest by its
/// length (unsalted MD5, SHA-1, SHA-256, SHA-512). Returns `None` when the shape is unknown.
///
/// A locked value (`!` or `*` prefix) is reported as [`Format::Crypt`]; it never verifies.
/// Bare 32-hex values are reported as [`Format::Md5`]; configure `wordpress` explicitly for
/// WordPress stores, and a salt for salted digests.
pub fn detect(hash: &str) -> Option<Format> {
    let b = hash.as_bytes();
    if b.first().is_some_and(|&c| c == b'!' || c == b'*') {
        return Some(Format::Crypt);
    }
    if hash.starts_with("$2")
        && b.len() >= 4
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
    {
        return Some(Format::Bcrypt);
    }
    if hash.starts_with("$wp$") {
        return Some(Format::Wordpress);
    }
    if hash.starts_with("$P$") || hash.starts_with("$H$") {
        return Some(Format::Phpass);
    }
    if hash.starts_with("$S$") || hash.starts_with("U$") {
        return Some(Format::Drupal);
    }
    if hash.starts_with("$argon2") {
        return Some(Format::Argon2);
    }
    if hash.starts_with("$pbkdf2$") || hash.starts_with("$pbkdf2-") {
        return Some(Format::Pbkdf2);
    }
    if hash.starts_with("$scrypt$") {
        return Some(Format::Scrypt);
    }
    for p in ["$1$", "$apr1$", "$5$", "$6$", "$sha1$"] {
        if hash.starts_with(p) {
            return Some(Format::Crypt);
        }
    }
    if b.len() == 20 && b[0] == b'_' && b[1..].iter().all(|&c| is_crypt64(c)) {
        return Some(Format::Crypt);
    }
    for p in [
        "pbkdf2_sha256$",
        "pbkdf2_sha1$",
        "argon2$",
        "bcrypt_sha256$",
        "bcrypt$",
        "md5$",
        "sha1$",
        "unsalted_md5$",
        "unsalted_sha1$",
        "crypt$",
    ] {
        if hash.starts_with(p) {
            return Some(Format::Django);
        }
    }
    if b.len() == 13 && b.iter().all(|&c| is_crypt64(c)) {
        return Some(Format::Crypt);
    }
    match (b.len(), all_hex(hash), looks_base64(hash)) {
        (32, true, _) | (24, _, true) => Some(Format::Md5),
        (40, true, _) | (28, _, true) => Some(Format::Sha1),
        (64, true, _) | (44, _, true) => Some(Format::Sha256),
        (128, true, _) | (88, _, true) => Some(Format::Sha512),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn detects_shapes() {
        let cases = [
            (
                "$2y$10$eS.DTZ3X3QLOwj.MHHSjOOs9aLTa6WBwTwCI/N7M776diclWhV10K",
                Some(Format::Bcrypt),
            ),
            (
                "$wp$2y$05$jQGRZDTiJQDpD3gy2sRIW.hNGjyy0l1UK9LrO1W6m7PQD.3n0DWD.",
                Some(Format::Wordpress),
            ),
            ("$P$BoQjkeN0kFwKVNabNE6n1VyuxNIKCo0", Some(Format::Phpass)),
            (
                "$S$DmXyMekx5pqsQnUba0PQFLdKIsOmI.g1icjvnuVAnyZ7ltW4ojAz",
                Some(Format::Drupal),
            ),
            (
                "U$S$91R7imM0gtfF7qRizFP6Rgrsv9IK7enZNTfPn1kg.q1IyDwhcHs/",
                Some(Format::Drupal),
            ),
            ("$6$salt$x", Some(Format::Crypt)),
            ("$apr1$salt$x", Some(Format::Crypt)),
            ("EqwJklPbKP6sM", Some(Format::Crypt)),
            ("_J9..HjKFzCKVe41WvYU", Some(Format::Crypt)),
            ("!$6$x$y", Some(Format::Crypt)),
            ("pbkdf2_sha256$1000$s$h", Some(Format::Django)),
            ("$argon2id$v=19$m=1,t=1,p=1$a$b", Some(Format::Argon2)),
            ("$pbkdf2-sha256$1$a$b", Some(Format::Pbkdf2)),
            ("$scrypt$ln=1,r=1,p=1$a$b", Some(Format::Scrypt)),
            ("04b29c5e0c3e9573004e070295b0550b", Some(Format::Md5)),
            (
                "1f9ece4f1a181ee3f95a778c01c915a2ccca1592decb6507e6e7331106b68f78",
                Some(Format::Sha256),
            ),
            ("", None),
            ("hello world", None),
        ];
        for (h, want) in cases {
            assert_eq!(detect(h), want, "{h}");
        }
    }
}
