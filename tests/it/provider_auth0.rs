//! Contract tests: the Auth0 client against the Auth0 fake, every request checked against the
//! Auth0 Management API spec (`auth0_spec`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use dripgate::provider::auth0::{Auth0Client, Auth0PasswordTransfer, stable_user_id};
use dripgate::provider::{
    ErrorClass, HashingMethod, ImportedHash, NewUser, Password, Provider, ProviderError,
    ProviderUserId,
};
use dripgate::testkit::Fault;
use dripgate::testkit::auth0::{FakeAuth0, FakeAuth0Options, FakePasswordPolicy};
use secrecy::SecretString;
use serde_json::json;

use crate::auth0_spec::{auth0_config, auth0_fake, auth0_fake_with, fast_http};
use crate::provider_common::fast_limits;

fn client(fake: &FakeAuth0) -> Auth0Client {
    Auth0Client::new(&auth0_config(fake), &fast_http(), &fast_limits(), None).unwrap()
}

fn ada() -> NewUser {
    NewUser {
        email: "Ada@Example.com".into(),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        legacy_id: Some("legacy-4711".into()),
    }
}

const GOOD: &str = "Correct-Horse-9-Battery";

fn pw(s: &SecretString) -> Password<'_> {
    Password::from_secret_string(s)
}

fn no_violations(fake: &FakeAuth0) {
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
}

