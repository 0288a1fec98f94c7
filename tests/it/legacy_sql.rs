//! The legacy store against real schemas: WordPress `wp_users`/`wp_usermeta` and Drupal 7
//! `users`, created as those products ship them, on SQLite and (when the variables are set)
//! the machine's PostgreSQL and MariaDB. Lookups by login and by email in another case, bad
//! rows, duplicates, census, and the user-count gauge.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::legacy_support;

use dripgate::hash::{self, HashConfig};
use dripgate::legacy::{LegacyConfig, LegacyStore, Lookup, Preset, Reason};
use legacy_support::{Db, Kind, databases, unique_prefix, vector};

/// WordPress's `wp_users` and `wp_usermeta` (wp-admin/includes/schema.php), per database.
fn wordpress_ddl(kind: Kind, p: &str) -> Vec<String> {
    match kind {
        Kind::MySql => vec![
            format!(
                "CREATE TABLE {p}users (
  ID bigint(20) unsigned NOT NULL auto_increment,
  user_login varchar(60) NOT NULL default '',
  user_pass varchar(255) NOT NULL default '',
  user_nicename varchar(50) NOT NULL default '',
  user_email varchar(100) NOT NULL default '',
  user_url varchar(100) NOT NULL default '',
  user_registered datetime NOT NULL default '0000-00-00 00:00:00',
  user_activation_key varchar(255) NOT NULL default '',
  user_status int(11) NOT NULL default '0',
  display_name varchar(250) NOT NULL default '',
  PRIMARY KEY  (ID),
  KEY user_login_key (user_login),
  KEY user_nicename (user_nicename),
  KEY user_email (user_email)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci"
            ),
            format!(
                "CREATE TABLE {p}usermeta (
  umeta_id bigint(20) unsigned NOT NULL auto_increment,
  user_id bigint(20) unsigned NOT NULL default '0',
  meta_key varchar(255) default NULL,
  meta_value longtext,
  PRIMARY KEY  (umeta_id),
  KEY user_id (user_id),
  KEY meta_key (meta_key(191))
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci"
            ),
        ],
        // The same columns in PostgreSQL and SQLite types (WordPress ships MySQL only).
        Kind::Postgres | Kind::Sqlite => {
            let (id, dt) = if kind == Kind::Postgres {
                (
                    "bigserial PRIMARY KEY",
                    "timestamp NOT NULL default '1970-01-01 00:00:00'",
                )
            } else {
                (
                    "INTEGER PRIMARY KEY AUTOINCREMENT",
                    "text NOT NULL default '0000-00-00 00:00:00'",
                )
            };
            vec![
                format!(
                    "CREATE TABLE {p}users (
  ID {id},
  user_login varchar(60) NOT NULL default '',
  user_pass varchar(255) NOT NULL default '',
  user_nicename varchar(50) NOT NULL default '',
  user_email varchar(100) NOT NULL default '',
  user_url varchar(100) NOT NULL default '',
  user_registered {dt},
  user_activation_key varchar(255) NOT NULL default '',
  user_status integer NOT NULL default 0,
  display_name varchar(250) NOT NULL default ''
)"
                ),
                format!("CREATE INDEX {p}user_login_key ON {p}users (user_login)"),
                format!("CREATE INDEX {p}user_email ON {p}users (user_email)"),
                format!(
                    "CREATE TABLE {p}usermeta (
  umeta_id {id},
  user_id bigint NOT NULL default 0,
  meta_key varchar(255) default NULL,
  meta_value text
)"
                ),
            ]
        }
    }
}

