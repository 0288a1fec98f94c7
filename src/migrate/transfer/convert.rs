//! The conversion of a verified legacy hash to the provider's wire form ([`ImportedHash`]).

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

use super::NotImportable;
use crate::hash::{DigestEncoding, Format, LegacyHash, PasslibPbkdf2, SaltPosition};
use crate::provider::{Argon2Params, HashingMethod, ImportedHash, Pbkdf2Params, SaltPlacement};

/// The provider's wire form of a verified legacy hash of `format`, or why there is none.
///
/// | legacy | sent as |
/// |---|---|
/// | bcrypt `$2a$` `$2b$` `$2y$` (any format that holds one) | `bcrypt` |
/// | md5, sha256 (hex or base64; salt + position) | `md5`, `sha256`: lower-case hex, the salt as a string |
/// | crypt `$1$` `$5$` `$6$` | `crypt` |
/// | phpass/WordPress/Drupal `$P$` | `wordpress` |
/// | WordPress 32-hex MD5, Django `md5$`/`unsalted_md5$`/bare hex | `md5` |
/// | Django `pbkdf2_sha256$`, passlib `$pbkdf2-sha256$`/`$pbkdf2-sha512$` | `pbkdf2` + `variant`, `iterations`, base64 salt and hash |
/// | Django `pbkdf2_sha1$`, passlib `$pbkdf2$` | `pbkdf2-sha1` (Keycloak only) |
/// | PHC `$argon2id$`/`$argon2i$`/`$argon2d$` with `v=`, Django `argon2$` | `argon2` + parameters (Keycloak only) |
/// | anything else | none: the caller sends the password |
pub fn importable(legacy: &LegacyHash, format: Format) -> Result<ImportedHash, NotImportable> {
    let value = legacy.hash();
    match format {
        Format::Bcrypt => bcrypt(value, format),
        Format::Md5 => salted_digest(legacy, format, HashingMethod::Md5, 16),
        Format::Sha256 => salted_digest(legacy, format, HashingMethod::Sha256, 32),
        Format::Crypt => crypt(value, format),
        Format::Wordpress if value.starts_with("$wp") => Err(NotImportable::Variant {
            format,
            reason: "WordPress 6.8 `$wp$` bcrypt (over HMAC-SHA384) has no provider method",
        }),
        Format::Wordpress if value.len() <= 32 => unsalted_md5_hex(value, format),
        Format::Wordpress | Format::Phpass | Format::Drupal if value.starts_with("$P$") => {
            Ok(ImportedHash::new(HashingMethod::Wordpress, value))
        }
        Format::Wordpress | Format::Phpass | Format::Drupal if value.starts_with("$H$") => {
            Err(NotImportable::Variant {
                format,
                reason: "phpass `$H$` is not sent as `wordpress` (WordPress writes `$P$`)",
            })
        }
        Format::Drupal if value.starts_with("$2") => bcrypt(value, format),
        Format::Drupal => Err(NotImportable::Variant {
            format,
            reason: "Drupal `$S$` and `U$` hashes have no provider method",
        }),
        Format::Wordpress | Format::Phpass => crypt(value, format),
        Format::Django => django(value, format),
        Format::Pbkdf2 => passlib_pbkdf2(value, format),
        Format::Argon2 => argon2(value, format),
        Format::Sha1 | Format::Sha512 | Format::Scrypt => Err(NotImportable::NoMethod(format)),
    }
}

fn bcrypt(value: &str, format: Format) -> Result<ImportedHash, NotImportable> {
    if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| value.starts_with(p))
    {
        Ok(ImportedHash::new(HashingMethod::Bcrypt, value))
    } else {
        Err(NotImportable::Variant {
            format,
            reason: "only `$2a$`, `$2b$` and `$2y$` bcrypt is sent (`$2x$` marks the sign bug)",
        })
    }
}

/// A crypt(3) string: bcrypt as `bcrypt`; MD5-crypt and SHA-crypt, which every crypt(3)
/// implementation has, as `crypt`; DES, BSDi, `$apr1$` and `$sha1$` not (the spec does not say
/// which crypt variants `crypt` covers).
fn crypt(value: &str, format: Format) -> Result<ImportedHash, NotImportable> {
    if value.starts_with("$2") {
        return bcrypt(value, format);
    }
    if ["$1$", "$5$", "$6$"].iter().any(|p| value.starts_with(p)) {
        return Ok(ImportedHash::new(HashingMethod::Crypt, value));
    }
    Err(NotImportable::Variant {
        format,
        reason: "only `$1$`, `$5$` and `$6$` crypt strings are sent as crypt",
    })
}

