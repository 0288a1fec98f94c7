//! End to end: `kinde.password_transfer = "legacy_hash"`. Users whose legacy hashes are in every
//! format the legacy store can hold sign in through a running dripgate; Kinde (the fake, which
//! validates each request against the spec) receives the verified legacy hash itself where its
//! spec has a `hashing_method` for it, and a bcrypt of the password otherwise, counted in
//! `dripgate_password_transfer_total`. Each migrated user then signs in at the fake with the
//! old password.

use crate::common;
use crate::migration_common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use common::Dripgate;
use dripgate::config::Config;
use dripgate::hash::SaltPosition;
use dripgate::provider::config::PasswordTransfer;
use dripgate::testkit::Fault;
use md5::Digest;
use migration_common::*;

/// One legacy user: the row's format and salt, and what Kinde should receive.
struct Case {
    tag: &'static str,
    password: String,
    format: &'static str,
    hash: String,
    salt: Option<String>,
    /// The `hashing_method` sent; `None`: the bcrypt fallback.
    method: Option<&'static str>,
}

impl Case {
    fn new(tag: &'static str, password: &str, format: &'static str, hash: String) -> Self {
        Case {
            tag,
            password: password.to_owned(),
            format,
            hash,
            salt: None,
            method: None,
        }
    }

    fn salt(mut self, salt: &str) -> Self {
        self.salt = Some(salt.to_owned());
        self
    }

    fn sent_as(mut self, method: &'static str) -> Self {
        self.method = Some(method);
        self
    }

    fn email(&self) -> String {
        format!("{}@transfer.test", self.tag)
    }
}

/// A vector of `tests/fixtures/hash-vectors.jsonl` (made by other implementations): hash, password.
fn vector(id: &str) -> (String, String) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hash-vectors.jsonl"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"));
    (
        v["hash"].as_str().unwrap().to_owned(),
        v["password"].as_str().unwrap().to_owned(),
    )
}

fn from_vector(tag: &'static str, id: &str, format: &'static str) -> Case {
    let (hash, password) = vector(id);
    Case::new(tag, &password, format, hash)
}

fn md5_hex(parts: &[&str]) -> String {
    hex::encode(md5::Md5::digest(parts.concat()))
}

fn sha256_hex(parts: &[&str]) -> String {
    hex::encode(sha2::Sha256::digest(parts.concat()))
}

fn pbkdf2_sha256(password: &str, salt: &[u8], rounds: u32) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, rounds, &mut out);
    out
}

fn pbkdf2_sha512(password: &str, salt: &[u8], rounds: u32) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), salt, rounds, &mut out);
    out
}

fn ab64(bytes: &[u8]) -> String {
    STANDARD_NO_PAD.encode(bytes).replace('+', ".")
}

/// Adds `format` and `salt` columns to the world's store, and the users.
async fn add_users(world: &World, cases: &[Case]) {
    for sql in [
        "ALTER TABLE users ADD COLUMN format TEXT",
        "ALTER TABLE users ADD COLUMN salt TEXT",
    ] {
        sqlx::raw_sql(sql).execute(&world.store).await.unwrap();
    }
    for c in cases {
        world.app.set_user(&c.email(), &c.password);
        sqlx::query("INSERT INTO users (login, email, hash, format, salt) VALUES (?, ?, ?, ?, ?)")
            .bind(c.tag)
            .bind(c.email())
            .bind(&c.hash)
            .bind(c.format)
            .bind(&c.salt)
            .execute(&world.store)
            .await
            .unwrap();
    }
}

/// The world's config with per-row formats and salts, `salt_position`, and Kinde set to
/// `password_transfer = "legacy_hash"`.
fn legacy_hash_config(world: &World, fake: &Fake, position: SaltPosition) -> Config {
    let mut config = world.config(Some(fake), legacy_signature());
    let legacy = config.legacy.as_mut().unwrap();
    legacy.columns.format = Some("format".into());
    legacy.columns.salt = Some("salt".into());
    legacy.salt_position = Some(position);
    let kinde = config
        .provider
        .as_mut()
        .and_then(|p| p.kinde.as_mut())
        .unwrap();
    kinde.password_transfer = PasswordTransfer::LegacyHash;
    config
}

