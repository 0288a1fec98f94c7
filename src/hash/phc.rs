//! PHC-style strings: argon2 (`$argon2id$`, `$argon2i$`, `$argon2d$`), passlib PBKDF2
//! (`$pbkdf2$`, `$pbkdf2-sha256$`, `$pbkdf2-sha512$`) and scrypt (`$scrypt$ln=,r=,p=`).

use argon2::{Algorithm, Argon2, Params, Version};
use pbkdf2::pbkdf2_hmac;
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use super::util::{b64_phc, ct_eq};
use super::{Format, HashConfig, HashError};

/// Longest digest accepted from a stored value, in bytes.
const MAX_TAG: usize = 1024;

fn number(s: &str, format: Format, reason: &'static str) -> Result<u32, HashError> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HashError::malformed(format, reason));
    }
    s.parse().map_err(|_| HashError::malformed(format, reason))
}

fn tag(s: &str, format: Format) -> Result<Vec<u8>, HashError> {
    match b64_phc(s) {
        Some(t) if (4..=MAX_TAG).contains(&t.len()) => Ok(t),
        _ => Err(HashError::malformed(
            format,
            "hash part is not base64 of a sane length",
        )),
    }
}

/// Verifies `pw` against `$argon2{id,i,d}$[v=N$]m=M,t=T,p=P$salt$hash`.
pub(crate) fn verify_argon2(
    hash: &str,
    pw: &[u8],
    caps: &HashConfig,
    format: Format,
) -> Result<bool, HashError> {
    let mut fields = hash.split('$');
    if fields.next() != Some("") {
        return Err(HashError::malformed(
            format,
            "argon2 hash must start with $",
        ));
    }
    let algorithm = match fields.next() {
        Some("argon2id") => Algorithm::Argon2id,
        Some("argon2i") => Algorithm::Argon2i,
        Some("argon2d") => Algorithm::Argon2d,
        _ => {
            return Err(HashError::malformed(
                format,
                "argon2 variant must be argon2id, argon2i or argon2d",
            ));
        }
    };
    let mut next = fields.next();
    let version = match next.and_then(|f| f.strip_prefix("v=")) {
        Some(v) => {
            next = fields.next();
            match v {
                "19" => Version::V0x13,
                "16" => Version::V0x10,
                _ => {
                    return Err(HashError::unsupported(
                        format,
                        "argon2 version must be 16 or 19",
                    ));
                }
            }
        }
        None => Version::V0x10,
    };
    let (mut m, mut t, mut p) = (None, None, None);
    for kv in next
        .ok_or(HashError::malformed(format, "argon2 parameters missing"))?
        .split(',')
    {
        let (k, v) = kv.split_once('=').ok_or(HashError::malformed(
            format,
            "argon2 parameter must be key=value",
        ))?;
        let slot = match k {
            "m" => &mut m,
            "t" => &mut t,
            "p" => &mut p,
            "keyid" | "data" => {
                return Err(HashError::unsupported(
                    format,
                    "argon2 keyid/data parameters",
                ));
            }
            _ => return Err(HashError::malformed(format, "unknown argon2 parameter")),
        };
        if slot.is_some() {
            return Err(HashError::malformed(format, "repeated argon2 parameter"));
        }
        *slot = Some(number(v, format, "argon2 parameter is not a number")?);
    }
    let (Some(m), Some(t), Some(p)) = (m, t, p) else {
        return Err(HashError::malformed(format, "argon2 needs m, t and p"));
    };
    HashError::check_cap(
        format,
        "memory_kib",
        u64::from(m),
        u64::from(caps.max_memory_kib),
    )?;
    HashError::check_cap(
        format,
        "time",
        u64::from(t),
        u64::from(caps.argon2_max_time),
    )?;
    HashError::check_cap(
        format,
        "parallelism",
        u64::from(p),
        u64::from(caps.max_parallelism),
    )?;
    let salt = fields
        .next()
        .and_then(b64_phc)
        .ok_or(HashError::malformed(format, "argon2 salt is not base64"))?;
    let expected = tag(fields.next().unwrap_or(""), format)?;
    if fields.next().is_some() {
        return Err(HashError::malformed(format, "argon2 hash has extra fields"));
    }
    let params = Params::new(m, t, p, Some(expected.len()))
        .map_err(|_| HashError::malformed(format, "argon2 parameters out of range"))?;
    let mut out = zeroize::Zeroizing::new(vec![0u8; expected.len()]);
    Argon2::new(algorithm, version, params)
        .hash_password_into(pw, &salt, &mut out)
        .map_err(|_| HashError::malformed(format, "argon2 rejected the salt or parameters"))?;
    Ok(ct_eq(&out, &expected))
}

/// The fields of passlib's `$pbkdf2[-sha256|-sha512]$rounds$salt$hash`, unparsed: what verifying
/// the hash and sending it to a provider both read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasslibPbkdf2<'a> {
    /// `pbkdf2`, `pbkdf2-sha256` or `pbkdf2-sha512` (not checked here).
    pub id: &'a str,
    /// The iteration count as written.
    pub rounds: &'a str,
    /// The salt, passlib's adapted base64.
    pub salt: &'a str,
    /// The derived key, passlib's adapted base64.
    pub hash: &'a str,
}