/// md5/sha256 with an optional salt: re-encoded as lower-case hex, the salt as its string.
fn salted_digest(
    legacy: &LegacyHash,
    format: Format,
    method: HashingMethod,
    len: usize,
) -> Result<ImportedHash, NotImportable> {
    let value = legacy.hash();
    let as_hex = match legacy.encoding() {
        Some(DigestEncoding::Hex | DigestEncoding::HexUpper) => true,
        Some(DigestEncoding::Base64) => false,
        None => value.len() == 2 * len,
    };
    let digest = if as_hex {
        hex::decode(value).ok()
    } else {
        STANDARD.decode(value).ok()
    };
    let digest = digest
        .filter(|d| d.len() == len)
        .ok_or(NotImportable::Malformed {
            format,
            reason: "digest of the wrong length",
        })?;
    let mut imported = ImportedHash::new(method, hex::encode(digest));
    match (
        legacy.salt().filter(|s| !s.is_empty()),
        legacy.salt_position(),
    ) {
        (None, _) => {}
        (Some(salt), Some(position)) => {
            let salt = std::str::from_utf8(salt).map_err(|_| NotImportable::Variant {
                format,
                reason: "the salt is not UTF-8 text",
            })?;
            imported.salt = Some(salt.to_owned().into());
            imported.salt_position = Some(match position {
                SaltPosition::Prefix => SaltPlacement::Prefix,
                SaltPosition::Suffix => SaltPlacement::Suffix,
            });
        }
        (Some(_), None) => {
            return Err(NotImportable::Malformed {
                format,
                reason: "salt without a position",
            });
        }
    }
    Ok(imported)
}

fn unsalted_md5_hex(value: &str, format: Format) -> Result<ImportedHash, NotImportable> {
    match hex::decode(value) {
        Ok(d) if d.len() == 16 => Ok(ImportedHash::new(HashingMethod::Md5, hex::encode(d))),
        _ => Err(NotImportable::Malformed {
            format,
            reason: "MD5 value is not 32 hex digits",
        }),
    }
}

/// Django's `algorithm$…` encodings.
fn django(value: &str, format: Format) -> Result<ImportedHash, NotImportable> {
    let Some((algorithm, rest)) = value.split_once('$') else {
        return unsalted_md5_hex(value, format);
    };
    let variant = |reason| Err(NotImportable::Variant { format, reason });
    match algorithm {
        "pbkdf2_sha256" => django_pbkdf2(rest, format, 256),
        "bcrypt" => bcrypt(rest, format),
        "md5" | "unsalted_md5" => {
            let Some((salt, encoded)) = rest.split_once('$') else {
                return malformed(format);
            };
            let mut imported = unsalted_md5_hex(encoded, format)?;
            if !salt.is_empty() {
                imported.salt = Some(salt.to_owned().into());
                imported.salt_position = Some(SaltPlacement::Prefix);
            }
            Ok(imported)
        }
        "crypt" => match rest.split_once('$') {
            Some((_, data)) => crypt(data, format),
            None => malformed(format),
        },
        "pbkdf2_sha1" => django_pbkdf2(rest, format, 1),
        "bcrypt_sha256" => variant("Django bcrypt_sha256 hashes a SHA-256 of the password"),
        // `argon2$argon2id$v=…`: the PHC string after the algorithm name.
        "argon2" => argon2(&value[algorithm.len()..], format),
        _ => variant("Django SHA-1 hashers have no provider method"),
    }
}

/// Django `pbkdf2_sha256$`/`pbkdf2_sha1$` after the algorithm: `iterations$salt$hash`.
fn django_pbkdf2(rest: &str, format: Format, digest: u32) -> Result<ImportedHash, NotImportable> {
    let mut parts = rest.splitn(3, '$');
    let (Some(iterations), Some(salt), Some(encoded)) = (parts.next(), parts.next(), parts.next())
    else {
        return malformed(format);
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return malformed(format);
    };
    // Django's salt is used as its literal bytes; the provider takes them as base64.
    pbkdf2(
        format,
        digest,
        salt.as_bytes(),
        STANDARD.decode(encoded).ok(),
        iterations,
    )
}

fn malformed<T>(format: Format) -> Result<T, NotImportable> {
    Err(NotImportable::Malformed {
        format,
        reason: "value does not have the format's layout",
    })
}

