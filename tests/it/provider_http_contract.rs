//! The generic HTTP provider's contract and its documentation: the contract validator built from
//! docs/generic-http-provider.openapi.yaml, config validation, the capability table and the
//! Python verifier in docs/PROVIDERS.md checked against the code, and `dripgate provider check`
//! with a `kind = "http"` config file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::provider_common;
use crate::provider_http::{ada, client, client_with};

use std::sync::Arc;
use std::time::Duration;

use dripgate::provider::generic::sign;
use dripgate::provider::generic::{GenericHttpConfig, HttpPasswordTransfer};
use dripgate::provider::{HashingMethod, Password, Provider};
use dripgate::testkit::generic::{DEFAULT_KEY, DEFAULT_KEY_ID};
use provider_common::*;
use secrecy::SecretString;

#[test]
fn config_validation_names_the_problem() {
    let base = || GenericHttpConfig {
        base_url: "https://idp.internal.example/dripgate/v1".into(),
        key_id: "2026-01".into(),
        signing_key: DEFAULT_KEY.to_string().into(),
        require_password_change: false,
        import_hash_methods: Vec::new(),
        password_transfer: HttpPasswordTransfer::Plaintext,
        mark_email_verified: Some(true),
    };
    assert!(base().validate().is_ok());
    let mut c = base();
    c.signing_key = "short".to_string().into();
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("at least 32")
    );
    let mut c = base();
    c.key_id = "has space".into();
    assert!(c.validate().unwrap_err().to_string().contains("key_id"));
    let mut c = base();
    c.import_hash_methods = vec!["argon2".into()];
    assert!(c.validate().unwrap_err().to_string().contains("argon2"));
    let mut c = base();
    c.password_transfer = HttpPasswordTransfer::LegacyHash;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("legacy_hash")
    );
    let mut c = base();
    c.base_url = "ftp://x".into();
    assert!(c.validate().is_err());
}

#[test]
fn the_contract_validator_rejects_what_the_contract_rejects() {
    use dripgate::testkit::generic::SpecRequest;
    let v = http_validator();
    let mut headers = hyper::HeaderMap::new();
    for (name, value) in [
        (sign::KEY_ID, "k1"),
        (sign::TIMESTAMP, "1767225600"),
        (sign::NONCE, "00112233445566778899aabbccddeeff"),
        (sign::SIGNATURE, &format!("v1={}", "0".repeat(64))),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    let req = |operation: &'static str,
               method: &'static str,
               path: &'static str,
               body: &'static [u8]| { (operation, method, path, body) };
    let check = |(operation, method, path, body): (&str, &str, &str, &[u8]),
                 query: &[(String, String)],
                 headers: &hyper::HeaderMap| {
        v(&SpecRequest {
            operation,
            method,
            path,
            query,
            headers,
            body,
        })
    };
    let email = [("email".to_string(), "ada@example.com".to_string())];
    assert!(
        check(
            req("findUserByEmail", "GET", "/users", b""),
            &email,
            &headers
        )
        .is_ok()
    );
    let extra = [email[0].clone(), ("limit".into(), "1".into())];
    assert!(
        check(
            req("findUserByEmail", "GET", "/users", b""),
            &extra,
            &headers
        )
        .is_err()
    );
    assert!(check(req("findUserByEmail", "GET", "/users", b""), &[], &headers).is_err());
    assert!(check(req("deleteUser", "DELETE", "/users/u1", b""), &[], &headers).is_err());
    // createUser needs the Idempotency-Key header and a body without unknown properties.
    let body: &[u8] = br#"{"email":"ada@example.com","email_verified":true,"password":"pw"}"#;
    assert!(check(req("createUser", "POST", "/users", body), &[], &headers).is_err());
    let mut with_key = headers.clone();
    with_key.insert(
        sign::IDEMPOTENCY_KEY,
        "ffeeddccbbaa99887766554433221100".parse().unwrap(),
    );
    assert!(check(req("createUser", "POST", "/users", body), &[], &with_key).is_ok());
    let unknown: &[u8] = br#"{"email":"ada@example.com","email_verified":true,"admin":true}"#;
    assert!(check(req("createUser", "POST", "/users", unknown), &[], &with_key).is_err());
    let neither: &[u8] = br#"{}"#;
    assert!(
        check(
            req("setPassword", "PUT", "/users/u1/password", neither),
            &[],
            &headers
        )
        .is_err()
    );
    let hash: &[u8] = br#"{"password_hash":{"method":"argon2","hash":"x"}}"#;
    assert!(
        check(
            req("setPassword", "PUT", "/users/u1/password", hash),
            &[],
            &headers
        )
        .is_err()
    );
    let mut unsigned = headers.clone();
    unsigned.remove(sign::SIGNATURE);
    assert!(
        check(
            req("getCapabilities", "GET", "/capabilities", b""),
            &[],
            &unsigned
        )
        .is_err()
    );
}

/// The cells of the row of `provider` in docs/PROVIDERS.md's capability table.
fn capability_row(doc: &str, provider: &str) -> Vec<String> {
    let table = doc
        .split("| provider | create sets the password |")
        .nth(1)
        .expect("the capability table");
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("| {provider} |")))
        .unwrap_or_else(|| panic!("no row for {provider}"));
    line.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

