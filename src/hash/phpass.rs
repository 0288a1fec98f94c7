//! phpass portable hashes (`$P$`, `$H$`) and Drupal 7's SHA-512 variant (`$S$`).
//!
//! `$I$ C S{8} H…`: `C` is log2 of the iteration count in the `./0-9A-Za-z` alphabet, `S` an
//! 8-character salt. `h = H(salt ‖ pw)`, then `count` times `h = H(h ‖ pw)`; the output is the
//! 12-character setting plus phpass base64 of `h`, cut to 55 characters by Drupal.

use super::digest::Algo;
use super::util::{ct_eq, itoa64_value, phpass_encode64};
use super::{Format, HashConfig, HashError};

/// Verifies `pw` against a `$P$`/`$H$` (MD5) or `$S$` (SHA-512) hash.
///
/// `max_password` is the application's own limit (WordPress/phpass 4096, Drupal 512): a longer
/// password is rejected (`false`), as the application itself does.
pub(crate) fn verify(
    hash: &str,
    pw: &[u8],
    caps: &HashConfig,
    format: Format,
    max_password: usize,
) -> Result<bool, HashError> {
    let b = hash.as_bytes();
    let algo = match b.get(..3) {
        Some(b"$P$" | b"$H$") => Algo::Md5,
        Some(b"$S$") => Algo::Sha512,
        _ => {
            return Err(HashError::malformed(
                format,
                "phpass hash must start with $P$, $H$ or $S$",
            ));
        }
    };
    let expected_len = match algo {
        Algo::Md5 => 34,
        _ => 55,
    };
    if b.len() != expected_len {
        return Err(HashError::malformed(
            format,
            "phpass hash has the wrong length",
        ));
    }
    let count_log2 =
        itoa64_value(b[3])
            .filter(|c| (7..=30).contains(c))
            .ok_or(HashError::malformed(
                format,
                "phpass iteration count must be 7 to 30",
            ))?;
    HashError::check_cap(
        format,
        "count_log2",
        u64::from(count_log2),
        u64::from(caps.phpass_max_count_log2),
    )?;
    if pw.len() > max_password {
        return Ok(false);
    }
    let salt = &b[4..12];
    let mut h = algo.digest(&[salt, pw]);
    for _ in 0..(1u64 << count_log2) {
        h = algo.digest(&[&h, pw]);
    }
    let mut out = Vec::with_capacity(12 + 86);
    out.extend_from_slice(&b[..12]);
    out.extend_from_slice(&phpass_encode64(&h));
    out.truncate(expected_len);
    Ok(ct_eq(&out, b))
}
