//! Small shared helpers: constant-time compare, C-string semantics, crypt alphabets.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use subtle::ConstantTimeEq;

/// The `./0-9A-Za-z` alphabet used by crypt(3), phpass and Drupal, in value order.
pub(crate) const ITOA64: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Constant-time equality of two byte strings; unequal lengths are unequal (length is public).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The password as a C string sees it: everything before the first NUL byte.
///
/// crypt(3), PHP's `crypt`/`password_verify` and crypt_blowfish all stop at NUL.
pub(crate) fn c_str(password: &[u8]) -> &[u8] {
    match password.iter().position(|&b| b == 0) {
        Some(i) => &password[..i],
        None => password,
    }
}

/// Value of a character in [`ITOA64`].
pub(crate) fn itoa64_value(c: u8) -> Option<u32> {
    ITOA64
        .iter()
        .position(|&x| x == c)
        .and_then(|p| u32::try_from(p).ok())
}

/// phpass / Drupal `encode64`: little-endian 6-bit groups of `input`.
pub(crate) fn phpass_encode64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let mut value = u32::from(chunk[0]);
        if let Some(&b) = chunk.get(1) {
            value |= u32::from(b) << 8;
        }
        if let Some(&b) = chunk.get(2) {
            value |= u32::from(b) << 16;
        }
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ITOA64[((value >> (6 * i)) & 0x3f) as usize]);
        }
    }
    out
}

/// crypt(3) `to64`: the low `n` 6-bit groups of `v`, least significant first.
pub(crate) fn to64(out: &mut Vec<u8>, mut v: u32, n: usize) {
    for _ in 0..n {
        out.push(ITOA64[(v & 0x3f) as usize]);
        v >>= 6;
    }
}

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes PHC / passlib base64: standard alphabet, padding optional, and passlib's `.` for `+`.
pub(crate) fn b64_phc(s: &str) -> Option<Vec<u8>> {
    if s.contains('.') {
        let fixed: String = s.chars().map(|c| if c == '.' { '+' } else { c }).collect();
        LENIENT.decode(fixed).ok()
    } else {
        LENIENT.decode(s).ok()
    }
}

/// Decodes standard padded base64 strictly.
pub(crate) fn b64_standard(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex_lower(bytes: &[u8]) -> Vec<u8> {
    hex::encode(bytes).into_bytes()
}

/// Runs `f`, turning a panic inside a third-party verifier into `None`.
pub(crate) fn no_panic<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn c_str_stops_at_nul() {
        assert_eq!(c_str(b"ab\0cd"), b"ab");
        assert_eq!(c_str(b"abc"), b"abc");
    }

    #[test]
    fn encode64_lengths() {
        assert_eq!(phpass_encode64(&[0u8; 16]).len(), 22);
        assert_eq!(phpass_encode64(&[0u8; 64]).len(), 86);
    }

    #[test]
    fn phc_base64() {
        assert_eq!(b64_phc("AAEC").unwrap(), vec![0, 1, 2]);
        assert_eq!(b64_phc("AAE").unwrap(), vec![0, 1]);
        assert_eq!(b64_phc("+/8").unwrap(), b64_phc("./8").unwrap());
    }
}
