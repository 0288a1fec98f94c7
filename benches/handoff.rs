//! `dripgate handoff` against the Kinde fake: throughput at the default provider limit and at a
//! high one, as a ratio to the bound the limit sets (requests per second ÷ requests per user,
//! counted at the fake), and the peak resident memory of the process for 10,000 and 100,000
//! legacy users (a dry run reads every user, the ledger row of each and the store again for
//! each selected one: memory that does not grow with the store shows it streams).
//!
//! `cargo bench --bench handoff` (runs the release binary as a child under `/usr/bin/time`);
//! `cargo bench --bench handoff -- 200000` measures only the dry run's memory for that size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use dripgate::testkit::kinde::{FakeKinde, FakeKindeOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

const BIN: &str = env!("CARGO_BIN_EXE_dripgate");

/// A legacy store of `n` users sharing one bcrypt hash (its value does not matter: it is
/// imported, not verified).
async fn store(path: &Path, n: usize) {
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    // Indexed as the sign-in lookup compares (`lower(email) = ?`, the generic preset's rule for
    // emails), as a real store must be: each selected user is looked up by key.
    sqlx::raw_sql(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, hash TEXT NOT NULL); \
         CREATE INDEX users_email ON users (lower(email))",
    )
    .execute(&pool)
    .await
    .unwrap();
    let hash = bcrypt::hash("benchmark-password", 4).unwrap();
    let mut tx = pool.begin().await.unwrap();
    for i in 0..n {
        sqlx::query("INSERT INTO users (email, hash) VALUES (?, ?)")
            .bind(format!("user{i:07}@example.com"))
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    pool.close().await;
}

fn config(
    dir: &Path,
    kinde: &FakeKinde,
    rps: u32,
    burst: u32,
    max_concurrency: usize,
) -> std::path::PathBuf {
    let text = format!(
        r#"
[upstream]
url = "http://127.0.0.1:9"

[log]
level = "warn"

[legacy]
preset = "generic"
database_url = "sqlite://{store}"
columns = {{ login = "" }}

[ledger]
url = "sqlite://{ledger}"
counts_interval = "0s"

[migration]
phase = "migrate"
replica_id = "bench"

[provider]
kind = "kinde"

[provider.kinde]
base_url = "{base}"
client_id = "{client_id}"
client_secret = {{ env = "BENCH_KINDE_SECRET" }}

[provider.limits]
requests_per_second = {rps}
burst = {burst}
max_concurrency = {max_concurrency}
"#,
        store = dir.join("legacy.db").display(),
        ledger = dir.join("ledger.db").display(),
        base = kinde.base_url(),
        client_id = kinde.options().client_id,
    );
    let path = dir.join("dripgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `dripgate handoff` under `/usr/bin/time`; returns (seconds, peak RSS in KiB, stdout).
fn run(config: &Path, kinde: &FakeKinde, extra: &[&str]) -> (f64, u64, String) {
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak_rss_kib=%M"])
        .arg(BIN)
        .args(["handoff", "--config"])
        .arg(config)
        .args(extra)
        .env("BENCH_KINDE_SECRET", &kinde.options().client_secret)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {stderr}"));
    (seconds, rss, stdout)
}

/// Requests the fake served for users (token requests left out).
fn user_requests(kinde: &FakeKinde) -> u64 {
    ["getUsers", "createUser", "SetUserPassword", "updateUser"]
        .iter()
        .map(|op| kinde.calls(op))
        .sum()
}

async fn throughput(label: &str, users: usize, rps: u32, burst: u32, slots: usize, workers: usize) {
    let dir = tempfile::tempdir().unwrap();
    store(&dir.path().join("legacy.db"), users).await;
    let kinde = FakeKinde::start("127.0.0.1:0", FakeKindeOptions::default())
        .await
        .unwrap();
    let config = config(dir.path(), &kinde, rps, burst, slots);
    let workers = workers.to_string();
    let (seconds, rss, stdout) =
        tokio::task::block_in_place(|| run(&config, &kinde, &["--concurrency", &workers]));
    assert_eq!(kinde.users().len(), users, "{stdout}");
    let per_user = user_requests(&kinde) as f64 / users as f64;
    let rate = users as f64 / seconds;
    let bound = f64::from(rps) / per_user;
    println!(
        "{label}: {users} users in {seconds:.1} s = {rate:.1} users/s; {per_user:.2} provider requests per user; \
         limit {rps}/s (burst {burst}) bounds {bound:.1} users/s: ratio {:.2}; peak RSS {} MiB",
        rate / bound,
        rss / 1024
    );
}

async fn memory(users: usize) {
    let dir = tempfile::tempdir().unwrap();
    store(&dir.path().join("legacy.db"), users).await;
    let kinde = FakeKinde::start("127.0.0.1:0", FakeKindeOptions::default())
        .await
        .unwrap();
    let config = config(dir.path(), &kinde, 5, 10, 4);
    let (seconds, rss, stdout) =
        tokio::task::block_in_place(|| run(&config, &kinde, &["--dry-run"]));
    assert!(
        stdout.contains(&format!("read {users} legacy users: {users} selected")),
        "{stdout}"
    );
    assert_eq!(kinde.calls("createUser"), 0);
    println!(
        "dry run over {users} legacy users: {seconds:.1} s, peak RSS {:.1} MiB",
        rss as f64 / 1024.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `-- 200000 …`: only the dry-run memory figure, for these store sizes.
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if !sizes.is_empty() {
        for n in sizes {
            memory(n).await;
        }
        return;
    }
    // Default `[provider.limits]`: 5 requests/s, burst 10, 4 at once; default concurrency 4.
    throughput("default limit", 40, 5, 10, 4, 4).await;
    throughput("high limit", 3_000, 2_000, 2_000, 16, 16).await;
    memory(10_000).await;
    memory(100_000).await;
}
