//! What a stored hash looks like before anyone verifies a password against it: empty, locked,
//! of an unknown or malformed shape, or well formed with a work factor worth reporting.
//!
//! Well-formedness is decided by the hash module's own parsers: the value is checked against an
//! empty password with every work-factor cap at zero, so each parser validates the layout and
//! stops at its cap check before doing any expensive work. The value that check reports is then
//! compared with the configured cap: a hash over it would never be verified at sign-in.

use crate::hash::{self, Format, HashConfig, HashError, LegacyHash};

use super::Reason;

/// Caps of zero: verification stops after parsing, before hashing.
fn parse_only_caps() -> HashConfig {
    HashConfig {
        bcrypt_max_cost: 0,
        crypt_max_rounds: 0,
        phpass_max_count_log2: 0,
        pbkdf2_max_iterations: 0,
        max_memory_kib: 0,
        argon2_max_time: 0,
        max_parallelism: 0,
        max_password_bytes: 0,
        pool_size: 1,
        queue_limit: 0,
        background_priority: false,
    }
}

/// Checks a stored hash's shape against the work-factor `caps`. Returns its resolved format and
/// a work-factor label such as `cost=10`, or the reason it cannot be verified. Never computes a
/// slow hash.
///
/// Only the first work factor each parser checks is compared with its cap (bcrypt cost, crypt
/// rounds, phpass count, PBKDF2 iterations, argon2 and scrypt memory): looking further would mean
/// letting the parser go on to hash. An argon2 hash over the time or parallelism cap passes here
/// and is refused when a password is verified against it.
pub(crate) fn inspect(
    h: &LegacyHash,
    caps: &HashConfig,
) -> Result<(Format, Option<String>), Reason> {
    let value = h.hash();
    if value.is_empty() {
        return Err(Reason::EmptyHash);
    }
    if hash::is_locked(value) {
        return Err(Reason::LockedAccount);
    }
    let format = h.resolved_format().ok_or(Reason::UnknownFormat)?;
    if format == Format::Wordpress && unverifiable_at_wordpress(value).is_some() {
        return Err(Reason::UnverifiableHash);
    }
    // md5-crypt has a fixed, uncapped 1000 rounds: check its layout here instead.
    if let Some(rest) = value
        .strip_prefix("$1$")
        .or_else(|| value.strip_prefix("$apr1$"))
    {
        return match rest.split_once('$') {
            Some((salt, digest)) if salt.len() <= 8 && digest.len() == 22 => Ok((format, None)),
            _ => Err(Reason::TruncatedHash),
        };
    }
    match hash::verify(h, b"", &parse_only_caps()) {
        Err(HashError::CostTooHigh {
            param,
            value: asked,
            ..
        }) if caps.cap(param).is_some_and(|max| asked > max) => Err(Reason::WorkFactorOverCap),
        Ok(_) | Err(HashError::CostTooHigh { .. } | HashError::PasswordTooLong { .. }) => {
            Ok((format, params(value)))
        }
        Err(HashError::Malformed { .. }) => Err(Reason::TruncatedHash),
        Err(HashError::Undetected) => Err(Reason::UnknownFormat),
        Err(HashError::Settings { .. }) => Err(Reason::BadHashSettings),
        Err(HashError::Unsupported { .. } | HashError::Internal { .. }) => {
            Err(Reason::UnsupportedHash)
        }
    }
}

/// What a `user_pass` value that WordPress can never verify looks like, or `None` when it can
/// verify (`wp_check_password` compares any value of 32 characters or fewer with
/// `md5($password)`, lower-case hex: only such a digest can match; longer values go on to the
/// `$wp`, phpass and `password_verify` branches). A bounded label, for the census:
/// `des_crypt` (13 characters of the crypt alphabet), `bsdi_crypt` (`_` + 19), `md5_crypt`
/// (`$1$` with a short salt), `md5_uppercase` (32 hex digits, not all lower-case),
/// `truncated` (the start of a `$P$`, `$H$`, `$wp` or `$2` hash), `placeholder` (anything else:
/// `x`, `-`, `disabled`, …).
pub(crate) fn unverifiable_at_wordpress(value: &str) -> Option<&'static str> {
    if value.len() > 32 {
        return None;
    }
    let crypt_alphabet = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    let hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    Some(if hex(value) {
        if value.bytes().all(|b| !b.is_ascii_uppercase()) {
            return None;
        }
        "md5_uppercase"
    } else if value.starts_with("$1$") {
        "md5_crypt"
    } else if ["$P$", "$H$", "$wp", "$2"]
        .iter()
        .any(|p| value.starts_with(p))
    {
        "truncated"
    } else if value.len() == 20 && value.starts_with('_') && crypt_alphabet(&value[1..]) {
        "bsdi_crypt"
    } else if value.len() == 13 && crypt_alphabet(value) {
        "des_crypt"
    } else {
        "placeholder"
    })
}