#[tokio::test]
async fn creates_finds_and_updates_a_user_as_the_spec_says() {
    let fake = auth0_fake().await;
    let c = client(&fake);
    assert_eq!(c.find_user_by_email("ada@example.com").await.unwrap(), None);
    let secret = SecretString::from(GOOD);
    let created = c.create_user(&ada(), Some(pw(&secret))).await.unwrap();
    assert!(created.password_set, "the create carries the password");
    assert_eq!(
        created.id.as_str(),
        format!("auth0|{}", stable_user_id("legacy-4711"))
    );
    let found = c
        .find_user_by_email("ADA@example.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(found.email.as_deref(), Some("ada@example.com"));
    assert_eq!(found.legacy_id.as_deref(), Some("legacy-4711"));
    let user = fake.user_by_email("ada@example.com").unwrap();
    assert_eq!(user.email, "ada@example.com", "stored lower-cased");
    assert!(user.email_verified);
    assert_eq!(user.given_name.as_deref(), Some("Ada"));
    assert!(fake.verify_password("ada@example.com", GOOD.as_bytes()));
    assert!(!fake.verify_password("ada@example.com", b"wrong"));

    let newer = SecretString::from("Another-Good-Passw0rd");
    c.set_password(&created.id, pw(&newer)).await.unwrap();
    assert!(fake.verify_password("ada@example.com", b"Another-Good-Passw0rd"));
    c.require_password_change(&created.id).await.unwrap();
    let user = fake.user_by_email("ada@example.com").unwrap();
    assert_eq!(user.app_metadata["dripgate_password_change_required"], true);
    assert_eq!(
        user.app_metadata["dripgate_legacy_id"], "legacy-4711",
        "app_metadata is merged, not replaced"
    );
    assert_eq!(fake.calls("token"), 1);
    no_violations(&fake);
}

#[tokio::test]
async fn users_by_email_is_case_sensitive_and_other_connections_do_not_count() {
    let fake = auth0_fake().await;
    let c = client(&fake);
    let db = fake.new_user("grace@example.com");
    fake.insert_user(db.clone());
    let mut social = fake.new_user("x");
    social.user_id = "google-oauth2|1234".into();
    social.email = "Alan@Example.com".into();
    social.connection = "google-oauth2".into();
    fake.insert_user(social);
    // The fake matches exactly, as Auth0 does: only the lower-cased query finds the user.
    let found = c.find_user_by_email(" Grace@EXAMPLE.com ").await.unwrap();
    assert_eq!(found.unwrap().id.as_str(), db.user_id);
    // A social user with a mixed-case email is not found (and would not be adopted).
    assert_eq!(
        c.find_user_by_email("Alan@Example.com").await.unwrap(),
        None
    );
    no_violations(&fake);
}

#[tokio::test]
async fn a_duplicate_create_is_already_exists_with_the_existing_id() {
    let fake = auth0_fake().await;
    let existing = fake.new_user("ada@example.com");
    fake.insert_user(existing.clone());
    let c = client(&fake);
    let secret = SecretString::from(GOOD);
    match c.create_user(&ada(), Some(pw(&secret))).await {
        Err(ProviderError::AlreadyExists {
            existing_id: Some(id),
            ..
        }) => assert_eq!(id.as_str(), existing.user_id),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(fake.users().len(), 1);
    assert_eq!(fake.calls("post_users"), 1);
    no_violations(&fake);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_resent_and_finds_the_one_user() {
    let fake = auth0_fake().await;
    let mut h = fast_http();
    h.request_timeout = Duration::from_millis(800);
    let c = Auth0Client::new(&auth0_config(&fake), &h, &fast_limits(), None).unwrap();
    fake.fail_next("post_users", 1, Fault::CommitThenHang);
    let secret = SecretString::from(GOOD);
    match c.create_user(&ada(), Some(pw(&secret))).await {
        Err(ProviderError::AlreadyExists {
            existing_id: Some(id),
            ..
        }) => assert_eq!(
            id.as_str(),
            format!("auth0|{}", stable_user_id("legacy-4711"))
        ),
        other => panic!("expected the resent create to find the first one, got {other:?}"),
    }
    assert_eq!(
        fake.calls("post_users"),
        2,
        "the timed-out create was resent"
    );
    assert_eq!(
        fake.users().len(),
        1,
        "the stable user_id prevents a second user"
    );
    // A reset connection is resent too, and creates exactly one user.
    let grace = NewUser {
        email: "grace@example.com".into(),
        given_name: None,
        family_name: None,
        legacy_id: Some("7".into()),
    };
    fake.fail_next("post_users", 1, Fault::ResetConnection);
    c.create_user(&grace, Some(pw(&secret))).await.unwrap();
    assert_eq!(fake.users().len(), 2);
    no_violations(&fake);
}

#[tokio::test]
async fn the_password_policy_refusals_are_password_rejected() {
    let fake = auth0_fake_with(FakeAuth0Options {
        rate_limit: None,
        policy: FakePasswordPolicy {
            level: "good".into(),
            min_length: Some(10),
            dictionary: vec!["Summer-2026!".into()],
            history: 3,
        },
        ..FakeAuth0Options::default()
    })
    .await;
    let c = client(&fake);
    let reason = |r: Result<_, ProviderError>| match r {
        Err(ProviderError::PasswordRejected { reasons, .. }) => reasons.join(","),
        other => panic!("expected PasswordRejected, got {other:?}"),
    };
    let weak = SecretString::from("short1!A");
    assert_eq!(
        reason(c.create_user(&ada(), Some(pw(&weak))).await.map(drop)),
        "PasswordStrengthError"
    );
    let common = SecretString::from("summer-2026!");
    assert_eq!(
        reason(c.create_user(&ada(), Some(pw(&common))).await.map(drop)),
        "PasswordDictionaryError"
    );
    assert!(fake.users().is_empty());
    let secret = SecretString::from(GOOD);
    let created = c.create_user(&ada(), Some(pw(&secret))).await.unwrap();
    assert_eq!(
        reason(c.set_password(&created.id, pw(&secret)).await),
        "PasswordHistoryError"
    );
    fake.fail_next("patch_users_by_id", 1, Fault::PasswordPolicy);
    let other = SecretString::from("Fresh-Passw0rd-2");
    assert_eq!(
        reason(c.set_password(&created.id, pw(&other)).await),
        "PasswordStrengthError"
    );
    no_violations(&fake);
}

#[tokio::test]
async fn no_hash_is_imported_and_the_capabilities_say_so() {
    let fake = auth0_fake().await;
    let mut config = auth0_config(&fake);
    config.password_transfer = Auth0PasswordTransfer::LegacyHash;
    let c = Auth0Client::new(&config, &fast_http(), &fast_limits(), None).unwrap();
    let caps = c.capabilities();
    assert!(caps.imports.is_empty());
    assert!(caps.prefers_legacy_hash);
    assert!(caps.atomic_create_with_password);
    assert!(caps.stores_legacy_id);
    let hash = ImportedHash::new(HashingMethod::Bcrypt, "$2b$04$abcdefghijklmnopqrstuv");
    let err = c
        .import_legacy_hash(&ProviderUserId("auth0|x".into()), &hash)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unsupported);
    assert_eq!(fake.calls("patch_users_by_id"), 0);
}

#[tokio::test]
async fn fifty_concurrent_callers_share_one_token_request() {
    let fake = auth0_fake().await;
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
    assert_eq!(fake.calls("get_users-by-email"), 50);
    no_violations(&fake);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_a_second_401_is_an_auth_error() {
    let fake = auth0_fake().await;
    let c = client(&fake);
    c.find_user_by_email("a@example.com").await.unwrap();
    fake.expire_tokens();
    c.find_user_by_email("a@example.com").await.unwrap();
    assert_eq!(fake.calls("token"), 2);
    assert_eq!(
        fake.calls("get_users-by-email"),
        3,
        "one rejected call, one resend"
    );

    // Tokens that are dead on arrival: one refresh, then the 401 is reported.
    let dead = auth0_fake_with(FakeAuth0Options {
        rate_limit: None,
        token_lifetime: Duration::ZERO,
        ..FakeAuth0Options::default()
    })
    .await;
    let err = client(&dead)
        .find_user_by_email("a@example.com")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert_eq!(dead.calls("token"), 2);
    assert_eq!(dead.calls("get_users-by-email"), 2);
}

#[tokio::test]
async fn wrong_credentials_and_a_missing_scope_are_auth_errors() {
    let fake = auth0_fake_with(FakeAuth0Options {
        rate_limit: None,
        scopes: vec!["read:users".into()],
        ..FakeAuth0Options::default()
    })
    .await;
    let mut bad = auth0_config(&fake);
    bad.client_secret = "nope".to_string().into();
    let err = Auth0Client::new(&bad, &fast_http(), &fast_limits(), None)
        .unwrap()
        .find_user_by_email("a@example.com")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(
        err.to_string().contains("client id or secret rejected"),
        "{err}"
    );
    let secret = SecretString::from(GOOD);
    let err = client(&fake)
        .create_user(&ada(), Some(pw(&secret)))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(err.to_string().contains("scope"), "{err}");
    assert!(!err.to_string().contains(GOOD));
}

#[tokio::test]
async fn the_epoch_reset_header_is_honoured_and_no_call_is_made_while_waiting() {
    let fake = auth0_fake().await;
    // Read as a delta, an epoch reset would be decades: longer than max_retry_after, which is
    // longer than the deadline, so the call would fail as rate limited instead of succeeding.
    let mut limits = fast_limits();
    limits.max_retry_after = Duration::from_secs(30);
    let c = Arc::new(Auth0Client::new(&auth0_config(&fake), &fast_http(), &limits, None).unwrap());
    c.find_user_by_email("warm@example.com").await.unwrap();
    fake.fail_next("get_users-by-email", 1, Fault::RateLimit { reset_secs: 2 });
    let first = {
        let c = c.clone();
        tokio::spawn(async move { c.find_user_by_email("a@example.com").await })
    };
    for _ in 0..200 {
        if fake.calls("get_users-by-email") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = c.find_user_by_email("b@example.com").await;
    assert!(first.await.unwrap().is_ok());
    assert!(second.is_ok());
    assert_eq!(fake.calls("get_users-by-email"), 4);
    let arrivals: Vec<_> = fake
        .arrivals()
        .into_iter()
        .filter(|(op, _)| op == "get_users-by-email")
        .collect();
    let throttled_at = arrivals[1].1;
    for (_, at) in &arrivals[2..] {
        // The reset is the next-but-one whole second: at least one second away.
        assert!(
            *at >= throttled_at + Duration::from_secs(1),
            "a call was made before the reset"
        );
    }
    no_violations(&fake);
}

#[tokio::test]
async fn transient_failures_are_retried_and_404_is_not_found() {
    let fake = auth0_fake().await;
    let c = client(&fake);
    fake.fail_next("get_users-by-email", 2, Fault::Status(503));
    assert_eq!(c.find_user_by_email("a@example.com").await.unwrap(), None);
    assert_eq!(fake.calls("get_users-by-email"), 3);
    let secret = SecretString::from(GOOD);
    let err = c
        .set_password(&ProviderUserId("auth0|missing".into()), pw(&secret))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound);
    fake.fail_next("post_users", 1, Fault::Status(500));
    c.create_user(&ada(), Some(pw(&secret))).await.unwrap();
    assert_eq!(fake.users().len(), 1);
    no_violations(&fake);
}

#[tokio::test]
async fn the_fakes_own_limit_answers_429_with_an_epoch_reset_that_the_client_honours() {
    // The client sends as fast as it may; the fake allows Auth0's free tier (2/s, burst 2).
    let fake = auth0_fake_with(FakeAuth0Options::default()).await;
    let c = Arc::new(client(&fake));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.find_user_by_email(&format!("u{i}@example.com")).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), None);
    }
    assert!(fake.rate_limited() > 0, "the burst was answered 429");
    no_violations(&fake);
}

