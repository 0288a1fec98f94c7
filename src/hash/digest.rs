//! Salted and unsalted message digests (Kinde's `md5`/`sha256` model, plus SHA-1 and SHA-512):
//! `H(salt ‖ password)` or `H(password ‖ salt)`, stored as hex (either case) or base64.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::util::{b64_standard, ct_eq};
use super::{DigestEncoding, Format, HashError, LegacyHash, SaltPosition};

/// A plain digest algorithm.
#[derive(Clone, Copy)]
pub(crate) enum Algo {
    /// MD5, 16 bytes.
    Md5,
    /// SHA-1, 20 bytes.
    Sha1,
    /// SHA-256, 32 bytes.
    Sha256,
    /// SHA-512, 64 bytes.
    Sha512,
}

impl Algo {
    fn len(self) -> usize {
        match self {
            Algo::Md5 => 16,
            Algo::Sha1 => 20,
            Algo::Sha256 => 32,
            Algo::Sha512 => 64,
        }
    }

    /// The digest of the concatenation of `parts`.
    pub(crate) fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Algo::Md5 => run::<Md5>(parts),
            Algo::Sha1 => run::<Sha1>(parts),
            Algo::Sha256 => run::<Sha256>(parts),
            Algo::Sha512 => run::<Sha512>(parts),
        }
    }
}

/// Decodes a stored digest of `len` bytes from hex (either case) or standard base64.
pub(crate) fn decode(
    stored: &str,
    len: usize,
    encoding: Option<DigestEncoding>,
    format: Format,
) -> Result<Vec<u8>, HashError> {
    let hex_ok = stored.len() == 2 * len;
    let b64_ok = stored.len() == len.div_ceil(3) * 4;
    let decoded = match encoding {
        Some(DigestEncoding::Hex | DigestEncoding::HexUpper) if hex_ok => hex::decode(stored).ok(),
        Some(DigestEncoding::Base64) if b64_ok => b64_standard(stored),
        Some(_) => None,
        None if hex_ok => hex::decode(stored).ok(),
        None if b64_ok => b64_standard(stored),
        None => None,
    };
    match decoded {
        Some(d) if d.len() == len => Ok(d),
        _ => Err(HashError::malformed(
            format,
            "digest has the wrong length or is not valid hex/base64",
        )),
    }
}

/// Verifies a salted-digest [`LegacyHash`] with algorithm `algo`.
pub(crate) fn verify(
    h: &LegacyHash,
    pw: &[u8],
    algo: Algo,
    format: Format,
) -> Result<bool, HashError> {
    let expected = decode(h.hash(), algo.len(), h.encoding(), format)?;
    let actual = match (h.salt(), h.salt_position()) {
        (None, None) => algo.digest(&[pw]),
        (Some(salt), Some(SaltPosition::Prefix)) => algo.digest(&[salt, pw]),
        (Some(salt), Some(SaltPosition::Suffix)) => algo.digest(&[pw, salt]),
        (Some(_), None) => {
            return Err(HashError::Settings {
                format,
                reason: "a salt needs salt_position prefix or suffix",
            });
        }
        (None, Some(_)) => {
            return Err(HashError::Settings {
                format,
                reason: "salt_position given without a salt",
            });
        }
    };
    Ok(ct_eq(&actual, &expected))
}