/// Drupal 7's `users` (modules/user/user.install), per database.
fn drupal7_ddl(kind: Kind, p: &str) -> Vec<String> {
    let (uid, int, tiny, blob, unique) = match kind {
        Kind::MySql => (
            "int unsigned",
            "int",
            "tinyint",
            "longblob",
            "UNIQUE KEY name (name)",
        ),
        Kind::Postgres => (
            "bigint CHECK (uid >= 0)",
            "integer",
            "smallint",
            "bytea",
            "UNIQUE (name)",
        ),
        Kind::Sqlite => (
            "INTEGER CHECK (uid >= 0)",
            "INTEGER",
            "INTEGER",
            "BLOB",
            "UNIQUE (name)",
        ),
    };
    vec![format!(
        "CREATE TABLE {p}users (
  uid {uid} NOT NULL DEFAULT 0,
  name varchar(60) NOT NULL DEFAULT '',
  pass varchar(128) NOT NULL DEFAULT '',
  mail varchar(254) DEFAULT '',
  theme varchar(255) NOT NULL DEFAULT '',
  signature varchar(255) NOT NULL DEFAULT '',
  signature_format varchar(255) DEFAULT NULL,
  created {int} NOT NULL DEFAULT 0,
  access {int} NOT NULL DEFAULT 0,
  login {int} NOT NULL DEFAULT 0,
  status {tiny} NOT NULL DEFAULT 0,
  timezone varchar(32) DEFAULT NULL,
  language varchar(12) NOT NULL DEFAULT '',
  picture {int} NOT NULL DEFAULT 0,
  init varchar(254) DEFAULT '',
  data {blob},
  PRIMARY KEY (uid),
  {unique}
)"
    )]
}

fn found(l: Lookup) -> dripgate::legacy::LegacyUser {
    match l {
        Lookup::Found(u) => u,
        other => panic!("expected a user, got {other:?}"),
    }
}

fn reason(l: Lookup) -> Reason {
    match l {
        Lookup::NotMigratable(r) => r,
        other => panic!("expected not migratable, got {other:?}"),
    }
}

fn verifies(u: &dripgate::legacy::LegacyUser, password: &str) -> bool {
    hash::verify(&u.hash, password.as_bytes(), &HashConfig::default()).unwrap()
}

