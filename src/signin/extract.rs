//! Reading the identifier and password out of a buffered sign-in body: **canonical or refuse**.
//!
//! dripgate and the legacy app must never read one sign-in differently: if dripgate saw
//! `VICTIM` where the legacy app saw `ME`, a guess could be verified against the victim's hash
//! behind the legacy app's back, and a migrated user could sign in at legacy in `route`. Stacks
//! differ on repeated fields (PHP, Django and Rails keep the last, Go's `FormValue` the first,
//! Express makes an array), on field names (PHP reads `log[]`, `lo g` and `lo.g` as other
//! spellings of a field, ASP.NET compares names without case), on separators (old Rack and
//! Python also split on `;`), on multipart details and on where they look (`$_REQUEST` merges
//! the query string). So credentials are returned only when every such reading agrees: each
//! field exactly once in the body, under its exact name, with no other spelling of it anywhere
//! and nothing of it in the query string, in a body parsed in full, of a media type understood.
//! Anything else is an [`Unread`] reason; [`Unread::is_ambiguous`] tells the handler which of
//! them the legacy app could read as someone's credentials.
//!
//! The password is taken as the raw bytes the client sent (percent-decoded for forms, never
//! re-encoded), because the legacy hash was computed over those bytes: a Latin-1 login page
//! posts `%E9` for `é`, and lossy UTF-8 decoding would turn it into U+FFFD. The body itself is
//! only read here; the original bytes are what is forwarded.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_TYPE, HeaderValue};
use percent_encoding::percent_decode;
use secrecy::SecretSlice;

pub use crate::migrate::Credentials;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

mod json;
mod names;

use names::{KeyMatch, key_match};

