//! Hash import: Keycloak-format PBKDF2 credentials, and legacy hashes converted by
//! `migrate::transfer::importable` and imported through the client, verified at the fake.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use dripgate::hash::{Format, LegacyHash};
use dripgate::migrate::transfer::importable;
use dripgate::provider::{ErrorClass, HashingMethod, NewUser, Provider};
use dripgate::testkit::keycloak::FakeCredential;

use super::{ada, client, client_with, config, fake, no_violations};

/// The Keycloak-format vectors (`tests/fixtures/keycloak-credentials.jsonl`, made with Python's
/// hashlib): imported as they are, the fake verifies the old password with each.
#[tokio::test]
async fn keycloak_format_pbkdf2_vectors_verify_at_the_fake() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/keycloak-credentials.jsonl"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let c = FakeCredential::import(
            v["credentialData"].as_str().unwrap(),
            v["secretData"].as_str().unwrap(),
        )
        .unwrap();
        let pw = v["password"].as_str().unwrap();
        assert!(c.verify(pw.as_bytes()), "{}", v["id"]);
        assert!(!c.verify(format!("{pw}x").as_bytes()), "{}", v["id"]);
        n += 1;
    }
    assert_eq!(n, 3);
}

fn ab64(b: &[u8]) -> String {
    STANDARD_NO_PAD.encode(b).replace('+', ".")
}

/// Legacy hashes of each kind Keycloak imports, converted by `migrate::transfer::importable`,
/// sent as a credential, and verified by the fake as Keycloak's hash providers would.
#[tokio::test]
async fn imported_legacy_hashes_sign_in_at_the_fake_with_the_old_password() {
    let fake = fake().await;
    let mut cfg = config(&fake);
    cfg.import_argon2 = true;
    let c = client_with(&cfg);
    let caps = c.capabilities();
    assert!(
        caps.imports(HashingMethod::Pbkdf2)
            && caps.imports(HashingMethod::Pbkdf2Sha1)
            && caps.imports(HashingMethod::Argon2)
    );
    assert!(!caps.imports(HashingMethod::Bcrypt));
    let salt = b"0123456789abcdef";
    let sha1 = |pw: &str, n| {
        let mut k = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(pw.as_bytes(), salt, n, &mut k);
        k.to_vec()
    };
    let sha256 = |pw: &str, n| {
        let mut k = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pw.as_bytes(), salt, n, &mut k);
        k.to_vec()
    };
    let sha512 = |pw: &str, n| {
        let mut k = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(pw.as_bytes(), salt, n, &mut k);
        k.to_vec()
    };
    let argon2 = crate::migration_keycloak::vector("argon2id-002");
    let cases: Vec<(&str, String, Format, String, &str)> = vec![
        (
            "p1",
            "pass one".into(),
            Format::Pbkdf2,
            format!(
                "$pbkdf2$1000${}${}",
                ab64(salt),
                ab64(&sha1("pass one", 1000))
            ),
            "pbkdf2",
        ),
        (
            "p256",
            "pass two".into(),
            Format::Pbkdf2,
            format!(
                "$pbkdf2-sha256$2000${}${}",
                ab64(salt),
                ab64(&sha256("pass two", 2000))
            ),
            "pbkdf2-sha256",
        ),
        (
            "p512",
            "pass three".into(),
            Format::Pbkdf2,
            format!(
                "$pbkdf2-sha512$3000${}${}",
                ab64(salt),
                ab64(&sha512("pass three", 3000))
            ),
            "pbkdf2-sha512",
        ),
        (
            "dj",
            "pass four".into(),
            Format::Django,
            format!(
                "pbkdf2_sha256$1500$saltsalt${}",
                base64::engine::general_purpose::STANDARD.encode({
                    let mut k = [0u8; 32];
                    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"pass four", b"saltsalt", 1500, &mut k);
                    k
                })
            ),
            "pbkdf2-sha256",
        ),
        (
            "a2",
            argon2.1.clone(),
            Format::Argon2,
            argon2.0.clone(),
            "argon2",
        ),
    ];
    for (tag, pw, format, hash, algorithm) in cases {
        let email = format!("{tag}@example.com");
        let user = NewUser {
            email: email.clone(),
            given_name: None,
            family_name: None,
            legacy_id: None,
        };
        let id = c.create_user(&user, None).await.unwrap().id;
        let imported = importable(&LegacyHash::new(format, hash), format).unwrap();
        c.import_legacy_hash(&id, &imported).await.unwrap();
        let stored = fake.user_by_email(&email).unwrap().credential.unwrap();
        assert!(
            stored.imported && stored.algorithm == algorithm,
            "{tag}: {stored:?}"
        );
        assert!(
            fake.verify_password(&email, pw.as_bytes()),
            "{tag}: the old password"
        );
        assert!(!fake.verify_password(&email, b"not it"), "{tag}");
    }
    // bcrypt is not importable: Unsupported, which the transfer answers with the password.
    let bcrypt = importable(
        &LegacyHash::new(
            Format::Bcrypt,
            "$2b$04$RNWka9f5tFFxh0WM67mcHusqshHoLC4e/xN60WJDCIT9zSecmG3cW",
        ),
        Format::Bcrypt,
    )
    .unwrap();
    let id = c
        .find_user_by_email("p1@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        c.import_legacy_hash(&id, &bcrypt)
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Unsupported
    );
    no_violations(&fake);
}

#[tokio::test]
async fn argon2_is_not_imported_unless_enabled() {
    let fake = fake().await;
    let c = client(&fake);
    assert!(!c.capabilities().imports(HashingMethod::Argon2));
    let (hash, _) = crate::migration_keycloak::vector("argon2id-002");
    let imported = importable(&LegacyHash::new(Format::Argon2, hash), Format::Argon2).unwrap();
    let id = c.create_user(&ada(), None).await.unwrap().id;
    assert_eq!(
        c.import_legacy_hash(&id, &imported)
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Unsupported
    );
    assert_eq!(fake.calls("updateUser"), 0);
}