#[tokio::test]
async fn a_request_that_breaks_the_spec_is_refused_and_recorded() {
    let fake = auth0_fake().await;
    let c = client(&fake);
    c.find_user_by_email("warm@example.com").await.unwrap();
    // Sent by hand, as a client bug would: an undeclared property.
    let token = reqwest::Client::new()
        .post(format!("{}/oauth/token", fake.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &fake.options().client_id)
                .append_pair("client_secret", &fake.options().client_secret)
                .append_pair("audience", &fake.audience())
                .finish(),
        )
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let status = reqwest::Client::new()
        .post(format!("{}/api/v2/users", fake.base_url()))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(
            &json!({"connection": "Username-Password-Authentication", "email": "a@example.com",
                      "password": GOOD, "legacy_id": "1"}),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
    let violations = fake.spec_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].contains("legacy_id"), "{violations:?}");
    assert!(fake.users().is_empty());
}

#[tokio::test]
async fn the_concurrency_cap_bounds_requests_in_flight() {
    let fake = auth0_fake().await;
    let mut limits = fast_limits();
    limits.max_concurrency = 2;
    let c = Arc::new(Auth0Client::new(&auth0_config(&fake), &fast_http(), &limits, None).unwrap());
    c.find_user_by_email("warm@example.com").await.unwrap();
    fake.fail_next(
        "get_users-by-email",
        6,
        Fault::Delay(Duration::from_millis(200)),
    );
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.find_user_by_email(&format!("u{i}@example.com")).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fake.max_in_flight(), 2);
}

