//! Contract tests of the generic HTTP provider: the client against the reference fake, every
//! request checked against docs/generic-http-provider.openapi.yaml and its signature verified.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::provider_common;

use std::sync::Arc;
use std::time::Duration;

use dripgate::provider::generic::sign::{self, Signed, SigningKey};
use dripgate::provider::generic::{GenericHttpClient, GenericHttpConfig, HttpPasswordTransfer};
use dripgate::provider::{
    ErrorClass, HashingMethod, ImportedHash, NewUser, Password, Provider, ProviderError,
    ProviderMetrics, ProviderUserId, SaltPlacement,
};
use dripgate::testkit::Fault;
use dripgate::testkit::generic::{
    DEFAULT_KEY, DEFAULT_KEY_ID, FakeGenericHttp, FakeGenericHttpOptions,
};
use provider_common::*;
use secrecy::SecretString;

pub(crate) fn client_with(cfg: &GenericHttpConfig, request_timeout: Duration) -> GenericHttpClient {
    GenericHttpClient::new(cfg, &http(request_timeout), &fast_limits(), None).unwrap()
}

pub(crate) fn client(fake: &FakeGenericHttp) -> GenericHttpClient {
    client_with(&http_provider_config(fake), Duration::from_secs(5))
}

pub(crate) fn ada() -> NewUser {
    NewUser {
        email: "Ada@Example.com".into(),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        legacy_id: Some("legacy-4711".into()),
    }
}

fn assert_clean(fake: &FakeGenericHttp) {
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
    assert!(
        fake.auth_refusals().is_empty(),
        "{:?}",
        fake.auth_refusals()
    );
}

#[tokio::test]
async fn every_operation_works_and_the_password_signs_in_at_the_fake() {
    let fake = http_fake().await;
    let c = client(&fake);
    assert_eq!(c.find_user_by_email("ada@example.com").await.unwrap(), None);
    let secret = SecretString::from("correct horse battery staple");
    let created = c
        .create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
        .unwrap();
    assert!(created.password_set, "the password goes with the create");
    assert!(c.capabilities().atomic_create_with_password);
    let found = c
        .find_user_by_email("ADA@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(
        found.legacy_id.as_deref(),
        Some("legacy-4711"),
        "legacy id echoed"
    );
    let user = fake.user_by_email("ada@example.com").unwrap();
    assert_eq!(user.email, "ada@example.com");
    assert!(user.email_verified);
    assert_eq!(user.given_name.as_deref(), Some("Ada"));
    assert_eq!(
        user.password.as_ref().unwrap().method,
        "bcrypt",
        "hashed on receipt"
    );
    assert!(fake.verify_password("ada@example.com", b"correct horse battery staple"));

    let new = SecretString::from("a new password, longer");
    c.set_password(&created.id, Password::from_secret_string(&new))
        .await
        .unwrap();
    assert!(fake.verify_password("ada@example.com", b"a new password, longer"));
    assert!(!fake.verify_password("ada@example.com", b"correct horse battery staple"));
    c.require_password_change(&created.id).await.unwrap();
    assert!(
        fake.user_by_email("ada@example.com")
            .unwrap()
            .password_change_required
    );
    for op in [
        "findUserByEmail",
        "createUser",
        "setPassword",
        "requirePasswordChange",
    ] {
        assert!(fake.calls(op) >= 1, "{op}");
    }
    assert_clean(&fake);
}

#[tokio::test]
async fn an_unknown_user_id_is_not_found() {
    let fake = http_fake().await;
    let c = client(&fake);
    let secret = SecretString::from("long enough password");
    let id = ProviderUserId("usr_does/not exist".into());
    let err = c
        .set_password(&id, Password::from_secret_string(&secret))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    assert_clean(&fake);
}

