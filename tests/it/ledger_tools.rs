//! `dripgate ledger export`, `ledger forget` and `ledger verify` on the built binary, against a
//! SQLite and (when configured) a PostgreSQL ledger, and the Kinde and Authgear fakes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dripgate::ledger::{EXPORT_COLUMNS, Ledger, LedgerError, State};
use dripgate::provider::authgear::AuthgearClient;
use dripgate::provider::{NewUser, Password, Provider};
use dripgate::testkit::authgear::FakeAuthgear;
use dripgate::testkit::kinde::FakeKinde;
use secrecy::SecretString;
use serde_json::Value;

use crate::ledger_common::{TestDb, dbs};
use crate::provider_common;

const BIN: &str = env!("CARGO_BIN_EXE_dripgate");

/// Runs `dripgate ARGS --config CONFIG`.
fn dripgate(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .envs(envs.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config file with the test database as the ledger, an audit file beside it and `extra`.
fn write_config(dir: &Path, db: &TestDb, extra: &str) -> PathBuf {
    let path = dir.join("dripgate.toml");
    std::fs::write(
        &path,
        format!(
            "[ledger]\nurl = \"{}\"\n\n[audit]\nfile = \"{}\"\n\n{extra}",
            db.config.url.expose(),
            dir.join("audit.jsonl").display()
        ),
    )
    .unwrap();
    path
}

/// Records `key` as migrated to provider user `id` (the fingerprint made from the key).
pub async fn migrated(ledger: &Ledger, key: &str, id: &str) {
    let claim = ledger.claim(key, "test", "bcrypt").await.unwrap().unwrap();
    ledger.mark_created(&claim, id).await.unwrap();
    let fingerprint = ledger.fingerprint(key.as_bytes());
    ledger
        .mark_migrated(&claim, id, &fingerprint)
        .await
        .unwrap();
}

const USERS: usize = 2345;

#[tokio::test]
async fn export_streams_every_row_in_key_order_without_fingerprints() {
    for db in dbs("ledger_export").await {
        let ledger = db.open().await;
        let mut expected_migrated = 0;
        for i in 0..USERS {
            let key = format!("user{i:05}@example.com");
            if i % 3 == 0 {
                migrated(&ledger, &key, &format!("kp_{i}")).await;
                expected_migrated += 1;
            } else {
                let claim = ledger.claim(&key, "test", "phpass").await.unwrap().unwrap();
                ledger
                    .mark_failed(&claim, "provider_unavailable")
                    .await
                    .unwrap();
            }
        }
        let fingerprint = ledger.get("user00000@example.com").await.unwrap().unwrap();
        let fingerprint = fingerprint.hash_fingerprint.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &db, "");

        // CSV to a file: a header, then every row once, in key order (pages of 1000).
        let csv_path = dir.path().join("ledger.csv");
        let out = dripgate(
            &config,
            &[
                "ledger",
                "export",
                "--format",
                "csv",
                "--output",
                csv_path.to_str().unwrap(),
            ],
            &[],
        );
        assert!(out.status.success(), "{}: {}", db.name, text(&out.stderr));
        assert!(text(&out.stderr).contains(&format!("exported {USERS} ledger rows")));
        assert!(!dir.path().join("ledger.csv.partial").exists());
        let file = std::fs::read_to_string(&csv_path).unwrap();
        assert!(
            !file.contains(&fingerprint),
            "{}: fingerprint exported",
            db.name
        );
        let mut reader = csv::Reader::from_reader(file.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, EXPORT_COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), USERS, "{}", db.name);
        let keys: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "{}: keys out of order or repeated",
            db.name
        );
        let first = &rows[0];
        assert_eq!(&first[0], "user00000@example.com");
        assert_eq!(&first[1], "migrated");
        assert_eq!(&first[2], "kp_0");
        assert_eq!(&first[3], "bcrypt");
        assert!(first[8].parse::<i64>().unwrap() > 0, "migrated_at");
        let second = &rows[1];
        assert_eq!(
            (&second[1], &second[2], &second[5]),
            ("claimed", "", "provider_unavailable")
        );
        assert_eq!(&second[8], "", "not migrated: no migrated_at");

        // JSON lines of one state to standard output.
        let out = dripgate(
            &config,
            &[
                "ledger", "export", "--format", "jsonl", "--state", "migrated",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let lines: Vec<Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), expected_migrated, "{}", db.name);
        assert!(
            lines
                .iter()
                .all(|l| l["state"] == "migrated" && l["provider_user_id"].is_string())
        );
        let keys: Vec<&str> = lines[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut columns = EXPORT_COLUMNS.to_vec();
        columns.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, columns);

        let out = dripgate(
            &config,
            &["ledger", "export", "--format", "csv", "--state", "done"],
            &[],
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("--state must be one of"));

        ledger.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn forget_resets_the_row_audits_and_refuses_a_live_lease_unless_forced() {
    for db in dbs("ledger_forget").await {
        let ledger = db.open().await;
        migrated(&ledger, "alice@example.com", "kp_alice").await;
        let held = ledger
            .claim("bob@example.com", "replica-a", "bcrypt")
            .await
            .unwrap()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &db, "");
        let before = ledger.get("alice@example.com").await.unwrap().unwrap();

        let out = dripgate(
            &config,
            &[
                "ledger",
                "forget",
                "alice@example.com",
                "--reason",
                "deleted at the provider, ticket 7",
                "--operator",
                "ops-jane",
            ],
            &[],
        );
        assert!(out.status.success(), "{}: {}", db.name, text(&out.stderr));
        let said = text(&out.stdout);
        assert!(
            said.contains("forgot alice@example.com (was migrated"),
            "{said}"
        );
        assert!(said.contains("ledger.cache.ttl"), "{said}");
        let row = ledger.get("alice@example.com").await.unwrap().unwrap();
        assert_eq!(row.state, State::Claimed);
        assert_eq!(row.provider_user_id, None);
        assert_eq!(row.hash_fingerprint, None);
        assert_eq!(row.migrated_at, None);
        assert_eq!(row.last_error.as_deref(), Some("forgotten"));
        assert_eq!(row.lease_expires_at, 0);
        assert_eq!(row.epoch, before.epoch + 1);
        // This process cached alice as migrated when it migrated her: a running replica's
        // cache keeps the entry until `ledger.cache.ttl` (the documented bound); the database
        // no longer says so.
        assert!(ledger.cached_migrated("alice@example.com").await.is_some());
        ledger.invalidate_cached("alice@example.com").await;
        assert_eq!(ledger.is_migrated("alice@example.com").await.unwrap(), None);

        let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        let events: Vec<Value> = audit
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), 1, "{audit}");
        let event = &events[0];
        assert_eq!(event["event"], "user.forgotten");
        assert_eq!(event["user"], "alice@example.com");
        assert_eq!(event["provider_user_id"], "kp_alice");
        assert_eq!(event["actor"]["via"], "cli");
        assert_eq!(event["actor"]["operator"], "ops-jane");
        let detail = event["detail"].as_str().unwrap();
        assert!(
            detail.contains("was migrated") && detail.contains("ticket 7"),
            "{detail}"
        );

        // The next sign-in claims the user as new.
        let claim = ledger
            .claim("alice@example.com", "test", "bcrypt")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (claim.state, claim.provider_user_id),
            (State::Claimed, None)
        );

        // A live lease: refused, nothing changed; with --force the holder is fenced.
        let out = dripgate(&config, &["ledger", "forget", "bob@example.com"], &[]);
        assert_eq!(out.status.code(), Some(1), "{}", db.name);
        assert!(
            text(&out.stderr).contains("lease held by replica-a"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(
            ledger.get("bob@example.com").await.unwrap().unwrap().epoch,
            held.epoch
        );
        let out = dripgate(
            &config,
            &["ledger", "forget", "--force", "bob@example.com"],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(matches!(
            ledger.mark_created(&held, "kp_late").await,
            Err(LedgerError::Fenced)
        ));

        let out = dripgate(&config, &["ledger", "forget", "nobody@example.com"], &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("not in the ledger"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("audit.jsonl"))
                .unwrap()
                .lines()
                .count(),
            2
        );

        ledger.close().await;
        db.cleanup().await;
    }
}

fn kinde_section(fake: &FakeKinde) -> String {
    format!(
        "[provider]\nkind = \"kinde\"\n\n[provider.kinde]\nbase_url = \"{}\"\nclient_id = \"{}\"\n\
         client_secret = {{ env = \"TEST_KINDE_SECRET\" }}\n\n\
         [provider.limits]\nrequests_per_second = 1000\nburst = 1000\nmax_attempts = 1\n",
        fake.base_url(),
        fake.options().client_id
    )
}

fn report(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn finding<'a>(lines: &'a [Value], key: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["user_key"] == key)
        .unwrap_or_else(|| panic!("{key} not reported"))
}

