//! `dripgate legacy census` and `dripgate legacy lookup` against a WordPress SQLite database,
//! with the database URL given as a secret from the environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::legacy_support;

use std::process::Command;

use legacy_support::vector;

const BIN: &str = env!("CARGO_BIN_EXE_dripgate");

async fn wordpress_db(path: &std::path::Path) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE wp_users (ID INTEGER PRIMARY KEY, user_login varchar(60) NOT NULL default '', user_pass varchar(255) NOT NULL default '', user_email varchar(100) NOT NULL default '', display_name varchar(250) NOT NULL default '')",
        "CREATE TABLE wp_usermeta (umeta_id INTEGER PRIMARY KEY, user_id bigint NOT NULL default 0, meta_key varchar(255), meta_value text)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let rows = [
        ("admin", "Admin@Example.com", vector("wp_bcrypt-001").hash),
        ("bob", "bob@example.com", vector("wp_phpass-001").hash),
        ("nomail", "", vector("wp_md5-001").hash),
    ];
    for (login, email, pass) in rows {
        sqlx::query("INSERT INTO wp_users (user_login, user_email, user_pass) VALUES (?, ?, ?)")
            .bind(login)
            .bind(email)
            .bind(pass)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

/// Runs `dripgate legacy ARGS --config CONFIG` in the config's directory (where the default
/// ledger file, in which the census records its summary, then lands).
fn run(config: &std::path::Path, db_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .current_dir(config.parent().unwrap())
        .arg("legacy")
        .args(args)
        .arg("--config")
        .arg(config)
        .env("TEST_LEGACY_DB_URL", db_url)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// The WordPress database and a config for it, followed by `extra` TOML; returns the directory
/// (kept alive), the config path and the database URL.
async fn wordpress_setup(extra: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wp.db");
    wordpress_db(&db).await;
    let config = dir.path().join("dripgate.toml");
    std::fs::write(
        &config,
        format!(
            "[legacy]\npreset = \"wordpress\"\ndatabase_url = {{ env = \"TEST_LEGACY_DB_URL\" }}\n{extra}"
        ),
    )
    .unwrap();
    let url = format!("sqlite://{}", db.display());
    (dir, config, url)
}

#[tokio::test]
async fn census_and_lookup_commands() {
    let (dir, config, url) = wordpress_setup("").await;
    let secrets = [vector("wp_bcrypt-001").hash, vector("wp_phpass-001").hash];

    let out = run(&config, &url, &["census"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("users:                   3"), "{text}");
    assert!(text.contains("can migrate:             2"), "{text}");
    assert!(text.contains("no_email"), "{text}");

    let out = run(&config, &url, &["census", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["users"], 3);
    assert_eq!(json["migratable"], 2);
    assert_eq!(json["not_migratable"]["no_email"], 1);
    assert_eq!(json["formats"]["wordpress"], 3);

    let out = run(&config, &url, &["lookup", "ADMIN"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("admin@example.com"), "{text}");
    assert!(text.contains("redacted"), "{text}");
    let out = run(&config, &url, &["lookup", "--json", "bob@EXAMPLE.com"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["legacy_id"], "2");
    assert_eq!(json["work_factor"], "count_log2=13");
    let out = run(&config, &url, &["lookup", "nomail"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no_email"));
    let out = run(&config, &url, &["lookup", "nobody"]);
    assert_eq!(out.status.code(), Some(1));

    for out in [
        run(&config, &url, &["census"]),
        run(&config, &url, &["lookup", "admin"]),
        run(&config, &url, &["lookup", "bob"]),
    ] {
        let all = [out.stdout, out.stderr].concat();
        let all = String::from_utf8_lossy(&all);
        for s in &secrets {
            assert!(!all.contains(s.as_str()), "hash leaked: {all}");
        }
    }

    // check-config shows where the database URL comes from, never the URL. (In `observe`:
    // the config has no [provider], without which serve, and so check-config, refuse `migrate`.)
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .env("TEST_LEGACY_DB_URL", &url)
        .env("DRIPGATE_MIGRATION__PHASE", "observe")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("[legacy]"), "{text}");
    assert!(
        text.contains("<redacted: env TEST_LEGACY_DB_URL>"),
        "{text}"
    );
    assert!(!text.contains(&url), "{text}");

    // A config without [legacy] is a usage error.
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let out = run(&empty, &url, &["census"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn census_and_lookup_apply_the_configured_work_factor_caps() {
    // bob's phpass hash has count_log2 = 13: over this cap, sign-in would never verify it.
    let (_dir, config, url) = wordpress_setup("[hash]\nphpass_max_count_log2 = 12\n").await;

    let out = run(&config, &url, &["census", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["users"], 3);
    assert_eq!(json["migratable"], 1);
    assert_eq!(json["not_migratable"]["work_factor_over_cap"], 1);
    assert_eq!(json["examples"]["work_factor_over_cap"][0], "2");

    let out = run(&config, &url, &["lookup", "bob"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("work_factor_over_cap"));
    let out = run(&config, &url, &["lookup", "admin"]);
    assert!(out.status.success());
}

#[tokio::test]
async fn census_records_its_summary_in_the_ledger_unless_told_not_to() {
    let (dir, config, url) = wordpress_setup("[ledger]\nurl = \"sqlite://ledger.db\"\n").await;
    let ledger_url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let open = || async {
        let lc = dripgate::ledger::LedgerConfig {
            url: dripgate::config::Secret::inline(&ledger_url),
            counts_interval: std::time::Duration::ZERO,
            ..Default::default()
        };
        dripgate::ledger::Ledger::open(&lc, &prometheus::Registry::new())
            .await
            .unwrap()
    };

    // --no-record: nothing is written (no ledger file at all).
    let out = run(&config, &url, &["census", "--no-record"]);
    assert!(out.status.success());
    assert!(!dir.path().join("ledger.db").exists());

    let out = run(&config, &url, &["census"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ledger = open().await;
    let latest = ledger.latest_census().await.unwrap().unwrap();
    ledger.close().await;
    let summary: serde_json::Value = serde_json::from_str(&latest.summary).unwrap();
    assert_eq!(summary["users"], 3);
    assert_eq!(summary["migratable"], 2);
    assert_eq!(summary["not_migratable"]["no_email"], 1);
    assert_eq!(summary["formats"]["wordpress"], 3);
    // Counts only: no example ids, logins, emails or hashes.
    assert!(summary.get("examples").is_none());
    for s in ["admin", "bob", "nomail", "example.com", "$P$", "$2y$"] {
        assert!(!latest.summary.contains(s), "{s} in {}", latest.summary);
    }

    // An unusable ledger: a warning, and the census still succeeds.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "{}[ledger]\nurl = \"sqlite://{}/no/such/dir/ledger.db\"\n",
            std::fs::read_to_string(&config)
                .unwrap()
                .split("[ledger]")
                .next()
                .unwrap(),
            dir.path().display()
        ),
    )
    .unwrap();
    let out = run(&bad, &url, &["census", "--json"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["users"], 3);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: the census was not recorded"),
        "{err}"
    );
}
