//! `dripgate legacy census` and `legacy lookup` on a WordPress store holding `user_pass` values
//! WordPress can never verify (32 characters or fewer and not a lower-case md5 digest: DES and
//! BSDi crypt, a short md5-crypt, placeholders): not migratable, counted by kind, and a lookup
//! says so instead of leaving the sign-in to fail as a wrong password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use crate::legacy_support::vector;

const BIN: &str = env!("CARGO_BIN_EXE_dripgate");

async fn store(path: &std::path::Path, rows: &[(&str, String)]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE wp_users (ID INTEGER PRIMARY KEY, user_login varchar(60) NOT NULL default '', \
         user_pass varchar(255) NOT NULL default '', user_email varchar(100) NOT NULL default '', \
         display_name varchar(250) NOT NULL default '')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TABLE wp_usermeta (umeta_id INTEGER PRIMARY KEY, user_id bigint NOT NULL default 0, \
         meta_key varchar(255), meta_value text)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (login, pass) in rows {
        sqlx::query("INSERT INTO wp_users (user_login, user_email, user_pass) VALUES (?, ?, ?)")
            .bind(*login)
            .bind(format!("{login}@example.com"))
            .bind(pass.as_str())
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

#[tokio::test]
async fn wordpress_values_that_never_verify_are_not_migratable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wp.db");
    let rows = [
        ("admin", vector("wp_bcrypt-001").hash),
        ("bob", vector("wp_phpass-001").hash),
        ("erin", vector("wp_md5-001").hash),
        // 34 characters: WordPress hands it to password_verify, which verifies md5-crypt.
        ("long", vector("md5_crypt-001").hash),
        ("carol", vector("des_crypt-001").hash),
        ("gina", vector("bsdi_crypt-001").hash),
        // 30 characters: WordPress compares it with md5($password) and never matches.
        ("frank", vector("md5_crypt-002").hash),
        ("dave", "x".to_owned()),
        ("hugo", vector("wp_md5-001").hash.to_uppercase()),
    ];
    store(&db, &rows).await;
    let config = dir.path().join("dripgate.toml");
    std::fs::write(
        &config,
        format!(
            "[legacy]\npreset = \"wordpress\"\ndatabase_url = \"sqlite://{}\"\n",
            db.display()
        ),
    )
    .unwrap();
    let legacy = |args: &[&str]| {
        Command::new(BIN)
            .arg("legacy")
            .args(args)
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let census = |args: &[&str]| {
        Command::new(BIN)
            .args(["legacy", "census", "--no-record", "--config"])
            .arg(&config)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };

    let out = census(&["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["users"], 9);
    assert_eq!(json["migratable"], 4, "{json:#}");
    assert_eq!(json["not_migratable"]["unverifiable_hash"], 5, "{json:#}");
    assert_eq!(
        json["unverifiable"],
        serde_json::json!({"des_crypt": 1, "bsdi_crypt": 1, "md5_crypt": 1, "placeholder": 1, "md5_uppercase": 1})
    );
    assert_eq!(json["formats"]["wordpress"], 4, "{json:#}");
    let examples = &json["examples"]["unverifiable_hash"];
    assert_eq!(examples.as_array().unwrap().len(), 5);

    let out = census(&[]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("can migrate:             4"), "{text}");
    assert!(text.contains("unverifiable_hash"), "{text}");
    assert!(text.contains("des_crypt"), "{text}");
    for (_, pass) in &rows {
        if pass.len() > 1 {
            assert!(
                !text.contains(pass.as_str()),
                "a stored value in the census output"
            );
        }
    }

    // The sign-in path's lookup agrees: such a user is not migratable.
    for login in ["carol", "gina", "frank", "dave", "hugo"] {
        let out = Command::new(BIN)
            .args(["legacy", "lookup", "--json", "--config"])
            .arg(&config)
            .arg(login)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{login}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["result"], "not_migratable", "{login}");
        assert_eq!(json["reason"], "unverifiable_hash", "{login}");
    }
    for login in ["admin", "bob", "erin", "long"] {
        let out = legacy(&["lookup", login]);
        assert!(
            out.status.success(),
            "{login}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