// The binary runs (blocking) on one worker while the fake answers on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_drift_against_kinde() {
    for db in dbs("ledger_verify_kinde").await {
        let fake = provider_common::kinde_fake().await;
        let secret = fake.options().client_secret.clone();
        let ledger = db.open().await;
        let ok = fake.insert_user("ok@example.com");
        migrated(&ledger, "ok@example.com", &ok).await;
        let renamed = fake.insert_user("renamed@example.com");
        fake.set_email(&renamed, "someone-else@example.com");
        migrated(&ledger, "renamed@example.com", &renamed).await;
        let moved = fake.insert_user("moved@example.com");
        migrated(
            &ledger,
            "moved@example.com",
            "kp_00000000000000000000000000000001",
        )
        .await;
        migrated(
            &ledger,
            "gone@example.com",
            "kp_00000000000000000000000000000002",
        )
        .await;
        ledger
            .claim("pending@example.com", "test", "bcrypt")
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &db, &kinde_section(&fake));
        let report_path = dir.path().join("verify.jsonl");

        let out = dripgate(
            &config,
            &[
                "ledger",
                "verify",
                "--report",
                report_path.to_str().unwrap(),
            ],
            &[("TEST_KINDE_SECRET", &secret)],
        );
        let said = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {said}{}",
            db.name,
            text(&out.stderr)
        );
        assert!(
            said.contains("checked 4 migrated users at kinde: 1 ok, 3 with drift"),
            "{said}"
        );
        assert!(
            said.contains("password unknown (kinde does not show it): 4"),
            "{said}"
        );
        let lines = report(&report_path);
        assert_eq!(lines.len(), 4);
        let ok_line = finding(&lines, "ok@example.com");
        assert_eq!(ok_line["status"], "ok");
        assert_eq!(ok_line["email"], "match");
        assert_eq!(ok_line["password"], "unknown");
        let renamed_line = finding(&lines, "renamed@example.com");
        assert_eq!(renamed_line["drift"], serde_json::json!(["email_mismatch"]));
        assert_eq!(renamed_line["provider_email"], "someone-else@example.com");
        let moved_line = finding(&lines, "moved@example.com");
        assert_eq!(moved_line["drift"], serde_json::json!(["id_mismatch"]));
        assert_eq!(moved_line["found_id"], moved.as_str());
        let gone_line = finding(&lines, "gone@example.com");
        assert_eq!(
            gone_line["drift"],
            serde_json::json!(["missing_at_provider"])
        );
        assert_eq!(fake.calls("getUserData"), 4);
        assert!(
            fake.spec_violations().is_empty(),
            "{:?}",
            fake.spec_violations()
        );

        // A sample checks that many users.
        let out = dripgate(
            &config,
            &["ledger", "verify", "--sample", "2"],
            &[("TEST_KINDE_SECRET", &secret)],
        );
        assert!(
            text(&out.stdout).contains("checked 2 migrated users"),
            "{}",
            text(&out.stdout)
        );

        // Checks that fail are not drift: credentials refused → every user unchecked, exit 3.
        let out = dripgate(
            &config,
            &["ledger", "verify"],
            &[("TEST_KINDE_SECRET", "wrong-secret")],
        );
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(3), "{said}{}", text(&out.stderr));
        assert!(
            said.contains("0 with drift, 4 not checked") && said.contains("error auth"),
            "{said}"
        );

        ledger.close().await;
        db.cleanup().await;
    }
}

