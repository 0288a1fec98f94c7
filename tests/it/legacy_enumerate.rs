//! `LegacyStore::enumerate`, the hand-off's streaming listing: every user exactly once across
//! several keyset pages, integer and text ids, the creation column where the store has one; on
//! SQLite and (when configured) PostgreSQL and MariaDB, and from a CSV export.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use crate::legacy_support;

use dripgate::handoff::filter::creation_day;
use dripgate::legacy::{Columns, LegacyConfig, LegacyStore, Listed, Preset};
use legacy_support::{Db, Kind, databases, unique_prefix};

/// Three pages and a bit (pages hold 500).
const USERS: usize = 1_203;

async fn list(store: &LegacyStore) -> Vec<Listed> {
    let mut pages = store.enumerate().unwrap();
    let mut all = Vec::new();
    let mut n = 0;
    while let Some(page) = pages.next_page().await.unwrap() {
        assert!(!page.is_empty() && page.len() <= 500);
        all.extend(page);
        n += 1;
        assert!(n < 100, "pages do not end");
    }
    all
}

/// Inserts `rows` of literal SQL values in batches (literals, so a timestamp column takes text).
async fn insert_literals(db: &Db, table: &str, cols: &str, rows: &[String]) {
    for chunk in rows.chunks(200) {
        db.exec(&format!(
            "INSERT INTO {table} ({cols}) VALUES {}",
            chunk.join(", ")
        ))
        .await;
    }
}

async fn wordpress_on(db: &Db) {
    let p = format!("{}wp_", unique_prefix());
    let (id, dt) = match db.kind {
        Kind::MySql => (
            "bigint unsigned NOT NULL auto_increment PRIMARY KEY",
            "datetime NOT NULL",
        ),
        Kind::Postgres => ("bigserial PRIMARY KEY", "timestamp NOT NULL"),
        Kind::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "text NOT NULL"),
    };
    db.exec(&format!(
        "CREATE TABLE {p}users (ID {id}, user_login varchar(60) NOT NULL, user_pass varchar(255) NOT NULL, \
         user_email varchar(100) NOT NULL, user_registered {dt})"
    ))
    .await;
    db.exec(&format!(
        "CREATE TABLE {p}usermeta (umeta_id {id}, user_id bigint NOT NULL, meta_key varchar(255), meta_value text)"
    ))
    .await;
    // A hash of its own: the SQL below is logged by sqlx, and other tests search the captured
    // logs for the fixture vectors' hashes.
    let hash = bcrypt::hash("enumerate-wp", 4).unwrap();
    let rows: Vec<String> = (0..USERS)
        .map(|i| {
            let year = if i.is_multiple_of(2) { 2019 } else { 2021 };
            format!("('user{i}', '{hash}', 'user{i}@example.com', '{year}-03-04 10:11:12')")
        })
        .collect();
    insert_literals(
        db,
        &format!("{p}users"),
        "user_login, user_pass, user_email, user_registered",
        &rows,
    )
    .await;
    let mut config = LegacyConfig::sql(Preset::Wordpress, db.url.clone());
    config.table_prefix = Some(p.clone());
    let store = LegacyStore::open(&config, &prometheus::Registry::new()).unwrap();
    assert!(store.has_created());
    let all = list(&store).await;
    assert_eq!(all.len(), USERS, "{:?}", db.kind);
    let mut ids = HashSet::new();
    let mut early = 0;
    for listed in &all {
        let user = listed.user.as_ref().unwrap();
        assert!(
            ids.insert(user.legacy_id.clone()),
            "{} listed twice",
            user.legacy_id
        );
        let day = creation_day(listed.created.as_deref().unwrap()).unwrap();
        let i: usize = user
            .key
            .trim_start_matches("user")
            .trim_end_matches("@example.com")
            .parse()
            .unwrap();
        let year = if i.is_multiple_of(2) { "2019" } else { "2021" };
        assert_eq!(day, format!("{year}-03-04"), "{:?}", db.kind);
        early += usize::from(year == "2019");
    }
    assert_eq!(early, USERS.div_ceil(2));
    store.close().await;
    db.exec(&format!("DROP TABLE {p}users")).await;
    db.exec(&format!("DROP TABLE {p}usermeta")).await;
}

async fn generic_text_ids_on(db: &Db) {
    let table = format!("{}people", unique_prefix());
    db.exec(&format!(
        "CREATE TABLE {table} (id varchar(40) NOT NULL PRIMARY KEY, email varchar(100) NOT NULL, hash varchar(255) NOT NULL)"
    ))
    .await;
    let hash = bcrypt::hash("enumerate-generic", 4).unwrap();
    let rows: Vec<String> = (0..700)
        .map(|i| format!("('k{i}', 'p{i}@example.com', '{hash}')"))
        .collect();
    insert_literals(db, &table, "id, email, hash", &rows).await;
    let mut config = LegacyConfig::sql(Preset::Generic, db.url.clone());
    config.table = Some(table.clone());
    config.columns.login = String::new();
    let store = LegacyStore::open(&config, &prometheus::Registry::new()).unwrap();
    assert!(!store.has_created());
    let all = list(&store).await;
    let ids: HashSet<String> = all
        .iter()
        .map(|l| l.user.as_ref().unwrap().legacy_id.clone())
        .collect();
    assert_eq!((all.len(), ids.len()), (700, 700), "{:?}", db.kind);
    store.close().await;
    db.exec(&format!("DROP TABLE {table}")).await;
}

#[tokio::test]
async fn sql_stores_are_listed_page_by_page_every_user_once() {
    for db in databases("sql_stores_are_listed_page_by_page_every_user_once").await {
        wordpress_on(&db).await;
        generic_text_ids_on(&db).await;
    }
}

#[tokio::test]
async fn an_export_is_listed_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.csv");
    let hash = bcrypt::hash("enumerate-export", 4).unwrap();
    let mut text = String::from("id,login,email,hash\n");
    for i in 0..USERS {
        text.push_str(&format!("{i},u{i},u{i}@example.com,{hash}\n"));
    }
    text.push_str("9999,nobody,,x\n");
    std::fs::write(&path, text).unwrap();
    let config = LegacyConfig::export(&path, Columns::default());
    let store = LegacyStore::open(&config, &prometheus::Registry::new()).unwrap();
    assert!(!store.has_created());
    let all = list(&store).await;
    assert_eq!(all.len(), USERS + 1);
    assert_eq!(all.iter().filter(|l| l.user.is_err()).count(), 1);
    assert!(all.iter().all(|l| l.created.is_none()));
}
