//! Just enough DER to turn a PEM RSA private key into the PKCS#1 form jsonwebtoken's aws-lc
//! backend takes (jsonwebtoken's own PEM loading is compiled only with the `testkit` feature).

use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

/// Reads one TLV at the start of `input`: (tag, contents, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// PKCS#8 `PrivateKeyInfo` → the inner PKCS#1 `RSAPrivateKey`.
fn pkcs8_inner(der: &[u8]) -> Option<&[u8]> {
    let (0x30, seq, _) = tlv(der)? else {
        return None;
    };
    let (0x02, _version, rest) = tlv(seq)? else {
        return None;
    };
    let (0x30, _alg, rest) = tlv(rest)? else {
        return None;
    };
    let (0x04, key, _) = tlv(rest)? else {
        return None;
    };
    Some(key)
}

/// PKCS#1 DER of an RSA private key given as PEM (`RSA PRIVATE KEY` or `PRIVATE KEY`).
pub(crate) fn rsa_private_pkcs1(pem: &[u8]) -> Option<Vec<u8>> {
    match PrivateKeyDer::from_pem_slice(pem).ok()? {
        PrivateKeyDer::Pkcs1(k) => Some(k.secret_pkcs1_der().to_vec()),
        PrivateKeyDer::Pkcs8(k) => pkcs8_inner(k.secret_pkcs8_der()).map(<[u8]>::to_vec),
        _ => None,
    }
}
