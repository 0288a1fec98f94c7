//! Contract tests: the Keycloak client against the Keycloak fake, which checks every request
//! against the Admin REST API's OpenAPI file (path, method, query, body schema with unknown and
//! deprecated properties refused, bearer token and realm-management roles).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::provider_common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use dripgate::hash::{Format, LegacyHash};
use dripgate::migrate::transfer::importable;
use dripgate::provider::keycloak::{KeycloakClient, KeycloakConfig, UPDATE_PASSWORD};
use dripgate::provider::{
    ErrorClass, HashingMethod, NewUser, Password, Provider, ProviderError, ProviderUserId,
};
use dripgate::testkit::Fault;
use dripgate::testkit::keycloak::{FakeCredential, FakeKeycloak, FakeKeycloakOptions};
use provider_common::keycloak::{config, fake, fake_with, options};
use provider_common::{fast_limits, http};
use secrecy::SecretString;

fn client_with(config: &KeycloakConfig) -> KeycloakClient {
    KeycloakClient::new(config, &http(Duration::from_secs(5)), &fast_limits(), None).unwrap()
}

fn client(fake: &FakeKeycloak) -> KeycloakClient {
    client_with(&config(fake))
}

fn ada() -> NewUser {
    NewUser {
        email: "Ada@Example.com".into(),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        legacy_id: Some("legacy-4711".into()),
    }
}

fn no_violations(fake: &FakeKeycloak) {
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
}

async fn set(c: &KeycloakClient, id: &ProviderUserId, pw: &str) -> Result<(), ProviderError> {
    let secret = SecretString::from(pw.to_owned());
    c.set_password(id, Password::from_secret_string(&secret))
        .await
}