/// `dripgate_password_transfer_total` with these label values (in any order), or 0.
fn transfers(page: &str, labels: &[(&str, &str)]) -> u64 {
    page.lines()
        .filter(|l| l.starts_with("dripgate_password_transfer_total{"))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// Signs every user in once, waits for their migrations, and checks what Kinde received: the
/// legacy hash under the expected `hashing_method` (and no bcrypt of the password), or the
/// bcrypt fallback; the old password signs in at the fake, a wrong one does not; the metric
/// counts each user once under the right result.
async fn migrate_all(world: &World, fake: &Fake, dg: &Dripgate, cases: &[Case]) {
    let Fake::Kinde(kinde) = fake else {
        panic!("legacy_hash is a Kinde setting")
    };
    for c in cases {
        let seen = sign_in_unchanged(world, &dg.url(""), &c.email(), &c.password).await;
        assert_eq!(seen.status, 302, "{}: legacy signs the user in", c.tag);
    }
    wait_outcome(dg, "migrated", cases.len() as u64).await;
    assert_eq!(fake.calls("SetUserPassword"), cases.len() as u64);
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    for c in cases {
        let stored = kinde
            .user_by_email(&c.email())
            .and_then(|u| u.password)
            .unwrap_or_else(|| panic!("{}: no password at Kinde", c.tag));
        match c.method {
            Some(method) => {
                assert_eq!(stored.method, method, "{}", c.tag);
                if method == "bcrypt" {
                    // The legacy bcrypt itself, not a fresh one (Kinde stores `$2b$` as `$2a$`).
                    assert_eq!(stored.hash[4..], c.hash[c.hash.len() - 56..], "{}", c.tag);
                }
            }
            None => {
                assert_eq!(stored.method, "bcrypt", "{}", c.tag);
                assert_ne!(stored.hash, c.hash, "{}", c.tag);
            }
        }
        assert!(
            fake.verify(&c.email(), &c.password),
            "{}: the old password does not sign in at Kinde",
            c.tag
        );
        assert!(
            !fake.verify(&c.email(), &format!("{}x", c.password)),
            "{}",
            c.tag
        );
    }
    let imported = cases.iter().filter(|c| c.method.is_some()).count() as u64;
    assert_eq!(
        transfers(&page, &[("provider", "kinde"), ("result", "legacy_hash")]),
        imported
    );
    assert_eq!(
        transfers(
            &page,
            &[
                ("provider", "kinde"),
                ("method", "bcrypt"),
                ("result", "fallback_bcrypt")
            ]
        ),
        cases.len() as u64 - imported
    );
    let users: Vec<(String, &str)> = cases
        .iter()
        .map(|c| (c.email(), c.password.as_str()))
        .collect();
    let users: Vec<(&str, &str)> = users.iter().map(|(e, p)| (e.as_str(), *p)).collect();
    world.assert_invariants(fake, &users).await;
    for c in cases {
        assert!(!logs().contains(&c.hash), "{}: hash in the logs", c.tag);
        assert!(!page.contains(&c.hash), "{}: hash in /metrics", c.tag);
    }
}

#[tokio::test]
async fn legacy_hash_transfer_sends_each_format_kinde_takes_and_bcrypt_for_the_rest() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let pw = canary_password("transfer");
    let salt = "x9Q-salt";
    let bcrypt_2b = bcrypt::hash(&pw, 4).unwrap();
    let bcrypt_2y = bcrypt_2b.replacen("$2b$", "$2y$", 1);
    let django_key = pbkdf2_sha256(&pw, salt.as_bytes(), 1000);
    let passlib = |id: &str, key: &[u8]| {
        format!(
            "$pbkdf2-{id}$1200${}${}",
            ab64(b"NaCl-16-bytes!!!"),
            ab64(key)
        )
    };
    let sha256_key = pbkdf2_sha256(&pw, b"NaCl-16-bytes!!!", 1200);
    let sha512_key = pbkdf2_sha512(&pw, b"NaCl-16-bytes!!!", 1200);
    let cases = vec![
        Case::new("bcrypt-2b", &pw, "bcrypt", bcrypt_2b.clone()).sent_as("bcrypt"),
        Case::new("bcrypt-2y", &pw, "bcrypt", bcrypt_2y).sent_as("bcrypt"),
        Case::new("md5-prefix", &pw, "md5", md5_hex(&[salt, &pw]))
            .salt(salt)
            .sent_as("md5"),
        Case::new("md5-plain", &pw, "md5", md5_hex(&[&pw])).sent_as("md5"),
        Case::new(
            "md5-base64",
            &pw,
            "md5",
            STANDARD.encode(md5::Md5::digest([salt, pw.as_str()].concat())),
        )
        .salt(salt)
        .sent_as("md5"),
        Case::new("sha256-prefix", &pw, "sha256", sha256_hex(&[salt, &pw]))
            .salt(salt)
            .sent_as("sha256"),
        from_vector("md5-crypt", "md5_crypt-001", "crypt").sent_as("crypt"),
        from_vector("sha256-crypt", "sha256_crypt-002", "crypt").sent_as("crypt"),
        from_vector("sha512-crypt", "sha512_crypt-001", "crypt").sent_as("crypt"),
        Case::new("crypt-bcrypt", &pw, "crypt", bcrypt_2b.clone()).sent_as("bcrypt"),
        from_vector("wp-phpass", "wp_phpass-001", "wordpress").sent_as("wordpress"),
        from_vector("wp-md5", "wp_md5-001", "wordpress").sent_as("md5"),
        from_vector("phpass-p", "phpass_P-001", "phpass").sent_as("wordpress"),
        Case::new(
            "django-pbkdf2",
            &pw,
            "django",
            format!("pbkdf2_sha256$1000${salt}${}", STANDARD.encode(&django_key)),
        )
        .sent_as("pbkdf2"),
        from_vector("django-md5", "django_salted_md5-001", "django").sent_as("md5"),
        from_vector("django-bcrypt", "django_bcrypt-001", "django").sent_as("bcrypt"),
        Case::new(
            "pbkdf2-sha256",
            &pw,
            "pbkdf2",
            passlib("sha256", &sha256_key),
        )
        .sent_as("pbkdf2"),
        Case::new(
            "pbkdf2-sha512",
            &pw,
            "pbkdf2",
            passlib("sha512", &sha512_key),
        )
        .sent_as("pbkdf2"),
        // Formats Kinde has no method for: the bcrypt fallback.
        from_vector("argon2", "argon2id-002", "argon2"),
        Case::new(
            "sha512",
            &pw,
            "sha512",
            hex::encode(sha2::Sha512::digest(pw.as_bytes())),
        ),
        from_vector("des-crypt", "des_crypt-001", "crypt"),
        from_vector("wp-68", "wp_bcrypt-001", "wordpress"),
        from_vector("drupal-s", "drupal_sha512-001", "drupal"),
        from_vector("bcrypt-2x", "bcrypt_2x-001", "bcrypt"),
    ];
    add_users(&world, &cases).await;
    let dg = Dripgate::start(legacy_hash_config(&world, &fake, SaltPosition::Prefix)).await;
    migrate_all(&world, &fake, &dg, &cases).await;

    // Each fallback is counted under its legacy format and logged at debug, without the hash.
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    for format in ["argon2", "sha512", "drupal"] {
        assert_eq!(
            transfers(&page, &[("format", format), ("result", "fallback_bcrypt")]),
            1,
            "{format}"
        );
    }
    assert_eq!(
        transfers(
            &page,
            &[
                ("format", "django"),
                ("method", "pbkdf2"),
                ("result", "legacy_hash")
            ]
        ),
        1
    );
    assert!(logs().contains("legacy hash not importable"));
    world.assert_secret_nowhere(&[&dg], &pw, &[]).await;
    dg.stop().await;
}

