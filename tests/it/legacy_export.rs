//! CSV and JSON Lines exports: column mapping, lookups, bad rows, duplicates, census, reload on
//! change (a broken new file keeps the old index), and the background count gauge.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::legacy_support;

use std::time::Duration;

use dripgate::hash::{self, HashConfig};
use dripgate::legacy::{Columns, LegacyConfig, LegacyStore, Lookup, Reason};
use legacy_support::vector;

fn columns() -> Columns {
    Columns {
        id: "user_id".into(),
        login: "username".into(),
        email: "email".into(),
        hash: "password_hash".into(),
        format: Some("algo".into()),
        salt: None,
        given_name: Some("first".into()),
        family_name: None,
        created: None,
    }
}

fn csv_text() -> String {
    let b = vector("bcrypt_2y-001");
    let wp = vector("wp_phpass-001");
    format!(
        "user_id,username,email,password_hash,algo,first,extra\n\
         1,Alice,Alice@Example.com,{},bcrypt,Alice,x\n\
         2,bob,bob@example.com,{},wordpress,,x\n\
         3,carol,,{},,,x\n\
         4,dave,dave@example.com,$2y$04$short,,,x\n\
         5,eve,eve@example.com,{},,,x\n\
         6,eve2,Eve@Example.com,{},,,x\n\
         7,frank,frank@example.com,sometext,,,x\n\
         8,gina,gina@example.com,,,,x\n",
        b.hash, wp.hash, b.hash, b.hash, b.hash
    )
}

fn reason(l: Lookup) -> Reason {
    match l {
        Lookup::NotMigratable(r) => r,
        other => panic!("expected not migratable, got {other:?}"),
    }
}

async fn check_store(store: &LegacyStore) {
    let b = vector("bcrypt_2y-001");
    let Lookup::Found(a) = store.lookup("alice@EXAMPLE.com").await.unwrap() else {
        panic!("alice")
    };
    assert_eq!(a.legacy_id, "1");
    assert_eq!(a.key, "alice@example.com");
    assert_eq!(a.given_name.as_deref(), Some("Alice"));
    assert!(hash::verify(&a.hash, b.password.as_bytes(), &HashConfig::default()).unwrap());
    // Logins keep case under the default rule (lower-case emails only).
    assert!(matches!(
        store.lookup("alice").await.unwrap(),
        Lookup::NotFound
    ));
    let Lookup::Found(a2) = store.lookup(" Alice ").await.unwrap() else {
        panic!("Alice")
    };
    assert_eq!(a2.key, a.key);
    let Lookup::Found(bob) = store.lookup("bob").await.unwrap() else {
        panic!("bob")
    };
    assert_eq!(bob.format.as_str(), "wordpress");
    assert_eq!(
        reason(store.lookup("carol").await.unwrap()),
        Reason::NoEmail
    );
    assert_eq!(
        reason(store.lookup("dave").await.unwrap()),
        Reason::TruncatedHash
    );
    assert_eq!(
        reason(store.lookup("eve").await.unwrap()),
        Reason::DuplicateKey
    );
    assert_eq!(
        reason(store.lookup("EVE@example.com").await.unwrap()),
        Reason::DuplicateKey
    );
    assert_eq!(
        reason(store.lookup("frank").await.unwrap()),
        Reason::UnknownFormat
    );
    assert_eq!(
        reason(store.lookup("gina").await.unwrap()),
        Reason::EmptyHash
    );
    assert!(matches!(
        store.lookup("nobody@example.com").await.unwrap(),
        Lookup::NotFound
    ));

    let census = store.census(&mut |_| {}).await.unwrap();
    assert_eq!(census.users, 8);
    assert_eq!(census.migratable, 2, "{}", census.to_text());
    assert_eq!(census.not_migratable.get(&Reason::DuplicateKey), Some(&2));
    assert_eq!(
        census.examples.get(&Reason::NoEmail).unwrap(),
        &vec!["3".to_owned()]
    );
    assert!(!census.to_text().contains(&b.hash));
}

