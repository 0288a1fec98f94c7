//! crypt(3) strings: DES, BSDi `_`, md5-crypt `$1$`, Apache `$apr1$`, sha256/512-crypt
//! `$5$`/`$6$`, NetBSD `$sha1$`, and bcrypt `$2?$`. Dispatch is by prefix only: anything else is
//! an error, never a DES fallback.

use md5::{Digest as _, Md5};
use sha_crypt::{PasswordVerifier as _, ShaCrypt};

use super::detect::is_crypt64;
use super::util::{c_str, ct_eq, itoa64_value, no_panic, to64};
use super::{Format, HashConfig, HashError, bcrypt};

/// Which crypt(3) schemes a caller accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Every scheme this module knows (libxcrypt's set plus `$apr1$`).
    All,
    /// What PHP's `crypt()` knows: DES, BSDi, `$1$`, `$2?$`, `$5$`, `$6$`.
    Php,
}

/// Verifies `password` against a crypt(3) string.
pub(crate) fn verify(
    hash: &str,
    password: &[u8],
    caps: &HashConfig,
    format: Format,
    dialect: Dialect,
) -> Result<bool, HashError> {
    if hash.starts_with("$2") {
        return bcrypt::verify(hash, password, caps, format);
    }
    let password = c_str(password);
    if let Some(rest) = hash.strip_prefix("$1$") {
        md5_crypt(rest, b"$1$", password, format)
    } else if let Some(rest) = hash.strip_prefix("$apr1$") {
        if dialect == Dialect::Php {
            return Err(HashError::unsupported(
                format,
                "PHP crypt() does not know $apr1$",
            ));
        }
        md5_crypt(rest, b"$apr1$", password, format)
    } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
        sha_crypt(hash, password, caps, format)
    } else if hash.starts_with("$sha1$") {
        if dialect == Dialect::Php {
            return Err(HashError::unsupported(
                format,
                "PHP crypt() does not know $sha1$",
            ));
        }
        sha1_crypt(hash, password, caps, format)
    } else if hash.starts_with('_') {
        bsdi_crypt(hash, password, caps, format)
    } else if hash.len() == 13 && !hash.starts_with('$') {
        des_crypt(hash, password, format)
    } else {
        Err(HashError::malformed(
            format,
            "not a recognised crypt(3) string",
        ))
    }
}

/// md5-crypt (`$1$`) and Apache's variant (`$apr1$`), which differ only in the magic string.
fn md5_crypt(rest: &str, magic: &[u8], pw: &[u8], format: Format) -> Result<bool, HashError> {
    let (salt, encoded) = rest
        .split_once('$')
        .ok_or(HashError::malformed(format, "md5-crypt needs $salt$hash"))?;
    let salt = salt.as_bytes();
    if salt.len() > 8 {
        return Err(HashError::malformed(
            format,
            "md5-crypt salt is longer than 8 characters",
        ));
    }
    if encoded.len() != 22 || !encoded.bytes().all(is_crypt64) {
        return Err(HashError::malformed(
            format,
            "md5-crypt hash must be 22 crypt64 characters",
        ));
    }
    let mut alt = Md5::new();
    alt.update(pw);
    alt.update(salt);
    alt.update(pw);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(magic);
    ctx.update(salt);
    let mut remaining = pw.len();
    while remaining > 0 {
        let n = remaining.min(16);
        ctx.update(&alt[..n]);
        remaining -= n;
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for r in 0..1000 {
        let mut c = Md5::new();
        if r & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if r % 3 != 0 {
            c.update(salt);
        }
        if r % 7 != 0 {
            c.update(pw);
        }
        if r & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }
    let f = |i: usize| u32::from(fin[i]);
    let mut out = Vec::with_capacity(22);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64(&mut out, (f(a) << 16) | (f(b) << 8) | f(c), 4);
    }
    to64(&mut out, f(11), 2);
    Ok(ct_eq(&out, encoded.as_bytes()))
}