#[tokio::test]
async fn salted_digests_with_the_salt_after_the_password_are_sent_as_suffix() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let pw = canary_password("suffix");
    let salt = "pepper-42";
    let (upper, upper_pw) = vector("md5_salted-004");
    let cases = vec![
        Case::new("md5-suffix", &pw, "md5", md5_hex(&[&pw, salt]))
            .salt(salt)
            .sent_as("md5"),
        Case::new("sha256-suffix", &pw, "sha256", sha256_hex(&[&pw, salt]))
            .salt(salt)
            .sent_as("sha256"),
        // Upper-case hex from another implementation, its salt after the password.
        Case::new("md5-upper", &upper_pw, "md5", upper)
            .salt("4b6tTuY1n4m1")
            .sent_as("md5"),
    ];
    add_users(&world, &cases).await;
    let dg = Dripgate::start(legacy_hash_config(&world, &fake, SaltPosition::Suffix)).await;
    migrate_all(&world, &fake, &dg, &cases).await;
    let Fake::Kinde(kinde) = &fake else {
        unreachable!()
    };
    for c in &cases {
        let stored = kinde.user_by_email(&c.email()).unwrap().password.unwrap();
        assert_eq!(stored.salt_position.as_deref(), Some("suffix"), "{}", c.tag);
        assert_eq!(stored.salt, c.salt, "{}", c.tag);
    }
    world.assert_secret_nowhere(&[&dg], &pw, &[]).await;
    dg.stop().await;
}