#[tokio::test]
async fn every_operation_follows_the_spec_and_the_password_works_at_the_fake() {
    let fake = fake().await;
    let c = client(&fake);
    assert_eq!(c.find_user_by_email("ada@example.com").await.unwrap(), None);
    let created = c.create_user(&ada(), None).await.unwrap();
    assert!(
        !created.password_set,
        "created first, password next (the ledger's `created` state)"
    );
    let user = fake.user_by_email("ada@example.com").unwrap();
    assert_eq!(
        created.id.as_str(),
        user.id,
        "the id comes from the Location header"
    );
    assert_eq!(
        user.username, "ada@example.com",
        "Keycloak keeps usernames and emails lower-case"
    );
    assert!(user.enabled && user.email_verified);
    assert_eq!(user.first_name.as_deref(), Some("Ada"));
    assert_eq!(
        user.attributes["dripgate_legacy_id"],
        vec!["legacy-4711".to_string()]
    );
    assert!(!fake.verify_password("ada@example.com", b"correct horse battery staple"));

    set(&c, &created.id, "correct horse battery staple")
        .await
        .unwrap();
    assert!(fake.verify_password("ada@example.com", b"correct horse battery staple"));
    assert!(!fake.verify_password("ada@example.com", b"wrong"));
    let stored = fake
        .user_by_email("ada@example.com")
        .unwrap()
        .credential
        .unwrap();
    assert!(!stored.imported, "Keycloak hashed the password itself");

    c.require_password_change(&created.id).await.unwrap();
    c.require_password_change(&created.id).await.unwrap();
    let user = fake.user_by_email("ada@example.com").unwrap();
    assert_eq!(
        user.required_actions,
        vec![UPDATE_PASSWORD.to_string()],
        "added once"
    );

    let found = c
        .find_user_by_email(" ADA@example.COM ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(found.email.as_deref(), Some("ada@example.com"));
    assert_eq!(found.legacy_id.as_deref(), Some("legacy-4711"));
    assert_eq!(fake.calls("token"), 1);
    assert_eq!(fake.calls("resetPassword"), 1);
    no_violations(&fake);
}

#[tokio::test]
async fn require_change_keeps_the_other_required_actions() {
    let fake = fake().await;
    let c = client(&fake);
    let id = c.create_user(&ada(), None).await.unwrap().id;
    // A user created by someone else with a pending action of its own: a PUT replaces the list.
    let raw = reqwest::Client::new();
    let token = token(&fake).await;
    let url = format!(
        "{}/admin/realms/customers/users/{}",
        fake.base_url(),
        id.as_str()
    );
    let r = raw
        .put(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({"requiredActions": ["VERIFY_EMAIL"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    c.require_password_change(&id).await.unwrap();
    let user = fake.user_by_email("ada@example.com").unwrap();
    assert_eq!(
        user.required_actions,
        vec!["VERIFY_EMAIL".to_string(), UPDATE_PASSWORD.to_string()]
    );
    no_violations(&fake);
}

async fn token(fake: &FakeKeycloak) -> String {
    let o = fake.options();
    let r: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/{}/protocol/openid-connect/token",
            fake.base_url(),
            o.realm
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &o.client_id)
                .append_pair("client_secret", &o.client_secret)
                .finish(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_request_that_breaks_the_spec_is_refused_and_recorded() {
    let fake = fake().await;
    let token = token(&fake).await;
    let raw = reqwest::Client::new();
    let users = format!("{}/admin/realms/customers/users", fake.base_url());
    // An unknown property, a deprecated one, a wrong type, an undeclared query parameter, a
    // path the spec does not have.
    for (body, what) in [
        (
            serde_json::json!({"username": "a@x.test", "password": "pw"}),
            "unknown property \"password\"",
        ),
        (
            serde_json::json!({"username": "b@x.test", "credentials": [{"type": "password", "hashedSaltedValue": "x"}]}),
            "deprecated",
        ),
        (
            serde_json::json!({"username": "c@x.test", "enabled": "yes"}),
            "expected boolean",
        ),
    ] {
        let r = raw
            .post(&users)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v = fake.spec_violations();
        assert!(v.last().unwrap().contains(what), "{v:?}");
    }
    let r = raw
        .get(format!("{users}?emailAddress=a@x.test"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = raw
        .get(format!("{users}?exact=yes"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = raw
        .get(format!("{}/admin/realms/customers/people", fake.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        fake.spec_violations().len(),
        6,
        "{:?}",
        fake.spec_violations()
    );
    assert!(fake.users().is_empty(), "no refused request created a user");
}

#[tokio::test]
async fn fifty_concurrent_callers_share_one_token_request() {
    let fake = fake().await;
    let c = Arc::new(client(&fake));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.find_user_by_email(&format!("u{i}@example.com")).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), None);
    }
    assert_eq!(fake.calls("token"), 1);
    assert_eq!(fake.calls("getUsers"), 50);
    no_violations(&fake);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_a_second_401_is_an_auth_error() {
    let fake = fake().await;
    let c = client(&fake);
    c.find_user_by_email("a@example.com").await.unwrap();
    fake.expire_tokens();
    c.find_user_by_email("a@example.com").await.unwrap();
    assert_eq!(fake.calls("token"), 2);
    assert_eq!(fake.calls("getUsers"), 3, "one rejected call, one resend");

    fake.fail_next("getUsers", 2, Fault::Status(401));
    let err = c.find_user_by_email("a@example.com").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert_eq!(fake.calls("getUsers"), 5, "refreshed once, not again");
    assert_eq!(fake.calls("token"), 3);
}

#[tokio::test]
async fn a_token_lifetime_shorter_than_the_calls_is_refreshed_before_it_expires() {
    let fake = fake_with(FakeKeycloakOptions {
        token_lifetime: Duration::from_secs(1),
        ..options()
    })
    .await;
    let c = client(&fake);
    c.find_user_by_email("a@example.com").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.find_user_by_email("a@example.com").await.unwrap();
    assert_eq!(fake.calls("token"), 2);
    assert_eq!(
        fake.calls("getUsers"),
        2,
        "no call was sent with the expired token"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured_and_nothing_is_sent_while_waiting() {
    let fake = fake().await;
    let c = Arc::new(client(&fake));
    c.find_user_by_email("warm@example.com").await.unwrap();
    fake.fail_next("getUsers", 1, Fault::RateLimit { reset_secs: 1 });
    let first = {
        let c = c.clone();
        tokio::spawn(async move { c.find_user_by_email("a@example.com").await })
    };
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
        "warm-up, 429, the retry, the second caller"
    );
    let arrivals: Vec<_> = fake
        .arrivals()
        .into_iter()
        .filter(|(op, _)| op == "getUsers")
        .collect();
    for (_, at) in &arrivals[2..] {
        assert!(
            *at >= arrivals[1].1 + Duration::from_secs(1),
            "a call was made during the pause"
        );
    }
}

#[tokio::test]
async fn a_429_longer_than_the_deadline_fails_fast_as_rate_limited() {
    let fake = fake().await;
    let mut h = http(Duration::from_secs(5));
    h.deadline = Duration::from_secs(2);
    let mut limits = fast_limits();
    limits.max_retry_after = Duration::from_secs(30);
    let c = KeycloakClient::new(&config(&fake), &h, &limits, None).unwrap();
    fake.fail_next("getUsers", 1, Fault::RateLimit { reset_secs: 30 });
    let started = std::time::Instant::now();
    let err = c.find_user_by_email("a@example.com").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited);
    match err {
        ProviderError::RateLimited { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(30)))
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "not waited for");
    assert_eq!(fake.calls("getUsers"), 1);
}

#[tokio::test]
async fn a_duplicate_email_or_username_is_409_already_exists_with_the_existing_id() {
    let fake = fake().await;
    let existing = fake.insert_user("ada@example.com", Default::default());
    let c = client(&fake);
    match c.create_user(&ada(), None).await {
        Err(ProviderError::AlreadyExists {
            existing_id: Some(id),
            ..
        }) => assert_eq!(id.as_str(), existing),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(fake.calls("createUser"), 1, "a 409 is not resent");

    // Someone's username is this email, their email another one.
    let fake = fake_with(options()).await;
    let c = client(&fake);
    let token = token(&fake).await;
    let r = reqwest::Client::new()
        .post(format!("{}/admin/realms/customers/users", fake.base_url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({"username": "ada@example.com", "email": "other@example.com", "enabled": true}))
        .send().await.unwrap();
    assert_eq!(r.status(), 201);
    let other = r.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    match c.create_user(&ada(), None).await {
        Err(ProviderError::AlreadyExists {
            existing_id: Some(id),
            ..
        }) => assert_eq!(id.as_str(), other),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    no_violations(&fake);
}

#[tokio::test]
async fn a_create_that_commits_then_hangs_is_not_resent_and_can_be_found() {
    let fake = fake().await;
    let c = KeycloakClient::new(
        &config(&fake),
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
async fn transient_failures_of_idempotent_calls_are_retried_creates_are_not() {
    let fake = fake().await;
    let c = client(&fake);
    fake.fail_next("getUsers", 1, Fault::ResetConnection);
    fake.fail_next("getUsers", 1, Fault::Status(503));
    fake.fail_next("getUsers", 1, Fault::Delay(Duration::from_millis(50)));
    assert_eq!(c.find_user_by_email("a@example.com").await.unwrap(), None);
    assert_eq!(fake.calls("getUsers"), 3);
    fake.fail_next("createUser", 1, Fault::Status(500));
    assert_eq!(
        c.create_user(&ada(), None).await.unwrap_err().class(),
        ErrorClass::Transient
    );
    assert_eq!(fake.calls("createUser"), 1);
    let id = c.create_user(&ada(), None).await.unwrap().id;
    fake.fail_next("resetPassword", 1, Fault::ResetConnection);
    set(&c, &id, "long enough password").await.unwrap();
    assert_eq!(
        fake.calls("resetPassword"),
        2,
        "set password is idempotent: resent"
    );
}

#[tokio::test]
async fn policy_refusals_are_password_rejected_with_keycloaks_message_keys() {
    let fake = fake().await;
    let c = client(&fake);
    let id = c.create_user(&ada(), None).await.unwrap().id;
    for (pw, fault, key) in [
        ("short", None, "invalidPasswordMinLengthMessage"),
        (
            "long enough password",
            Some(Fault::PasswordPolicy),
            "invalidPasswordMinDigitsMessage",
        ),
    ] {
        if let Some(f) = fault {
            fake.fail_next("resetPassword", 1, f);
        }
        match set(&c, &id, pw).await {
            Err(ProviderError::PasswordRejected { reasons, .. }) => {
                assert_eq!(reasons, vec![key.to_string()])
            }
            other => panic!("expected PasswordRejected, got {other:?}"),
        }
    }
    set(&c, &id, "long enough password").await.unwrap();
    match set(&c, &id, "long enough password").await {
        Err(ProviderError::PasswordRejected { reasons, .. }) => {
            assert_eq!(reasons, vec!["invalidPasswordHistoryMessage".to_string()])
        }
        other => panic!("expected PasswordRejected (history), got {other:?}"),
    }
    assert_eq!(
        set(&c, &id, "  ").await.unwrap_err().class(),
        ErrorClass::PasswordRejected
    );
    no_violations(&fake);
}

#[tokio::test]
async fn missing_roles_are_auth_errors_after_one_refresh() {
    let fake = fake_with(FakeKeycloakOptions {
        roles: vec!["view-users".into()],
        ..options()
    })
    .await;
    let c = client(&fake);
    assert_eq!(c.find_user_by_email("a@example.com").await.unwrap(), None);
    let err = c.create_user(&ada(), None).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(err.to_string().contains("manage-users"), "{err}");
    assert_eq!(fake.calls("createUser"), 2, "one refresh, one resend");
    assert_eq!(fake.calls("token"), 2);
}

/// The Keycloak-format vectors (`tests/fixtures/keycloak-credentials.jsonl`, made with Python's
/// hashlib): imported as they are, the fake verifies the old password with each.
#[tokio::test]
async fn keycloak_format_pbkdf2_vectors_verify_at_the_fake() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/keycloak-credentials.jsonl"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let c = FakeCredential::import(
            v["credentialData"].as_str().unwrap(),
            v["secretData"].as_str().unwrap(),
        )
        .unwrap();
        let pw = v["password"].as_str().unwrap();
        assert!(c.verify(pw.as_bytes()), "{}", v["id"]);
        assert!(!c.verify(format!("{pw}x").as_bytes()), "{}", v["id"]);
        n += 1;
    }
    assert_eq!(n, 3);
}

fn ab64(b: &[u8]) -> String {
    STANDARD_NO_PAD.encode(b).replace('+', ".")
}

/// Legacy hashes of each kind Keycloak imports, converted by `migrate::transfer::importable`,
/// sent as a credential, and verified by the fake as Keycloak's hash providers would.
#[tokio::test]
async fn imported_legacy_hashes_sign_in_at_the_fake_with_the_old_password() {
    let fake = fake().await;
    let mut cfg = config(&fake);
    cfg.import_argon2 = true;
    let c = client_with(&cfg);
    let caps = c.capabilities();
    assert!(
        caps.imports(HashingMethod::Pbkdf2)
            && caps.imports(HashingMethod::Pbkdf2Sha1)
            && caps.imports(HashingMethod::Argon2)
    );
    assert!(!caps.imports(HashingMethod::Bcrypt));
    let salt = b"0123456789abcdef";
    let sha1 = |pw: &str, n| {
        let mut k = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(pw.as_bytes(), salt, n, &mut k);
        k.to_vec()
    };
    let sha256 = |pw: &str, n| {
        let mut k = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pw.as_bytes(), salt, n, &mut k);
        k.to_vec()
    };
    let sha512 = |pw: &str, n| {
        let mut k = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(pw.as_bytes(), salt, n, &mut k);
        k.to_vec()
    };
    let argon2 = crate::migration_keycloak::vector("argon2id-002");
    let cases: Vec<(&str, String, Format, String, &str)> = vec![
        (
            "p1",
            "pass one".into(),
            Format::Pbkdf2,
            format!(
                "$pbkdf2$1000${}${}",
                ab64(salt),
                ab64(&sha1("pass one", 1000))
            ),
            "pbkdf2",
        ),
        (
            "p256",
            "pass two".into(),
            Format::Pbkdf2,
            format!(
                "$pbkdf2-sha256$2000${}${}",
                ab64(salt),
                ab64(&sha256("pass two", 2000))
            ),
            "pbkdf2-sha256",
        ),
        (
            "p512",
            "pass three".into(),
            Format::Pbkdf2,
            format!(
                "$pbkdf2-sha512$3000${}${}",
                ab64(salt),
                ab64(&sha512("pass three", 3000))
            ),
            "pbkdf2-sha512",
        ),
        (
            "dj",
            "pass four".into(),
            Format::Django,
            format!(
                "pbkdf2_sha256$1500$saltsalt${}",
                base64::engine::general_purpose::STANDARD.encode({
                    let mut k = [0u8; 32];
                    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"pass four", b"saltsalt", 1500, &mut k);
                    k
                })
            ),
            "pbkdf2-sha256",
        ),
        (
            "a2",
            argon2.1.clone(),
            Format::Argon2,
            argon2.0.clone(),
            "argon2",
        ),
    ];
    for (tag, pw, format, hash, algorithm) in cases {
        let email = format!("{tag}@example.com");
        let user = NewUser {
            email: email.clone(),
            given_name: None,
            family_name: None,
            legacy_id: None,
        };
        let id = c.create_user(&user, None).await.unwrap().id;
        let imported = importable(&LegacyHash::new(format, hash), format).unwrap();
        c.import_legacy_hash(&id, &imported).await.unwrap();
        let stored = fake.user_by_email(&email).unwrap().credential.unwrap();
        assert!(
            stored.imported && stored.algorithm == algorithm,
            "{tag}: {stored:?}"
        );
        assert!(
            fake.verify_password(&email, pw.as_bytes()),
            "{tag}: the old password"
        );
        assert!(!fake.verify_password(&email, b"not it"), "{tag}");
    }
    // bcrypt is not importable: Unsupported, which the transfer answers with the password.
    let bcrypt = importable(
        &LegacyHash::new(
            Format::Bcrypt,
            "$2b$04$RNWka9f5tFFxh0WM67mcHusqshHoLC4e/xN60WJDCIT9zSecmG3cW",
        ),
        Format::Bcrypt,
    )
    .unwrap();
    let id = c
        .find_user_by_email("p1@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        c.import_legacy_hash(&id, &bcrypt)
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Unsupported
    );
    no_violations(&fake);
}

#[tokio::test]
async fn argon2_is_not_imported_unless_enabled() {
    let fake = fake().await;
    let c = client(&fake);
    assert!(!c.capabilities().imports(HashingMethod::Argon2));
    let (hash, _) = crate::migration_keycloak::vector("argon2id-002");
    let imported = importable(&LegacyHash::new(Format::Argon2, hash), Format::Argon2).unwrap();
    let id = c.create_user(&ada(), None).await.unwrap().id;
    assert_eq!(
        c.import_legacy_hash(&id, &imported)
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Unsupported
    );
    assert_eq!(fake.calls("updateUser"), 0);
}

fn lines(report: &dripgate::provider::CheckReport) -> String {
    report
        .lines
        .iter()
        .map(|(a, r)| format!("{a}: {r:?}\n"))
        .collect()
}

#[tokio::test]
async fn check_reports_token_read_roles_policy_and_the_legacy_id_attribute() {
    let fake = fake().await;
    let report = client(&fake).check_credentials().await;
    assert!(report.ok(), "{}", lines(&report));
    let text = lines(&report);
    for want in [
        "manage-users, view-users",
        "length(8)",
        "kept as an unmanaged attribute (ADMIN_EDIT)",
        "pbkdf2-sha256",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    no_violations(&fake);

    // Wrong secret: the token line fails and nothing else is tried.
    let mut cfg = config(&fake);
    cfg.client_secret = "nope".to_string().into();
    let report = client_with(&cfg).check_credentials().await;
    assert_eq!(report.lines.len(), 1, "{}", lines(&report));
    assert!(lines(&report).contains("unauthorized_client"));

    // Service accounts off.
    let off = fake_with(FakeKeycloakOptions {
        service_accounts_enabled: false,
        ..options()
    })
    .await;
    assert!(
        lines(&client(&off).check_credentials().await)
            .contains("Client not enabled to retrieve service account")
    );

    // Only view-users: the read works, the roles line fails, the policy and profile are not
    // readable (not a failure).
    let weak = fake_with(FakeKeycloakOptions {
        roles: vec!["view-users".into()],
        ..options()
    })
    .await;
    let report = client(&weak).check_credentials().await;
    assert!(!report.ok());
    let failed: Vec<&str> = report
        .lines
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(a, _)| a.as_str())
        .collect();
    assert_eq!(
        failed,
        vec!["roles (realm-management)"],
        "{}",
        lines(&report)
    );
    assert!(lines(&report).contains("lacks manage-users"));

    // Keycloak ≥ 24 default: unmanaged attributes dropped.
    let strict = fake_with(FakeKeycloakOptions {
        unmanaged_attributes: false,
        ..options()
    })
    .await;
    let report = client(&strict).check_credentials().await;
    let failed: Vec<&str> = report
        .lines
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(a, _)| a.as_str())
        .collect();
    assert_eq!(
        failed,
        vec!["legacy id attribute \"dripgate_legacy_id\""],
        "{}",
        lines(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_check_command_of_the_built_binary_works_for_keycloak() {
    let fake = fake().await;
    let o = fake.options();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dripgate.toml");
    std::fs::write(
        &path,
        format!(
            "[provider]\nkind = \"keycloak\"\n[provider.keycloak]\nbase_url = \"{}/\"\nrealm = \"{}\"\nclient_id = \"{}\"\nclient_secret = {{ env = \"TEST_KC_CHECK_SECRET\" }}\npassword_transfer = \"legacy_hash\"\n",
            fake.base_url(),
            o.realm,
            o.client_id
        ),
    )
    .unwrap();
    let run = |secret: String| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_dripgate"))
                .args(["provider", "check", "--config"])
                .arg(&path)
                .env("TEST_KC_CHECK_SECRET", secret)
                .output()
                .unwrap()
        })
    };
    let ok = run(o.client_secret.clone()).await.unwrap();
    let text = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.lines().all(|l| l.starts_with("ok ")), "{text}");
    assert!(text.contains("password_transfer = legacy_hash"), "{text}");

    let bad = run("s3cret-value".into()).await.unwrap();
    let text = String::from_utf8_lossy(&bad.stdout).into_owned();
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("FAIL  token: keycloak token: authentication failed: unauthorized_client"),
        "{text}"
    );
    assert!(!text.contains("s3cret-value"));
    no_violations(&fake);
}

#[test]
fn config_validation_and_redaction() {
    use dripgate::provider::ProviderConfig;
    let text = "kind = \"keycloak\"\n[keycloak]\nbase_url = \"https://sso.example.com/auth\"\nrealm = \"customers\"\nclient_id = \"dripgate\"\nclient_secret = \"s3cret\"\n";
    let cfg: ProviderConfig = toml::from_str(text).unwrap();
    cfg.validate().unwrap();
    let kc = cfg.keycloak.as_ref().unwrap();
    assert_eq!(kc.token_realm(), "customers");
    assert_eq!(kc.legacy_id_attribute, "dripgate_legacy_id");
    assert!(!kc.import_argon2 && kc.mark_email_verified && !kc.temporary_password);
    assert!(!format!("{cfg:?}").contains("s3cret"));
    assert!(!toml::to_string(&cfg).unwrap().contains("s3cret"));
    assert!(toml::from_str::<ProviderConfig>(&format!("{text}bogus = 1\n")).is_err());
    for (from, to) in [
        ("realm = \"customers\"", "realm = \"\""),
        ("realm = \"customers\"", "realm = \"a/b\""),
        ("client_id = \"dripgate\"", "client_id = \"\""),
        ("https://sso.example.com/auth", "ftp://sso.example.com"),
    ] {
        let cfg: ProviderConfig = toml::from_str(&text.replace(from, to)).unwrap();
        assert!(cfg.validate().is_err(), "{to}");
    }
    let missing: ProviderConfig = toml::from_str("kind = \"keycloak\"\n").unwrap();
    assert!(
        missing
            .validate()
            .unwrap_err()
            .to_string()
            .contains("[provider.keycloak]")
    );
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_is_kept() {
    // Keycloak ≤ 16 serves everything under /auth: the client keeps the prefix.
    let fake = fake().await;
    let mut cfg = config(&fake);
    cfg.base_url = format!("{}/auth", fake.base_url());
    let err = client_with(&cfg)
        .find_user_by_email("a@example.com")
        .await
        .unwrap_err();
    // The fake serves no /auth prefix: the token request goes to /auth/realms/… and is not found.
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    assert_eq!(fake.calls("token"), 0);
    assert!(
        fake.spec_violations()
            .iter()
            .any(|v| v.contains("/auth/realms/customers/protocol/openid-connect/token"))
    );
}
