//! Contract tests: the Authgear client against the Authgear fake (queries validated against the SDL).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::provider_common;

use std::time::Duration;

use dripgate::provider::authgear::{AuthgearClient, user_node_id, user_raw_id};
use dripgate::provider::{ErrorClass, NewUser, Password, Provider, ProviderError, ProviderUserId};
use dripgate::testkit::Fault;
use dripgate::testkit::authgear::FakeAuthgear;
use provider_common::*;
use secrecy::SecretString;

fn client(fake: &FakeAuthgear) -> AuthgearClient {
    AuthgearClient::new(
        &authgear_config(fake),
        &http(Duration::from_secs(5)),
        &fast_limits(),
        None,
    )
    .unwrap()
}

fn ada() -> NewUser {
    NewUser {
        email: "Ada@Example.com".into(),
        given_name: None,
        family_name: None,
        legacy_id: Some("4711".into()),
    }
}

#[tokio::test]
async fn migrates_a_user_in_one_call_and_the_password_works_at_the_fake() {
    let fake = authgear_fake().await;
    let c = client(&fake);
    assert_eq!(c.find_user_by_email("ada@example.com").await.unwrap(), None);
    let secret = SecretString::from("correct horse battery staple");
    let created = c
        .create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
        .unwrap();
    assert!(created.password_set);
    let raw = user_raw_id(created.id.as_str()).unwrap();
    assert!(!created.id.as_str().contains('='), "node ids are unpadded");
    assert!(fake.verify_password("ada@example.com", b"correct horse battery staple"));

    let found = c
        .find_user_by_email("ADA@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(found.email.as_deref(), Some("ada@example.com"));

    let new = SecretString::from("another good password");
    c.set_password(&created.id, Password::from_secret_string(&new))
        .await
        .unwrap();
    assert!(fake.verify_password("ada@example.com", b"another good password"));
    c.require_password_change(&created.id).await.unwrap();
    let user = fake.user_by_email("ada@example.com").unwrap();
    assert!(user.password_expired);
    assert_eq!(user.raw_id, raw);
    assert_eq!(fake.distinct_tokens(), 1);
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
}

#[tokio::test]
async fn fifty_concurrent_callers_share_one_signed_token() {
    let fake = authgear_fake().await;
    find_unknown_users_at_once(client(&fake), 50).await;
    assert_eq!(fake.distinct_tokens(), 1);
    assert_eq!(fake.calls("getUsersByStandardAttribute"), 50);
}

#[tokio::test]
async fn a_rejected_token_is_re_signed_once() {
    let fake = authgear_fake().await;
    let c = client(&fake);
    c.find_user_by_email("a@example.com").await.unwrap();
    fake.expire_tokens();
    c.find_user_by_email("a@example.com").await.unwrap();
    assert_eq!(fake.distinct_tokens(), 2);
    assert_eq!(fake.calls("forbidden"), 1);
}

#[tokio::test]
async fn a_429_is_honoured_without_extra_calls() {
    let fake = authgear_fake().await;
    let c = client(&fake);
    fake.fail_next(
        "getUsersByStandardAttribute",
        1,
        Fault::RateLimit { reset_secs: 1 },
    );
    assert_eq!(c.find_user_by_email("a@example.com").await.unwrap(), None);
    assert_eq!(fake.calls("getUsersByStandardAttribute"), 2);
}

#[tokio::test]
async fn duplicate_identity_is_already_exists_with_the_existing_id() {
    let fake = authgear_fake().await;
    let c = client(&fake);
    let secret = SecretString::from("correct horse battery staple");
    let first = c
        .create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
        .unwrap();
    match c
        .create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
    {
        Err(ProviderError::AlreadyExists {
            existing_id: Some(id),
            ..
        }) => assert_eq!(id, first.id),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(fake.users().len(), 1);
}

#[tokio::test]
async fn a_create_that_commits_then_hangs_can_be_found_afterwards() {
    let fake = authgear_fake().await;
    let c = AuthgearClient::new(
        &authgear_config(&fake),
        &http(Duration::from_millis(500)),
        &fast_limits(),
        None,
    )
    .unwrap();
    fake.fail_next("createUser", 1, Fault::CommitThenHang);
    let secret = SecretString::from("correct horse battery staple");
    let err = c
        .create_user(&ada(), Some(Password::from_secret_string(&secret)))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(fake.calls("createUser"), 1);
    let found = c
        .find_user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user_node_id(&fake.users()[0].raw_id), found.id.as_str());
    assert!(fake.verify_password("ada@example.com", b"correct horse battery staple"));
}

#[tokio::test]
async fn policy_rejection_is_typed_and_rolls_back() {
    let fake = authgear_fake().await;
    let c = client(&fake);
    let short = SecretString::from("short");
    match c
        .create_user(&ada(), Some(Password::from_secret_string(&short)))
        .await
    {
        Err(ProviderError::PasswordRejected { reasons, .. }) => {
            assert_eq!(reasons, vec!["PasswordTooShort"])
        }
        other => panic!("expected PasswordRejected, got {other:?}"),
    }
    assert!(fake.users().is_empty(), "the transaction was rolled back");

    let good = SecretString::from("correct horse battery staple");
    let id = c
        .create_user(&ada(), Some(Password::from_secret_string(&good)))
        .await
        .unwrap()
        .id;
    match c
        .set_password(&id, Password::from_secret_string(&good))
        .await
    {
        Err(ProviderError::PasswordRejected { reasons, .. }) => {
            assert_eq!(reasons, vec!["PasswordReused"])
        }
        other => panic!("expected PasswordReused, got {other:?}"),
    }
    fake.fail_next("resetPassword", 1, Fault::PasswordPolicy);
    let other = SecretString::from("yet another good password");
    let err = c
        .set_password(&id, Password::from_secret_string(&other))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PasswordRejected);
}

