//! How field names are read by the stacks behind dripgate, to tell a credential field's exact
//! name from another spelling that some stack reads as the same field.

use http::HeaderMap;

/// How a key relates to a credential field's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyMatch {
    /// The exact name.
    Exact,
    /// Not the exact name, but some stack reads it as that field (or as a structure the field
    /// is part of).
    Alias,
    /// Another field.
    Other,
}

/// How `key` relates to `field`.
pub(super) fn key_match(key: &[u8], field: &[u8]) -> KeyMatch {
    if key == field {
        return KeyMatch::Exact;
    }
    let field = field.to_ascii_lowercase();
    let field_php = php_name(&field);
    let aliases = readings(key)
        .into_iter()
        .any(|r| related(&r, &field) || related(&r, &field_php));
    if aliases {
        KeyMatch::Alias
    } else {
        KeyMatch::Other
    }
}

/// Whether one name is the other, or the other's structure: `email[]`, `email[x]` and
/// `email.x` (qs with `allowDots`) are read as `email` by PHP, Rails and Express, and a plain
/// `user` clashes with `user[email]`.
fn related(a: &[u8], b: &[u8]) -> bool {
    let nests = |long: &[u8], short: &[u8]| {
        long.len() > short.len()
            && long.starts_with(short)
            && matches!(long[short.len()], b'[' | b'.')
    };
    a == b || nests(a, b) || nests(b, a)
}

/// The names a stack may see in `key`, lower-cased (ASP.NET compares names without case):
/// as sent; cut at a NUL (C-string handling); with surrounding spaces trimmed; with `%uXXXX`
/// decoded (classic ASP, IIS); and as PHP renames it.
fn readings(key: &[u8]) -> Vec<Vec<u8>> {
    let lower = key.to_ascii_lowercase();
    let mut out = vec![php_name(&lower)];
    if let Some(nul) = lower.iter().position(|&b| b == 0) {
        out.push(lower[..nul].to_vec());
    }
    out.push(lower.trim_ascii().to_vec());
    if let Some(decoded) = percent_u_decode(&lower) {
        out.push(php_name(&decoded));
        out.push(decoded);
    }
    out.push(lower);
    out
}

/// PHP's renaming of a request variable: leading spaces dropped; in the name before its first
/// `[…]`, spaces and dots become `_`; a `[` with no `]` after it becomes `_` too.
fn php_name(key: &[u8]) -> Vec<u8> {
    let key = key.trim_ascii_start();
    let mut out = Vec::with_capacity(key.len());
    let mut top_level = true;
    for (i, &b) in key.iter().enumerate() {
        match b {
            b'[' if top_level => {
                if key[i..].contains(&b']') {
                    top_level = false;
                    out.push(b);
                } else {
                    out.push(b'_');
                }
            }
            b' ' | b'.' if top_level => out.push(b'_'),
            _ => out.push(b),
        }
    }
    out
}

/// `%uXXXX` sequences decoded (ASCII results only), where the key has any.
fn percent_u_decode(key: &[u8]) -> Option<Vec<u8>> {
    if !key.windows(2).any(|w| w == b"%u") {
        return None;
    }
    let mut out = Vec::with_capacity(key.len());
    let mut i = 0;
    while i < key.len() {
        let hex = key
            .get(i + 2..i + 6)
            .and_then(|h| std::str::from_utf8(h).ok());
        let code = hex.and_then(|h| u16::from_str_radix(h, 16).ok());
        match (key[i..].starts_with(b"%u"), code) {
            (true, Some(c)) if c < 0x80 => {
                out.push(u8::try_from(c).unwrap_or(b'?').to_ascii_lowercase());
                i += 6;
            }
            _ => {
                out.push(key[i]);
                i += 1;
            }
        }
    }
    Some(out)
}

/// A multipart part's `Content-Disposition`, read strictly.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Disposition {
    /// The `name` parameter, unquoted.
    pub name: Option<String>,
    /// Whether a `filename` (or `filename*`) parameter is present.
    pub filename: bool,
}

impl Disposition {
    /// The part's disposition; `None` when parsers could read its name differently: no or
    /// two dispositions, two `name` parameters, a `name*` (RFC 5987, decoded by some parsers
    /// only), or a name with a backslash (an escape to some, a character to others).
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(http::header::CONTENT_DISPOSITION).iter();
        let value = values.next()?.to_str().ok()?;
        if values.next().is_some() {
            return None;
        }
        let mut params = value.split(';');
        if !params.next()?.trim().eq_ignore_ascii_case("form-data") {
            return None;
        }
        let mut out = Self::default();
        for param in params {
            let (key, val) = param.split_once('=').unwrap_or((param, ""));
            let key = key.trim().to_ascii_lowercase();
            match key.as_str() {
                "name" if out.name.is_some() => return None,
                "name" => out.name = Some(unquote(val.trim())?),
                "name*" => return None,
                "filename" | "filename*" => out.filename = true,
                _ => {}
            }
        }
        Some(out)
    }
}

fn unquote(value: &str) -> Option<String> {
    let inner = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"')?,
        None => value,
    };
    if inner.contains(['\\', '"']) {
        return None;
    }
    Some(inner.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_alias_other() {
        assert_eq!(key_match(b"log", b"log"), KeyMatch::Exact);
        for alias in [
            &b"log[]"[..],
            b"log[0]",
            b"Log",
            b"LOG",
            b" log",
            b"log\0x",
            b"log.x",
            b"%u006Cog",
        ] {
            assert_eq!(key_match(alias, b"log"), KeyMatch::Alias, "{alias:?}");
        }
        for alias in [
            &b"user.login"[..],
            b"user login",
            b"user[login",
            b"USER_LOGIN",
        ] {
            assert_eq!(
                key_match(alias, b"user_login"),
                KeyMatch::Alias,
                "{alias:?}"
            );
        }
        assert_eq!(key_match(b"user", b"user[email]"), KeyMatch::Alias);
        assert_eq!(key_match(b"user[email][]", b"user[email]"), KeyMatch::Alias);
        for other in [
            &b"pwd"[..],
            b"login",
            b"logo",
            b"password_confirmation",
            b"user[password]",
        ] {
            assert_eq!(key_match(other, b"log"), KeyMatch::Other, "{other:?}");
        }
        assert_eq!(
            key_match(b"user[password]", b"user[email]"),
            KeyMatch::Other
        );
    }

    #[test]
    fn php_renames() {
        assert_eq!(php_name(b" a.b c[d.e]"), b"a_b_c[d.e]");
        assert_eq!(php_name(b"a[b"), b"a_b");
    }

    fn disposition(value: &str) -> Option<Disposition> {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_DISPOSITION,
            http::HeaderValue::from_str(value).unwrap_or(http::HeaderValue::from_static("")),
        );
        Disposition::of(&h)
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            disposition("form-data; name=\"pwd\""),
            Some(Disposition {
                name: Some("pwd".into()),
                filename: false
            })
        );
        assert_eq!(
            disposition("form-data; name=pwd; filename=\"a.txt\""),
            Some(Disposition {
                name: Some("pwd".into()),
                filename: true
            })
        );
        assert_eq!(disposition("form-data; name*=utf-8''pwd"), None);
        assert_eq!(disposition("form-data; name=\"a\"; name=\"pwd\""), None);
        assert_eq!(disposition("form-data; name=\"p\\wd\""), None);
        assert_eq!(disposition("attachment; name=\"pwd\""), None);
    }
}