fn imports_cell(methods: &[HashingMethod]) -> String {
    if methods.is_empty() {
        return "none".into();
    }
    methods
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn the_capability_table_matches_the_code() {
    use dripgate::provider::authgear::AuthgearClient;
    use dripgate::provider::kinde::KindeClient;
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/PROVIDERS.md"),
    )
    .unwrap();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let h = http(Duration::from_secs(5));
    let kinde = dripgate::provider::config::KindeConfig {
        base_url: "http://127.0.0.1:9".into(),
        client_id: "c".into(),
        client_secret: "s".to_string().into(),
        audience: None,
        scope: None,
        password_transfer: Default::default(),
        bcrypt_cost: 4,
        is_temporary_password: false,
        mark_email_verified: Some(true),
    };
    let caps = KindeClient::new(&kinde, &h, &fast_limits(), None)
        .unwrap()
        .capabilities();
    assert_eq!(
        capability_row(&doc, "Kinde")[1..],
        [
            yes_no(caps.atomic_create_with_password).to_string(),
            imports_cell(caps.imports),
            yes_no(caps.stores_legacy_id).to_string()
        ]
    );
    let authgear = dripgate::provider::config::AuthgearConfig {
        base_url: "http://127.0.0.1:9".into(),
        project_id: "p".into(),
        key_id: "k".into(),
        private_key_pem: read_spec_file("authgear-test-key.pem").into(),
        jwt_lifetime: Duration::from_secs(300),
        login_id_key: "email".into(),
        set_password_expired: false,
    };
    let caps = AuthgearClient::new(&authgear, &h, &fast_limits(), None)
        .unwrap()
        .capabilities();
    assert_eq!(
        capability_row(&doc, "Authgear")[1..],
        [
            yes_no(caps.atomic_create_with_password).to_string(),
            imports_cell(caps.imports),
            yes_no(caps.stores_legacy_id).to_string()
        ]
    );
    let row = capability_row(&doc, "Generic HTTP");
    let mut cfg = GenericHttpConfig {
        base_url: "http://127.0.0.1:9/v1".into(),
        key_id: "k".into(),
        signing_key: DEFAULT_KEY.to_string().into(),
        require_password_change: false,
        import_hash_methods: dripgate::provider::generic::config::CONTRACT_METHODS
            .iter()
            .map(|m| m.as_str().to_string())
            .collect(),
        password_transfer: HttpPasswordTransfer::Plaintext,
        mark_email_verified: Some(true),
    };
    let caps = client_with(&cfg, Duration::from_secs(5)).capabilities();
    assert!(row[1].starts_with(yes_no(caps.atomic_create_with_password)));
    assert_eq!(
        row[2],
        format!(
            "those of {} in `import_hash_methods`",
            imports_cell(caps.imports)
        )
    );
    assert_eq!(row[3], yes_no(caps.stores_legacy_id));
    cfg.password_transfer = HttpPasswordTransfer::LegacyHash;
    let caps = client_with(&cfg, Duration::from_secs(5)).capabilities();
    assert!(row[1].contains(&format!(
        "{} under `password_transfer = \"legacy_hash\"`",
        yes_no(caps.atomic_create_with_password)
    )));
}

