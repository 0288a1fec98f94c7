//! The Cognito client against the fake: every request SigV4-verified with the fake's secret and
//! checked against the botocore model (`spec_violations` and `auth_failures` empty at the end).

use std::sync::Arc;
use std::time::Duration;

use dripgate::provider::cognito::{
    CognitoClient, CognitoConfig, CognitoLookup, CognitoPasswordTransfer, CognitoQuotas,
    CognitoUsername,
};
use dripgate::provider::{
    ErrorClass, HashingMethod, ImportedHash, NewUser, Password, Provider, ProviderError,
    ProviderMetrics, ProviderUserId,
};
use dripgate::testkit::Fault;
use dripgate::testkit::cognito::{FakeCognito, FakeCognitoOptions};
use secrecy::SecretString;

use crate::provider_common::cognito::{config, fake, fake_with};
use crate::provider_common::{fast_limits, http};

pub const GOOD: &str = "Correct-Horse-7-Battery";

pub fn client_for(cfg: &CognitoConfig) -> CognitoClient {
    CognitoClient::new(cfg, &http(Duration::from_secs(5)), &fast_limits(), None).unwrap()
}

fn client(fake: &FakeCognito) -> CognitoClient {
    client_for(&config(fake))
}

fn ada() -> NewUser {
    NewUser {
        email: "Ada@Example.com".into(),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        legacy_id: Some("legacy-4711".into()),
    }
}

pub fn assert_clean(fake: &FakeCognito) {
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
}

async fn set(c: &CognitoClient, id: &ProviderUserId, pw: &str) -> Result<(), ProviderError> {
    let secret = SecretString::from(pw.to_string());
    c.set_password(id, Password::from_secret_string(&secret))
        .await
}