#[tokio::test]
async fn a_token_is_replaced_before_it_expires() {
    let fake = auth0_fake_with(FakeAuth0Options {
        rate_limit: None,
        token_lifetime: Duration::from_secs(2),
        ..FakeAuth0Options::default()
    })
    .await;
    let c = client(&fake);
    c.find_user_by_email("a@example.com").await.unwrap();
    // Refreshed a tenth of its life before expiry: no request meets an expired token.
    tokio::time::sleep(Duration::from_millis(1900)).await;
    c.find_user_by_email("a@example.com").await.unwrap();
    assert_eq!(fake.calls("token"), 2);
    assert_eq!(fake.calls("get_users-by-email"), 2);
}

/// At the free tier's 2 requests per second with callers arriving as fast as they are served,
/// each waits its turn: admission is in arrival order, so none waits past a 4 s deadline (a
/// limiter without an order lets newer callers win the race again and again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_free_tier_rate_callers_are_admitted_in_order_within_the_deadline() {
    let fake = auth0_fake().await;
    let mut config = auth0_config(&fake);
    (config.requests_per_second, config.burst) = (2, 2);
    let mut h = fast_http();
    h.deadline = Duration::from_secs(4);
    let c = Arc::new(Auth0Client::new(&config, &h, &fast_limits(), None).unwrap());
    let mut tasks = Vec::new();
    for i in 0..28 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.find_user_by_email(&format!("u{i}@example.com")).await
        }));
        // Four at once, then one every half second: the backlog stays at four.
        if i >= 4 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fake.calls("get_users-by-email"), 28);
}

#[tokio::test]
async fn a_user_is_read_back_by_id_for_reconciliation() {
    let fake = auth0_fake().await;
    let c = client(&fake);
    let secret = SecretString::from(GOOD);
    let created = c.create_user(&ada(), Some(pw(&secret))).await.unwrap();
    let details = c.get_user(&created.id).await.unwrap().unwrap();
    assert_eq!(details.user.id, created.id);
    assert_eq!(details.user.email.as_deref(), Some("ada@example.com"));
    assert_eq!(details.user.legacy_id.as_deref(), Some("legacy-4711"));
    assert_eq!(
        details.password,
        dripgate::provider::PasswordState::Unknown,
        "Auth0's user profile does not say"
    );
    let missing = ProviderUserId("auth0|0000".into());
    assert_eq!(c.get_user(&missing).await.unwrap(), None);
    no_violations(&fake);
}