/// Sends one hand-signed request (as an operator's test client would) and returns the status
/// and the error code.
async fn raw(
    fake: &FakeGenericHttp,
    key: &str,
    timestamp: u64,
    nonce: &str,
    target: &str,
    body_signed: &[u8],
    body_sent: &[u8],
) -> (u16, String) {
    let ts = timestamp.to_string();
    let signed = Signed {
        key_id: DEFAULT_KEY_ID,
        timestamp: &ts,
        nonce,
        method: "PUT",
        target,
        idempotency_key: "",
        body: body_signed,
    };
    let signature = SigningKey::new(key.as_bytes()).unwrap().sign(&signed);
    let origin = fake.base_url().replace("/v1", "");
    let resp = reqwest::Client::new()
        .put(format!("{origin}{target}"))
        .header(sign::KEY_ID, DEFAULT_KEY_ID)
        .header(sign::TIMESTAMP, ts)
        .header(sign::NONCE, nonce)
        .header(sign::SIGNATURE, signature)
        .header("content-type", "application/json")
        .body(body_sent.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    (status, v["code"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn replayed_tampered_stale_and_foreign_requests_are_refused() {
    let fake = http_fake().await;
    let id = fake.insert_user("bo@example.com", None);
    let target = format!("/v1/users/{id}/password");
    let body = br#"{"password":"the attacker's choice"}"#;
    let now = sign::unix_now();
    let nonce = sign::nonce();

    // A correctly signed request works once; the same bytes again are a replay.
    assert_eq!(
        raw(&fake, DEFAULT_KEY, now, &nonce, &target, body, body).await,
        (204, String::new())
    );
    assert_eq!(
        raw(&fake, DEFAULT_KEY, now, &nonce, &target, body, body).await,
        (401, "replayed_nonce".into())
    );
    // The body changed after signing.
    let tampered = br#"{"password":"another choice entirely"}"#;
    assert_eq!(
        raw(
            &fake,
            DEFAULT_KEY,
            now,
            &sign::nonce(),
            &target,
            body,
            tampered
        )
        .await,
        (401, "bad_signature".into())
    );
    // Signed with another key.
    assert_eq!(
        raw(
            &fake,
            "not-the-key-not-the-key-not-the-key!",
            now,
            &sign::nonce(),
            &target,
            body,
            body
        )
        .await,
        (401, "bad_signature".into())
    );
    // Outside the replay window, either way.
    for ts in [now - 301, now + 301] {
        assert_eq!(
            raw(&fake, DEFAULT_KEY, ts, &sign::nonce(), &target, body, body).await,
            (401, "stale_timestamp".into())
        );
    }
    assert_eq!(fake.auth_refusals().len(), 5, "{:?}", fake.auth_refusals());
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
    // Signed correctly, but the body breaks the contract (an unknown property).
    let extra = br#"{"password":"the attacker's choice","admin":true}"#;
    assert_eq!(
        raw(
            &fake,
            DEFAULT_KEY,
            now,
            &sign::nonce(),
            &target,
            extra,
            extra
        )
        .await,
        (400, "invalid_request".into())
    );
    assert_eq!(
        fake.spec_violations().len(),
        1,
        "{:?}",
        fake.spec_violations()
    );
    assert!(fake.verify_password("bo@example.com", b"the attacker's choice"));
    assert!(!fake.verify_password("bo@example.com", b"another choice entirely"));

    // The client with a wrong key: refused, typed as an authentication failure, not retried.
    let mut cfg = http_provider_config(&fake);
    cfg.signing_key = "a-wrong-key-a-wrong-key-a-wrong-key".to_string().into();
    let before = fake.calls("findUserByEmail");
    let err = client_with(&cfg, Duration::from_secs(5))
        .find_user_by_email("bo@example.com")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(err.to_string().contains("bad_signature"), "{err}");
    assert_eq!(fake.calls("findUserByEmail"), before + 1);
}

#[tokio::test]
async fn a_key_id_the_receiver_does_not_hold_is_refused_and_a_rotation_works() {
    let fake = http_fake_with(FakeGenericHttpOptions {
        keys: vec![
            (
                "2026-01".into(),
                "old-key-old-key-old-key-old-key-old-key".into(),
            ),
            (
                "2026-07".into(),
                "new-key-new-key-new-key-new-key-new-key".into(),
            ),
        ],
        ..Default::default()
    })
    .await;
    let mut cfg = http_provider_config(&fake);
    for (id, key) in [
        ("2026-01", "old-key-old-key-old-key-old-key-old-key"),
        ("2026-07", "new-key-new-key-new-key-new-key-new-key"),
    ] {
        cfg.key_id = id.into();
        cfg.signing_key = key.to_string().into();
        assert_eq!(
            client_with(&cfg, Duration::from_secs(5))
                .find_user_by_email("x@example.com")
                .await
                .unwrap(),
            None
        );
    }
    cfg.key_id = "2025-07".into();
    let err = client_with(&cfg, Duration::from_secs(5))
        .find_user_by_email("x@example.com")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown_key"), "{err}");
}

#[tokio::test]
async fn a_429_is_honoured_and_no_call_is_made_while_waiting() {
    let fake = http_fake().await;
    let c = Arc::new(client(&fake));
    c.find_user_by_email("warm@example.com").await.unwrap();
    fake.fail_next("findUserByEmail", 1, Fault::RateLimit { reset_secs: 1 });
    let first = {
        let c = c.clone();
        tokio::spawn(async move { c.find_user_by_email("a@example.com").await })
    };
    for _ in 0..200 {
        if fake.calls("findUserByEmail") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = c.find_user_by_email("b@example.com").await;
    assert!(first.await.unwrap().is_ok());
    assert!(second.is_ok());
    assert_eq!(
        fake.calls("findUserByEmail"),
        4,
        "warm-up, 429, the retry, the second caller"
    );
    let arrivals: Vec<_> = fake
        .arrivals()
        .into_iter()
        .filter(|(op, _)| op == "findUserByEmail")
        .collect();
    for (_, at) in &arrivals[2..] {
        assert!(
            *at >= arrivals[1].1 + Duration::from_secs(1),
            "a call was made during the pause"
        );
    }
    assert_clean(&fake);
}

#[tokio::test]
async fn a_create_that_commits_then_hangs_is_resent_with_its_key_and_makes_one_user() {
    let fake = http_fake().await;
    let c = client_with(&http_provider_config(&fake), Duration::from_millis(500));
    fake.fail_next("createUser", 1, Fault::CommitThenHang);
    let secret = SecretString::from("correct horse battery staple");
    let created = c
        .create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
        .unwrap();
    assert_eq!(
        fake.calls("createUser"),
        2,
        "the lost answer's create was resent"
    );
    assert_eq!(fake.users().len(), 1, "the resend made no second user");
    assert_eq!(
        fake.users()[0].id,
        created.id.as_str(),
        "the resend got the first user"
    );
    assert!(fake.verify_password("ada@example.com", b"correct horse battery staple"));
    assert_clean(&fake);
}

#[tokio::test]
async fn transient_failures_are_retried_a_reset_create_included() {
    let fake = http_fake().await;
    let c = client(&fake);
    fake.fail_next("findUserByEmail", 1, Fault::ResetConnection);
    fake.fail_next("findUserByEmail", 1, Fault::Status(503));
    assert_eq!(c.find_user_by_email("a@example.com").await.unwrap(), None);
    assert_eq!(fake.calls("findUserByEmail"), 3);
    fake.fail_next("createUser", 1, Fault::Status(500));
    fake.fail_next("createUser", 1, Fault::ResetConnection);
    let secret = SecretString::from("long enough password");
    c.create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
        .unwrap();
    assert_eq!(fake.calls("createUser"), 3);
    assert_eq!(fake.users().len(), 1);
    // Permanent answers are not retried.
    fake.fail_next("setPassword", 1, Fault::Status(400));
    let id = ProviderUserId(fake.users()[0].id.clone());
    let err = c
        .set_password(&id, Password::from_secret_string(&secret))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert_eq!(fake.calls("setPassword"), 1);
    assert_clean(&fake);
}

#[tokio::test]
async fn policy_rejection_is_typed_with_its_reasons_and_nothing_is_created() {
    let fake = http_fake_with(FakeGenericHttpOptions {
        min_password_length: 64,
        ..Default::default()
    })
    .await;
    let c = client(&fake);
    let secret = SecretString::from("short but legacy liked it");
    match c
        .create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
    {
        Err(ProviderError::PasswordRejected { reasons, .. }) => assert_eq!(reasons, ["too_short"]),
        other => panic!("expected PasswordRejected, got {other:?}"),
    }
    assert!(fake.users().is_empty());
    assert_eq!(
        fake.calls("createUser"),
        1,
        "a policy refusal is not retried"
    );
    let id = ProviderUserId(fake.insert_user("ada@example.com", None));
    fake.fail_next("setPassword", 1, Fault::PasswordPolicy);
    let long = SecretString::from("x".repeat(80));
    let err = c
        .set_password(&id, Password::from_secret_string(&long))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PasswordRejected);
    assert!(!err.to_string().contains("short but legacy"), "{err}");
    assert_clean(&fake);
}

#[tokio::test]
async fn duplicate_email_on_create_is_already_exists_with_the_existing_id() {
    let fake = http_fake().await;
    let existing = fake.insert_user("ada@example.com", Some("other-system-1"));
    let c = client(&fake);
    let secret = SecretString::from("long enough password");
    match c
        .create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
    {
        Err(ProviderError::AlreadyExists {
            existing_id: Some(id),
            ..
        }) => {
            assert_eq!(id.as_str(), existing)
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(fake.users().len(), 1);
    let found = c
        .find_user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.legacy_id.as_deref(), Some("other-system-1"));
    assert_clean(&fake);
}

fn md5_hash() -> ImportedHash {
    use md5::Digest;
    let mut hash = ImportedHash::new(
        HashingMethod::Md5,
        hex::encode(md5::Md5::digest(b"x9Qhunter22")),
    );
    hash.salt = Some("x9Q".to_string().into());
    hash.salt_position = Some(SaltPlacement::Prefix);
    hash
}

#[tokio::test]
async fn legacy_hashes_are_imported_where_configured_and_refusals_are_typed() {
    let fake = http_fake_with(FakeGenericHttpOptions {
        hash_methods: vec!["md5".into(), "bcrypt".into()],
        ..Default::default()
    })
    .await;
    let mut cfg = http_provider_config(&fake);
    cfg.import_hash_methods = vec!["md5".into(), "sha256".into()];
    cfg.password_transfer = HttpPasswordTransfer::LegacyHash;
    let c = client_with(&cfg, Duration::from_secs(5));
    let caps = c.capabilities();
    assert!(caps.prefers_legacy_hash && !caps.atomic_create_with_password);
    assert_eq!(caps.imports, [HashingMethod::Md5, HashingMethod::Sha256]);
    let secret = SecretString::from("hunter22");
    let created = c
        .create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
        .unwrap();
    assert!(
        !created.password_set,
        "under legacy_hash the create carries no password"
    );
    c.import_legacy_hash(&created.id, &md5_hash())
        .await
        .unwrap();
    let stored = fake
        .user_by_email("ada@example.com")
        .unwrap()
        .password
        .unwrap();
    assert_eq!(
        (stored.method.as_str(), stored.salt_position.as_deref()),
        ("md5", Some("prefix"))
    );
    assert!(fake.verify_password("ada@example.com", b"hunter22"));
    assert!(!fake.verify_password("ada@example.com", b"hunter23"));

    // Configured, but the endpoint does not import it: Invalid, the caller sends the password.
    let sha = ImportedHash::new(HashingMethod::Sha256, "ab".repeat(32));
    let err = c.import_legacy_hash(&created.id, &sha).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
    assert!(err.to_string().contains("unsupported_hash_method"), "{err}");
    // Not configured: refused without a call.
    let calls = fake.calls("setPassword");
    let bcrypt = ImportedHash::new(HashingMethod::Bcrypt, "$2b$04$abcdefghijklmnopqrstuu");
    assert_eq!(
        c.import_legacy_hash(&created.id, &bcrypt)
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Unsupported
    );
    assert_eq!(fake.calls("setPassword"), calls);
    assert_clean(&fake);
}

#[tokio::test]
async fn require_password_change_is_unsupported_where_the_endpoint_lacks_it() {
    let fake = http_fake_with(FakeGenericHttpOptions {
        require_password_change: false,
        ..Default::default()
    })
    .await;
    let id = ProviderUserId(fake.insert_user("ada@example.com", None));
    let mut cfg = http_provider_config(&fake);
    assert!(!cfg.require_password_change);
    let err = client_with(&cfg, Duration::from_secs(5))
        .require_password_change(&id)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unsupported);
    assert_eq!(fake.calls("requirePasswordChange"), 0);
    // Configured on although the endpoint answers 501.
    cfg.require_password_change = true;
    let err = client_with(&cfg, Duration::from_secs(5))
        .require_password_change(&id)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unsupported, "{err}");
    assert_eq!(fake.calls("requirePasswordChange"), 1);
    assert_clean(&fake);
}

#[tokio::test]
async fn check_reports_signature_capabilities_and_a_find() {
    let fake = http_fake_with(FakeGenericHttpOptions {
        hash_methods: vec!["bcrypt".into()],
        ..Default::default()
    })
    .await;
    let good = client(&fake).check_credentials().await;
    assert!(good.ok(), "{good:?}");
    assert_eq!(good.lines.len(), 3);
    let caps = good.lines[1].1.clone().unwrap();
    assert!(
        caps.contains("require_password_change, import_hash") && caps.contains("bcrypt"),
        "{caps}"
    );

    let mut cfg = http_provider_config(&fake);
    cfg.import_hash_methods = vec!["bcrypt".into(), "pbkdf2".into()];
    let r = client_with(&cfg, Duration::from_secs(5))
        .check_credentials()
        .await;
    assert!(!r.ok());
    assert!(
        r.lines[1]
            .1
            .clone()
            .unwrap_err()
            .contains("hash method pbkdf2"),
        "{r:?}"
    );

    let mut cfg = http_provider_config(&fake);
    cfg.signing_key = "s3cret-but-wrong-s3cret-but-wrong-s3cret"
        .to_string()
        .into();
    let r = client_with(&cfg, Duration::from_secs(5))
        .check_credentials()
        .await;
    assert_eq!(r.lines.len(), 1);
    assert_eq!(r.lines[0].0, "signature");
    let line = r.lines[0].1.clone().unwrap_err();
    assert!(line.contains("bad_signature"), "{line}");
    assert!(!line.contains("s3cret"), "{line}");
}

#[tokio::test]
async fn metrics_count_calls_by_operation_and_status() {
    let fake = http_fake().await;
    let registry = prometheus::Registry::new();
    let metrics = ProviderMetrics::register(&registry).unwrap();
    let c = GenericHttpClient::new(
        &http_provider_config(&fake),
        &http(Duration::from_secs(5)),
        &fast_limits(),
        Some(metrics),
    )
    .unwrap();
    fake.fail_next("findUserByEmail", 1, Fault::Status(500));
    c.find_user_by_email("a@example.com").await.unwrap();
    let text = dripgate::metrics::render(&registry).unwrap();
    for status in ["ok", "transient"] {
        let series = format!(
            r#"dripgate_provider_requests_total{{operation="find_user",provider="http",status="{status}"}} 1"#
        );
        assert!(text.contains(&series), "{series}\n{text}");
    }
}
