//! Test databases for the ledger: a fresh SQLite file per test, and, when
//! `DRIPGATE_TEST_POSTGRES_URL` is set, a fresh PostgreSQL schema per test (selected through the
//! connection's `search_path`, dropped by `cleanup`).
#![allow(dead_code)]

use std::time::Duration;

use dripgate::config::Secret;
use dripgate::ledger::{Ledger, LedgerConfig};
use rand::Rng;

/// One database a test runs against.
pub struct TestDb {
    /// Backend name for messages.
    pub name: &'static str,
    /// A ledger config pointing at the database (short lease, no background recount).
    pub config: LedgerConfig,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// Opens a ledger on this database with a fresh registry.
    pub async fn open(&self) -> Ledger {
        self.open_with(&self.config).await
    }

    /// Opens a ledger with a modified config.
    pub async fn open_with(&self, config: &LedgerConfig) -> Ledger {
        Ledger::open(config, &prometheus::Registry::new())
            .await
            .unwrap_or_else(|e| panic!("{}: open: {e}", self.name))
    }

    /// The config with another lease.
    pub fn with_lease(&self, lease: Duration) -> LedgerConfig {
        let mut c = self.config.clone();
        c.lease = lease;
        c
    }

    /// Drops the PostgreSQL schema (the SQLite file goes with the temp dir).
    pub async fn cleanup(self) {
        if let Some((admin_url, schema)) = &self.pg {
            let pool = sqlx::PgPool::connect(admin_url).await.unwrap();
            let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

fn base_config(url: String) -> LedgerConfig {
    LedgerConfig {
        url: Secret::inline(url),
        lease: Duration::from_secs(30),
        query_timeout: Duration::from_secs(10),
        counts_interval: Duration::ZERO,
        ..LedgerConfig::default()
    }
}

/// A PostgreSQL ledger schema of its own for `test`, or `None` (and "skipped" printed) when
/// PostgreSQL is not configured.
pub async fn postgres(test: &str) -> Option<TestDb> {
    dbs(test).await.into_iter().find(|d| d.name == "postgres")
}

/// The databases to run `test` on: SQLite always, PostgreSQL when configured (else "skipped").
pub async fn dbs(test: &str) -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut out = vec![TestDb {
        name: "sqlite",
        config: base_config(format!("sqlite://{}", path.display())),
        _dir: Some(dir),
        pg: None,
    }];
    match std::env::var("DRIPGATE_TEST_POSTGRES_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let suffix: u32 = rand::rng().random();
            let schema = format!("ledger_{}_{suffix:08x}", test.replace('-', "_"));
            let pool = sqlx::PgPool::connect(&admin_url).await.unwrap();
            let sql = format!("CREATE SCHEMA \"{schema}\"");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            let sep = if admin_url.contains('?') { '&' } else { '?' };
            let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
            out.push(TestDb {
                name: "postgres",
                config: base_config(url),
                _dir: None,
                pg: Some((admin_url, schema)),
            });
        }
        _ => println!("{test}: PostgreSQL part skipped (DRIPGATE_TEST_POSTGRES_URL unset)"),
    }
    out
}

/// Calls `attempt` every 50 ms until it returns `Some`, at most `tries` times.
pub async fn eventually<T, F, Fut>(tries: usize, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(v) = attempt().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// A fingerprint-shaped value that is not made from any hash (64 hex digits).
pub fn fake_fingerprint(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}