/// The work-factor label of a well-formed value, if its format has one.
pub(crate) fn params(value: &str) -> Option<String> {
    let b = value.as_bytes();
    // bcrypt, also inside `$wp$2y$`, `U$2y$`, Django `bcrypt$$2b$` / `bcrypt_sha256$$2b$`.
    if let Some(i) = value.find("$2") {
        let cost = b.get(i + 2..i + 7);
        if let Some([v, b'$', d1, d2, b'$']) = cost
            && matches!(v, b'a' | b'b' | b'x' | b'y')
            && d1.is_ascii_digit()
            && d2.is_ascii_digit()
        {
            return Some(format!("cost={}", (d1 - b'0') * 10 + (d2 - b'0')));
        }
    }
    for marker in ["$P$", "$H$", "$S$"] {
        if let Some(i) = value.find(marker)
            && let Some(&c) = b.get(i + 3)
            && let Some(n) = itoa64(c)
        {
            return Some(format!("count_log2={n}"));
        }
    }
    for magic in ["$5$", "$6$"] {
        if let Some(rest) = value.strip_prefix(magic) {
            let rounds = rest
                .strip_prefix("rounds=")
                .and_then(|r| r.split('$').next())
                .unwrap_or("5000");
            return Some(format!("rounds={rounds}"));
        }
    }
    if let Some(rest) = value
        .strip_prefix("pbkdf2_sha256$")
        .or_else(|| value.strip_prefix("pbkdf2_sha1$"))
    {
        return rest.split('$').next().map(|n| format!("iterations={n}"));
    }
    if value.contains("argon2") {
        return value
            .split('$')
            .find(|p| p.starts_with("m="))
            .map(str::to_owned);
    }
    None
}

