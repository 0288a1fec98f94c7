//! Ledger schema, cache, counts, fingerprint key and privacy on real databases (SQLite, and
//! PostgreSQL when configured).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::ledger_common;

use std::time::Duration;

use dripgate::config::Secret;
use dripgate::ledger::{Ledger, LedgerConfig, LedgerError, State};
use ledger_common::{dbs, eventually};
use sqlx::Row;

/// Column names of a ledger table, read with a separate connection.
async fn columns(config: &LedgerConfig, table: &str) -> Vec<String> {
    let url = config.url.expose();
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query("SELECT name FROM pragma_table_info($1) ORDER BY cid")
            .bind(table)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows.iter().map(|r| r.get::<String, _>(0)).collect()
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.iter().map(|r| r.get::<String, _>(0)).collect()
    }
}

/// Every value of every text column of `ledger_users`, concatenated.
async fn all_ledger_text(config: &LedgerConfig) -> String {
    let sql = "SELECT user_key || '|' || state || '|' || COALESCE(provider_user_id, '') || '|' || \
               COALESCE(last_error, '') || '|' || COALESCE(legacy_format, '') || '|' || \
               COALESCE(hash_fingerprint, '') || '|' || COALESCE(lease_owner, '') FROM ledger_users";
    let url = config.url.expose();
    let rows: Vec<String> = if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let r = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        r
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let r = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        r
    };
    rows.join("\n")
}

