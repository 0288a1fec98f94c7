//! `provider check` for Keycloak (in process and through the built binary), the config section.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dripgate::provider::{ErrorClass, Provider};
use dripgate::testkit::keycloak::FakeKeycloakOptions;

use super::{client, client_with, config, fake, fake_with, no_violations, options};

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
    // Unset: the legacy preset decides at load (docs/PROVIDERS.md, "Email verification").
    assert!(!kc.import_argon2 && kc.mark_email_verified.is_none() && !kc.temporary_password);
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