async fn wordpress_on(db: &Db) {
    let p = format!("{}wp_", unique_prefix());
    for stmt in wordpress_ddl(db.kind, &p) {
        db.exec(&stmt).await;
    }
    let users = format!("{p}users");
    let cols = ["user_login", "user_email", "user_pass", "display_name"];
    let bcrypt = vector("wp_bcrypt-001");
    let phpass = vector("wp_phpass-001");
    let md5 = vector("wp_md5-001");
    let truncated = &bcrypt.hash[..50];
    let rows: [(&str, &str, &str); 8] = [
        ("Alice", "Alice.Liddell@Example.COM", &bcrypt.hash),
        ("bob", "bob@example.com", &phpass.hash),
        ("carol", "", &md5.hash),
        ("dave", "dave@example.com", truncated),
        ("eve", "eve@example.com", &bcrypt.hash),
        ("eve2", "EVE@example.com", &phpass.hash),
        ("frank", "frank@example.com", ""),
        ("grace", "grace@example.com", &md5.hash),
    ];
    for (login, email, pass) in rows {
        db.insert(
            &users,
            &cols,
            &[Some(login), Some(email), Some(pass), Some(login)],
        )
        .await;
    }
    let meta = format!("{p}usermeta");
    for (k, v) in [("first_name", "Alice"), ("last_name", "Liddell")] {
        db.insert(
            &meta,
            &["user_id", "meta_key", "meta_value"],
            &[Some("1"), Some(k), Some(v)],
        )
        .await;
    }

    let mut config = LegacyConfig::sql(Preset::Wordpress, db.url.clone());
    config.table_prefix = Some(p.clone());
    let registry = prometheus::Registry::new();
    let store = LegacyStore::open(&config, &registry).unwrap();

    // By login in another case, and by email in another case: the same user.
    let a = found(store.lookup("ALICE").await.unwrap());
    assert_eq!(a.key, "alice.liddell@example.com");
    assert_eq!(a.legacy_id, "1");
    assert_eq!(a.email, "Alice.Liddell@Example.COM");
    assert_eq!(a.login.as_deref(), Some("Alice"));
    assert_eq!(a.given_name.as_deref(), Some("Alice"));
    assert_eq!(a.family_name.as_deref(), Some("Liddell"));
    assert_eq!(a.format.as_str(), "wordpress");
    assert!(verifies(&a, &bcrypt.password), "{:?}", db.kind);
    assert!(!format!("{a:?}").contains(&bcrypt.hash[7..]));
    let a2 = found(store.lookup("  alice.liddell@EXAMPLE.com ").await.unwrap());
    assert_eq!(a2.key, a.key);
    assert_eq!(a2.legacy_id, a.legacy_id);

    let b = found(store.lookup("Bob@Example.com").await.unwrap());
    assert!(verifies(&b, &phpass.password));
    let g = found(store.lookup("grace").await.unwrap());
    assert!(verifies(&g, &md5.password), "wordpress md5 branch");

    assert!(matches!(
        store.lookup("nobody").await.unwrap(),
        Lookup::NotFound
    ));
    assert!(matches!(
        store.lookup("   ").await.unwrap(),
        Lookup::NotFound
    ));
    assert_eq!(
        reason(store.lookup("carol").await.unwrap()),
        Reason::NoEmail
    );
    assert_eq!(
        reason(store.lookup("dave").await.unwrap()),
        Reason::TruncatedHash
    );
    assert_eq!(
        reason(store.lookup("frank").await.unwrap()),
        Reason::EmptyHash
    );
    // Two rows share eve@example.com after lower-casing: reported, never merged.
    assert_eq!(
        reason(store.lookup("eve@example.com").await.unwrap()),
        Reason::DuplicateKey
    );
    assert_eq!(
        reason(store.lookup("eve").await.unwrap()),
        Reason::DuplicateKey
    );
    assert_eq!(
        reason(store.lookup("EVE2").await.unwrap()),
        Reason::DuplicateKey
    );

    // Census.
    let census = store.census(&mut |_| {}).await.unwrap();
    assert_eq!(census.users, 8, "{census:?}");
    assert_eq!(census.migratable, 3, "{}", census.to_text());
    let nm = &census.not_migratable;
    assert_eq!(nm.get(&Reason::NoEmail), Some(&1));
    assert_eq!(nm.get(&Reason::TruncatedHash), Some(&1));
    assert_eq!(nm.get(&Reason::EmptyHash), Some(&1));
    assert_eq!(nm.get(&Reason::DuplicateKey), Some(&2));
    assert_eq!(census.formats.get("wordpress"), Some(&6), "{census:?}");
    assert!(
        census.work_factors.contains_key("wordpress count_log2=13"),
        "{census:?}"
    );
    let text = census.to_text();
    for secret in [&bcrypt.hash, &phpass.hash, &md5.hash] {
        assert!(!text.contains(secret.as_str()));
        assert!(
            !serde_json::to_string(&census)
                .unwrap()
                .contains(secret.as_str())
        );
    }

    // The gauge is set by a refresh, not by a scrape.
    let metrics = dripgate::metrics::render(&registry).unwrap();
    assert!(metrics.contains("dripgate_legacy_users 0"), "{metrics}");
    assert_eq!(store.refresh_count().await.unwrap(), 8);
    let metrics = dripgate::metrics::render(&registry).unwrap();
    assert!(metrics.contains("dripgate_legacy_users 8"), "{metrics}");
    assert!(metrics.contains("outcome=\"not_migratable\",reason=\"duplicate_key\""));
    assert!(!metrics.contains(&bcrypt.hash[7..]));

    // Read-only: the store's connections refuse writes where the database can.
    store.close().await;
    for stmt in [
        format!("DROP TABLE {p}usermeta"),
        format!("DROP TABLE {p}users"),
    ] {
        db.exec(&stmt).await;
    }
}