async fn authgear_user(client: &AuthgearClient, email: &str) -> String {
    let password = SecretString::from("correct horse battery staple");
    let user = NewUser {
        email: email.to_owned(),
        given_name: None,
        family_name: None,
        legacy_id: None,
    };
    let created = client
        .create_user(&user, Some(Password::from_secret_string(&password)))
        .await
        .unwrap();
    created.id.0
}

// The binary runs (blocking) on one worker while the fake answers on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_authgear_passwords() {
    let fake: FakeAuthgear = provider_common::authgear_fake().await;
    let client = AuthgearClient::new(
        &provider_common::authgear_config(&fake),
        &provider_common::http(std::time::Duration::from_secs(5)),
        &provider_common::fast_limits(),
        None,
    )
    .unwrap();
    let db = dbs("ledger_verify_authgear").await.remove(0);
    let ledger = db.open().await;
    for email in ["ada@example.com", "bea@example.com", "cy@example.com"] {
        let id = authgear_user(&client, email).await;
        migrated(&ledger, email, &id).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let section = format!(
        "[provider]\nkind = \"authgear\"\n\n[provider.authgear]\nbase_url = \"{}\"\n\
         project_id = \"myapp\"\nkey_id = \"test-key-1\"\nprivate_key_pem = {{ file = \"{}\" }}\n",
        fake.base_url(),
        provider_common::spec_path("authgear-test-key.pem").display()
    );
    let config = write_config(dir.path(), &db, &section);
    let report_path = dir.path().join("verify.jsonl");
    let verify = || {
        dripgate(
            &config,
            &[
                "ledger",
                "verify",
                "--report",
                report_path.to_str().unwrap(),
            ],
            &[],
        )
    };

    let out = verify();
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(
        said.contains("checked 3 migrated users at authgear: 3 ok"),
        "{said}"
    );
    assert!(
        report(&report_path)
            .iter()
            .all(|l| l["password"] == "set" && l["email"] == "match")
    );

    fake.remove_password("bea@example.com");
    assert!(fake.delete_user("cy@example.com"));
    let out = verify();
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("1 ok, 2 with drift"), "{said}");
    let lines = report(&report_path);
    let bea = finding(&lines, "bea@example.com");
    assert_eq!(
        (&bea["password"], &bea["drift"]),
        (&Value::from("not_set"), &serde_json::json!(["no_password"]))
    );
    assert_eq!(
        finding(&lines, "cy@example.com")["drift"],
        serde_json::json!(["missing_at_provider"])
    );
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
    ledger.close().await;
    db.cleanup().await;
}