/// sha256-crypt and sha512-crypt through RustCrypto `sha-crypt`, after checking the layout and
/// capping `rounds=`.
fn sha_crypt(hash: &str, pw: &[u8], caps: &HashConfig, format: Format) -> Result<bool, HashError> {
    let digest_len = if hash.starts_with("$5$") { 43 } else { 86 };
    let mut rest = &hash[3..];
    if let Some(after) = rest.strip_prefix("rounds=") {
        let (digits, tail) = after.split_once('$').ok_or(HashError::malformed(
            format,
            "sha-crypt rounds= needs a salt after it",
        ))?;
        if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HashError::malformed(
                format,
                "sha-crypt rounds must be 1 to 9 digits",
            ));
        }
        let rounds: u32 = digits
            .parse()
            .map_err(|_| HashError::malformed(format, "sha-crypt rounds is not a number"))?;
        if rounds < 1000 {
            return Err(HashError::unsupported(
                format,
                "sha-crypt rounds below 1000 (glibc clamps, PHP and libxcrypt refuse)",
            ));
        }
        HashError::check_cap(
            format,
            "rounds",
            u64::from(rounds),
            u64::from(caps.crypt_max_rounds),
        )?;
        rest = tail;
    }
    let (salt, encoded) = rest
        .split_once('$')
        .ok_or(HashError::malformed(format, "sha-crypt needs $salt$hash"))?;
    if salt.len() > 16 {
        return Err(HashError::malformed(
            format,
            "sha-crypt salt is longer than 16 characters",
        ));
    }
    if encoded.len() != digest_len || !encoded.bytes().all(is_crypt64) {
        return Err(HashError::malformed(
            format,
            "sha-crypt hash has the wrong length or characters",
        ));
    }
    match no_panic(|| ShaCrypt::default().verify_password(pw, hash)) {
        Some(Ok(())) => Ok(true),
        Some(Err(sha_crypt::password_hash::Error::PasswordInvalid)) => Ok(false),
        Some(Err(_)) => Err(HashError::malformed(
            format,
            "sha-crypt string rejected by the parser",
        )),
        None => Err(HashError::Internal {
            format,
            reason: "sha-crypt panicked",
        }),
    }
}

/// NetBSD sha1-crypt through pwhash, after validating every field so pwhash cannot panic.
fn sha1_crypt(hash: &str, pw: &[u8], caps: &HashConfig, format: Format) -> Result<bool, HashError> {
    let mut parts = hash["$sha1$".len()..].split('$');
    let (Some(rounds), Some(salt), Some(encoded), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HashError::malformed(
            format,
            "sha1-crypt needs $sha1$rounds$salt$hash",
        ));
    };
    if rounds.is_empty()
        || rounds.len() > 10
        || !rounds.bytes().all(|b| b.is_ascii_digit())
        || rounds.starts_with('0')
    {
        return Err(HashError::malformed(
            format,
            "sha1-crypt rounds must be a positive number",
        ));
    }
    let rounds: u64 = rounds
        .parse()
        .map_err(|_| HashError::malformed(format, "sha1-crypt rounds is not a number"))?;
    HashError::check_cap(format, "rounds", rounds, u64::from(caps.crypt_max_rounds))?;
    if salt.is_empty() || salt.len() > 64 || !salt.bytes().all(is_crypt64) {
        return Err(HashError::malformed(
            format,
            "sha1-crypt salt must be 1 to 64 crypt64 characters",
        ));
    }
    if encoded.len() != 28 || !encoded.bytes().all(is_crypt64) {
        return Err(HashError::malformed(
            format,
            "sha1-crypt hash must be 28 crypt64 characters",
        ));
    }
    no_panic(|| pwhash::sha1_crypt::verify(pw, hash)).ok_or(HashError::Internal {
        format,
        reason: "sha1-crypt panicked",
    })
}