async fn drupal7_on(db: &Db) {
    let p = unique_prefix();
    for stmt in drupal7_ddl(db.kind, &p) {
        db.exec(&stmt).await;
    }
    let users = format!("{p}users");
    let cols = ["uid", "name", "mail", "pass", "init"];
    let sha512 = vector("drupal_sha512-001");
    let unicode = vector("drupal_sha512-002");
    let upgraded = vector("drupal_md5_sha512-001");
    let rows: [(&str, &str, Option<&str>, &str); 6] = [
        ("0", "", Some(""), ""),
        ("1", "admin", Some("Admin@Example.org"), &sha512.hash),
        ("2", "Jürgen", Some("juergen@example.org"), &unicode.hash),
        ("3", "legacy6", Some("Legacy6@Example.org"), &upgraded.hash),
        ("4", "nomail", None, &sha512.hash),
        ("5", "locked", Some("locked@example.org"), "!disabled"),
    ];
    for (uid, name, mail, pass) in rows {
        db.insert(
            &users,
            &cols,
            &[Some(uid), Some(name), mail, Some(pass), mail],
        )
        .await;
    }
    let mut config = LegacyConfig::sql(Preset::Drupal7, db.url.clone());
    config.table_prefix = Some(p.clone());
    let store = LegacyStore::open(&config, &prometheus::Registry::new()).unwrap();

    let admin = found(store.lookup("ADMIN").await.unwrap());
    assert_eq!(admin.key, "admin@example.org");
    assert_eq!(admin.legacy_id, "1");
    assert_eq!(admin.format.as_str(), "drupal");
    assert!(verifies(&admin, &sha512.password));
    let admin2 = found(store.lookup("admin@EXAMPLE.org").await.unwrap());
    assert_eq!(admin2.legacy_id, "1");

    // Typed with a decomposed ü: NFC makes it the stored name.
    let j = found(store.lookup("Ju\u{308}rgen").await.unwrap());
    assert_eq!(j.legacy_id, "2");
    assert!(verifies(&j, &unicode.password));
    let l = found(store.lookup("LEGACY6@example.ORG").await.unwrap());
    assert!(verifies(&l, &upgraded.password));

    assert_eq!(
        reason(store.lookup("nomail").await.unwrap()),
        Reason::NoEmail
    );
    assert_eq!(
        reason(store.lookup("locked").await.unwrap()),
        Reason::LockedAccount
    );
    // The anonymous row (uid 0) is never a user.
    assert!(matches!(store.lookup("").await.unwrap(), Lookup::NotFound));

    let census = store.census(&mut |_| {}).await.unwrap();
    assert_eq!(census.users, 5, "{census:?}");
    assert_eq!(census.migratable, 3);
    assert_eq!(census.formats.get("drupal"), Some(&4));
    assert!(
        census
            .work_factors
            .keys()
            .any(|k| k.starts_with("drupal count_log2="))
    );
    assert_eq!(store.count().await.unwrap(), 5);
    store.close().await;
    db.exec(&format!("DROP TABLE {p}users")).await;
}

#[tokio::test]
async fn wordpress_preset_on_every_database() {
    for db in databases("wordpress_preset_on_every_database").await {
        wordpress_on(&db).await;
    }
}

#[tokio::test]
async fn drupal7_preset_on_every_database() {
    for db in databases("drupal7_preset_on_every_database").await {
        drupal7_on(&db).await;
    }
}

#[tokio::test]
async fn store_connections_are_read_only() {
    for db in databases("store_connections_are_read_only").await {
        let p = unique_prefix();
        db.exec(&format!(
            "CREATE TABLE {p}users (id integer, email varchar(100), pass varchar(100))"
        ))
        .await;
        db.insert(
            &format!("{p}users"),
            &["id", "email", "pass"],
            &[Some("1"), Some("a@b.c"), Some("x")],
        )
        .await;
        // A custom query that tries to write is refused by the read-only session.
        let mut config = LegacyConfig::sql(Preset::Custom, db.url.clone());
        let param = if db.kind == Kind::Postgres { "$1" } else { "?" };
        config.query = Some(format!("DELETE FROM {p}users WHERE email = {param}"));
        let store = LegacyStore::open(&config, &prometheus::Registry::new()).unwrap();
        let err = store.lookup("a@b.c").await.unwrap_err();
        assert_eq!(err.kind().as_str(), "query", "{:?}: {err}", db.kind);
        store.close().await;
        let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {p}users"
        )))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(left, 1, "{:?}", db.kind);
        db.exec(&format!("DROP TABLE {p}users")).await;
    }
}

