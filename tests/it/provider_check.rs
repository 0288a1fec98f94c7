//! `dripgate provider check` and the provider config: loading, redaction, exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::provider_common;

use std::io::Write;

use dripgate::cli::provider_check as check;
use dripgate::provider::ProviderConfig;
use provider_common::*;

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[tokio::test]
async fn check_prints_one_line_per_aspect_and_exits_0_or_1() {
    let fake = kinde_fake().await;
    let good = write_config(&format!(
        "[provider]\nkind = \"kinde\"\n[provider.kinde]\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
        fake.base_url(),
        fake.options().client_id,
        fake.options().client_secret
    ));
    let mut out = Vec::new();
    assert_eq!(check::command(good.path(), &mut out).await, 0);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().all(|l| l.starts_with("ok")), "{text}");

    let bad = write_config(&format!(
        "[provider]\nkind = \"kinde\"\n[provider.kinde]\nbase_url = \"{}\"\nclient_id = \"x\"\nclient_secret = \"s3cret-value\"\n",
        fake.base_url()
    ));
    let mut out = Vec::new();
    assert_eq!(check::command(bad.path(), &mut out).await, 1);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("FAIL  token: kinde token: authentication failed: invalid_client"),
        "{text}"
    );
    assert!(!text.contains("s3cret-value"));
}

#[tokio::test]
async fn check_works_for_authgear_with_a_key_file_in_the_config() {
    let fake = authgear_fake().await;
    let key = read_spec_file("authgear-test-key.pem");
    let cfg = write_config(&format!(
        "[provider]\nkind = \"authgear\"\n[provider.authgear]\nbase_url = \"{}\"\nproject_id = \"myapp\"\nkey_id = \"test-key-1\"\nprivate_key_pem = '''\n{key}'''\n",
        fake.base_url()
    ));
    let mut out = Vec::new();
    assert_eq!(
        check::command(cfg.path(), &mut out).await,
        0,
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn config_rejects_unknown_fields_and_redacts_secrets() {
    let text = "kind = \"kinde\"\n[kinde]\nbase_url = \"https://mybiz.kinde.com\"\nclient_id = \"id\"\nclient_secret = \"s3cret\"\n[limits]\nrequests_per_second = 2\n";
    let cfg: ProviderConfig = toml::from_str(text).unwrap();
    cfg.validate().unwrap();
    assert_eq!(
        cfg.kinde.as_ref().unwrap().audience(),
        "https://mybiz.kinde.com/api"
    );
    assert_eq!(cfg.limits.requests_per_second, 2);
    assert!(!format!("{cfg:?}").contains("s3cret"));
    let back = toml::to_string(&cfg).unwrap();
    assert!(
        back.contains("<redacted") && !back.contains("s3cret"),
        "{back}"
    );
    assert!(toml::from_str::<ProviderConfig>(&format!("{text}bogus = 1\n")).is_err());
    let missing: ProviderConfig = toml::from_str("kind = \"authgear\"\n").unwrap();
    assert!(missing.validate().is_err());
}
