//! AWS Signature Version 4, checked the way AWS does, written apart from the client's signer
//! (`aws-sigv4`) so that the fake does not share its mistakes. Tested against AWS's published
//! test suite (`tests/provider_specs/aws-sigv4-test-suite/`).
//!
//! Covered: header signatures (`Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
//! Signature=…`), canonical query strings, canonical headers (lower-case names, trimmed values,
//! inner runs of spaces folded, repeated headers joined with `,`), session tokens as a signed
//! header. Paths are taken as they arrive: the fake serves `/` only.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The parts of a request that are signed. Header names may be in any case.
#[derive(Debug, Clone)]
pub struct SignedParts<'a> {
    /// `GET`, `POST`…
    pub method: &'a str,
    /// The path as sent.
    pub path: &'a str,
    /// The query string without `?` (may be empty).
    pub query: &'a str,
    /// Every header, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub payload: &'a [u8],
}

/// The `Authorization` header's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key: String,
    /// `YYYYMMDD` of the credential scope.
    pub date: String,
    /// Region of the scope.
    pub region: String,
    /// Service of the scope.
    pub service: String,
    /// Lower-case header names, as listed.
    pub signed_headers: Vec<String>,
    /// Hex signature.
    pub signature: String,
}

/// Reads an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<Authorization, String> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("Authorization header requires the AWS4-HMAC-SHA256 algorithm")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or("malformed Authorization field")?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return Err(format!("unknown Authorization field {k}")),
        }
    }
    let (credential, signed, signature) = match (credential, signed, signature) {
        (Some(c), Some(s), Some(g)) => (c, s, g),
        _ => {
            return Err(
                "Authorization header requires Credential, SignedHeaders and Signature".into(),
            );
        }
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = scope[..] else {
        return Err("Credential must be <key>/<date>/<region>/<service>/aws4_request".into());
    };
    if terminator != "aws4_request" {
        return Err("Credential scope must end in aws4_request".into());
    }
    Ok(Authorization {
        access_key: access_key.into(),
        date: date.into(),
        region: region.into(),
        service: service.into(),
        signed_headers: signed.split(';').map(str::to_string).collect(),
        signature: signature.into(),
    })
}

fn encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query string: each name and value percent-decoded, re-encoded with AWS's
/// rules, sorted by name then value.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
            (encode(&decode(k)), encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn fold_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request for the listed headers.
pub fn canonical_request(parts: &SignedParts<'_>, signed_headers: &[String]) -> String {
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = parts
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| fold_spaces(v))
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        parts.method,
        if parts.path.is_empty() {
            "/"
        } else {
            parts.path
        },
        canonical_query(parts.query),
        headers,
        signed_headers.join(";"),
        hex::encode(Sha256::digest(parts.payload)),
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: the error branch cannot happen (and would only fail the
    // comparison).
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The hex signature of `canonical` under `secret`, at `amz_date` (`YYYYMMDDTHHMMSSZ`).
pub fn sign(secret: &str, amz_date: &str, region: &str, service: &str, canonical: &str) -> String {
    let date = amz_date.get(..8).unwrap_or_default();
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex::encode(hmac(&k_signing, to_sign.as_bytes()))
}

/// Whether `auth.signature` is the signature of `parts` under `secret` (constant-time compare).
pub fn verify(parts: &SignedParts<'_>, auth: &Authorization, amz_date: &str, secret: &str) -> bool {
    let canonical = canonical_request(parts, &auth.signed_headers);
    let expected = sign(secret, amz_date, &auth.region, &auth.service, &canonical);
    expected.as_bytes().ct_eq(auth.signature.as_bytes()).into()
}

/// Parses `YYYYMMDDTHHMMSSZ` into seconds since the epoch.
pub fn parse_amz_date(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| v.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_are_read() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("2015-08-30T12:36Z"), None);
    }

    #[test]
    fn authorization_fields_are_parsed() {
        let a = parse_authorization("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7").unwrap();
        assert_eq!(a.access_key, "AKIDEXAMPLE");
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        assert!(
            parse_authorization(
                "AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=1"
            )
            .is_err()
        );
        assert!(parse_authorization("Bearer x").is_err());
    }
}