/// BSDi extended DES through pwhash, with the iteration count capped.
fn bsdi_crypt(hash: &str, pw: &[u8], caps: &HashConfig, format: Format) -> Result<bool, HashError> {
    let b = hash.as_bytes();
    if b.len() != 20 || !b[1..].iter().all(|&c| is_crypt64(c)) {
        return Err(HashError::malformed(
            format,
            "BSDi crypt must be _ and 19 crypt64 characters",
        ));
    }
    let mut count = 0u32;
    for (i, &c) in b[1..5].iter().enumerate() {
        count |= itoa64_value(c).unwrap_or(0) << (6 * i);
    }
    if count == 0 {
        return Err(HashError::malformed(
            format,
            "BSDi crypt iteration count is zero",
        ));
    }
    HashError::check_cap(
        format,
        "rounds",
        u64::from(count),
        u64::from(caps.crypt_max_rounds),
    )?;
    no_panic(|| pwhash::bsdi_crypt::verify(pw, hash)).ok_or(HashError::Internal {
        format,
        reason: "BSDi crypt panicked",
    })
}

/// Traditional DES crypt through pwhash (first 8 bytes, 7 bits each).
fn des_crypt(hash: &str, pw: &[u8], format: Format) -> Result<bool, HashError> {
    if !hash.bytes().all(is_crypt64) {
        return Err(HashError::malformed(
            format,
            "DES crypt must be 13 crypt64 characters",
        ));
    }
    no_panic(|| pwhash::unix_crypt::verify(pw, hash)).ok_or(HashError::Internal {
        format,
        reason: "DES crypt panicked",
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn v(h: &str, pw: &str) -> Result<bool, HashError> {
        verify(
            h,
            pw.as_bytes(),
            &HashConfig::default(),
            Format::Crypt,
            Dialect::All,
        )
    }

    #[test]
    fn known_vectors() {
        // openssl passwd -1 / -apr1 / -5 / -6 -salt saltsalt password
        assert!(v("$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/", "password").unwrap());
        assert!(v("$apr1$saltsalt$yAAkm4libquA.ZWLHbSBq/", "password").unwrap());
        assert!(!v("$apr1$saltsalt$yAAkm4libquA.ZWLHbSBq/", "passwore").unwrap());
        assert!(v("$1$$qRPK7m23GJusamGpoGLby/", "").unwrap());
        assert!(v("aZGJuE6EXrjEE", "test").unwrap());
        assert!(
            v(
                "$sha1$19703$iVdJqfSE$v4qYKl1zqYThwpjJAoKX6UvlHq/a",
                "password"
            )
            .unwrap()
        );
    }

    #[test]
    fn never_falls_back_to_des() {
        for h in [
            "$2",
            "$x$abc",
            "ab",
            "*",
            "$7$abcdefghijk",
            "$1$",
            "$5$rounds=500$salt$x",
            "_.../",
        ] {
            assert!(v(h, "x").is_err(), "{h}");
        }
    }

    #[test]
    fn rounds_are_capped() {
        let caps = HashConfig {
            crypt_max_rounds: 4000,
            ..HashConfig::default()
        };
        let h = "$5$rounds=10000$OZBRjYzI4eYf/oRm$t1F8tz7ud/JSEv4G5p5ghUKcWr8J4kHYEwjusIkeud8";
        assert!(matches!(
            verify(h, b"x", &caps, Format::Crypt, Dialect::All),
            Err(HashError::CostTooHigh { .. })
        ));
        let h = "$6$rounds=999999999$salt$x";
        assert!(matches!(
            verify(h, b"x", &caps, Format::Crypt, Dialect::All),
            Err(HashError::CostTooHigh { .. })
        ));
        // BSDi count "zzzz" = 2^24 - 1.
        assert!(matches!(
            verify(
                "_zzzzJ9..HjKFzCKVe41",
                b"x",
                &caps,
                Format::Crypt,
                Dialect::All
            ),
            Err(HashError::CostTooHigh { .. })
        ));
    }
}