/// The Python verifier docs/PROVIDERS.md shows, run on requests the client signed (captured by
/// a validator on the fake): each verifies, a tampered body and a replay do not. Skipped (with
/// a message) where there is no `python3`.
#[tokio::test]
async fn the_documented_python_verifier_agrees() {
    use base64::Engine;
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/PROVIDERS.md"),
    )
    .unwrap();
    let python = doc
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a python block")
        .to_string();
    let fake = http_fake().await;
    let captured = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = captured.clone();
    let contract = http_validator();
    fake.set_validator(Arc::new(
        move |req: &dripgate::testkit::generic::SpecRequest<'_>| {
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().into()))
                .collect();
            sink.lock().unwrap().push(serde_json::json!({
                "method": req.method, "target": format!("/v1{}", req.path), "headers": headers,
                "body": base64::engine::general_purpose::STANDARD.encode(req.body),
            }));
            contract(req)
        },
    ));
    let c = client(&fake);
    let secret = SecretString::from("correct horse battery staple");
    let id = c
        .create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
        .unwrap()
        .id;
    c.set_password(&id, Password::from_secret_string(&secret))
        .await
        .unwrap();
    let mut requests = captured.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let mut tampered = requests[0].clone();
    tampered["body"] = base64::engine::general_purpose::STANDARD
        .encode(b"{}")
        .into();
    requests.push(tampered);
    requests.push(requests[0].clone());
    let driver = format!(
        "{python}\nimport base64, json, sys\nkeys = {{{:?}: {:?}.encode()}}\nseen = {{}}\n\
         out = [verify_dripgate_request(keys, seen, r['method'], r['target'], r['headers'], \
         base64.b64decode(r['body'])) for r in json.load(sys.stdin)]\nprint(json.dumps(out))\n",
        DEFAULT_KEY_ID, DEFAULT_KEY
    );
    let run = std::process::Command::new("python3")
        .arg("-c")
        .arg(&driver)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = run else {
        eprintln!("skipped: no python3");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&requests).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let verdicts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        verdicts,
        serde_json::json!([null, null, "bad_signature", "replayed_nonce"])
    );
}

#[tokio::test]
async fn provider_check_reads_an_http_config_file_and_exits_0_or_1() {
    use dripgate::cli::provider_check as check;
    use std::io::Write;
    let fake = http_fake().await;
    let config = |key: &str| {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(
            f,
            "[provider]\nkind = \"http\"\n[provider.http_provider]\nbase_url = \"{}\"\n\
             key_id = \"{DEFAULT_KEY_ID}\"\nsigning_key = \"{key}\"\nrequire_password_change = true\n\
             import_hash_methods = [\"bcrypt\"]\n",
            fake.base_url()
        )
        .unwrap();
        f
    };
    let good = config(DEFAULT_KEY);
    let mut out = Vec::new();
    assert_eq!(check::command(good.path(), &mut out).await, 0);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().all(|l| l.starts_with("ok")), "{text}");

    let bad = config("s3cret-value-s3cret-value-s3cret-value");
    let mut out = Vec::new();
    assert_eq!(check::command(bad.path(), &mut out).await, 1);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("FAIL  signature: http check: authentication failed"),
        "{text}"
    );
    assert!(text.contains("bad_signature"), "{text}");
    assert!(!text.contains("s3cret-value"));

    let short = config("short");
    let mut out = Vec::new();
    assert_eq!(check::command(short.path(), &mut out).await, 1);
    assert!(String::from_utf8(out).unwrap().contains("at least 32"));
}

#[test]
fn the_signing_key_may_come_from_a_file_named_in_the_environment() {
    use std::io::Write;
    let mut key_file = tempfile::NamedTempFile::new().unwrap();
    writeln!(key_file, "{DEFAULT_KEY}").unwrap();
    let path = key_file.path().display().to_string();
    let env = [
        ("DRIPGATE_PROVIDER__KIND", "http"),
        (
            "DRIPGATE_PROVIDER__HTTP_PROVIDER__BASE_URL",
            "https://idp.internal.example/v1",
        ),
        ("DRIPGATE_PROVIDER__HTTP_PROVIDER__KEY_ID", "2026-01"),
        ("DRIPGATE_PROVIDER__HTTP_PROVIDER__SIGNING_KEY_FILE", &path),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let config =
        dripgate::config::parse_str("[upstream]\nurl = \"http://127.0.0.1:1\"\n", "t.toml", env)
            .unwrap();
    let provider = config.provider.unwrap();
    provider.validate().unwrap();
    let section = provider.http_provider.unwrap();
    assert_eq!(
        section.signing_key.expose(),
        DEFAULT_KEY,
        "trailing newline removed"
    );
    let redacted = config_redacted(&section);
    assert!(!redacted.contains(DEFAULT_KEY), "{redacted}");
}

fn config_redacted(section: &GenericHttpConfig) -> String {
    toml::to_string(section).unwrap()
}
