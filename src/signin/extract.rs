//! Reading the identifier and password out of a buffered sign-in body.
//!
//! The password is taken as the raw bytes the client sent (percent-decoded for forms, never
//! re-encoded), because the legacy hash was computed over those bytes: a Latin-1 login page
//! posts `%E9` for `é`, and lossy UTF-8 decoding would turn it into U+FFFD. The body itself is
//! only read here; the original bytes are what is forwarded.

use bytes::Bytes;
use percent_encoding::percent_decode;
use secrecy::SecretSlice;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

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

/// The credentials a client submitted.
pub struct Credentials {
    /// The identifier as typed (not yet normalized).
    pub identifier: String,
    /// The password bytes, zeroized on drop.
    pub password: SecretSlice<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identifier", &self.identifier)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why credentials could not be read (bounded set; used as a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The Content-Type is not one the route accepts.
    #[error("unsupported content type")]
    UnsupportedContentType,
    /// The body does not parse as its content type.
    #[error("malformed body")]
    Malformed,
    /// The identifier field is absent or empty.
    #[error("identifier field missing")]
    MissingIdentifier,
    /// The password field is absent or empty.
    #[error("password field missing")]
    MissingPassword,
}

impl ExtractError {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnsupportedContentType => "unsupported_content_type",
            Self::Malformed => "malformed_body",
            Self::MissingIdentifier => "missing_identifier",
            Self::MissingPassword => "missing_password",
        }
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

/// Extracts credentials from `body` sent with `content_type`.
pub async fn extract(
    spec: &FieldSpec,
    content_type: Option<&str>,
    body: &Bytes,
) -> Result<Credentials, ExtractError> {
    let mime = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let kind = match spec.kind {
        BodyKind::Auto => match mime.as_str() {
            "application/x-www-form-urlencoded" => BodyKind::Form,
            "multipart/form-data" => BodyKind::Multipart,
            m if m == "application/json" || m.ends_with("+json") => BodyKind::Json,
            _ => return Err(ExtractError::UnsupportedContentType),
        },
        kind => kind,
    };
    let (identifier, password) = match kind {
        BodyKind::Form | BodyKind::Auto => form_fields(spec, body),
        BodyKind::Json => json_fields(spec, body)?,
        BodyKind::Multipart => multipart_fields(spec, content_type.unwrap_or(""), body).await?,
    };
    let identifier = identifier
        .filter(|s| !s.trim().is_empty())
        .ok_or(ExtractError::MissingIdentifier)?;
    let password = password
        .filter(|p| !p.is_empty())
        .ok_or(ExtractError::MissingPassword)?;
    Ok(Credentials {
        identifier,
        password: SecretSlice::from(password),
    })
}

/// Decodes a form component: `+` is a space, then percent-decoding, as raw bytes.
fn form_decode(raw: &[u8]) -> Vec<u8> {
    let plus_decoded: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let plus_decoded = Zeroizing::new(plus_decoded);
    percent_decode(&plus_decoded).collect()
}

type Fields = (Option<String>, Option<Vec<u8>>);

fn form_fields(spec: &FieldSpec, body: &[u8]) -> Fields {
    let (mut identifier, mut password) = (None, None);
    for pair in body.split(|&b| b == b'&') {
        let mut kv = pair.splitn(2, |&b| b == b'=');
        let name = form_decode(kv.next().unwrap_or_default());
        let value = kv.next().unwrap_or_default();
        if identifier.is_none() && name == spec.identifier.as_bytes() {
            identifier = Some(String::from_utf8_lossy(&form_decode(value)).into_owned());
        } else if password.is_none() && name == spec.password.as_bytes() {
            password = Some(form_decode(value));
        }
    }
    (identifier, password)
}

