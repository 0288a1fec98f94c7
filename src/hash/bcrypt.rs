//! bcrypt `$2a$`, `$2b$`, `$2x$`, `$2y$`, computed with the `bcrypt` crate's core.
//!
//! The key schedule input is prepared here exactly as crypt_blowfish (PHP, libxcrypt) does:
//! the password as a C string, cycled with its NUL terminator over 18 32-bit words (72 bytes).
//! `$2x$` reproduces crypt_blowfish's sign-extension bug for bytes >= 0x80. `$2a$`'s
//! countermeasure for that bug changes the result only for some passwords with 0xFF bytes; those
//! are reported as unsupported rather than answered wrongly.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD};

use super::util::{c_str, ct_eq};
use super::{Format, HashConfig, HashError};

const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::BCRYPT, NO_PAD);

/// A parsed bcrypt hash.
pub(crate) struct BcryptHash {
    variant: u8,
    cost: u32,
    salt: [u8; 16],
    digest: [u8; 23],
}

/// Parses a 60-character modular-crypt bcrypt string, checking the cost against the cap.
pub(crate) fn parse(
    hash: &str,
    caps: &HashConfig,
    format: Format,
) -> Result<BcryptHash, HashError> {
    let b = hash.as_bytes();
    if b.len() != 60 {
        return Err(HashError::malformed(
            format,
            "bcrypt hash must be 60 characters",
        ));
    }
    if b[0] != b'$' || b[1] != b'2' || b[3] != b'$' || b[6] != b'$' {
        return Err(HashError::malformed(
            format,
            "bcrypt hash must look like $2y$NN$…",
        ));
    }
    let variant = b[2];
    if !matches!(variant, b'a' | b'b' | b'x' | b'y') {
        return Err(HashError::malformed(
            format,
            "bcrypt version must be 2a, 2b, 2x or 2y",
        ));
    }
    if !b[4].is_ascii_digit() || !b[5].is_ascii_digit() {
        return Err(HashError::malformed(
            format,
            "bcrypt cost must be two digits",
        ));
    }
    let cost = u32::from(b[4] - b'0') * 10 + u32::from(b[5] - b'0');
    if !(4..=31).contains(&cost) {
        return Err(HashError::malformed(format, "bcrypt cost must be 04 to 31"));
    }
    HashError::check_cap(
        format,
        "cost",
        u64::from(cost),
        u64::from(caps.bcrypt_max_cost),
    )?;
    let mut salt = [0u8; 16];
    let mut digest = [0u8; 23];
    let salt_ok = BCRYPT_B64
        .decode_slice(&b[7..29], &mut salt)
        .is_ok_and(|n| n == 16);
    if !salt_ok {
        return Err(HashError::malformed(
            format,
            "bcrypt salt is not canonical bcrypt base64",
        ));
    }
    let digest_ok = BCRYPT_B64
        .decode_slice(&b[29..60], &mut digest)
        .is_ok_and(|n| n == 23);
    if !digest_ok {
        return Err(HashError::malformed(
            format,
            "bcrypt digest is not canonical bcrypt base64",
        ));
    }
    Ok(BcryptHash {
        variant,
        cost,
        salt,
        digest,
    })
}

/// The 18 key words crypt_blowfish's `BF_set_key` derives, and whether `$2a$`'s safety
/// countermeasure would alter the initial state.
fn key_words(key: &[u8], sign_extension_bug: bool) -> ([u32; 18], bool) {
    let mut words = [0u32; 18];
    let (mut sign, mut diff) = (0u32, 0u32);
    let mut pos = 0usize;
    for word in &mut words {
        let (mut correct, mut buggy) = (0u32, 0u32);
        for j in 0..4 {
            let c = key.get(pos).copied().unwrap_or(0);
            correct = (correct << 8) | u32::from(c);
            // (BF_word_signed)(signed char)c: sign-extends bytes >= 0x80.
            buggy = (buggy << 8) | (i32::from(c as i8) as u32);
            if j > 0 {
                sign |= buggy & 0x80;
            }
            pos = if pos >= key.len() { 0 } else { pos + 1 };
        }
        diff |= correct ^ buggy;
        *word = if sign_extension_bug { buggy } else { correct };
    }
    diff |= diff >> 16;
    diff &= 0xffff;
    diff += 0xffff;
    sign <<= 9;
    sign &= !diff & 0x1_0000;
    (words, sign != 0)
}

/// Verifies `password` against a parsed bcrypt hash.
pub(crate) fn verify_parsed(
    parsed: &BcryptHash,
    password: &[u8],
    format: Format,
) -> Result<bool, HashError> {
    let key = c_str(password);
    let (words, safety) = key_words(key, parsed.variant == b'x');
    if parsed.variant == b'a' && safety {
        return Err(HashError::unsupported(
            format,
            "$2a$ with this password's 0xFF bytes needs crypt_blowfish's countermeasure",
        ));
    }
    let mut key72 = zeroize::Zeroizing::new([0u8; 72]);
    for (chunk, w) in key72.chunks_exact_mut(4).zip(words.iter()) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    let out = zeroize::Zeroizing::new(bcrypt::bcrypt(parsed.cost, parsed.salt, &key72[..]));
    Ok(ct_eq(&out[..23], &parsed.digest))
}

