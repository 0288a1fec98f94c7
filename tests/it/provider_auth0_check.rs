//! `dripgate provider check` for Auth0 (the client's report and the built binary) and the
//! capability table in docs/PROVIDERS.md, against the Auth0 fake.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dripgate::provider::Provider;
use dripgate::provider::auth0::Auth0Client;
use dripgate::testkit::auth0::{FakeAuth0, FakeAuth0Options, FakePasswordPolicy};

use crate::auth0_spec::{auth0_config, auth0_fake, auth0_fake_with, fast_http};
use crate::provider_common::fast_limits;

fn client(fake: &FakeAuth0) -> Auth0Client {
    Auth0Client::new(&auth0_config(fake), &fast_http(), &fast_limits(), None).unwrap()
}

fn no_violations(fake: &FakeAuth0) {
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
}

#[tokio::test]
async fn provider_check_reports_token_scopes_read_connection_and_policy() {
    let fake = auth0_fake_with(FakeAuth0Options {
        rate_limit: None,
        policy: FakePasswordPolicy {
            level: "excellent".into(),
            min_length: Some(12),
            dictionary: vec!["x".into()],
            history: 5,
        },
        ..FakeAuth0Options::default()
    })
    .await;
    let report = client(&fake).check_credentials().await;
    assert!(report.ok(), "{:?}", report.lines);
    let text = format!("{:?}", report.lines);
    for expected in [
        "read:users create:users update:users granted",
        "database connection",
        "passwordPolicy excellent, min length 12, dictionary on, history 5",
        "no per-user password hash import",
        "dripgate_password_change_required",
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }

    let narrow = auth0_fake_with(FakeAuth0Options {
        rate_limit: None,
        scopes: vec!["read:users".into()],
        ..FakeAuth0Options::default()
    })
    .await;
    let report = client(&narrow).check_credentials().await;
    assert!(!report.ok());
    let scopes = report.lines.iter().find(|(a, _)| a == "scopes").unwrap();
    assert_eq!(scopes.1, Err("missing create:users update:users".into()));
    let conn = report
        .lines
        .iter()
        .find(|(a, _)| a == "connection")
        .unwrap();
    assert!(conn.1.as_ref().unwrap().contains("not checked"), "{conn:?}");

    let mut elsewhere = auth0_config(&fake);
    elsewhere.connection = "google-oauth2".into();
    let report = Auth0Client::new(&elsewhere, &fast_http(), &fast_limits(), None)
        .unwrap()
        .check_credentials()
        .await;
    let conn = report
        .lines
        .iter()
        .find(|(a, _)| a == "connection")
        .unwrap();
    assert!(
        conn.1
            .as_ref()
            .unwrap_err()
            .contains("not a database connection"),
        "{conn:?}"
    );
    no_violations(&fake);
}

/// `dripgate provider check` (the built binary) against the fake: exit 0 with every line ok,
/// exit 1 naming the missing scopes; the secret is never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_checks_an_auth0_config() {
    let run = |fake_url: String, secret: String| async move {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(
            &mut file,
            format!(
                "[provider]\nkind = \"auth0\"\n[provider.auth0]\nbase_url = \"{fake_url}\"\n\
                 client_id = \"fake-auth0-client\"\nclient_secret = \"{secret}\"\n"
            )
            .as_bytes(),
        )
        .unwrap();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_dripgate"))
                .args(["provider", "check", "--config"])
                .arg(file.path())
                .output()
                .unwrap();
            (out.status.code(), String::from_utf8(out.stdout).unwrap())
        })
        .await
        .unwrap()
    };
    let fake = auth0_fake().await;
    let secret = fake.options().client_secret.clone();
    let (code, text) = run(fake.base_url(), secret.clone()).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.lines().count() >= 7, "{text}");
    assert!(text.lines().all(|l| l.starts_with("ok    ")), "{text}");
    assert!(
        text.contains("ok    scopes: read:users create:users update:users granted"),
        "{text}"
    );
    assert!(!text.contains(&secret));

    let narrow = auth0_fake_with(FakeAuth0Options {
        rate_limit: None,
        scopes: vec!["read:users".into(), "create:users".into()],
        ..FakeAuth0Options::default()
    })
    .await;
    let (code, text) = run(narrow.base_url(), secret.clone()).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL  scopes: missing update:users"),
        "{text}"
    );
    let (code, text) = run(fake.base_url(), "wrong-secret-value".into()).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.starts_with("FAIL  token: auth0 token: authentication failed"),
        "{text}"
    );
    assert!(!text.contains("wrong-secret-value"));
}

#[test]
fn the_capability_table_row_matches_the_client() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/PROVIDERS.md"),
    )
    .unwrap();
    let table = doc
        .split("| provider | create sets the password |")
        .nth(1)
        .expect("the capability table");
    let row = table
        .lines()
        .find(|l| l.starts_with("| Auth0 |"))
        .expect("an Auth0 row in the capability table");
    let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
    let config = dripgate::provider::auth0::Auth0Config {
        domain: Some("t.auth0.com".into()),
        ..crate::auth0_spec::auth0_config_for("http://127.0.0.1:9")
    };
    let caps = Auth0Client::new(&config, &fast_http(), &fast_limits(), None)
        .unwrap()
        .capabilities();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let imports: Vec<&str> = caps.imports.iter().map(|m| m.as_str()).collect();
    let imports = if imports.is_empty() {
        "none".to_string()
    } else {
        imports.join(", ")
    };
    assert_eq!(
        cells,
        [
            "Auth0",
            yes_no(caps.atomic_create_with_password),
            imports.as_str(),
            yes_no(caps.stores_legacy_id)
        ],
        "{row}"
    );
    // The wider table between the capability-table markers.
    let wide = doc
        .split("<!-- capability-table -->")
        .nth(1)
        .and_then(|t| t.split("<!-- /capability-table -->").next())
        .expect("the marked capability table");
    let row = wide
        .lines()
        .find(|l| l.starts_with("| Auth0 |"))
        .expect("an Auth0 row in the marked capability table");
    let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
    assert_eq!(cells[1], yes_no(caps.atomic_create_with_password), "{row}");
    assert!(cells[2].starts_with(imports.as_str()), "{row}");
    assert_eq!(
        cells[3].contains("dripgate_legacy_id"),
        caps.stores_legacy_id,
        "{row}"
    );
}
