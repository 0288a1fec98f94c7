//! Contract tests: the Keycloak client against the Keycloak fake, which checks every request
//! against the Admin REST API's OpenAPI file (path, method, query, body schema with unknown and
//! deprecated properties refused, bearer token and realm-management roles).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check;
mod hashes;

use crate::provider_common;

use std::sync::Arc;
use std::time::Duration;

use dripgate::provider::keycloak::{KeycloakClient, KeycloakConfig, UPDATE_PASSWORD};
use dripgate::provider::{ErrorClass, NewUser, Password, Provider, ProviderError, ProviderUserId};
use dripgate::testkit::Fault;
use dripgate::testkit::keycloak::{FakeKeycloak, FakeKeycloakOptions};
use provider_common::keycloak::{config, fake, fake_with, options};
use provider_common::{fast_limits, find_unknown_users_at_once, http};
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
    find_unknown_users_at_once(client(&fake), 50).await;
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