impl<'a> PasslibPbkdf2<'a> {
    /// The five `$`-separated fields, or `None` when there are not exactly those.
    pub fn parse(value: &'a str) -> Option<Self> {
        let mut fields = value.split('$');
        let (Some(""), Some(id), Some(rounds), Some(salt), Some(hash), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return None;
        };
        Some(Self {
            id,
            rounds,
            salt,
            hash,
        })
    }
}

/// Verifies `pw` against passlib's `$pbkdf2[-sha256|-sha512]$rounds$salt$hash` (adapted base64).
pub(crate) fn verify_pbkdf2(hash: &str, pw: &[u8], caps: &HashConfig) -> Result<bool, HashError> {
    let format = Format::Pbkdf2;
    let Some(PasslibPbkdf2 {
        id,
        rounds,
        salt,
        hash: encoded,
    }) = PasslibPbkdf2::parse(hash)
    else {
        return Err(HashError::malformed(
            format,
            "PBKDF2 needs $pbkdf2-sha256$rounds$salt$hash",
        ));
    };
    let rounds = number(rounds, format, "PBKDF2 rounds must be a number")?;
    if rounds == 0 {
        return Err(HashError::malformed(
            format,
            "PBKDF2 rounds must be positive",
        ));
    }
    HashError::check_cap(
        format,
        "iterations",
        u64::from(rounds),
        u64::from(caps.pbkdf2_max_iterations),
    )?;
    let salt = b64_phc(salt).ok_or(HashError::malformed(format, "PBKDF2 salt is not base64"))?;
    let expected = tag(encoded, format)?;
    let mut out = zeroize::Zeroizing::new(vec![0u8; expected.len()]);
    match id {
        "pbkdf2" => pbkdf2_hmac::<Sha1>(pw, &salt, rounds, &mut out),
        "pbkdf2-sha256" => pbkdf2_hmac::<Sha256>(pw, &salt, rounds, &mut out),
        "pbkdf2-sha512" => pbkdf2_hmac::<Sha512>(pw, &salt, rounds, &mut out),
        _ => {
            return Err(HashError::unsupported(
                format,
                "PBKDF2 digest must be sha1, sha256 or sha512",
            ));
        }
    }
    Ok(ct_eq(&out, &expected))
}

/// Verifies `pw` against `$scrypt$ln=L,r=R,p=P$salt$hash`.
pub(crate) fn verify_scrypt(hash: &str, pw: &[u8], caps: &HashConfig) -> Result<bool, HashError> {
    let format = Format::Scrypt;
    let mut fields = hash.split('$');
    let (Some(""), Some("scrypt"), Some(params), Some(salt), Some(encoded), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(HashError::malformed(
            format,
            "scrypt needs $scrypt$ln=,r=,p=$salt$hash",
        ));
    };
    let (mut ln, mut r, mut p) = (None, None, None);
    for kv in params.split(',') {
        let (k, v) = kv.split_once('=').ok_or(HashError::malformed(
            format,
            "scrypt parameter must be key=value",
        ))?;
        let slot = match k {
            "ln" => &mut ln,
            "r" => &mut r,
            "p" => &mut p,
            _ => return Err(HashError::malformed(format, "unknown scrypt parameter")),
        };
        *slot = Some(number(v, format, "scrypt parameter is not a number")?);
    }
    let (Some(ln), Some(r), Some(p)) = (ln, r, p) else {
        return Err(HashError::malformed(format, "scrypt needs ln, r and p"));
    };
    if ln == 0 || ln >= 64 || r == 0 || p == 0 {
        return Err(HashError::malformed(
            format,
            "scrypt parameters out of range",
        ));
    }
    // Memory is 128 · r · 2^ln bytes.
    let kib = (128u128 * u128::from(r)) << ln >> 10;
    HashError::check_cap(
        format,
        "memory_kib",
        u64::try_from(kib).unwrap_or(u64::MAX),
        u64::from(caps.max_memory_kib),
    )?;
    HashError::check_cap(
        format,
        "parallelism",
        u64::from(p),
        u64::from(caps.max_parallelism),
    )?;
    let salt = b64_phc(salt).ok_or(HashError::malformed(format, "scrypt salt is not base64"))?;
    let expected = tag(encoded, format)?;
    let log_n =
        u8::try_from(ln).map_err(|_| HashError::malformed(format, "scrypt ln out of range"))?;
    let params = scrypt::Params::new(log_n, r, p)
        .map_err(|_| HashError::malformed(format, "scrypt parameters out of range"))?;
    let mut out = zeroize::Zeroizing::new(vec![0u8; expected.len()]);
    scrypt::scrypt(pw, &salt, &params, &mut out)
        .map_err(|_| HashError::malformed(format, "scrypt output length rejected"))?;
    Ok(ct_eq(&out, &expected))
}
