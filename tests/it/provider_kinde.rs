//! Contract tests: the Kinde client against the Kinde fake (requests validated against the spec).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::provider_common;

use std::sync::Arc;
use std::time::Duration;

use dripgate::provider::config::PasswordTransfer;
use dripgate::provider::kinde::KindeClient;
use dripgate::provider::{
    BlockingHasher, ErrorClass, HashingMethod, ImportedHash, NewUser, Password, PasswordHasher,
    Provider, ProviderError, ProviderMetrics, SaltPlacement,
};
use dripgate::testkit::Fault;
use dripgate::testkit::kinde::{FakeKinde, FakeKindeOptions};
use provider_common::*;
use secrecy::SecretString;

fn client(fake: &FakeKinde) -> KindeClient {
    KindeClient::new(
        &kinde_config(fake),
        &http(Duration::from_secs(5)),
        &fast_limits(),
        None,
    )
    .unwrap()
}

fn ada() -> NewUser {
    NewUser {
        email: "Ada@Example.com".into(),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        legacy_id: Some("legacy-4711".into()),
    }
}

#[tokio::test]
async fn migrates_a_user_end_to_end_and_the_password_works_at_the_fake() {
    let fake = kinde_fake().await;
    let c = client(&fake);
    assert_eq!(c.find_user_by_email("ada@example.com").await.unwrap(), None);
    let secret = SecretString::from("correct horse battery staple");
    let created = c
        .create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
        .unwrap();
    assert!(
        !created.password_set,
        "Kinde creates and sets the password in two calls"
    );
    c.set_password(&created.id, Password::from_secret_string(&secret))
        .await
        .unwrap();
    c.require_password_change(&created.id).await.unwrap();

    let found = c
        .find_user_by_email("ADA@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(found.legacy_id.as_deref(), Some("legacy-4711"));
    let user = fake.user_by_email("ada@example.com").unwrap();
    assert_eq!(user.email.as_deref(), Some("ada@example.com"));
    assert!(user.email_verified);
    assert_eq!(user.given_name.as_deref(), Some("Ada"));
    assert!(user.password_reset_requested);
    assert_eq!(user.password.as_ref().unwrap().method, "bcrypt");
    assert!(fake.verify_password("ada@example.com", b"correct horse battery staple"));
    assert!(!fake.verify_password("ada@example.com", b"wrong"));
    assert_eq!(fake.calls("token"), 1);
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
}

#[tokio::test]
async fn fifty_concurrent_callers_share_one_token_request() {
    let fake = kinde_fake().await;
    find_unknown_users_at_once(client(&fake), 50).await;
    assert_eq!(fake.calls("token"), 1);
    assert_eq!(fake.calls("getUsers"), 50);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once() {
    let fake = kinde_fake().await;
    let c = client(&fake);
    c.find_user_by_email("a@example.com").await.unwrap();
    fake.expire_tokens();
    c.find_user_by_email("a@example.com").await.unwrap();
    assert_eq!(fake.calls("token"), 2);
    assert_eq!(fake.calls("getUsers"), 3, "one rejected call, one resend");
}

#[tokio::test]
async fn a_429_is_honoured_and_no_call_is_made_while_waiting() {
    let fake = kinde_fake().await;
    let c = Arc::new(client(&fake));
    c.find_user_by_email("warm@example.com").await.unwrap();
    fake.fail_next("getUsers", 1, Fault::RateLimit { reset_secs: 1 });
    let first = {
        let c = c.clone();
        tokio::spawn(async move { c.find_user_by_email("a@example.com").await })
    };
    // Wait (bounded) until the 429 was served, then ask for more work while the pause holds.
    for _ in 0..200 {
        if fake.calls("getUsers") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = c.find_user_by_email("b@example.com").await;
    assert!(first.await.unwrap().is_ok());
    assert!(second.is_ok());
    assert_eq!(
        fake.calls("getUsers"),
        4,
        "warm-up, 429, the retry, the second caller: no extra calls"
    );
    let arrivals: Vec<_> = fake
        .arrivals()
        .into_iter()
        .filter(|(op, _)| op == "getUsers")
        .collect();
    let throttled_at = arrivals[1].1;
    for (_, at) in &arrivals[2..] {
        assert!(
            *at >= throttled_at + Duration::from_secs(1),
            "a call was made during the pause"
        );
    }
}

#[tokio::test]
async fn rate_limit_longer_than_the_deadline_fails_fast_as_rate_limited() {
    let fake = kinde_fake().await;
    let mut h = http(Duration::from_secs(5));
    h.deadline = Duration::from_secs(2);
    let mut limits = fast_limits();
    limits.max_retry_after = Duration::from_secs(30);
    let c = KindeClient::new(&kinde_config(&fake), &h, &limits, None).unwrap();
    fake.fail_next("getUsers", 1, Fault::RateLimit { reset_secs: 30 });
    let err = c.find_user_by_email("a@example.com").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited);
    assert_eq!(fake.calls("getUsers"), 1);
}

#[tokio::test]
async fn duplicate_email_on_create_is_already_exists_with_the_existing_id() {
    let fake = kinde_fake().await;
    let existing = fake.insert_user("ada@example.com");
    let c = client(&fake);
    match c.create_user(&ada(), None).await {
        Err(ProviderError::AlreadyExists {
            existing_id: Some(id),
            ..
        }) => assert_eq!(id.as_str(), existing),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(fake.users().len(), 1);
}

#[tokio::test]
async fn a_create_that_commits_then_hangs_can_be_found_afterwards() {
    let fake = kinde_fake().await;
    let c = KindeClient::new(
        &kinde_config(&fake),
        &http(Duration::from_millis(500)),
        &fast_limits(),
        None,
    )
    .unwrap();
    fake.fail_next("createUser", 1, Fault::CommitThenHang);
    let err = c.create_user(&ada(), None).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(
        fake.calls("createUser"),
        1,
        "a create whose outcome is unknown is not resent"
    );
    let found = c
        .find_user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fake.users()[0].id, found.id.as_str());
}

#[tokio::test]
async fn transient_failures_of_idempotent_calls_are_retried() {
    let fake = kinde_fake().await;
    let c = client(&fake);
    fake.fail_next("getUsers", 1, Fault::ResetConnection);
    fake.fail_next("getUsers", 1, Fault::Status(503));
    assert_eq!(c.find_user_by_email("a@example.com").await.unwrap(), None);
    assert_eq!(fake.calls("getUsers"), 3);
    fake.fail_next("createUser", 1, Fault::Status(500));
    assert_eq!(
        c.create_user(&ada(), None).await.unwrap_err().class(),
        ErrorClass::Transient
    );
    assert_eq!(fake.calls("createUser"), 1);
}

#[tokio::test]
async fn policy_rejection_is_typed() {
    let fake = kinde_fake().await;
    let c = client(&fake);
    let id = c.create_user(&ada(), None).await.unwrap().id;
    fake.fail_next("SetUserPassword", 1, Fault::PasswordPolicy);
    let secret = SecretString::from("pw");
    let err = c
        .set_password(&id, Password::from_secret_string(&secret))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PasswordRejected);
    assert_eq!(fake.calls("SetUserPassword"), 1);
}

#[tokio::test]
async fn imported_hash_is_sent_in_the_spec_fields_and_signs_in_at_the_fake() {
    let fake = kinde_fake().await;
    let mut cfg = kinde_config(&fake);
    assert!(
        !client(&fake).capabilities().prefers_legacy_hash,
        "bcrypt is the default transfer"
    );
    cfg.password_transfer = PasswordTransfer::LegacyHash;
    let c = KindeClient::new(&cfg, &http(Duration::from_secs(5)), &fast_limits(), None).unwrap();
    let caps = c.capabilities();
    assert!(caps.prefers_legacy_hash);
    assert!(caps.imports(HashingMethod::Md5) && caps.imports(HashingMethod::Pbkdf2));
    let id = c.create_user(&ada(), None).await.unwrap().id;
    // md5("x9Q" + "hunter2"), salt as a prefix.
    use md5::Digest;
    let mut hash = ImportedHash::new(
        HashingMethod::Md5,
        hex::encode(md5::Md5::digest(b"x9Qhunter2")),
    );
    hash.salt = Some("x9Q".to_string().into());
    hash.salt_position = Some(SaltPlacement::Prefix);
    c.import_legacy_hash(&id, &hash).await.unwrap();
    let stored = fake
        .user_by_email("ada@example.com")
        .unwrap()
        .password
        .unwrap();
    assert_eq!(
        (stored.method.as_str(), stored.salt_position.as_deref()),
        ("md5", Some("prefix"))
    );
    assert!(fake.verify_password("ada@example.com", b"hunter2"));
    assert!(!fake.verify_password("ada@example.com", b"hunter3"));
    assert!(!format!("{hash:?}").contains("x9Q"));
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );

    // The fallback of `legacy_hash`: set_password sends a fresh bcrypt of the password.
    let secret = SecretString::from("hunter2");
    c.set_password(&id, Password::from_secret_string(&secret))
        .await
        .unwrap();
    let stored = fake.user_by_email("ada@example.com").unwrap().password;
    assert_eq!(stored.unwrap().method, "bcrypt");
    assert!(fake.verify_password("ada@example.com", b"hunter2"));
}

