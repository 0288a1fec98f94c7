#![allow(clippy::unwrap_used, clippy::expect_used)]
use http::HeaderValue;
use proptest::prelude::*;
use secrecy::ExposeSecret;

use super::*;

fn spec(kind: BodyKind, identifier: &str, password: &str) -> FieldSpec {
    FieldSpec {
        kind,
        identifier: identifier.to_owned(),
        password: password.to_owned(),
    }
}

fn headers(content_type: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
    h
}

const FORM: &str = "application/x-www-form-urlencoded";

async fn form(body: &'static [u8]) -> Result<Credentials, Unread> {
    let s = spec(BodyKind::Auto, "email", "password");
    extract(&s, &headers(FORM), None, &Bytes::from_static(body)).await
}

#[tokio::test]
async fn form_password_is_raw_latin1_bytes() {
    let body = Bytes::from_static(b"log=Alice%40Example.com&pwd=caf%E9+au+lait%2B&x=1");
    let c = extract(
        &spec(BodyKind::Auto, "log", "pwd"),
        &headers("application/x-www-form-urlencoded; charset=ISO-8859-1"),
        None,
        &body,
    )
    .await
    .unwrap();
    assert_eq!(c.identifier, "Alice@Example.com");
    assert_eq!(c.password.expose_secret(), b"caf\xe9 au lait+");
    assert!(!format!("{c:?}").contains("caf"));
}

