//! The fake's own checks: its SigV4 verifier (written apart from the client's `aws-sigv4`)
//! against AWS's published test vectors, and the botocore model validation.

use std::path::{Path, PathBuf};

use dripgate::testkit::cognito::sigv4::{
    SignedParts, canonical_request, parse_authorization, verify,
};
use serde_json::{Value, json};

use crate::provider_common::cognito::model;

fn suite() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/provider_specs/aws-sigv4-test-suite/v4")
}

struct Case {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_case(dir: &Path) -> Case {
    let text = std::fs::read_to_string(dir.join("header-signed-request.txt")).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap().to_string();
    let target = parts.next().unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    Case {
        method,
        path: path.into(),
        query: query.into(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn header<'a>(case: &'a Case, name: &str) -> &'a str {
    case.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap()
}

#[test]
fn the_fakes_sigv4_verifier_reproduces_every_published_vector() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(suite())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 20, "the vendored subset");
    for dir in cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let context: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap())
                .unwrap();
        let secret = context["credentials"]["secret_access_key"]
            .as_str()
            .unwrap();
        let case = read_case(&dir);
        let auth = parse_authorization(header(&case, "authorization")).unwrap();
        let amz_date = header(&case, "x-amz-date").to_string();
        let parts = SignedParts {
            method: &case.method,
            path: &case.path,
            query: &case.query,
            headers: case.headers.clone(),
            payload: &case.body,
        };
        let expected = std::fs::read_to_string(dir.join("header-canonical-request.txt")).unwrap();
        assert_eq!(
            canonical_request(&parts, &auth.signed_headers).trim_end(),
            expected.trim_end(),
            "{name}: canonical request"
        );
        let signature = std::fs::read_to_string(dir.join("header-signature.txt")).unwrap();
        assert_eq!(auth.signature, signature.trim(), "{name}");
        assert!(
            verify(&parts, &auth, &amz_date, secret),
            "{name}: signature"
        );
        assert!(!verify(&parts, &auth, &amz_date, "wrong-secret"), "{name}");
        let mut tampered = case.body.clone();
        tampered.push(b'x');
        let changed = SignedParts {
            payload: &tampered,
            ..parts.clone()
        };
        assert!(
            !verify(&changed, &auth, &amz_date, secret),
            "{name}: body change"
        );
    }
}

#[test]
fn the_model_check_refuses_what_the_model_refuses() {
    let m = model();
    assert_eq!(m.target_prefix(), "AWSCognitoIdentityProviderService");
    assert_eq!(m.metadata("jsonVersion"), Some("1.1"));
    assert_eq!(m.metadata("endpointPrefix"), Some("cognito-idp"));
    let pool = "eu-west-1_FakePool1";
    let good = json!({"UserPoolId": pool, "Username": "ada@example.com",
        "UserAttributes": [{"Name": "email", "Value": "ada@example.com"}], "MessageAction": "SUPPRESS"});
    m.validate_input("AdminCreateUser", &good).unwrap();
    for (op, body, why) in [
        (
            "AdminCreateUser",
            json!({"UserPoolId": pool}),
            "required member Username",
        ),
        (
            "AdminCreateUser",
            json!({"UserPoolId": pool, "Username": "a", "Extra": 1}),
            "unknown member Extra",
        ),
        (
            "AdminCreateUser",
            json!({"UserPoolId": pool, "Username": "a", "MessageAction": "DROP"}),
            "enum",
        ),
        (
            "AdminCreateUser",
            json!({"UserPoolId": "no-underscore", "Username": "a"}),
            "pattern",
        ),
        (
            "AdminCreateUser",
            json!({"UserPoolId": pool, "Username": ""}),
            "minimum",
        ),
        (
            "AdminSetUserPassword",
            json!({"UserPoolId": pool, "Username": "a", "Password": "x", "Permanent": "yes"}),
            "boolean",
        ),
        (
            "AdminSetUserPassword",
            json!({"UserPoolId": pool, "Username": "a", "Password": "   "}),
            "pattern",
        ),
        (
            "ListUsers",
            json!({"UserPoolId": pool, "Limit": 61}),
            "range",
        ),
        (
            "ListUsers",
            json!({"UserPoolId": pool, "Filter": "x".repeat(257)}),
            "maximum",
        ),
        (
            "AdminCreateUser",
            json!({"UserPoolId": pool, "Username": "a", "UserAttributes": [{"Value": "v"}]}),
            "required member Name",
        ),
        ("AdminMakeCoffee", json!({}), "not in the model"),
    ] {
        let err = m.validate_input(op, &body).unwrap_err();
        assert!(err.contains(why), "{op} {body}: {err}");
    }
    for op in ["AdminCreateUser", "AdminSetUserPassword"] {
        assert!(
            m.errors(op)
                .contains(&"InvalidPasswordException".to_string()),
            "{op}"
        );
    }
    assert!(
        m.errors("AdminCreateUser")
            .contains(&"UsernameExistsException".to_string())
    );
    assert!(
        m.errors("AdminUpdateUserAttributes")
            .contains(&"AliasExistsException".to_string())
    );
}