#[tokio::test]
async fn a_refused_import_is_invalid_not_a_policy_rejection() {
    let fake = kinde_fake().await;
    let c = client(&fake);
    let id = c.create_user(&ada(), None).await.unwrap().id;
    // Kinde answers a bcrypt method with a non-bcrypt value with 400 INVALID_PASSWORD_HASH.
    let hash = ImportedHash::new(HashingMethod::Bcrypt, "$2x$05$not-a-hash-kinde-takes");
    let err = c.import_legacy_hash(&id, &hash).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
    assert!(!err.to_string().contains("not-a-hash"), "{err}");
}

/// A hasher that counts its calls, to show where the bcrypt runs.
#[derive(Debug, Default)]
struct CountingHasher(std::sync::atomic::AtomicUsize);

impl PasswordHasher for CountingHasher {
    fn bcrypt(
        &self,
        password: zeroize::Zeroizing<Vec<u8>>,
        cost: u32,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<zeroize::Zeroizing<String>, dripgate::provider::HasherError>,
    > {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        BlockingHasher.bcrypt(password, cost)
    }
}

#[tokio::test]
async fn the_bcrypt_runs_on_the_hasher_it_is_given() {
    let fake = kinde_fake().await;
    let hasher = Arc::new(CountingHasher::default());
    let c = client(&fake).with_hasher(hasher.clone());
    let id = c.create_user(&ada(), None).await.unwrap().id;
    let secret = SecretString::from("on the pool");
    c.set_password(&id, Password::from_secret_string(&secret))
        .await
        .unwrap();
    assert_eq!(hasher.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(fake.verify_password("ada@example.com", b"on the pool"));
}

#[tokio::test]
async fn plaintext_transfer_breaks_the_spec_unless_the_account_accepts_it() {
    // The fake follows the spec: the plaintext body is refused and flagged.
    let strict = kinde_fake().await;
    let mut cfg = kinde_config(&strict);
    cfg.password_transfer = PasswordTransfer::Plaintext;
    let c = KindeClient::new(&cfg, &http(Duration::from_secs(5)), &fast_limits(), None).unwrap();
    let id = c.create_user(&ada(), None).await.unwrap().id;
    let secret = SecretString::from("hunter2hunter2");
    let err = c
        .set_password(&id, Password::from_secret_string(&secret))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert_eq!(strict.spec_violations().len(), 1);

    // An account that accepts the documented plaintext body.
    let lenient = FakeKinde::start(
        "127.0.0.1:0",
        FakeKindeOptions {
            accept_plaintext_password: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut cfg = kinde_config(&lenient);
    cfg.password_transfer = PasswordTransfer::Plaintext;
    let c = KindeClient::new(&cfg, &http(Duration::from_secs(5)), &fast_limits(), None).unwrap();
    let id = c.create_user(&ada(), None).await.unwrap().id;
    c.set_password(&id, Password::from_secret_string(&secret))
        .await
        .unwrap();
    assert!(lenient.verify_password("ada@example.com", b"hunter2hunter2"));
}

#[tokio::test]
async fn check_reports_bad_secret_wrong_audience_and_missing_scope() {
    let fake = kinde_fake().await;
    let good = client(&fake).check_credentials().await;
    assert!(good.ok(), "{good:?}");

    let mut cfg = kinde_config(&fake);
    cfg.client_secret = "wrong".to_string().into();
    let r = KindeClient::new(&cfg, &http(Duration::from_secs(5)), &fast_limits(), None)
        .unwrap()
        .check_credentials()
        .await;
    assert!(!r.ok());
    let line = format!("{:?}", r.lines);
    assert!(line.contains("invalid_client"), "{line}");
    assert!(!line.contains("wrong"), "the secret leaked: {line}");

    let mut cfg = kinde_config(&fake);
    cfg.audience = Some("https://other.kinde.com/api".into());
    let r = KindeClient::new(&cfg, &http(Duration::from_secs(5)), &fast_limits(), None)
        .unwrap()
        .check_credentials()
        .await;
    assert!(format!("{:?}", r.lines).contains("unauthorized_client"));

    let no_read = FakeKinde::start(
        "127.0.0.1:0",
        FakeKindeOptions {
            scopes: vec!["create:users".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let r = client(&no_read).check_credentials().await;
    assert!(r.lines[0].1.is_ok());
    let err = r.lines[1].1.clone().unwrap_err();
    assert!(err.contains("scope"), "{err}");
    assert_eq!(no_read.calls("token"), 2, "403 refreshes once");
}

#[tokio::test]
async fn metrics_count_calls_by_operation_and_status() {
    let fake = kinde_fake().await;
    let registry = prometheus::Registry::new();
    let metrics = ProviderMetrics::register(&registry).unwrap();
    let c = KindeClient::new(
        &kinde_config(&fake),
        &http(Duration::from_secs(5)),
        &fast_limits(),
        Some(metrics),
    )
    .unwrap();
    fake.fail_next("getUsers", 1, Fault::Status(500));
    c.find_user_by_email("a@example.com").await.unwrap();
    let text = dripgate::metrics::render(&registry).unwrap();
    assert!(text.contains(r#"dripgate_provider_requests_total{operation="find_user",provider="kinde",status="ok"} 1"#), "{text}");
    assert!(text.contains(r#"dripgate_provider_requests_total{operation="find_user",provider="kinde",status="transient"} 1"#));
    assert!(text.contains(
        r#"dripgate_provider_requests_total{operation="token",provider="kinde",status="ok"} 1"#
    ));
    assert!(text.contains("dripgate_provider_request_duration_seconds_bucket"));
}

#[test]
fn the_spec_validator_rejects_what_the_spec_rejects() {
    let v = kinde_validator();
    assert!(
        v(
            "SetUserPassword",
            &serde_json::json!({"password": "x", "is_temporary_password": false})
        )
        .is_err()
    );
    assert!(
        v(
            "SetUserPassword",
            &serde_json::json!({"hashed_password": "x", "hashing_method": "argon2"})
        )
        .is_err()
    );
    assert!(
        v(
            "SetUserPassword",
            &serde_json::json!({"hashed_password": "x", "hashing_method": "bcrypt"})
        )
        .is_ok()
    );
    assert!(
        v(
            "createUser",
            &serde_json::json!({"identities": [{"type": "fax"}]})
        )
        .is_err()
    );
    assert!(
        v(
            "updateUser",
            &serde_json::json!({"is_password_reset_requested": "yes"})
        )
        .is_err()
    );
}

#[tokio::test]
async fn the_email_is_sent_unverified_unless_the_config_says_otherwise() {
    let fake = kinde_fake().await;
    for (email, stated, verified) in [
        ("unset@example.com", None, false),
        ("no@example.com", Some(false), false),
        ("yes@example.com", Some(true), true),
    ] {
        let mut config = kinde_config(&fake);
        config.mark_email_verified = stated;
        let c =
            KindeClient::new(&config, &http(Duration::from_secs(5)), &fast_limits(), None).unwrap();
        let user = NewUser {
            email: email.into(),
            given_name: None,
            family_name: None,
            legacy_id: None,
        };
        c.create_user(&user, None).await.unwrap();
        assert_eq!(
            fake.user_by_email(email).unwrap().email_verified,
            verified,
            "{email}"
        );
    }
    assert!(fake.spec_violations().is_empty());
}

#[tokio::test]
async fn get_user_reads_the_user_by_id_and_says_nothing_of_the_password() {
    let fake = kinde_fake().await;
    let c = client(&fake);
    let id = fake.insert_user("bea@example.com");
    let details = c
        .get_user(&dripgate::provider::ProviderUserId(id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(details.user.id.0, id);
    assert_eq!(details.user.email.as_deref(), Some("bea@example.com"));
    assert_eq!(details.password, dripgate::provider::PasswordState::Unknown);
    assert!(fake.delete_user(&id));
    let gone = dripgate::provider::ProviderUserId(id);
    assert_eq!(c.get_user(&gone).await.unwrap(), None);
    assert_eq!(fake.calls("getUserData"), 2);
}