#[tokio::test]
async fn no_password_or_hash_is_stored_and_the_fingerprint_is_not_the_hash() {
    for db in dbs("privacy").await {
        let ledger = db.open().await;
        let hash = "$2y$10$Zq7cS1yQ6F3b5lN2hG8eUuQm0Qm7tA8yJp2oVt3m4r5s6t7u8v9w0";
        let c = ledger
            .claim("ivy@example.com", "a", "bcrypt")
            .await
            .unwrap()
            .unwrap();
        let fp = ledger.fingerprint(hash.as_bytes());
        assert_eq!(fp.len(), 64);
        assert_ne!(fp, hash);
        assert!(!fp.contains(&hex::encode(hash.as_bytes())[..16]));
        assert_ne!(fp, hex::encode(hash.as_bytes()));
        ledger.mark_migrated(&c, "prov-ivy", &fp).await.unwrap();

        let cols = columns(&db.config, "ledger_users").await;
        assert_eq!(
            cols,
            [
                "user_key",
                "state",
                "provider_user_id",
                "attempts",
                "last_error",
                "legacy_format",
                "hash_fingerprint",
                "lease_owner",
                "lease_expires_at",
                "epoch",
                "created_at",
                "updated_at",
                "migrated_at",
                "method"
            ],
            "{}",
            db.name
        );
        assert!(
            cols.iter()
                .all(|c| !c.contains("password") && c != "hash" && c != "legacy_hash")
        );
        let text = all_ledger_text(&db.config).await;
        assert!(!text.contains(hash), "{}: hash stored", db.name);
        assert!(!text.contains("Zq7cS1yQ6F3b5lN2hG8e"));
        assert!(text.contains(&fp));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn schema_migration_is_idempotent_and_state_survives_restarts() {
    for db in dbs("restart").await {
        let ledger = db.open().await;
        let c = ledger
            .claim("jo@example.com", "a", "phpass")
            .await
            .unwrap()
            .unwrap();
        ledger.mark_created(&c, "prov-jo").await.unwrap();
        let fp = ledger.fingerprint(b"$P$Babcdefgh");
        ledger.close().await;
        assert!(
            ledger.ping().await.unwrap_err().is_unavailable(),
            "{}",
            db.name
        );
        drop(ledger);

        // Restart (twice, two at once on the same database): no error, nothing lost.
        let (a, b) = tokio::join!(db.open(), db.open());
        let row = a.get("jo@example.com").await.unwrap().unwrap();
        assert_eq!(row.state, State::Created);
        assert_eq!(row.provider_user_id.as_deref(), Some("prov-jo"));
        // The generated fingerprint key was kept: same hash, same fingerprint.
        assert_eq!(a.fingerprint(b"$P$Babcdefgh"), fp, "{}", db.name);
        assert_eq!(b.fingerprint(b"$P$Babcdefgh"), fp);
        assert!(a.fingerprint_matches(b"$P$Babcdefgh", &fp));
        a.ping().await.unwrap();
        let versions = columns(&db.config, "ledger_schema_migrations").await;
        assert_eq!(versions, ["version", "name", "applied_at"]);
        a.close().await;
        b.close().await;

        // A configured key wins over the generated one.
        let mut keyed = db.config.clone();
        keyed.fingerprint_key = Some(Secret::inline("an operator-provided key, 32 b!"));
        let k = db.open_with(&keyed).await;
        assert_ne!(k.fingerprint(b"$P$Babcdefgh"), fp);
        k.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn migrated_users_are_cached_and_served_when_the_database_is_gone() {
    for db in dbs("cache").await {
        let writer = db.open().await;
        let reader = db.open().await;
        assert!(
            reader
                .is_migrated("kim@example.com")
                .await
                .unwrap()
                .is_none()
        );
        assert!(reader.cached_migrated("kim@example.com").await.is_none());

        let c = writer
            .claim("kim@example.com", "w", "bcrypt")
            .await
            .unwrap()
            .unwrap();
        ledger_not_migrated_while_in_progress(&reader, "kim@example.com").await;
        writer.mark_created(&c, "prov-kim").await.unwrap();
        ledger_not_migrated_while_in_progress(&reader, "kim@example.com").await;
        let fp = writer.fingerprint(b"hash-kim");
        writer.mark_migrated(&c, "prov-kim", &fp).await.unwrap();
        // The writer's cache is filled by mark_migrated; the reader's by its first lookup
        // (no negative entry was cached above).
        assert_eq!(
            writer
                .cached_migrated("kim@example.com")
                .await
                .unwrap()
                .provider_user_id,
            "prov-kim"
        );
        assert!(reader.cached_migrated("kim@example.com").await.is_none());
        let user = reader
            .is_migrated("kim@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.provider_user_id, "prov-kim");
        assert_eq!(user.hash_fingerprint.as_deref(), Some(fp.as_str()));
        assert!(user.migrated_at > 0);
        assert_eq!(
            reader.cached_migrated("kim@example.com").await,
            Some(user.clone())
        );

        // The database goes away: cached users are still answered, others are errors that
        // say "unavailable".
        reader.close().await;
        assert_eq!(
            reader.is_migrated("kim@example.com").await.unwrap(),
            Some(user)
        );
        let err = reader.is_migrated("lou@example.com").await.unwrap_err();
        assert!(err.is_unavailable(), "{}: {err:?}", db.name);
        assert!(reader.ping().await.unwrap_err().is_unavailable());
        writer.close().await;

        // With the cache disabled nothing is cached.
        let mut no_cache = db.config.clone();
        no_cache.cache.max_entries = 0;
        let plain = db.open_with(&no_cache).await;
        assert!(
            plain
                .is_migrated("kim@example.com")
                .await
                .unwrap()
                .is_some()
        );
        assert!(plain.cached_migrated("kim@example.com").await.is_none());
        plain.close().await;

        // Entries expire after the TTL.
        let mut short = db.config.clone();
        short.cache.ttl = Duration::from_millis(100);
        let s = db.open_with(&short).await;
        s.is_migrated("kim@example.com").await.unwrap().unwrap();
        let gone = eventually(100, || async {
            s.cached_migrated("kim@example.com")
                .await
                .is_none()
                .then_some(())
        })
        .await;
        assert!(gone.is_some(), "{}: cache entry never expired", db.name);
        s.close().await;
        db.cleanup().await;
    }
}

async fn ledger_not_migrated_while_in_progress(ledger: &Ledger, key: &str) {
    assert!(ledger.is_migrated(key).await.unwrap().is_none());
    assert!(ledger.cached_migrated(key).await.is_none());
}

#[tokio::test]
async fn counts_by_state_and_the_background_gauge() {
    for db in dbs("counts").await {
        let mut config = db.config.clone();
        config.counts_interval = Duration::from_millis(50);
        let registry = prometheus::Registry::new();
        let ledger = Ledger::open(&config, &registry).await.unwrap();
        let counts = ledger.counts().await.unwrap();
        assert_eq!(counts.len(), State::ALL.len());
        assert!(counts.values().all(|n| *n == 0));

        let fp = ledger.fingerprint(b"h");
        for i in 0..3 {
            let c = ledger
                .claim(&format!("m{i}@x"), "o", "md5")
                .await
                .unwrap()
                .unwrap();
            ledger
                .mark_migrated(&c, &format!("p{i}"), &fp)
                .await
                .unwrap();
        }
        let c = ledger
            .claim("created@x", "o", "md5")
            .await
            .unwrap()
            .unwrap();
        ledger.mark_created(&c, "p").await.unwrap();
        ledger
            .claim("claimed1@x", "o", "md5")
            .await
            .unwrap()
            .unwrap();
        ledger
            .claim("claimed2@x", "o", "md5")
            .await
            .unwrap()
            .unwrap();
        let c = ledger
            .claim("conflict@x", "o", "md5")
            .await
            .unwrap()
            .unwrap();
        ledger
            .mark_terminal(&c, State::Conflict, "exists")
            .await
            .unwrap();
        let c = ledger
            .claim("blocked@x", "o", "md5")
            .await
            .unwrap()
            .unwrap();
        ledger
            .mark_terminal(&c, State::BlockedPolicy, "policy")
            .await
            .unwrap();

        let counts = ledger.counts().await.unwrap();
        assert_eq!(counts[&State::Migrated], 3, "{}", db.name);
        assert_eq!(counts[&State::Created], 1);
        assert_eq!(counts[&State::Claimed], 2);
        assert_eq!(counts[&State::Conflict], 1);
        assert_eq!(counts[&State::BlockedPolicy], 1);

        // The background task sets the gauge (not per scrape).
        let seen = eventually(200, || async {
            let text = dripgate::metrics::render(&registry).unwrap();
            let done = text.contains("dripgate_ledger_users{state=\"migrated\"} 3")
                && text.contains("dripgate_ledger_users{state=\"claimed\"} 2")
                && text.contains("dripgate_ledger_users{state=\"blocked_policy\"} 1")
                && text.contains("dripgate_ledger_migrated_users{method=\"live\"} 3")
                && text.contains("dripgate_ledger_migrated_users{method=\"handoff_hash\"} 0");
            done.then_some(text)
        })
        .await
        .unwrap_or_else(|| panic!("{}: gauge never refreshed", db.name));
        assert!(
            seen.contains("dripgate_ledger_operations_total{operation=\"claim\",result=\"ok\"}")
        );
        assert!(seen.contains("dripgate_ledger_claims_total{kind=\"first\",result=\"won\"} 8"));
        assert!(!seen.contains("@x"), "no user key in metrics");
        ledger.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn sqlite_file_is_created_with_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    assert!(!path.exists());
    let config = LedgerConfig {
        url: Secret::inline(format!("sqlite://{}", path.display())),
        counts_interval: Duration::ZERO,
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(&config, &prometheus::Registry::new())
        .await
        .unwrap();
    assert!(path.exists());
    ledger.ping().await.unwrap();
    let pool = sqlx::SqlitePool::connect(config.url.expose())
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    pool.close().await;
    ledger.close().await;
}

#[tokio::test]
async fn an_unreachable_database_is_reported_as_unavailable() {
    let config = LedgerConfig {
        url: Secret::inline("postgres://postgres@127.0.0.1:1/test"),
        query_timeout: Duration::from_secs(2),
        counts_interval: Duration::ZERO,
        ..LedgerConfig::default()
    };
    let err = Ledger::open(&config, &prometheus::Registry::new())
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let bad = LedgerConfig {
        url: Secret::inline("mysql://root@127.0.0.1/test"),
        ..LedgerConfig::default()
    };
    assert!(matches!(
        Ledger::open(&bad, &prometheus::Registry::new()).await,
        Err(LedgerError::Config(_))
    ));
}

/// The ledger can be shared across tasks and its futures spawned (compile-time check).
#[allow(dead_code)]
fn futures_are_send(ledger: &Ledger, claim: &dripgate::ledger::Claim) {
    fn send<T: Send>(_: T) {}
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<Ledger>();
    send(ledger.get("k"));
    send(ledger.is_migrated("k"));
    send(ledger.cached_migrated("k"));
    send(ledger.claim("k", "o", "f"));
    send(ledger.claim_resync("k", "o", "f"));
    send(ledger.mark_created(claim, "p"));
    send(ledger.mark_migrated(claim, "p", "f"));
    send(ledger.mark_failed(claim, "r"));
    send(ledger.mark_terminal(claim, State::Conflict, "r"));
    send(ledger.counts());
    send(ledger.ping());
}

#[tokio::test]
async fn migration_history_and_failures_are_read_on_every_backend() {
    for db in dbs("history").await {
        let ledger = db.open().await;
        for (i, user) in ["h1@x", "h2@x", "h3@x"].into_iter().enumerate() {
            let c = ledger.claim(user, "o", "bcrypt").await.unwrap().unwrap();
            if i == 2 {
                ledger
                    .mark_failed(&c, "provider_unavailable")
                    .await
                    .unwrap();
                continue;
            }
            let fp = ledger.fingerprint(user.as_bytes());
            ledger.mark_migrated(&c, "prov", &fp).await.unwrap();
        }
        let h = ledger.migration_history(48).await.unwrap();
        assert_eq!(h.hourly.len(), 48, "{}", db.name);
        assert_eq!(h.hourly.iter().sum::<u64>(), 2, "{}", db.name);
        assert_eq!((h.last_hour, h.last_24h), (2, 2), "{}", db.name);
        assert_eq!(h.start_ms % 3_600_000, 0);
        assert!(h.start_ms + 47 * 3_600_000 <= h.now_ms);
        assert!(h.now_ms < h.start_ms + 48 * 3_600_000);
        let failures = ledger.failures().await.unwrap();
        assert_eq!(
            failures.get("provider_unavailable"),
            Some(&1),
            "{}",
            db.name
        );
        assert_eq!(failures.len(), 1);
        ledger.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_latest_census_is_recorded_and_replaced_on_every_backend() {
    for db in dbs("census").await {
        let ledger = db.open().await;
        assert_eq!(ledger.latest_census().await.unwrap(), None, "{}", db.name);
        let first = r#"{"users":3,"formats":{"bcrypt":2}}"#;
        let taken = ledger.record_census(first).await.unwrap();
        let now = ledger.now_ms().await.unwrap();
        assert!(taken <= now && now - taken < 60_000, "{}", db.name);
        let latest = ledger.latest_census().await.unwrap().unwrap();
        assert_eq!(latest.summary, first, "{}", db.name);
        assert_eq!(latest.taken_at_ms, taken);

        // A later census replaces it; the table keeps one row.
        let second = r#"{"users":4,"formats":{"bcrypt":4}}"#;
        let again = ledger.record_census(second).await.unwrap();
        assert!(again >= taken);
        let latest = ledger.latest_census().await.unwrap().unwrap();
        assert_eq!(latest.summary, second, "{}", db.name);
        assert_eq!(latest.taken_at_ms, again);
        assert_eq!(
            columns(&db.config, "ledger_census").await,
            ["id", "summary", "taken_at"]
        );
        let huge = "x".repeat(dripgate::ledger::MAX_CENSUS_BYTES + 1);
        assert!(matches!(
            ledger.record_census(&huge).await,
            Err(LedgerError::Invalid(_))
        ));
        ledger.close().await;

        // It survives a restart.
        let reopened = db.open().await;
        let latest = reopened.latest_census().await.unwrap().unwrap();
        assert_eq!(latest.summary, second, "{}", db.name);
        reopened.close().await;
        db.cleanup().await;
    }
}