/// Verifies `password` against a `$2?$` string.
pub(crate) fn verify(
    hash: &str,
    password: &[u8],
    caps: &HashConfig,
    format: Format,
) -> Result<bool, HashError> {
    let parsed = parse(hash, caps, format)?;
    verify_parsed(&parsed, password, format)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn caps() -> HashConfig {
        HashConfig::default()
    }

    #[test]
    fn agrees_with_bcrypt_crate_on_ascii_and_utf8() {
        let pws: [&[u8]; 6] = [
            b"",
            b"a",
            b"password",
            "Zürich".as_bytes(),
            &[b'x'; 71],
            &[b'y'; 100],
        ];
        for pw in pws {
            let h = bcrypt::hash_with_salt(pw, 4, [7u8; 16])
                .unwrap()
                .format_for_version(bcrypt::Version::TwoY);
            assert!(verify(&h, pw, &caps(), Format::Bcrypt).unwrap());
            assert!(!verify(&h, b"other", &caps(), Format::Bcrypt).unwrap());
        }
    }

    #[test]
    fn truncation_at_72_bytes() {
        let long = [b'z'; 80];
        let h = bcrypt::hash_with_salt(long, 4, [1u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        assert!(verify(&h, &long[..72], &caps(), Format::Bcrypt).unwrap());
        assert!(!verify(&h, &long[..71], &caps(), Format::Bcrypt).unwrap());
    }

    #[test]
    fn nul_ends_the_password() {
        let h = bcrypt::hash_with_salt(b"ab", 4, [2u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        assert!(verify(&h, b"ab\0cd", &caps(), Format::Bcrypt).unwrap());
    }

    #[test]
    fn cost_cap_and_malformed() {
        let c = HashConfig {
            bcrypt_max_cost: 10,
            ..caps()
        };
        let h = "$2y$12$L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u";
        assert!(matches!(
            verify(h, b"x", &c, Format::Bcrypt),
            Err(HashError::CostTooHigh { .. })
        ));
        for bad in [
            "",
            "$2y$",
            "$2z$04$L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u",
            "$2y$03$L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u",
            "$2y$04$L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u\n",
            "$2y$04$L6Bc/AlTQHyd9liGgGEZyPFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u",
        ] {
            assert!(
                matches!(
                    verify(bad, b"x", &c, Format::Bcrypt),
                    Err(HashError::Malformed { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn two_x_sign_extension_differs_from_2a_only_for_8bit() {
        // Known crypt_blowfish test vector: "\xa3" under $2x$ and $2y$.
        let pw = [0xa3u8];
        assert!(
            verify(
                "$2x$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e",
                &pw,
                &caps(),
                Format::Bcrypt
            )
            .unwrap()
        );
        assert!(
            verify(
                "$2y$05$/OK.fbVrR/bpIqNJ5ianF.Sa7shbm4.OzKpvFnX1pQLmQW96oUlCq",
                &pw,
                &caps(),
                Format::Bcrypt
            )
            .unwrap()
        );
        assert!(
            verify(
                "$2a$05$/OK.fbVrR/bpIqNJ5ianF.Sa7shbm4.OzKpvFnX1pQLmQW96oUlCq",
                &pw,
                &caps(),
                Format::Bcrypt
            )
            .unwrap()
        );
        // More crypt_blowfish wrapper.c vectors.
        let cases: [(&str, &[u8]); 7] = [
            (
                "$2x$05$/OK.fbVrR/bpIqNJ5ianF.o./n25XVfn6oAPaUvHe.Csk4zRfsYPi",
                b"1\xa3345",
            ),
            (
                "$2x$05$/OK.fbVrR/bpIqNJ5ianF.o./n25XVfn6oAPaUvHe.Csk4zRfsYPi",
                b"\xff\xa3345",
            ),
            (
                "$2y$05$/OK.fbVrR/bpIqNJ5ianF.nRht2l/HRhr6zmCp9vYUvvsqynflf9e",
                b"\xff\xa3345",
            ),
            (
                "$2a$05$/OK.fbVrR/bpIqNJ5ianF.nRht2l/HRhr6zmCp9vYUvvsqynflf9e",
                b"\xff\xa3345",
            ),
            (
                "$2a$05$/OK.fbVrR/bpIqNJ5ianF.6IflQkJytoRVc1yuaNtHfiuq.FRlSIS",
                b"\xa3ab",
            ),
            (
                "$2x$05$/OK.fbVrR/bpIqNJ5ianF.6IflQkJytoRVc1yuaNtHfiuq.FRlSIS",
                b"\xa3ab",
            ),
            (
                "$2x$05$6bNw2HLQYeqHYyBfLMsv/OiwqTymGIGzFsA4hOTWebfehXHNprcAS",
                b"\xd1\x91",
            ),
        ];
        for (h, pw) in cases {
            assert!(verify(h, pw, &caps(), Format::Bcrypt).unwrap(), "{h}");
        }
        assert!(
            !verify(
                "$2y$05$/OK.fbVrR/bpIqNJ5ianF.o./n25XVfn6oAPaUvHe.Csk4zRfsYPi",
                b"1\xa3345",
                &caps(),
                Format::Bcrypt
            )
            .unwrap()
        );
    }

    #[test]
    fn two_a_safety_case_is_unsupported_not_wrong() {
        let pw = [0xffu8, 0xff, 0xff];
        let h = "$2a$05$/OK.fbVrR/bpIqNJ5ianF.Sa7shbm4.OzKpvFnX1pQLmQW96oUlCq";
        assert!(matches!(
            verify(h, &pw, &caps(), Format::Bcrypt),
            Err(HashError::Unsupported { .. })
        ));
    }
}
