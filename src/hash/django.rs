//! Django `contrib.auth.hashers` formats.

use pbkdf2::pbkdf2_hmac;
use sha1::Sha1;
use sha2::Sha256;

use super::crypt::{self, Dialect};
use super::digest::{self, Algo};
use super::util::{b64_standard, ct_eq, hex_lower};
use super::{Format, HashConfig, HashError, bcrypt, phc};

/// Verifies `pw` against a Django-encoded password (`algorithm$…`).
pub(crate) fn verify(hash: &str, pw: &[u8], caps: &HashConfig) -> Result<bool, HashError> {
    let format = Format::Django;
    let Some((algorithm, rest)) = hash.split_once('$') else {
        // UnsaltedMD5PasswordHasher stores a bare 32-hex digest.
        let expected = digest::decode(hash, 16, Some(super::DigestEncoding::Hex), format)?;
        return Ok(ct_eq(&Algo::Md5.digest(&[pw]), &expected));
    };
    match algorithm {
        "pbkdf2_sha256" => pbkdf2(rest, pw, caps, false),
        "pbkdf2_sha1" => pbkdf2(rest, pw, caps, true),
        "argon2" => phc::verify_argon2(&hash["argon2".len()..], pw, caps, format),
        "bcrypt_sha256" => {
            let prehash = hex_lower(&Algo::Sha256.digest(&[pw]));
            bcrypt::verify(rest, &prehash, caps, format)
        }
        "bcrypt" => bcrypt::verify(rest, pw, caps, format),
        "md5" | "sha1" | "unsalted_md5" | "unsalted_sha1" => {
            let (algo, len) = if algorithm.ends_with("md5") {
                (Algo::Md5, 16)
            } else {
                (Algo::Sha1, 20)
            };
            let (salt, encoded) = rest.split_once('$').ok_or(HashError::malformed(
                format,
                "salted Django digest needs algorithm$salt$hex",
            ))?;
            let expected = digest::decode(encoded, len, Some(super::DigestEncoding::Hex), format)?;
            Ok(ct_eq(&algo.digest(&[salt.as_bytes(), pw]), &expected))
        }
        "crypt" => {
            let (_, data) = rest.split_once('$').ok_or(HashError::malformed(
                format,
                "Django crypt needs crypt$$data",
            ))?;
            crypt::verify(data, pw, caps, format, Dialect::All)
        }
        _ => Err(HashError::unsupported(format, "unknown Django hasher")),
    }
}

/// `pbkdf2_sha256$<iterations>$<salt>$<base64>`: PBKDF2-HMAC over the literal salt string.
fn pbkdf2(rest: &str, pw: &[u8], caps: &HashConfig, sha1: bool) -> Result<bool, HashError> {
    let format = Format::Django;
    let mut parts = rest.splitn(3, '$');
    let (Some(iterations), Some(salt), Some(encoded)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(HashError::malformed(
            format,
            "Django PBKDF2 needs algorithm$iterations$salt$hash",
        ));
    };
    if iterations.is_empty()
        || iterations.len() > 10
        || !iterations.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(HashError::malformed(
            format,
            "Django PBKDF2 iterations must be a number",
        ));
    }
    let iterations: u32 = iterations
        .parse()
        .map_err(|_| HashError::malformed(format, "Django PBKDF2 iterations out of range"))?;
    if iterations == 0 {
        return Err(HashError::malformed(
            format,
            "Django PBKDF2 iterations must be positive",
        ));
    }
    HashError::check_cap(
        format,
        "iterations",
        u64::from(iterations),
        u64::from(caps.pbkdf2_max_iterations),
    )?;
    let expected = b64_standard(encoded).ok_or(HashError::malformed(
        format,
        "Django PBKDF2 hash is not base64",
    ))?;
    let want = if sha1 { 20 } else { 32 };
    if expected.len() != want {
        return Err(HashError::malformed(
            format,
            "Django PBKDF2 hash has the wrong length",
        ));
    }
    let mut out = zeroize::Zeroizing::new(vec![0u8; want]);
    if sha1 {
        pbkdf2_hmac::<Sha1>(pw, salt.as_bytes(), iterations, &mut out);
    } else {
        pbkdf2_hmac::<Sha256>(pw, salt.as_bytes(), iterations, &mut out);
    }
    Ok(ct_eq(&out, &expected))
}