/// passlib's adapted base64: `.` for `+`, padding optional.
const AB64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn ab64(s: &str) -> Option<Vec<u8>> {
    AB64.decode(s.replace('.', "+")).ok()
}

/// passlib `$pbkdf2-sha256$rounds$salt$hash` and `$pbkdf2-sha512$…`.
fn passlib_pbkdf2(value: &str, format: Format) -> Result<ImportedHash, NotImportable> {
    let Some(PasslibPbkdf2 {
        id,
        rounds,
        salt,
        hash: encoded,
    }) = PasslibPbkdf2::parse(value)
    else {
        return malformed(format);
    };
    let digest = match id {
        "pbkdf2-sha256" => 256,
        "pbkdf2-sha512" => 512,
        _ => 1,
    };
    let (Ok(iterations), Some(salt)) = (rounds.parse::<u32>(), ab64(salt)) else {
        return malformed(format);
    };
    pbkdf2(format, digest, &salt, ab64(encoded), iterations)
}

/// PBKDF2 as `pbkdf2` with FusionAuth's variant name for the digest and key length; SHA-1 as
/// `pbkdf2-sha1` (no Kinde method; Keycloak's `pbkdf2`).
fn pbkdf2(
    format: Format,
    digest: u32,
    salt: &[u8],
    key: Option<Vec<u8>>,
    iterations: u32,
) -> Result<ImportedHash, NotImportable> {
    let Some(key) = key else {
        return malformed(format);
    };
    let (method, variant) = match (digest, key.len()) {
        (1, 20) => (HashingMethod::Pbkdf2Sha1, "salted-pbkdf2-hmac-sha1"),
        (256, 32) => (HashingMethod::Pbkdf2, "salted-pbkdf2-hmac-sha256"),
        (256, 64) => (HashingMethod::Pbkdf2, "salted-pbkdf2-hmac-sha256-512"),
        (512, 64) => (HashingMethod::Pbkdf2, "salted-pbkdf2-hmac-sha512-512"),
        _ => {
            return Err(NotImportable::Variant {
                format,
                reason: "PBKDF2 digest and key length have no provider variant",
            });
        }
    };
    let mut imported = ImportedHash::new(method, STANDARD.encode(key));
    imported.salt = Some(STANDARD.encode(salt).into());
    imported.pbkdf2 = Some(Pbkdf2Params {
        variant,
        iterations,
    });
    Ok(imported)
}