fn itoa64(c: u8) -> Option<u32> {
    const ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    ALPHABET
        .iter()
        .position(|&a| a == c)
        .and_then(|p| u32::try_from(p).ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn auto(s: &str) -> Result<(Format, Option<String>), Reason> {
        inspect(&LegacyHash::auto(s), &HashConfig::default())
    }

    #[test]
    fn classifies_shapes() {
        let bcrypt = "$2y$10$eS.DTZ3X3QLOwj.MHHSjOOs9aLTa6WBwTwCI/N7M776diclWhV10K";
        assert_eq!(auto(bcrypt), Ok((Format::Bcrypt, Some("cost=10".into()))));
        assert_eq!(auto(&bcrypt[..40]), Err(Reason::TruncatedHash));
        assert_eq!(auto(""), Err(Reason::EmptyHash));
        assert_eq!(auto("!$6$x$y"), Err(Reason::LockedAccount));
        assert_eq!(auto("hello world"), Err(Reason::UnknownFormat));
        assert_eq!(
            auto("$P$BoQjkeN0kFwKVNabNE6n1VyuxNIKCo0"),
            Ok((Format::Phpass, Some("count_log2=13".into())))
        );
        assert_eq!(auto("$P$BoQjkeN0kF"), Err(Reason::TruncatedHash));
        assert_eq!(
            auto("$S$DmXyMekx5pqsQnUba0PQFLdKIsOmI.g1icjvnuVAnyZ7ltW4ojAz"),
            Ok((Format::Drupal, Some("count_log2=15".into())))
        );
        assert_eq!(
            auto("04b29c5e0c3e9573004e070295b0550b"),
            Ok((Format::Md5, None))
        );
    }

    #[test]
    fn wordpress_formats_report_their_cost() {
        let wp = LegacyHash::new(
            Format::Wordpress,
            "$wp$2y$05$jQGRZDTiJQDpD3gy2sRIW.hNGjyy0l1UK9LrO1W6m7PQD.3n0DWD.",
        );
        assert_eq!(
            inspect(&wp, &HashConfig::default()),
            Ok((Format::Wordpress, Some("cost=5".into())))
        );
    }

    #[test]
    fn wordpress_values_that_can_never_verify() {
        let wp = |v: &str| {
            inspect(
                &LegacyHash::new(Format::Wordpress, v),
                &HashConfig::default(),
            )
        };
        let cases = [
            ("rl4ZQ/BNUSnXk", "des_crypt"),
            ("_J9..rasmBYk8r9AiWNc", "bsdi_crypt"),
            ("$1$salt$qJH7.N4xYta3aEG/dfqo/0", "md5_crypt"),
            ("5F4DCC3B5AA765D61D8327DEB882CF99", "md5_uppercase"),
            ("$P$BoQjkeN0kF", "truncated"),
            ("x", "placeholder"),
            ("disabled", "placeholder"),
        ];
        for (value, kind) in cases {
            assert!(value.len() <= 32, "{value}");
            assert_eq!(unverifiable_at_wordpress(value), Some(kind), "{value}");
            assert_eq!(wp(value), Err(Reason::UnverifiableHash), "{value}");
        }
        // What WordPress does verify: lower-case md5 hex, and longer hashes of its branches.
        assert_eq!(
            wp("5f4dcc3b5aa765d61d8327deb882cf99"),
            Ok((Format::Wordpress, None))
        );
        for value in [
            "$P$BoQjkeN0kFwKVNabNE6n1VyuxNIKCo0",
            "$wp$2y$05$jQGRZDTiJQDpD3gy2sRIW.hNGjyy0l1UK9LrO1W6m7PQD.3n0DWD.",
            "$2y$10$eS.DTZ3X3QLOwj.MHHSjOOs9aLTa6WBwTwCI/N7M776diclWhV10K",
        ] {
            assert_eq!(unverifiable_at_wordpress(value), None, "{value}");
            assert!(wp(value).is_ok(), "{value}");
        }
        // The same 13 characters are a DES hash dripgate verifies when the format is crypt.
        assert_ne!(auto("rl4ZQ/BNUSnXk"), Err(Reason::UnverifiableHash));
        // Empty and locked values keep their own reasons.
        assert_eq!(wp(""), Err(Reason::EmptyHash));
        assert_eq!(wp("*"), Err(Reason::LockedAccount));
    }

    /// One well-formed value per capped parameter, with a config whose cap is one below it.
    fn over_cap_cases() -> [(HashConfig, &'static str); 5] {
        let capped = |set: fn(&mut HashConfig)| {
            let mut caps = HashConfig::default();
            set(&mut caps);
            caps
        };
        [
            (
                capped(|c| c.bcrypt_max_cost = 9),
                "$2y$10$eS.DTZ3X3QLOwj.MHHSjOOs9aLTa6WBwTwCI/N7M776diclWhV10K",
            ),
            (
                capped(|c| c.phpass_max_count_log2 = 12),
                "$P$BoQjkeN0kFwKVNabNE6n1VyuxNIKCo0",
            ),
            (
                capped(|c| c.crypt_max_rounds = 9_999),
                "$5$rounds=10000$OZBRjYzI4eYf/oRm$t1F8tz7ud/JSEv4G5p5ghUKcWr8J4kHYEwjusIkeud8",
            ),
            (
                capped(|c| c.pbkdf2_max_iterations = 9_999),
                "pbkdf2_sha256$10000$wiz1PhWVUgEXkkXY0utkzY$S1lL5oqhk/XMbgwMZivNyMURjeoSO9T4V+R0huvUy4w=",
            ),
            (
                capped(|c| c.max_memory_kib = 1023),
                "$argon2id$v=19$m=1024,t=1,p=1$TsqArbu1DjoPnHwDnEXkVw$z2REovt5sbA0iod78gg6bkblDbOJirK2Yk2Gq/nooOs",
            ),
        ]
    }

    #[test]
    fn work_factor_over_the_configured_cap_cannot_migrate() {
        for (caps, value) in over_cap_cases() {
            let h = LegacyHash::auto(value);
            assert_eq!(
                inspect(&h, &caps),
                Err(Reason::WorkFactorOverCap),
                "{value}"
            );
            // Under the default caps the same value is well formed and migratable.
            assert!(inspect(&h, &HashConfig::default()).is_ok(), "{value}");
        }
    }

    #[test]
    fn every_capped_parameter_has_a_config_key() {
        for (_, value) in over_cap_cases() {
            match hash::verify(&LegacyHash::auto(value), b"", &parse_only_caps()) {
                Err(HashError::CostTooHigh { param, .. }) => {
                    assert!(HashConfig::default().cap(param).is_some(), "{param}");
                }
                other => panic!("{value}: {other:?}"),
            }
        }
    }
}