#[tokio::test]
async fn repeated_and_aliased_form_fields_are_ambiguous() {
    // The password-guessing oracle: PHP reads the last pair, a first-wins reader the first.
    let e = form(b"email=victim%40x.io&password=guess&email=me%40x.io&password=mine").await;
    assert_eq!(e.err(), Some(Unread::RepeatedField));
    for body in [
        &b"email=a%40x.io&password=p&email[]=b%40x.io"[..],
        b"email=a%40x.io&password=p&Email=b%40x.io",
        b"email=a%40x.io&password=p&email.x=b",
        b"email=a%40x.io&password=p&+email=b",
        b"email=a%40x.io&password=p&email%00=b",
        b"email=a%40x.io&password=p;email=b%40x.io",
        b"x=1;email=b%40x.io&email=a%40x.io&password=p",
        b"email=a%40x.io&password=p&%u0065mail=b",
    ] {
        let s = spec(BodyKind::Auto, "email", "password");
        let got = extract(&s, &headers(FORM), None, &Bytes::copy_from_slice(body)).await;
        assert_eq!(
            got.err(),
            Some(Unread::AliasedField),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[tokio::test]
async fn credential_fields_in_the_query_are_ambiguous() {
    let s = spec(BodyKind::Auto, "email", "password");
    let body = Bytes::from_static(b"email=a%40x.io&password=p");
    for query in [
        "email=b%40x.io",
        "password=x",
        "a=1&Email=x",
        "x=1;password=2",
    ] {
        let got = extract(&s, &headers(FORM), Some(query), &body).await;
        assert_eq!(got.err(), Some(Unread::FieldInQuery), "{query}");
    }
    let got = extract(
        &s,
        &headers(FORM),
        Some("action=login&redirect_to=%2F"),
        &body,
    )
    .await;
    assert_eq!(got.unwrap().identifier, "a@x.io");
}

#[tokio::test]
async fn no_fields_is_not_a_sign_in_and_one_missing_is_incomplete() {
    // WordPress's lost-password form posts to the sign-in path with other fields.
    assert_eq!(
        form(b"user_login=a&redirect_to=").await.err(),
        Some(Unread::NoCredentials)
    );
    assert_eq!(form(b"").await.err(), Some(Unread::NoCredentials));
    assert_eq!(
        form(b"email=a&password=").await.err(),
        Some(Unread::MissingPassword)
    );
    assert_eq!(
        form(b"password=x").await.err(),
        Some(Unread::MissingIdentifier)
    );
    for reason in Unread::ALL {
        let incomplete = matches!(
            reason,
            Unread::NoCredentials | Unread::MissingIdentifier | Unread::MissingPassword
        );
        assert_eq!(reason.is_ambiguous(), !incomplete, "{reason:?}");
    }
}

#[tokio::test]
async fn identifiers_are_trimmed_like_the_most_lenient_stack() {
    let c = form(b"email=%00%0B%1C+a%40x.io%1F%E2%80%83%09&password=p")
        .await
        .unwrap();
    assert_eq!(c.identifier, "a@x.io");
    for body in [
        &b"email=a%00b%40x.io&password=p"[..],
        b"email=a%1Fb%40x.io&password=p",
        b"email=a%E2%80%8Bb%40x.io&password=p",
    ] {
        let s = spec(BodyKind::Auto, "email", "password");
        let got = extract(&s, &headers(FORM), None, &Bytes::copy_from_slice(body)).await;
        assert_eq!(got.err(), Some(Unread::ControlCharacters));
    }
    assert_eq!(
        form(b"email=caf%E9%40x.io&password=p").await.err(),
        Some(Unread::NotText)
    );
}

#[tokio::test]
async fn content_types_must_be_single_and_known() {
    let s = spec(BodyKind::Auto, "email", "password");
    let body = Bytes::from_static(b"email=a&password=p");
    let got = extract(&s, &headers("text/plain"), None, &body).await;
    assert_eq!(got.err(), Some(Unread::UnsupportedContentType));
    let mut two = headers(FORM);
    two.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let got = extract(&s, &two, None, &body).await;
    assert_eq!(got.err(), Some(Unread::UnsupportedContentType));
    let got = extract(&s, &HeaderMap::new(), None, &body).await;
    assert_eq!(got.err(), Some(Unread::UnsupportedContentType));
    // A configured kind reads an untyped body, not one declared as another known type.
    let forced = spec(BodyKind::Form, "email", "password");
    assert!(
        extract(&forced, &HeaderMap::new(), None, &body)
            .await
            .is_ok()
    );
    let got = extract(&forced, &headers("application/json"), None, &body).await;
    assert_eq!(got.err(), Some(Unread::UnsupportedContentType));
}

#[tokio::test]
async fn json_with_pointer_and_plain_key() {
    let body = Bytes::from_static(br#"{"user":{"email":"a@b.c"},"password":"p\u00e9"}"#);
    let c = extract(
        &spec(BodyKind::Auto, "/user/email", "password"),
        &headers("application/json"),
        None,
        &body,
    )
    .await
    .unwrap();
    assert_eq!(c.identifier, "a@b.c");
    assert_eq!(c.password.expose_secret(), "pé".as_bytes());
}

#[tokio::test]
async fn json_duplicates_case_twins_and_non_strings_are_ambiguous() {
    let s = spec(BodyKind::Auto, "/user/email", "password");
    let json = headers("application/json");
    let cases: [(&[u8], Unread); 6] = [
        (
            br#"{"user":{"email":"a@x","email":"b@x"},"password":"p"}"#,
            Unread::RepeatedField,
        ),
        (
            br#"{"user":{"email":"a@x"},"password":"p","password":"q"}"#,
            Unread::RepeatedField,
        ),
        (
            br#"{"user":{"email":"a@x","Email":"b@x"},"password":"p"}"#,
            Unread::AliasedField,
        ),
        (
            br#"{"user":{"email":"a@x"},"password":123}"#,
            Unread::NotText,
        ),
        (
            br#"{"user":{"email":["a@x"]},"password":"p"}"#,
            Unread::NotText,
        ),
        (
            br#"{"user":{"email":"a@x"},"password":"p"} x"#,
            Unread::Malformed,
        ),
    ];
    for (body, want) in cases {
        let got = extract(&s, &json, None, &Bytes::copy_from_slice(body)).await;
        assert_eq!(got.err(), Some(want), "{}", String::from_utf8_lossy(body));
    }
    let got = extract(&s, &json, Some("email=x"), &Bytes::from_static(b"{}")).await;
    assert_eq!(got.err(), Some(Unread::FieldInQuery));
}

fn multipart_body(parts: &[(&str, &[u8])]) -> Bytes {
    let mut body = Vec::new();
    for (disposition, value) in parts {
        body.extend_from_slice(b"--XyZ\r\n");
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XyZ--\r\n");
    Bytes::from(body)
}

const MULTIPART: &str = "multipart/form-data; boundary=XyZ";

#[tokio::test]
async fn multipart_fields_are_read() {
    let body = multipart_body(&[
        ("Content-Disposition: form-data; name=\"email\"", b"m@x.io"),
        (
            "Content-Disposition: form-data; name=\"password\"",
            b"s3\xffcret",
        ),
    ]);
    let c = extract(
        &spec(BodyKind::Auto, "email", "password"),
        &headers(MULTIPART),
        None,
        &body,
    )
    .await
    .unwrap();
    assert_eq!(c.identifier, "m@x.io");
    assert_eq!(c.password.expose_secret(), b"s3\xffcret");
}

#[tokio::test]
async fn undecodable_multipart_parts_are_ambiguous() {
    let s = spec(BodyKind::Auto, "email", "password");
    let ok_email = (
        "Content-Disposition: form-data; name=\"email\"",
        &b"m@x.io"[..],
    );
    let ok_pw = (
        "Content-Disposition: form-data; name=\"password\"",
        &b"p"[..],
    );
    type Parts<'a> = Vec<(&'a str, &'a [u8])>;
    let cases: [(Parts, Unread); 6] = [
        (
            vec![
                ok_email,
                (
                    "Content-Disposition: form-data; name*=utf-8''password",
                    b"p",
                ),
            ],
            Unread::UndecodablePart,
        ),
        (
            vec![
                ok_email,
                (
                    "Content-Disposition: form-data; name=\"password\"\r\nContent-Transfer-Encoding: base64",
                    b"cA==",
                ),
            ],
            Unread::UndecodablePart,
        ),
        (
            vec![
                ok_email,
                (
                    "Content-Disposition: form-data; name=\"password\"; filename=\"p\"",
                    b"p",
                ),
            ],
            Unread::UndecodablePart,
        ),
        (vec![ok_email, ok_pw, ok_email], Unread::RepeatedField),
        (
            vec![
                ok_email,
                ok_pw,
                ("Content-Disposition: form-data; name=\"email[]\"", b"v@x"),
            ],
            Unread::AliasedField,
        ),
        (
            vec![
                ok_email,
                (
                    "Content-Disposition: form-data; name=\"a\"; name=\"password\"",
                    b"p",
                ),
            ],
            Unread::UndecodablePart,
        ),
    ];
    for (parts, want) in cases {
        let body = multipart_body(&parts);
        let got = extract(&s, &headers(MULTIPART), None, &body).await;
        assert_eq!(got.err(), Some(want), "{parts:?}");
    }
    let lf_only = Bytes::from_static(
        b"--XyZ\nContent-Disposition: form-data; name=\"email\"\n\nm@x.io\n--XyZ\nContent-Disposition: form-data; name=\"password\"\n\np\n--XyZ--\n",
    );
    let got = extract(&s, &headers(MULTIPART), None, &lf_only).await;
    assert_eq!(got.err(), Some(Unread::Malformed));
    let two_boundaries = headers("multipart/form-data; boundary=XyZ; boundary=Other");
    let body = multipart_body(&[ok_email, ok_pw]);
    let got = extract(&s, &two_boundaries, None, &body).await;
    assert_eq!(got.err(), Some(Unread::Malformed));
}

/// What a PHP-style (last wins) and a Go-style (first wins) form reader see for one field,
/// with exact names only: the two readings dripgate must never disagree with.
fn reference_readings(body: &[u8], field: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let values: Vec<Vec<u8>> = body
        .split(|&b| b == b'&')
        .filter_map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            (form_decode(k).as_slice() == field.as_bytes()).then(|| form_decode(v).to_vec())
        })
        .collect();
    (values.first().cloned(), values.last().cloned())
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("email".to_owned()),
        Just("password".to_owned()),
        Just("Email".to_owned()),
        Just("email[]".to_owned()),
        Just("pass%77ord".to_owned()),
        Just("email%00".to_owned()),
        Just("+password".to_owned()),
        Just("other".to_owned()),
        Just("x;email".to_owned()),
    ]
}

fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a%40x.io".to_owned()),
        Just("b%40x.io".to_owned()),
        Just("+a%40x.io%0B".to_owned()),
        Just("a%00%40x.io".to_owned()),
        Just("p%C3%A9".to_owned()),
        Just("p;q".to_owned()),
        Just(String::new()),
        "[a-z0-9%+]{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the field order, repetition, spelling, padding or encoding, dripgate either
    /// reads the user and password that a last-wins and a first-wins parser both read, or
    /// refuses to read any.
    #[test]
    fn a_reading_is_one_every_parser_shares(
        pairs in proptest::collection::vec((field_name(), field_value()), 0..6)
    ) {
        let body: Vec<u8> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes();
        let s = spec(BodyKind::Auto, "email", "password");
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got = rt.block_on(extract(&s, &headers(FORM), None, &Bytes::from(body.clone())));
        if let Ok(c) = got {
            let (first_id, last_id) = reference_readings(&body, "email");
            let (first_pw, last_pw) = reference_readings(&body, "password");
            prop_assert_eq!(&first_id, &last_id);
            prop_assert_eq!(&first_pw, &last_pw);
            let typed = String::from_utf8(first_id.unwrap()).unwrap();
            prop_assert_eq!(clean_identifier(&typed).unwrap(), c.identifier);
            prop_assert_eq!(first_pw.unwrap(), c.password.expose_secret().to_vec());
            // And no other spelling of either field is in the body.
            for (k, _) in &pairs {
                let key = form_decode(k.as_bytes());
                let exact = key.as_slice() == b"email" || key.as_slice() == b"password";
                prop_assert!(exact || k == "other", "{k} accepted beside the fields");
            }
        }
    }
}

#[tokio::test]
async fn a_forgot_password_identifier_is_read_canonically_or_refused() {
    let read = |ct: &'static str, body: &'static [u8], query: Option<&'static str>| async move {
        extract_identifier(
            BodyKind::Auto,
            "user_login",
            &headers(ct),
            query,
            &Bytes::from_static(body),
        )
        .await
    };
    assert_eq!(
        read(FORM, b"user_login=+Al%40x.io%00&redirect_to=", None).await,
        Ok("Al@x.io".to_owned())
    );
    assert_eq!(
        read("application/json", br#"{"user_login":"al@x.io"}"#, None).await,
        Ok("al@x.io".to_owned())
    );
    assert_eq!(
        read(FORM, b"user_login=a&user_login=b", None).await,
        Err(Unread::RepeatedField)
    );
    assert_eq!(
        read(FORM, b"user_login[]=a", None).await,
        Err(Unread::AliasedField)
    );
    assert_eq!(
        read(FORM, b"user_login=a", Some("user_login=b")).await,
        Err(Unread::FieldInQuery)
    );
    assert_eq!(
        read(FORM, b"log=a&pwd=b", None).await,
        Err(Unread::NoCredentials)
    );
    assert_eq!(
        read(FORM, b"user_login=a%E2%80%8Bb", None).await,
        Err(Unread::ControlCharacters)
    );
    assert_eq!(
        read(
            "application/json",
            br#"{"user_login":"a","user_login":"b"}"#,
            None
        )
        .await,
        Err(Unread::RepeatedField)
    );
}