/// PHC argon2 `$argon2{id,i,d}$v=19$m=…,t=…,p=…$salt$hash` (already verified): the parameters,
/// salt and hash re-encoded as standard base64. Only `v=19` and `v=16`, without `keyid`/`data`.
fn argon2(value: &str, format: Format) -> Result<ImportedHash, NotImportable> {
    let fields: Vec<&str> = value.split('$').collect();
    let ["", kind, version, params, salt, hash] = fields.as_slice() else {
        return Err(NotImportable::Variant {
            format,
            reason: "only argon2 hashes with a version field (`v=19`, `v=16`) are sent",
        });
    };
    let kind = match *kind {
        "argon2id" => "id",
        "argon2i" => "i",
        "argon2d" => "d",
        _ => return malformed(format),
    };
    let version = match *version {
        "v=19" => 19,
        "v=16" => 16,
        _ => return malformed(format),
    };
    let (mut m, mut t, mut p) = (None, None, None);
    for kv in params.split(',') {
        let Some((key, v)) = kv.split_once('=') else {
            return malformed(format);
        };
        let v = v.parse::<u32>().ok();
        match key {
            "m" => m = v,
            "t" => t = v,
            "p" => p = v,
            _ => return malformed(format),
        }
    }
    let (Some(memory_kib), Some(iterations), Some(parallelism), Some(salt), Some(hash)) =
        (m, t, p, ab64(salt), ab64(hash))
    else {
        return malformed(format);
    };
    let mut imported = ImportedHash::new(HashingMethod::Argon2, STANDARD.encode(hash));
    imported.salt = Some(STANDARD.encode(salt).into());
    imported.argon2 = Some(Argon2Params {
        kind,
        version,
        memory_kib,
        iterations,
        parallelism,
    });
    Ok(imported)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use secrecy::ExposeSecret;
    use sha2::Digest;

    use super::*;

    fn method(hash: &LegacyHash) -> Result<&'static str, NotImportable> {
        let format = hash.resolved_format().unwrap();
        importable(hash, format).map(|h| h.method.as_str())
    }

    fn named(format: Format, value: &str) -> Result<&'static str, NotImportable> {
        method(&LegacyHash::new(format, value))
    }

    #[test]
    fn each_format_maps_to_the_spec_method_or_to_none() {
        let bcrypt = "$2y$04$nqGXDXoUonurGkhUWrcva.XDMPmkZLA.PoxuCdiRVLwSvYyjyVd4e";
        let md5_crypt = "$1$nThI5Hvf$0Mx1xYOJDzG54DjJqGwDL/";
        let phpass = "$P$BoQjkeN0kFwKVNabNE6n1VyuxNIKCo0";
        for (format, value, want) in [
            (Format::Bcrypt, bcrypt, Some("bcrypt")),
            (Format::Crypt, bcrypt, Some("bcrypt")),
            (Format::Crypt, md5_crypt, Some("crypt")),
            (
                Format::Crypt,
                "$5$rounds=10000$OZBRjYzI4eYf/o$x",
                Some("crypt"),
            ),
            (Format::Crypt, "$6$3cM1zmilPhG/sMMZ$oI", Some("crypt")),
            (Format::Crypt, "EqwJklPbKP6sM", None),
            (Format::Crypt, "_J9..HjKFzCKVe41WvYU", None),
            (Format::Crypt, "$apr1$abc$def", None),
            (Format::Crypt, "$sha1$480$36emfQhD$yCUoC", None),
            (
                Format::Bcrypt,
                "$2x$05$d1esBfvxPNEB9VMysiQNT.FT79qPx3TN6DR4k7S9Dz03sgIj6.us2",
                None,
            ),
            (Format::Wordpress, phpass, Some("wordpress")),
            (
                Format::Wordpress,
                "02f05432c0775caad464377eff95197a",
                Some("md5"),
            ),
            (Format::Wordpress, bcrypt, Some("bcrypt")),
            (Format::Wordpress, "$wp$2y$05$jQGRZDTiJQDpD3gy2sRI", None),
            (Format::Phpass, phpass, Some("wordpress")),
            (Format::Phpass, "$H$9IlgLDQnLzQQdoT/u8sqol4AobqJ5o0", None),
            (Format::Phpass, md5_crypt, Some("crypt")),
            (Format::Drupal, phpass, Some("wordpress")),
            (Format::Drupal, bcrypt, Some("bcrypt")),
            (
                Format::Drupal,
                "$S$DmXyMekx5pqsQnUba0PQFLdKIsOmI.g1icjvnuVAnyZ7ltW4ojAz",
                None,
            ),
            (Format::Drupal, "U$S$91R7imM0gtfF7qRizFP6Rgrsv9", None),
            (
                Format::Django,
                "pbkdf2_sha256$10000$wiz1PhWVUgEXkkXY0utkzY$S1lL5oqhk/XMbgwMZivNyMURjeoSO9T4V+R0huvUy4w=",
                Some("pbkdf2"),
            ),
            (
                Format::Django,
                "pbkdf2_sha1$10000$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                Some("pbkdf2-sha1"),
            ),
            (
                Format::Django,
                "md5$PTARBbGJqGkz$60b5065f5a28f5375d05fcc9bd00e9e4",
                Some("md5"),
            ),
            (
                Format::Django,
                "02f05432c0775caad464377eff95197a",
                Some("md5"),
            ),
            (
                Format::Django,
                "bcrypt$$2b$04$RNWka9f5tFFxh0WM67mcHusqshHoLC4e/xN60WJDCIT9zSecmG3cW",
                Some("bcrypt"),
            ),
            (Format::Django, "bcrypt_sha256$$2b$04$FSYM0jLgg", None),
            (
                Format::Django,
                "argon2$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA",
                Some("argon2"),
            ),
            (
                Format::Argon2,
                "$argon2id$m=1024,t=1,p=1$c2FsdA$aGFzaA",
                None,
            ),
            (Format::Django, "sha1$salt$0000", None),
            (
                Format::Pbkdf2,
                "$pbkdf2$1000$c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAA",
                Some("pbkdf2-sha1"),
            ),
            (
                Format::Argon2,
                "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA",
                Some("argon2"),
            ),
            (Format::Scrypt, "$scrypt$ln=4,r=8,p=1$c2FsdA$aGFzaA", None),
            (
                Format::Sha1,
                "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
                None,
            ),
            (Format::Sha512, "00", None),
        ] {
            assert_eq!(named(format, value).ok(), want, "{format} {value}");
        }
    }

    #[test]
    fn salted_digests_are_sent_as_lower_hex_with_the_salt_string() {
        // md5("4b6tTuY1n4m1" after the password), stored upper-case hex.
        let h = LegacyHash::new(Format::Md5, "AD24B5B8FAA72279D7046268DB541A91")
            .salted("4b6tTuY1n4m1", SaltPosition::Suffix)
            .with_encoding(Some(DigestEncoding::HexUpper));
        let i = importable(&h, Format::Md5).unwrap();
        assert_eq!(i.hash.expose_secret(), "ad24b5b8faa72279d7046268db541a91");
        assert_eq!(i.salt.as_ref().unwrap().expose_secret(), "4b6tTuY1n4m1");
        assert_eq!(i.salt_position, Some(SaltPlacement::Suffix));

        // Stored as base64: the same digest, re-encoded.
        let want = md5::Md5::digest(b"DmLBVbVwl63keiIbcWopGujekabrfi");
        let h = LegacyHash::new(Format::Md5, "s7lilxlud5AnNQPE8jovzQ==")
            .salted("DmLBVbVwl63keiIbcWop", SaltPosition::Prefix);
        let i = importable(&h, Format::Md5).unwrap();
        assert_eq!(i.hash.expose_secret(), hex::encode(want));
        assert_eq!(i.salt_position, Some(SaltPlacement::Prefix));

        let plain = sha2::Sha256::digest(b"pw");
        let i = importable(
            &LegacyHash::new(Format::Sha256, hex::encode(plain)),
            Format::Sha256,
        )
        .unwrap();
        assert_eq!(i.method, HashingMethod::Sha256);
        assert!(i.salt.is_none() && i.salt_position.is_none());

        let latin1 = LegacyHash::new(Format::Md5, hex::encode([0u8; 16]))
            .salted(vec![0xE9], SaltPosition::Prefix);
        assert!(matches!(
            importable(&latin1, Format::Md5),
            Err(NotImportable::Variant { .. })
        ));
    }

    #[test]
    fn pbkdf2_is_sent_with_the_fusionauth_variant_and_base64_salt_and_key() {
        let django = "pbkdf2_sha256$10000$wiz1PhWVUgEXkkXY0utkzY$S1lL5oqhk/XMbgwMZivNyMURjeoSO9T4V+R0huvUy4w=";
        let i = importable(&LegacyHash::new(Format::Django, django), Format::Django).unwrap();
        let p = i.pbkdf2.unwrap();
        assert_eq!(
            (p.variant, p.iterations),
            ("salted-pbkdf2-hmac-sha256", 10_000)
        );
        assert_eq!(
            STANDARD.decode(i.salt.unwrap().expose_secret()).unwrap(),
            b"wiz1PhWVUgEXkkXY0utkzY"
        );
        assert_eq!(
            i.hash.expose_secret(),
            "S1lL5oqhk/XMbgwMZivNyMURjeoSO9T4V+R0huvUy4w="
        );

        let mut key = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(b"pw", b"saltsalt", 1000, &mut key);
        let ab64 = |b: &[u8]| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(b)
                .replace('+', ".")
        };
        let passlib = format!("$pbkdf2-sha512$1000${}${}", ab64(b"saltsalt"), ab64(&key));
        let i = importable(&LegacyHash::new(Format::Pbkdf2, passlib), Format::Pbkdf2).unwrap();
        assert_eq!(i.pbkdf2.unwrap().variant, "salted-pbkdf2-hmac-sha512-512");
        assert_eq!(
            STANDARD.decode(i.hash.expose_secret()).unwrap(),
            key.to_vec()
        );
    }

    #[test]
    fn reasons_name_no_part_of_the_hash() {
        let secretish = "$2x$05$d1esBfvxPNEB9VMysiQNT.FT79qPx3TN6DR4k7S9Dz03sgIj6.us2";
        let reason = named(Format::Bcrypt, secretish).unwrap_err().to_string();
        assert!(!reason.contains("d1esBfvx"), "{reason}");
        let debug = format!(
            "{:?}",
            importable(
                &LegacyHash::new(Format::Bcrypt, "$2b$04$abc"),
                Format::Bcrypt
            )
        );
        assert!(!debug.contains("abc"), "{debug}");
    }
}
