//! `dripgate provider check` for Cognito: the signed call, the pool's password policy, the
//! legacy-id attribute in the schema, and the IAM actions (a denied one is named). Through the
//! built binary, with the config file an operator writes.

use std::io::Write;
use std::process::Command;

use dripgate::provider::Provider;
use dripgate::testkit::cognito::{FakeCognito, FakeCognitoOptions};

use super::client::client_for;
use crate::provider_common::cognito::{config, fake, fake_with};

fn config_file(fake: &FakeCognito, extra: &str) -> tempfile::NamedTempFile {
    let o = fake.options();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(
        f,
        "[provider]\nkind = \"cognito\"\n[provider.cognito]\nregion = \"{}\"\nuser_pool_id = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = {{ env = \"TEST_COGNITO_SECRET\" }}\nendpoint = \"{}\"\nlegacy_id_attribute = \"custom:legacy_id\"\n{extra}",
        o.region,
        o.user_pool_id,
        o.access_key_id,
        fake.base_url()
    )
    .unwrap();
    f
}

fn run_check(fake: &FakeCognito, secret: &str, extra: &str) -> (i32, String) {
    let file = config_file(fake, extra);
    let out = Command::new(env!("CARGO_BIN_EXE_dripgate"))
        .args(["provider", "check", "--config"])
        .arg(file.path())
        .env("TEST_COGNITO_SECRET", secret)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_policy_schema_and_permissions_through_the_binary() {
    let fake = fake().await;
    let secret = fake.options().secret_access_key.clone();
    // The binary runs while this runtime's other worker serves the fake.
    let (code, text) = tokio::task::block_in_place(|| run_check(&fake, &secret, ""));
    assert_eq!(code, 0, "{text}");
    for line in [
        "ok    signed call (DescribeUserPool): access key AKIAFAKEDRIPGATE0001, region eu-west-1: pool eu-west-1_FakePool1 (dripgate-fake-pool)",
        "ok    password policy: at least 8 characters, needs upper case, lower case, digits, symbols",
        "ok    legacy id attribute custom:legacy_id: in the pool's schema",
        "ok    IAM cognito-idp:ListUsers: allowed",
        "ok    IAM cognito-idp:AdminSetUserPassword: allowed",
        "ok    IAM cognito-idp:AdminResetUserPassword: allowed",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(fake.users().is_empty(), "the probes changed nothing");
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );

    let (code, text) = tokio::task::block_in_place(|| run_check(&fake, "wrong-secret-value", ""));
    assert_eq!(code, 1);
    assert!(
        text.starts_with("FAIL  signed call (DescribeUserPool)"),
        "{text}"
    );
    assert!(text.contains("InvalidSignatureException"), "{text}");
    assert!(!text.contains("wrong-secret-value"));
    assert_eq!(
        text.lines().count(),
        1,
        "nothing more to check without a signature: {text}"
    );
}

#[tokio::test]
async fn check_names_a_missing_attribute_and_a_denied_action() {
    let fake = fake_with(FakeCognitoOptions {
        custom_attributes: Vec::new(),
        denied_actions: vec!["AdminSetUserPassword".into()],
        ..Default::default()
    })
    .await;
    let report = client_for(&config(&fake)).check_credentials().await;
    assert!(!report.ok());
    let failed: Vec<String> = report
        .lines
        .iter()
        .filter_map(|(aspect, r)| r.as_ref().err().map(|e| format!("{aspect}: {e}")))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed[0].starts_with("legacy id attribute custom:legacy_id: not in the pool's schema"),
        "{failed:?}"
    );
    assert!(
        failed[1].starts_with("IAM cognito-idp:AdminSetUserPassword: ")
            && failed[1].contains("IAM denies cognito-idp:AdminSetUserPassword"),
        "{failed:?}"
    );
}