#[tokio::test]
async fn an_import_kinde_refuses_falls_back_to_bcrypt_and_is_counted() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let pw = canary_password("refused");
    let cases = vec![Case::new("refused", &pw, "md5", md5_hex(&[&pw]))];
    add_users(&world, &cases).await;
    // The import is answered 400; the bcrypt that follows is accepted.
    fake.fail_next("SetUserPassword", 1, Fault::Status(400));
    let dg = Dripgate::start(legacy_hash_config(&world, &fake, SaltPosition::Prefix)).await;
    let seen = sign_in_unchanged(&world, &dg.url(""), &cases[0].email(), &pw).await;
    assert_eq!(seen.status, 302);
    wait_outcome(&dg, "migrated", 1).await;
    assert_eq!(fake.calls("SetUserPassword"), 2);
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    assert_eq!(
        transfers(
            &page,
            &[
                ("format", "md5"),
                ("method", "bcrypt"),
                ("result", "fallback_bcrypt")
            ]
        ),
        1
    );
    assert_eq!(transfers(&page, &[("result", "legacy_hash")]), 0);
    assert!(fake.verify(&cases[0].email(), &pw));
    world.assert_clean(&fake, &dg, &cases[0].email(), &pw).await;
    dg.stop().await;
}

#[tokio::test]
async fn the_default_bcrypt_transfer_sends_no_legacy_hash_and_counts_nothing() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let pw = canary_password("default");
    let cases = vec![Case::new("default", &pw, "md5", md5_hex(&[&pw]))];
    add_users(&world, &cases).await;
    let mut config = legacy_hash_config(&world, &fake, SaltPosition::Prefix);
    if let Some(k) = config.provider.as_mut().and_then(|p| p.kinde.as_mut()) {
        k.password_transfer = PasswordTransfer::Bcrypt;
    }
    let dg = Dripgate::start(config).await;
    sign_in_unchanged(&world, &dg.url(""), &cases[0].email(), &pw).await;
    wait_outcome(&dg, "migrated", 1).await;
    let Fake::Kinde(kinde) = &fake else {
        unreachable!()
    };
    let stored = kinde
        .user_by_email(&cases[0].email())
        .unwrap()
        .password
        .unwrap();
    assert_eq!(stored.method, "bcrypt");
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    assert_eq!(transfers(&page, &[]), 0);
    world.assert_clean(&fake, &dg, &cases[0].email(), &pw).await;
    dg.stop().await;
}