#[tokio::test]
async fn generic_and_custom_presets_with_format_column_and_binary_hash() {
    for db in databases("generic_and_custom_presets").await {
        let p = unique_prefix();
        let blob = match db.kind {
            Kind::Postgres => "bytea",
            Kind::MySql => "varbinary(255)",
            Kind::Sqlite => "blob",
        };
        db.exec(&format!(
            "CREATE TABLE {p}accounts (user_id integer, mail varchar(100), pw {blob}, algo varchar(20), first varchar(20))"
        ))
        .await;
        let bcrypt = vector("bcrypt_2y-001");
        let cast = |v: &str| match db.kind {
            Kind::Postgres => format!("convert_to('{v}', 'UTF8')"),
            _ => format!(
                "CAST('{v}' AS {})",
                if db.kind == Kind::MySql {
                    "binary"
                } else {
                    "blob"
                }
            ),
        };
        db.exec(&format!(
            "INSERT INTO {p}accounts VALUES (7, 'Zoe@Example.com', {}, 'bcrypt', 'Zoe'), (8, 'yan@example.com', {}, 'nosuchformat', NULL)",
            cast(&bcrypt.hash),
            cast(&bcrypt.hash)
        ))
        .await;
        let mut config = LegacyConfig::sql(Preset::Generic, db.url.clone());
        config.table = Some(format!("{p}accounts"));
        config.columns.id = "user_id".into();
        config.columns.login = String::new();
        config.columns.email = "mail".into();
        config.columns.hash = "pw".into();
        config.columns.format = Some("algo".into());
        config.columns.given_name = Some("first".into());
        let store = LegacyStore::open(&config, &prometheus::Registry::new()).unwrap();
        let z = found(store.lookup("zoe@example.com").await.unwrap());
        assert_eq!(z.legacy_id, "7");
        assert_eq!(z.given_name.as_deref(), Some("Zoe"));
        assert!(verifies(&z, &bcrypt.password), "{:?}", db.kind);
        assert_eq!(
            reason(store.lookup("yan@example.com").await.unwrap()),
            Reason::UnknownFormat
        );
        store.close().await;

        // custom: the operator's own query, one placeholder, columns by name.
        let mut config = LegacyConfig::sql(Preset::Custom, db.url.clone());
        let param = if db.kind == Kind::Postgres { "$1" } else { "?" };
        config.query = Some(format!(
            "SELECT user_id AS id, mail AS email, pw AS hash FROM {p}accounts WHERE lower(mail) = {param}"
        ));
        config.census_query = Some(format!(
            "SELECT user_id AS id, mail AS email, pw AS hash FROM {p}accounts"
        ));
        config.columns.login = String::new();
        config.format = Some("auto".into());
        let store = LegacyStore::open(&config, &prometheus::Registry::new()).unwrap();
        let z = found(store.lookup("Zoe@example.com").await.unwrap());
        assert_eq!(z.format.as_str(), "bcrypt");
        assert_eq!(store.count().await.unwrap(), 2);
        let census = store.census(&mut |_| {}).await.unwrap();
        assert_eq!((census.users, census.migratable), (2, 2));
        assert_eq!(census.work_factors.get("bcrypt cost=4"), Some(&2));
        store.close().await;
        db.exec(&format!("DROP TABLE {p}accounts")).await;
    }
}

#[tokio::test]
async fn count_gauge_is_refreshed_in_the_background_not_per_scrape() {
    let dbs = databases("count_gauge_is_refreshed_in_the_background").await;
    let db = dbs.iter().find(|d| d.kind == Kind::Sqlite).unwrap();
    let p = unique_prefix();
    db.exec(&format!(
        "CREATE TABLE {p}users (id integer, email text, hash text)"
    ))
    .await;
    for i in 0..3 {
        let id = i.to_string();
        db.insert(
            &format!("{p}users"),
            &["id", "email", "hash"],
            &[Some(&id), Some("x@y.z"), None],
        )
        .await;
    }
    let mut config = LegacyConfig::sql(Preset::Generic, db.url.clone());
    config.table = Some(format!("{p}users"));
    config.columns.login = String::new();
    config.count_interval = std::time::Duration::from_secs(3600);
    let registry = prometheus::Registry::new();
    let store = LegacyStore::open(&config, &registry).unwrap();
    let tasks = store.spawn_background();
    let mut seen = false;
    for _ in 0..200 {
        if dripgate::metrics::render(&registry)
            .unwrap()
            .contains("dripgate_legacy_users 3")
        {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen, "the first refresh runs at once");
    // More users arrive; scrapes keep showing the last refreshed value until the next refresh.
    db.insert(
        &format!("{p}users"),
        &["id", "email", "hash"],
        &[Some("9"), Some("n@y.z"), None],
    )
    .await;
    for _ in 0..3 {
        let text = dripgate::metrics::render(&registry).unwrap();
        assert!(text.contains("dripgate_legacy_users 3"), "{text}");
    }
    for t in tasks {
        t.abort();
    }
    assert_eq!(store.refresh_count().await.unwrap(), 4);
    store.close().await;
    db.exec(&format!("DROP TABLE {p}users")).await;
}
