//! Shared helpers for the legacy store tests: fixture vectors, databases, unique names.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::AnyPool;
use sqlx::{AssertSqlSafe, Executor};

/// One line of tests/fixtures/hash-vectors.jsonl.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Vector {
    pub id: String,
    pub format: String,
    pub hash: String,
    pub password: String,
    pub password_matches: bool,
}

/// Every fixture vector.
pub fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hash-vectors.jsonl"
    ))
    .unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The vector with this id.
pub fn vector(id: &str) -> Vector {
    vectors().into_iter().find(|v| v.id == id).unwrap()
}

/// A prefix for table names no other test (or concurrent test run) uses.
pub fn unique_prefix() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "lg{}_{}_",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
    MySql,
}

/// A test database with a setup pool (read-write; the store under test opens its own).
pub struct Db {
    pub kind: Kind,
    pub url: String,
    pub pool: AnyPool,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    /// Runs one statement.
    pub async fn exec(&self, sql: &str) {
        self.pool
            .execute(AssertSqlSafe(sql.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Inserts one row; `None` is NULL, integer-looking text is bound as an integer.
    pub async fn insert(&self, table: &str, cols: &[&str], values: &[Option<&str>]) {
        let params: Vec<String> = (1..=values.len())
            .map(|i| match self.kind {
                Kind::Postgres => format!("${i}"),
                _ => "?".to_owned(),
            })
            .collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            cols.join(", "),
            params.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
        for v in values {
            // Integer-looking values are bound as integers (ids), the rest as text.
            match v.and_then(|v| v.parse::<i64>().ok()) {
                Some(n) => q = q.bind(n),
                None => q = q.bind(v.map(str::to_owned)),
            }
        }
        q.execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// SQLite (always) plus PostgreSQL and MariaDB when their variables are set.
pub async fn databases(test: &str) -> Vec<Db> {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.db");
    let url = format!("sqlite://{}", path.display());
    let pool = AnyPool::connect(&format!("{url}?mode=rwc")).await.unwrap();
    let mut dbs = vec![Db {
        kind: Kind::Sqlite,
        url,
        pool,
        _dir: Some(dir),
    }];
    for (var, kind) in [
        ("DRIPGATE_TEST_POSTGRES_URL", Kind::Postgres),
        ("DRIPGATE_TEST_MYSQL_URL", Kind::MySql),
    ] {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => {
                let pool = sqlx::pool::PoolOptions::new()
                    .max_connections(2)
                    .connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("{var}={url}: {e}"));
                dbs.push(Db {
                    kind,
                    url,
                    pool,
                    _dir: None,
                });
            }
            _ => eprintln!("{test}: {var} is not set; skipping {kind:?}"),
        }
    }
    dbs
}