fn json_fields(spec: &FieldSpec, body: &[u8]) -> Result<Fields, ExtractError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| ExtractError::Malformed)?;
    let field = |name: &str| {
        if name.starts_with('/') {
            value.pointer(name)
        } else {
            value.get(name)
        }
        .and_then(serde_json::Value::as_str)
    };
    Ok((
        field(&spec.identifier).map(str::to_owned),
        field(&spec.password).map(|p| p.as_bytes().to_vec()),
    ))
}

async fn multipart_fields(
    spec: &FieldSpec,
    content_type: &str,
    body: &Bytes,
) -> Result<Fields, ExtractError> {
    let boundary = multer::parse_boundary(content_type).map_err(|_| ExtractError::Malformed)?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(body.len() as u64)
            .per_field(body.len() as u64),
    );
    let stream =
        futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(body.clone())));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let (mut identifier, mut password) = (None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| ExtractError::Malformed)?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if identifier.is_none() && name == spec.identifier {
            let bytes = field.bytes().await.map_err(|_| ExtractError::Malformed)?;
            identifier = Some(String::from_utf8_lossy(&bytes).into_owned());
        } else if password.is_none() && name == spec.password {
            let bytes = field.bytes().await.map_err(|_| ExtractError::Malformed)?;
            password = Some(bytes.to_vec());
        }
    }
    Ok((identifier, password))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use secrecy::ExposeSecret;

    use super::*;

    fn spec(kind: BodyKind, identifier: &str, password: &str) -> FieldSpec {
        FieldSpec {
            kind,
            identifier: identifier.to_owned(),
            password: password.to_owned(),
        }
    }

    #[tokio::test]
    async fn form_password_is_raw_latin1_bytes() {
        let body = Bytes::from_static(b"log=Alice%40Example.com&pwd=caf%E9+au+lait%2B&x=1");
        let c = extract(
            &spec(BodyKind::Auto, "log", "pwd"),
            Some("application/x-www-form-urlencoded; charset=ISO-8859-1"),
            &body,
        )
        .await
        .unwrap();
        assert_eq!(c.identifier, "Alice@Example.com");
        assert_eq!(c.password.expose_secret(), b"caf\xe9 au lait+");
        assert!(!format!("{c:?}").contains("caf"));
    }

    #[tokio::test]
    async fn json_with_pointer_and_plain_key() {
        let body = Bytes::from_static(br#"{"user":{"email":"a@b.c"},"password":"p\u00e9"}"#);
        let c = extract(
            &spec(BodyKind::Auto, "/user/email", "password"),
            Some("application/json"),
            &body,
        )
        .await
        .unwrap();
        assert_eq!(c.identifier, "a@b.c");
        assert_eq!(c.password.expose_secret(), "pé".as_bytes());
    }

    #[tokio::test]
    async fn multipart_fields_are_read() {
        let body = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nm@x.io\r\n--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\ns3\xffcret\r\n--XyZ--\r\n",
        );
        let c = extract(
            &spec(BodyKind::Auto, "email", "password"),
            Some("multipart/form-data; boundary=XyZ"),
            &body,
        )
        .await
        .unwrap();
        assert_eq!(c.identifier, "m@x.io");
        assert_eq!(c.password.expose_secret(), b"s3\xffcret");
    }

    #[tokio::test]
    async fn missing_fields_and_bad_bodies_are_typed_errors() {
        let s = spec(BodyKind::Auto, "email", "password");
        let form = Some("application/x-www-form-urlencoded");
        let e = extract(&s, form, &Bytes::from_static(b"email=a&password=")).await;
        assert_eq!(e.err(), Some(ExtractError::MissingPassword));
        let e = extract(&s, form, &Bytes::from_static(b"password=x")).await;
        assert_eq!(e.err(), Some(ExtractError::MissingIdentifier));
        let e = extract(&s, Some("application/json"), &Bytes::from_static(b"{nope")).await;
        assert_eq!(e.err(), Some(ExtractError::Malformed));
        let e = extract(&s, Some("text/plain"), &Bytes::from_static(b"x")).await;
        assert_eq!(e.err(), Some(ExtractError::UnsupportedContentType));
    }
}