#[tokio::test]
async fn migrates_a_user_in_two_calls_and_the_password_signs_in() {
    let fake = fake().await;
    let c = client(&fake);
    assert_eq!(c.find_user_by_email("ada@example.com").await.unwrap(), None);
    let created = c.create_user(&ada(), None).await.unwrap();
    assert!(
        !created.password_set,
        "AdminCreateUser, then AdminSetUserPassword"
    );
    let user = fake.user_by_email("ada@example.com").unwrap();
    assert_eq!(user.status, "FORCE_CHANGE_PASSWORD");
    assert_eq!(
        user.username,
        created.id.as_str(),
        "the generated username is the id"
    );
    assert_eq!(user.attributes["email_verified"], "true");
    assert_eq!(user.attributes["custom:legacy_id"], "legacy-4711");
    assert_eq!(user.attributes["given_name"], "Ada");
    assert!(!fake.verify_password("ada@example.com", GOOD.as_bytes()));

    set(&c, &created.id, GOOD).await.unwrap();
    assert_eq!(
        fake.user_by_email("ada@example.com").unwrap().status,
        "CONFIRMED"
    );
    assert!(fake.verify_password("ada@example.com", GOOD.as_bytes()));
    assert!(!fake.verify_password("ada@example.com", b"Correct-Horse-7-Batterx"));
    assert_eq!(
        fake.messages_sent(),
        0,
        "MessageAction SUPPRESS: no invitation"
    );

    let found = c
        .find_user_by_email("ADA@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(found.legacy_id.as_deref(), Some("legacy-4711"));
    assert_eq!(found.email.as_deref(), Some("ada@example.com"));

    c.require_password_change(&created.id).await.unwrap();
    assert_eq!(
        fake.user_by_email("ada@example.com").unwrap().status,
        "RESET_REQUIRED"
    );
    assert!(!fake.verify_password("ada@example.com", GOOD.as_bytes()));
    for op in [
        "ListUsers",
        "AdminCreateUser",
        "AdminSetUserPassword",
        "AdminResetUserPassword",
    ] {
        assert!(fake.calls(op) >= 1, "{op}");
    }
    assert!(
        fake.auth_failures().is_empty(),
        "{:?}",
        fake.auth_failures()
    );
    assert_clean(&fake);
}

#[tokio::test]
async fn find_handles_case_quotes_and_admin_get_user() {
    let fake = fake().await;
    // A user made elsewhere with the legacy spelling: ListUsers `=` is exact, so the client
    // asks again with the email as given.
    let mixed = fake.insert_user("Bo.Smith@Example.org", Some("77"));
    let c = client(&fake);
    let found = c
        .find_user_by_email("Bo.Smith@Example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id.as_str(), mixed);
    assert_eq!(found.legacy_id.as_deref(), Some("77"));
    assert_eq!(fake.calls("ListUsers"), 2);
    // Quotes and backslashes are escaped inside the filter (a quoted local part).
    let odd = fake.insert_user(r#""a\"b"@example.org"#, None);
    let found = c
        .find_user_by_email(r#""a\"b"@example.org"#)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id.as_str(), odd);

    let mut cfg = config(&fake);
    cfg.lookup = CognitoLookup::AdminGetUser;
    let by_get = client_for(&cfg);
    let found = by_get
        .find_user_by_email("bo.smith@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id.as_str(), mixed, "alias lookup ignores case");
    assert_eq!(
        by_get
            .find_user_by_email("nobody@example.org")
            .await
            .unwrap(),
        None
    );
    assert!(fake.calls("AdminGetUser") >= 2);
    assert_clean(&fake);
}

#[tokio::test]
async fn duplicates_are_already_exists_with_the_existing_user() {
    // Email pool: UsernameExistsException.
    let fake = fake().await;
    let existing = fake.insert_user("ada@example.com", None);
    match client(&fake).create_user(&ada(), None).await {
        Err(ProviderError::AlreadyExists {
            existing_id: Some(id),
            ..
        }) => {
            assert_eq!(id.as_str(), existing);
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(fake.users().len(), 1);
    assert_clean(&fake);

    // Username pool with the legacy id as username: a retried create meets its own user
    // (UsernameExistsException), and a verified email taken by another user is
    // AliasExistsException.
    let fake = fake_with(FakeCognitoOptions {
        email_as_username: false,
        ..Default::default()
    })
    .await;
    let mut cfg = config(&fake);
    cfg.username = CognitoUsername::LegacyId;
    let c = client_for(&cfg);
    let first = c.create_user(&ada(), None).await.unwrap();
    assert_eq!(first.id.as_str(), "legacy-4711");
    match c.create_user(&ada(), None).await {
        Err(ProviderError::AlreadyExists {
            existing_id: Some(id),
            ..
        }) => assert_eq!(id, first.id),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let other = NewUser {
        legacy_id: Some("legacy-9999".into()),
        ..ada()
    };
    match c.create_user(&other, None).await {
        Err(ProviderError::AlreadyExists {
            existing_id: Some(id),
            ..
        }) => assert_eq!(id, first.id),
        other => panic!("expected AlreadyExists (alias), got {other:?}"),
    }
    assert_eq!(fake.users().len(), 1);
    assert_clean(&fake);
}

#[tokio::test]
async fn throttling_exceptions_are_retried_after_a_pause() {
    let fake = fake().await;
    let c = client(&fake);
    fake.fail_next("ListUsers", 1, Fault::RateLimit { reset_secs: 1 });
    fake.fail_next_exception("ListUsers", 1, "LimitExceededException");
    assert_eq!(c.find_user_by_email("a@example.com").await.unwrap(), None);
    assert_eq!(fake.calls("ListUsers"), 3, "two throttled, one answered");
    // A create refused with TooManyRequestsException was not processed: resent.
    fake.fail_next("AdminCreateUser", 1, Fault::RateLimit { reset_secs: 1 });
    c.create_user(&ada(), None).await.unwrap();
    assert_eq!(fake.calls("AdminCreateUser"), 2);
    assert_eq!(fake.users().len(), 1);
    // Throttled past every attempt: RateLimited, for the caller to defer.
    fake.fail_next("AdminGetUser", 10, Fault::RateLimit { reset_secs: 1 });
    let mut cfg = config(&fake);
    cfg.lookup = CognitoLookup::AdminGetUser;
    let err = client_for(&cfg)
        .find_user_by_email("a@example.com")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited);
    assert_eq!(fake.calls("AdminGetUser"), 4, "max_attempts");
    assert_clean(&fake);
}

#[tokio::test]
async fn quota_buckets_keep_under_the_account_quota() {
    // The fake allows ListUsers 10/s; a client configured with the same quota is never
    // throttled, one that believes in 1000/s is, and still gets every answer by retrying.
    let quotas = CognitoQuotas {
        user_list: 10,
        ..CognitoQuotas::default()
    };
    let fake = fake_with(FakeCognitoOptions {
        quotas: Some(quotas.clone()),
        ..Default::default()
    })
    .await;
    let mut cfg = config(&fake);
    cfg.quotas = quotas;
    let polite = Arc::new(client_for(&cfg));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = polite.clone();
        tasks.push(tokio::spawn(async move {
            c.find_user_by_email(&format!("u{i}@x.org")).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), None);
    }
    assert_eq!(fake.throttled(), 0, "the client's bucket matched the quota");

    let mut greedy_cfg = config(&fake);
    greedy_cfg.quotas.user_list = 1000;
    let greedy = Arc::new(client_for(&greedy_cfg));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let c = greedy.clone();
        tasks.push(tokio::spawn(async move {
            c.find_user_by_email(&format!("g{i}@x.org")).await
        }));
    }
    let answered = futures_util::future::join_all(tasks).await;
    assert!(
        fake.throttled() > 0,
        "a client above the quota is throttled"
    );
    assert!(answered.iter().any(|r| matches!(r, Ok(Ok(None)))));
    assert_clean(&fake);
}

#[tokio::test]
async fn an_expired_session_token_is_reread_from_its_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("session-token");
    std::fs::write(&token_file, "token-one\n").unwrap();
    let fake = fake_with(FakeCognitoOptions {
        session_token: Some("token-one".into()),
        ..Default::default()
    })
    .await;
    let mut cfg = config(&fake);
    let toml_secret = format!(
        "secret = {{ file = {:?} }}",
        token_file.display().to_string()
    );
    #[derive(serde::Deserialize)]
    struct Holder {
        secret: dripgate::config::Secret,
    }
    cfg.session_token = Some(toml::from_str::<Holder>(&toml_secret).unwrap().secret);
    let c = client_for(&cfg);
    c.find_user_by_email("a@example.com").await.unwrap();

    // Expired, and the file still has the old token: Auth, naming the expiry.
    fake.expire_tokens();
    let err = c.find_user_by_email("a@example.com").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(err.to_string().contains("expired"), "{err}");

    // Rotated at the source and at AWS: the next call re-reads it and succeeds.
    std::fs::write(&token_file, "token-two\n").unwrap();
    fake.rotate_session_token("token-two");
    let before = fake.calls("ListUsers");
    c.find_user_by_email("a@example.com").await.unwrap();
    assert_eq!(
        fake.calls("ListUsers") - before,
        2,
        "one refused, one resent"
    );
    assert!(!err.to_string().contains("token-one"));
    assert_clean(&fake);
}

#[tokio::test]
async fn bad_keys_region_and_iam_denials_are_auth_errors() {
    let fake = fake_with(FakeCognitoOptions {
        denied_actions: vec!["AdminCreateUser".into()],
        ..Default::default()
    })
    .await;
    let mut cfg = config(&fake);
    cfg.secret_access_key = "not-the-secret".to_string().into();
    let err = client_for(&cfg)
        .find_user_by_email("a@example.com")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(!err.to_string().contains("not-the-secret"));
    assert_eq!(fake.calls("ListUsers"), 1, "an auth failure is not retried");
    assert_eq!(fake.auth_failures(), ["signature mismatch"]);

    let mut cfg = config(&fake);
    cfg.access_key_id = "AKIAUNKNOWN000000000".into();
    let err = client_for(&cfg)
        .find_user_by_email("a@example.com")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("UnrecognizedClientException"),
        "{err}"
    );

    let err = client(&fake).create_user(&ada(), None).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(
        err.to_string().contains("cognito-idp:AdminCreateUser"),
        "{err}"
    );
    assert_clean(&fake);
}

#[tokio::test]
async fn a_create_that_commits_then_hangs_is_not_resent_and_is_found() {
    let fake = fake().await;
    let c = CognitoClient::new(
        &config(&fake),
        &http(Duration::from_millis(500)),
        &fast_limits(),
        None,
    )
    .unwrap();
    fake.fail_next("AdminCreateUser", 1, Fault::CommitThenHang);
    let err = c.create_user(&ada(), None).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(
        fake.calls("AdminCreateUser"),
        1,
        "an outcome-unknown create is not resent"
    );
    let found = c
        .find_user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fake.users()[0].username, found.id.as_str());
    assert_clean(&fake);
}

#[tokio::test]
async fn transient_failures_of_idempotent_calls_are_retried_creates_are_not() {
    let fake = fake().await;
    let c = client(&fake);
    fake.fail_next("ListUsers", 1, Fault::ResetConnection);
    fake.fail_next("ListUsers", 1, Fault::Status(500));
    fake.fail_next("ListUsers", 1, Fault::Delay(Duration::from_millis(50)));
    assert_eq!(c.find_user_by_email("a@example.com").await.unwrap(), None);
    assert_eq!(fake.calls("ListUsers"), 3);
    fake.fail_next("AdminCreateUser", 1, Fault::Status(500));
    let err = c.create_user(&ada(), None).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(fake.calls("AdminCreateUser"), 1);
    assert_clean(&fake);
}

#[tokio::test]
async fn the_pools_policy_refuses_passwords_as_password_rejected() {
    let fake = fake().await;
    let c = client(&fake);
    let id = c.create_user(&ada(), None).await.unwrap().id;
    match set(&c, &id, "alllowercase").await {
        Err(ProviderError::PasswordRejected { reasons, .. }) => {
            assert_eq!(reasons[0], "InvalidPasswordException");
            assert!(reasons[1].contains("uppercase"), "{reasons:?}");
        }
        other => panic!("expected PasswordRejected, got {other:?}"),
    }
    fake.fail_next("AdminSetUserPassword", 1, Fault::PasswordPolicy);
    assert_eq!(
        set(&c, &id, GOOD).await.unwrap_err().class(),
        ErrorClass::PasswordRejected
    );
    let calls = fake.calls("AdminSetUserPassword");
    // What the model forbids is refused without a call: too long, only spaces, not UTF-8.
    let long = format!("Aa1-{}", "x".repeat(300));
    assert_eq!(
        set(&c, &id, &long).await.unwrap_err().class(),
        ErrorClass::PasswordRejected
    );
    assert_eq!(
        set(&c, &id, "    ").await.unwrap_err().class(),
        ErrorClass::PasswordRejected
    );
    let latin1 = secrecy::SecretSlice::from(vec![0xe9u8, b'A', b'1', b'-']);
    let err = c
        .set_password(&id, Password::from_secret_bytes(&latin1))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PasswordRejected);
    assert_eq!(fake.calls("AdminSetUserPassword"), calls);
    assert!(!fake.verify_password("ada@example.com", GOOD.as_bytes()));
    assert_clean(&fake);
}

#[tokio::test]
async fn a_legacy_id_attribute_missing_from_the_schema_fails_the_create() {
    let fake = fake_with(FakeCognitoOptions {
        custom_attributes: Vec::new(),
        ..Default::default()
    })
    .await;
    let err = client(&fake).create_user(&ada(), None).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert!(err.to_string().contains("custom:legacy_id"), "{err}");
    assert!(fake.users().is_empty());
    assert_clean(&fake);
}

#[tokio::test]
async fn no_hash_import_and_legacy_hash_asks_for_the_fallback() {
    let fake = fake().await;
    let c = client(&fake);
    let caps = c.capabilities();
    assert!(
        caps.imports.is_empty() && !caps.prefers_legacy_hash && !caps.atomic_create_with_password
    );
    assert!(caps.stores_legacy_id);
    let hash = ImportedHash::new(HashingMethod::Bcrypt, "$2b$04$abcdefghijklmnopqrstuu");
    let err = c
        .import_legacy_hash(&ProviderUserId("x".into()), &hash)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unsupported);
    let mut cfg = config(&fake);
    cfg.password_transfer = CognitoPasswordTransfer::LegacyHash;
    cfg.legacy_id_attribute = None;
    let caps = client_for(&cfg).capabilities();
    assert!(caps.prefers_legacy_hash && caps.imports.is_empty() && !caps.stores_legacy_id);
}

#[tokio::test]
async fn metrics_count_calls_under_provider_cognito() {
    let fake = fake().await;
    let registry = prometheus::Registry::new();
    let metrics = ProviderMetrics::register(&registry).unwrap();
    let c = CognitoClient::new(
        &config(&fake),
        &http(Duration::from_secs(5)),
        &fast_limits(),
        Some(metrics),
    )
    .unwrap();
    fake.fail_next("ListUsers", 1, Fault::Status(503));
    c.find_user_by_email("a@example.com").await.unwrap();
    let text = dripgate::metrics::render(&registry).unwrap();
    for status in ["ok", "transient"] {
        let series = format!(
            r#"dripgate_provider_requests_total{{operation="find_user",provider="cognito",status="{status}"}} 1"#
        );
        assert!(text.contains(&series), "{text}");
    }
}

#[test]
fn config_validation_names_the_bad_key() {
    let base = |f: &dyn Fn(&mut CognitoConfig)| {
        let mut c = CognitoConfig {
            region: "eu-west-1".into(),
            user_pool_id: "eu-west-1_AbC123".into(),
            access_key_id: "AKIA".into(),
            secret_access_key: "s".to_string().into(),
            session_token: None,
            endpoint: None,
            username: CognitoUsername::Email,
            lookup: CognitoLookup::ListUsers,
            legacy_id_attribute: None,
            mark_email_verified: Some(true),
            password_transfer: CognitoPasswordTransfer::Password,
            quotas: CognitoQuotas::default(),
        };
        f(&mut c);
        c.validate()
    };
    base(&|_| {}).unwrap();
    assert_eq!(
        CognitoConfig::endpoint(&CognitoConfig {
            endpoint: None,
            ..config_stub()
        }),
        "https://cognito-idp.eu-west-1.amazonaws.com/"
    );
    for (f, key) in [
        (
            &(|c: &mut CognitoConfig| c.region = "Europe".into()) as &dyn Fn(&mut CognitoConfig),
            "region",
        ),
        (
            &|c: &mut CognitoConfig| c.user_pool_id = "us-east-1_AbC".into(),
            "user_pool_id",
        ),
        (
            &|c: &mut CognitoConfig| c.endpoint = Some("ftp://x".into()),
            "endpoint",
        ),
        (
            &|c: &mut CognitoConfig| c.legacy_id_attribute = Some("email".into()),
            "legacy_id_attribute",
        ),
        (
            &|c: &mut CognitoConfig| c.quotas.user_creation = 0,
            "quotas",
        ),
    ] {
        let err = base(f).unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
}

fn config_stub() -> CognitoConfig {
    toml::from_str(
        r#"
region = "eu-west-1"
user_pool_id = "eu-west-1_AbC123"
access_key_id = "AKIA"
secret_access_key = "s"
"#,
    )
    .unwrap()
}

#[tokio::test]
async fn the_capability_table_row_matches_the_client() {
    let fake = fake().await;
    let caps = client(&fake).capabilities();
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROVIDERS.md")).unwrap();
    let row = doc
        .split("<!-- capability-table -->")
        .nth(1)
        .and_then(|t| t.split("<!-- /capability-table -->").next())
        .expect("docs/PROVIDERS.md has the capability table")
        .lines()
        .find(|l| l.starts_with("| Cognito |"))
        .expect("a Cognito row in the capability table");
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // | provider | create with password | hash import | legacy id stored | force change | …
    let expected_create = if caps.atomic_create_with_password {
        "yes"
    } else {
        "no (create, then set)"
    };
    assert_eq!(cells[2], expected_create, "{row}");
    assert!(
        cells[3].starts_with(if caps.imports.is_empty() {
            "none"
        } else {
            "yes"
        }),
        "{row}"
    );
    assert!(
        caps.stores_legacy_id && cells[4].contains("legacy_id_attribute"),
        "{row}"
    );
    assert!(cells[5].contains("AdminResetUserPassword"), "{row}");
    // The code-derived table: create sets the password, imports, legacy id.
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let imports: Vec<&str> = caps.imports.iter().map(|m| m.as_str()).collect();
    let imports = if imports.is_empty() {
        "none".to_string()
    } else {
        imports.join(", ")
    };
    assert!(
        doc.lines().any(|l| l
            == format!(
                "| Cognito | {} | {imports} | {} |",
                yes_no(caps.atomic_create_with_password),
                yes_no(caps.stores_legacy_id)
            )),
        "the Cognito row of the table of capabilities()"
    );
    // The "calls to create" cell counts what the fake saw.
    let secret = SecretString::from(GOOD);
    let created = client(&fake).create_user(&ada(), None).await.unwrap();
    client(&fake)
        .set_password(&created.id, Password::from_secret_string(&secret))
        .await
        .unwrap();
    assert_eq!(
        fake.calls("AdminCreateUser") + fake.calls("AdminSetUserPassword"),
        2
    );
}

#[test]
fn the_example_configs_cognito_section_parses_and_validates() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/dripgate.example.toml"
    ))
    .unwrap();
    let start = example.find("# [provider.cognito]").unwrap();
    let end = start + example[start..].find("# [provider.http]").unwrap();
    let section: String = example[start..end]
        .lines()
        .filter(|l| !l.contains("session_token"))
        .map(|l| l.trim_start_matches('#').trim_start())
        .map(|l| l.replace(r#"{ env = "AWS_SECRET_ACCESS_KEY" }"#, r#""example""#))
        .collect::<Vec<_>>()
        .join("\n");
    let text = format!("[provider]\nkind = \"cognito\"\n{section}");
    #[derive(serde::Deserialize)]
    struct Holder {
        provider: dripgate::provider::ProviderConfig,
    }
    let parsed: Holder = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    parsed.provider.validate().unwrap();
    let c = parsed.provider.cognito.unwrap();
    assert_eq!(c.quotas, CognitoQuotas::default());
    assert_eq!(c.legacy_id_attribute.as_deref(), Some("custom:legacy_id"));
}

#[tokio::test]
async fn get_user_reads_the_password_state_from_the_user_status() {
    use dripgate::provider::PasswordState;
    let fake = fake().await;
    let c = client(&fake);
    let id = c.create_user(&ada(), None).await.unwrap().id;
    let created = c.get_user(&id).await.unwrap().unwrap();
    assert_eq!(
        created.password,
        PasswordState::NotSet,
        "FORCE_CHANGE_PASSWORD"
    );
    assert_eq!(created.user.legacy_id.as_deref(), Some("legacy-4711"));
    set(&c, &id, GOOD).await.unwrap();
    let migrated = c.get_user(&id).await.unwrap().unwrap();
    assert_eq!(migrated.password, PasswordState::Set);
    assert_eq!(migrated.user.email.as_deref(), Some("ada@example.com"));
    let gone = ProviderUserId("00000000-0000-4000-a000-000000000000".into());
    assert_eq!(c.get_user(&gone).await.unwrap(), None);
    assert_clean(&fake);
}