#[tokio::test]
async fn an_empty_password_is_never_sent() {
    let fake = authgear_fake().await;
    let c = client(&fake);
    let empty = SecretString::from("");
    let err = c
        .create_user(&ada(), Some(Password::from_secret_string(&empty)))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PasswordRejected);
    assert_eq!(fake.calls("createUser"), 0);
}

#[tokio::test]
async fn unknown_and_padded_ids_are_typed_errors() {
    let fake = authgear_fake().await;
    let c = client(&fake);
    let missing = ProviderUserId(user_node_id("00000000-0000-4000-a000-000000000000"));
    assert_eq!(
        c.require_password_change(&missing)
            .await
            .unwrap_err()
            .class(),
        ErrorClass::NotFound
    );
    let padded = ProviderUserId(format!("{}=", user_node_id("x")));
    assert_eq!(
        c.require_password_change(&padded)
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Invalid
    );
}

#[tokio::test]
async fn transient_failures_are_retried_for_reads_only() {
    let fake = authgear_fake().await;
    let c = client(&fake);
    fake.fail_next("getUsersByStandardAttribute", 1, Fault::ResetConnection);
    fake.fail_next("getUsersByStandardAttribute", 1, Fault::Status(502));
    assert_eq!(c.find_user_by_email("a@example.com").await.unwrap(), None);
    assert_eq!(fake.calls("getUsersByStandardAttribute"), 3);
    fake.fail_next("createUser", 1, Fault::Status(500));
    let pw = SecretString::from("correct horse battery staple");
    let err = c
        .create_user(&ada(), Some(Password::from_secret_string(&pw)))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(fake.calls("createUser"), 1);
}

#[tokio::test]
async fn check_reports_a_wrong_key() {
    let fake = authgear_fake().await;
    assert!(client(&fake).check_credentials().await.ok());
    let mut cfg = authgear_config(&fake);
    cfg.private_key_pem = read_spec_file("authgear-other-key.pem").into();
    let c = AuthgearClient::new(&cfg, &http(Duration::from_secs(5)), &fast_limits(), None).unwrap();
    let r = c.check_credentials().await;
    assert!(!r.ok());
    assert!(r.lines[1].1.clone().unwrap_err().contains("403"));
    assert_eq!(fake.calls("forbidden"), 2, "one re-sign, then give up");
    let mut cfg = authgear_config(&fake);
    cfg.project_id = "otherapp".into();
    let c = AuthgearClient::new(&cfg, &http(Duration::from_secs(5)), &fast_limits(), None).unwrap();
    assert!(!c.check_credentials().await.ok());
}

#[test]
fn node_ids_are_unpadded_base64url() {
    let id = user_node_id("97b1c929-842c-415c-a7df-6967efdda160");
    assert_eq!(
        id,
        "VXNlcjo5N2IxYzkyOS04NDJjLTQxNWMtYTdkZi02OTY3ZWZkZGExNjA"
    );
    assert_eq!(
        user_raw_id(&id).as_deref(),
        Some("97b1c929-842c-415c-a7df-6967efdda160")
    );
    assert_eq!(user_raw_id(&format!("{id}=")), None);
}

#[test]
fn the_sdl_validator_rejects_bad_operations() {
    let v = authgear_validator();
    let ok = serde_json::json!({"query": dripgate::provider::authgear::CREATE_MUTATION,
        "variables": {"key": "email", "email": "a@b.c", "password": "x", "expired": false}});
    assert!(v("createUser", &ok).is_ok(), "{:?}", v("createUser", &ok));
    for q in [
        dripgate::provider::authgear::FIND_QUERY,
        dripgate::provider::authgear::RESET_PASSWORD_MUTATION,
        dripgate::provider::authgear::SET_PASSWORD_EXPIRED_MUTATION,
    ] {
        let vars = serde_json::json!({"email": "a@b.c", "id": "VXNlcjp4", "password": "x"});
        assert!(
            v("q", &serde_json::json!({"query": q, "variables": vars})).is_ok(),
            "{q}"
        );
    }
    let typo = serde_json::json!({"query": "query { getUsersByStandardAttribute(attributeName: \"email\", attributeValue: \"a\") { id emial } }"});
    assert!(v("q", &typo).is_err());
    let missing_var =
        serde_json::json!({"query": dripgate::provider::authgear::FIND_QUERY, "variables": {}});
    assert!(v("q", &missing_var).is_err());
}