/// How a sign-in body is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    /// Decide from the request's Content-Type.
    #[default]
    Auto,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json`; field names may be JSON pointers such as `/user/email`.
    Json,
    /// `multipart/form-data`.
    Multipart,
}

/// Why no credentials were taken from a sign-in request (a bounded set; a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Unread {
    /// Neither field is present: not a sign-in attempt (WordPress posts its lost-password and
    /// registration forms to the sign-in path, with other fields).
    #[error("no credential fields")]
    NoCredentials,
    /// The identifier field is absent or empty, the password present.
    #[error("identifier field missing")]
    MissingIdentifier,
    /// The password field is absent or empty, the identifier present.
    #[error("password field missing")]
    MissingPassword,
    /// The Content-Type is absent, repeated, or not one the route reads.
    #[error("unsupported content type")]
    UnsupportedContentType,
    /// The body does not parse in full as its content type.
    #[error("malformed body")]
    Malformed,
    /// A credential field occurs more than once.
    #[error("credential field repeated")]
    RepeatedField,
    /// Another spelling of a credential field occurs (`log[]`, `Log`, `lo.g`, a `;` pair).
    #[error("credential field spelled another way")]
    AliasedField,
    /// A credential field occurs in the query string.
    #[error("credential field in the query string")]
    FieldInQuery,
    /// A multipart part whose name or content another parser could read differently.
    #[error("multipart part not decodable")]
    UndecodablePart,
    /// A credential value that is not text (a JSON number or array, an identifier that is
    /// not UTF-8).
    #[error("credential value not text")]
    NotText,
    /// The identifier holds control or invisible characters after trimming.
    #[error("identifier has control characters")]
    ControlCharacters,
}

impl Unread {
    /// Every reason, for pre-registering metric series.
    pub const ALL: [Unread; 11] = [
        Self::NoCredentials,
        Self::MissingIdentifier,
        Self::MissingPassword,
        Self::UnsupportedContentType,
        Self::Malformed,
        Self::RepeatedField,
        Self::AliasedField,
        Self::FieldInQuery,
        Self::UndecodablePart,
        Self::NotText,
        Self::ControlCharacters,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCredentials => "no_credentials",
            Self::MissingIdentifier => "missing_identifier",
            Self::MissingPassword => "missing_password",
            Self::UnsupportedContentType => "unsupported_content_type",
            Self::Malformed => "malformed_body",
            Self::RepeatedField => "repeated_field",
            Self::AliasedField => "aliased_field",
            Self::FieldInQuery => "field_in_query",
            Self::UndecodablePart => "undecodable_part",
            Self::NotText => "not_text",
            Self::ControlCharacters => "control_characters",
        }
    }

    /// Whether the legacy app could read this request as someone's credentials where dripgate
    /// cannot say whose. The other reasons (no field, one field empty) read the same
    /// everywhere: nobody can be signed in by them.
    pub fn is_ambiguous(self) -> bool {
        !matches!(
            self,
            Self::NoCredentials | Self::MissingIdentifier | Self::MissingPassword
        )
    }
}

/// Credentials dripgate could not read are the request's doing; the same bytes read the same
/// way again.
impl crate::failure::Classified for Unread {
    fn blame(&self) -> crate::failure::Blame {
        crate::failure::Blame::Client
    }

    fn retry(&self) -> crate::failure::Retry {
        crate::failure::Retry::Never
    }

    fn label(&self) -> &'static str {
        self.as_str()
    }
}

/// Field names and body kind of one sign-in route.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// Body encoding.
    pub kind: BodyKind,
    /// Identifier field (form/multipart name, or JSON key / pointer).
    pub identifier: String,
    /// Password field.
    pub password: String,
}

impl FieldSpec {
    /// The two field names as the form and multipart readers compare them.
    fn names(&self) -> [&[u8]; 2] {
        [self.identifier.as_bytes(), self.password.as_bytes()]
    }

    /// The names a query-string key is compared with: for a JSON pointer its last segment.
    fn query_names(&self) -> [&[u8]; 2] {
        let last = |f: &str| -> usize {
            if f.starts_with('/') {
                f.rfind('/').map_or(0, |i| i + 1)
            } else {
                0
            }
        };
        [
            &self.identifier.as_bytes()[last(&self.identifier)..],
            &self.password.as_bytes()[last(&self.password)..],
        ]
    }
}

/// One field's raw value, before the identifier is checked as text.
type Raw = Option<Zeroizing<Vec<u8>>>;

/// Reads the credentials of a sign-in request with these headers, query string and body.
pub async fn extract(
    spec: &FieldSpec,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Bytes,
) -> Result<Credentials, Unread> {
    let [identifier, password] = read_fields(spec, headers, query, body).await?;
    finish(identifier, password)
}

/// Reads the one identifier field of a forgot-password request, by the same rules as a
/// sign-in's credentials (each field once, under its exact name, nothing of it in the query, a
/// body parsed in full): the identifier, trimmed and checked as [`clean_identifier`] does.
pub async fn extract_identifier(
    kind: BodyKind,
    field: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Bytes,
) -> Result<String, Unread> {
    // The field stands in both places of the pair: every reader then checks it as it checks
    // a credential, and the second place only repeats the first.
    let spec = FieldSpec {
        kind,
        identifier: field.to_owned(),
        password: field.to_owned(),
    };
    let [identifier, _] = read_fields(&spec, headers, query, body).await?;
    let identifier = identifier
        .filter(|v| !v.is_empty())
        .ok_or(Unread::NoCredentials)?;
    let identifier = std::str::from_utf8(&identifier).map_err(|_| Unread::NotText)?;
    clean_identifier(identifier)
}

/// The raw values of the two fields of `spec`, read canonically or refused.
async fn read_fields(
    spec: &FieldSpec,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Bytes,
) -> Result<[Raw; 2], Unread> {
    if let Some(query) = query {
        check_query(spec, query.as_bytes())?;
    }
    if body.is_empty() {
        return Err(Unread::NoCredentials);
    }
    let content_type = single_content_type(headers)?;
    let kind = body_kind(spec.kind, content_type)?;
    match kind {
        BodyKind::Form | BodyKind::Auto => form_fields(spec, body),
        BodyKind::Json => json::fields(spec, body),
        BodyKind::Multipart => multipart_fields(spec, content_type.unwrap_or(""), body).await,
    }
}

/// Turns the two raw values into credentials, or the reason there are none.
fn finish(identifier: Raw, password: Raw) -> Result<Credentials, Unread> {
    let identifier = identifier.filter(|v| !v.is_empty());
    let password = password.filter(|v| !v.is_empty());
    let (identifier, password) = match (identifier, password) {
        (None, None) => return Err(Unread::NoCredentials),
        (None, Some(_)) => return Err(Unread::MissingIdentifier),
        (Some(_), None) => return Err(Unread::MissingPassword),
        (Some(i), Some(p)) => (i, p),
    };
    let identifier = std::str::from_utf8(&identifier).map_err(|_| Unread::NotText)?;
    let identifier = clean_identifier(identifier)?;
    Ok(Credentials {
        identifier,
        password: SecretSlice::from(password.to_vec()),
        legacy_user: None,
    })
}

/// Strips what any legacy stack strips around an identifier (PHP's `trim` takes `\0` and
/// `\x0B`, Python's `strip` also `\x1C`–`\x1F` and Unicode spaces) and refuses one that still
/// holds control or invisible characters, which a database collation may ignore.
pub fn clean_identifier(typed: &str) -> Result<String, Unread> {
    let trimmed = typed.trim_matches(|c: char| c.is_whitespace() || c.is_control() || invisible(c));
    if trimmed.is_empty() {
        return Err(Unread::MissingIdentifier);
    }
    if trimmed.chars().any(|c| c.is_control() || invisible(c)) {
        return Err(Unread::ControlCharacters);
    }
    Ok(trimmed.to_owned())
}

/// Format characters that render as nothing and that collations such as MySQL's
/// `utf8mb4_unicode_ci` give no weight: soft hyphen, zero-width and direction marks, joiners,
/// the byte-order mark.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
    )
}

/// The one Content-Type of the request: two of them, or one that is not text, is ambiguous.
fn single_content_type(headers: &HeaderMap) -> Result<Option<&str>, Unread> {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Unread::UnsupportedContentType);
    }
    first
        .map(HeaderValue::to_str)
        .transpose()
        .map_err(|_| Unread::UnsupportedContentType)
}

/// The body kind to parse: the media type's, which must agree with a configured kind.
fn body_kind(configured: BodyKind, content_type: Option<&str>) -> Result<BodyKind, Unread> {
    let declared = content_type.map(media_kind);
    match (configured, declared) {
        (BodyKind::Auto, Some(Some(kind))) => Ok(kind),
        (BodyKind::Auto, _) => Err(Unread::UnsupportedContentType),
        // A configured kind reads bodies with no or an unknown type (clients that send
        // `text/plain`), but not one that declares another known type: the legacy app's
        // framework would parse that one as declared.
        (kind, Some(Some(declared))) if declared != kind => Err(Unread::UnsupportedContentType),
        (kind, _) => Ok(kind),
    }
}

/// The body kind a media type names, if it is one dripgate reads.
fn media_kind(content_type: &str) -> Option<BodyKind> {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Some(BodyKind::Form)
    } else if mime.eq_ignore_ascii_case("multipart/form-data") {
        Some(BodyKind::Multipart)
    } else if mime.eq_ignore_ascii_case("application/json")
        || mime.to_ascii_lowercase().ends_with("+json")
    {
        Some(BodyKind::Json)
    } else {
        None
    }
}

/// Decodes a form component: `+` is a space, then percent-decoding, as raw bytes.
fn form_decode(raw: &[u8]) -> Zeroizing<Vec<u8>> {
    let plus_decoded: Zeroizing<Vec<u8>> = Zeroizing::new(
        raw.iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect(),
    );
    Zeroizing::new(percent_decode(&plus_decoded).collect())
}

/// Whether a query string names either credential field in any spelling.
pub fn query_has_field(spec: &FieldSpec, query: &[u8]) -> bool {
    check_query(spec, query).is_err()
}

/// Refuses a query string that names a credential field in any spelling: PHP's `$_REQUEST`,
/// Rails' `params` and Express's `req.param` merge it with the body.
fn check_query(spec: &FieldSpec, query: &[u8]) -> Result<(), Unread> {
    let names = spec.query_names();
    for pair in query.split(|&b| b == b'&' || b == b';') {
        let key = form_decode(pair.split(|&b| b == b'=').next().unwrap_or_default());
        if names.iter().any(|f| key_match(&key, f) != KeyMatch::Other) {
            return Err(Unread::FieldInQuery);
        }
    }
    Ok(())
}

/// The identifier and password of a urlencoded body, each present once under its exact name.
fn form_fields(spec: &FieldSpec, body: &[u8]) -> Result<[Raw; 2], Unread> {
    let names = spec.names();
    let mut found: [Raw; 2] = [None, None];
    for pair in body.split(|&b| b == b'&') {
        let (raw_key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        let key = form_decode(raw_key);
        for (slot, name) in found.iter_mut().zip(names) {
            match key_match(&key, name) {
                KeyMatch::Other => {}
                KeyMatch::Alias => return Err(Unread::AliasedField),
                KeyMatch::Exact if slot.is_some() => return Err(Unread::RepeatedField),
                // Old Rack and Python split pairs on `;` too: such a value ends elsewhere
                // for them.
                KeyMatch::Exact if value.contains(&b';') => return Err(Unread::AliasedField),
                KeyMatch::Exact => *slot = Some(form_decode(value)),
            }
        }
        if pair.contains(&b';') && semicolon_alias(pair, &names) {
            return Err(Unread::AliasedField);
        }
    }
    Ok(found)
}

/// Whether splitting `pair` on `;` as well, as old Rack and Python did, yields a key that
/// reads as a credential field.
fn semicolon_alias(pair: &[u8], names: &[&[u8]; 2]) -> bool {
    pair.split(|&b| b == b';').any(|part| {
        let key = form_decode(part.split(|&b| b == b'=').next().unwrap_or_default());
        names.iter().any(|f| key_match(&key, f) != KeyMatch::Other)
    })
}

/// The identifier and password parts of a multipart body: each once, by a name every parser
/// reads alike, with no transfer encoding and no file name.
async fn multipart_fields(
    spec: &FieldSpec,
    content_type: &str,
    body: &Bytes,
) -> Result<[Raw; 2], Unread> {
    let boundary = single_boundary(content_type)?;
    check_delimiters(body, &boundary)?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(body.len() as u64)
            .per_field(body.len() as u64),
    );
    let stream =
        futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(body.clone())));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let names = spec.names();
    let mut found: [Raw; 2] = [None, None];
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| Unread::Malformed)?
    {
        let part = names::Disposition::of(field.headers()).ok_or(Unread::UndecodablePart)?;
        if part.name.as_deref() != field.name() {
            return Err(Unread::UndecodablePart);
        }
        let Some(name) = part.name.as_deref() else {
            continue;
        };
        for (i, wanted) in names.iter().enumerate() {
            match key_match(name.as_bytes(), wanted) {
                KeyMatch::Other => continue,
                KeyMatch::Alias => return Err(Unread::AliasedField),
                KeyMatch::Exact if found[i].is_some() => return Err(Unread::RepeatedField),
                KeyMatch::Exact => {}
            }
            // PHP files a part with a file name under `$_FILES`, not `$_POST`; a transfer
            // encoding is decoded by some parsers and not by others.
            if part.filename || field.headers().contains_key("content-transfer-encoding") {
                return Err(Unread::UndecodablePart);
            }
            let bytes = field.bytes().await.map_err(|_| Unread::Malformed)?;
            found[i] = Some(Zeroizing::new(bytes.to_vec()));
            break;
        }
    }
    Ok(found)
}

/// The boundary of a multipart Content-Type that names exactly one.
fn single_boundary(content_type: &str) -> Result<String, Unread> {
    let count = content_type
        .split(';')
        .skip(1)
        .filter(|p| {
            p.trim()
                .split('=')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("boundary"))
        })
        .count();
    if count != 1 {
        return Err(Unread::Malformed);
    }
    multer::parse_boundary(content_type).map_err(|_| Unread::Malformed)
}

/// Refuses delimiter lines that end in a bare LF, or a delimiter preceded by one: parsers
/// disagree on whether they delimit parts.
fn check_delimiters(body: &[u8], boundary: &str) -> Result<(), Unread> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut at = 0;
    while let Some(i) = find(&body[at..], delimiter) {
        let start = at + i;
        let after = start + delimiter.len();
        let crlf_before = start == 0 || body[..start].ends_with(b"\r\n");
        let bare_lf_before = start > 0 && body[start - 1] == b'\n' && !crlf_before;
        let rest = &body[after..];
        let bare_lf_after = rest.starts_with(b"\n") || rest.starts_with(b"--\n");
        if bare_lf_before || bare_lf_after {
            return Err(Unread::Malformed);
        }
        at = after;
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