#[tokio::test]
async fn csv_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.csv");
    std::fs::write(&path, csv_text()).unwrap();
    let registry = prometheus::Registry::new();
    let store = LegacyStore::open(&LegacyConfig::export(&path, columns()), &registry).unwrap();
    assert_eq!(store.backend(), "export");
    check_store(&store).await;
    assert!(
        dripgate::metrics::render(&registry)
            .unwrap()
            .contains("dripgate_legacy_users 8")
    );
}

#[tokio::test]
async fn jsonl_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.jsonl");
    let source = csv_text();
    let mut csv = csv::Reader::from_reader(source.as_bytes());
    let headers = csv.headers().unwrap().clone();
    let mut text = String::new();
    for rec in csv.records() {
        let rec = rec.unwrap();
        let mut obj = serde_json::Map::new();
        for (h, v) in headers.iter().zip(rec.iter()) {
            let v = match (h, v) {
                (_, "") => serde_json::Value::Null,
                ("user_id", n) => serde_json::Value::from(n.parse::<u64>().unwrap()),
                (_, s) => serde_json::Value::from(s),
            };
            obj.insert(h.to_owned(), v);
        }
        obj.insert("nested".into(), serde_json::json!({"ignored": [1, 2]}));
        text.push_str(&serde_json::Value::Object(obj).to_string());
        text.push('\n');
    }
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    let store = LegacyStore::open(
        &LegacyConfig::export(&path, columns()),
        &prometheus::Registry::new(),
    )
    .unwrap();
    check_store(&store).await;
}

#[tokio::test]
async fn missing_column_and_bad_json_are_errors_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.csv");
    std::fs::write(&path, "id,email\n1,a@b.c\n").unwrap();
    let err = LegacyStore::open(
        &LegacyConfig::export(&path, columns()),
        &prometheus::Registry::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("user_id"), "{err}");

    let path = dir.path().join("users.jsonl");
    let secret = vector("bcrypt_2y-001").hash;
    std::fs::write(
        &path,
        format!("{{\"user_id\": 1, \"password_hash\": \"{secret}\"\n"),
    )
    .unwrap();
    let err = LegacyStore::open(
        &LegacyConfig::export(&path, columns()),
        &prometheus::Registry::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    assert!(!err.to_string().contains(&secret), "{err}");
}

#[tokio::test]
async fn reloads_when_the_file_changes_and_keeps_the_old_index_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.csv");
    let b = vector("bcrypt_2y-001");
    let header = "user_id,username,email,password_hash,algo,first\n";
    std::fs::write(&path, format!("{header}1,a,a@x.org,{},,\n", b.hash)).unwrap();
    let registry = prometheus::Registry::new();
    let mut config = LegacyConfig::export(&path, columns());
    if let Some(e) = config.export.as_mut() {
        e.reload_interval = Duration::from_millis(50);
    }
    let store = LegacyStore::open(&config, &registry).unwrap();
    assert!(!store.reload_if_changed().await, "unchanged file");
    assert!(matches!(
        store.lookup("n@x.org").await.unwrap(),
        Lookup::NotFound
    ));

    std::fs::write(
        &path,
        format!("{header}1,a,a@x.org,{h},,\n2,n,n@x.org,{h},,\n", h = b.hash),
    )
    .unwrap();
    // The background reloader picks the change up (bounded polling, no timing assertion).
    let tasks = store.spawn_background();
    let mut reloaded = false;
    for _ in 0..200 {
        if matches!(store.lookup("n@x.org").await.unwrap(), Lookup::Found(_)) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reloaded, "the new row appears after a reload");
    for t in tasks {
        t.abort();
    }
    assert_eq!(store.count().await.unwrap(), 2);

    // A broken file keeps the previous index.
    std::fs::write(&path, "garbage without the columns\n").unwrap();
    assert!(!store.reload_if_changed().await);
    assert!(matches!(
        store.lookup("n@x.org").await.unwrap(),
        Lookup::Found(_)
    ));
    let text = dripgate::metrics::render(&registry).unwrap();
    assert!(
        text.contains("dripgate_legacy_export_reloads_total{result=\"error\"} 1"),
        "{text}"
    );
    assert!(text.contains("dripgate_legacy_users 2"), "{text}");
}
