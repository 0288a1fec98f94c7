//! Migration benchmarks: what migrating users costs the traffic that passes through dripgate.
//!
//! Run: `cargo bench --bench migration` (all three), or `-- a`, `-- b`, `-- c` for one.
//!
//! Everything runs on loopback in this process, each part on its own tokio runtime so that they
//! compete for the CPU like separate processes would: a legacy app (its sign-in answers after
//! `LEGACY_SIGNIN_MS`, default 50 ms, standing in for the legacy host's own password check; its
//! `GET /` answers at once), the Kinde fake, dripgate in `migrate` phase with a SQLite legacy store
//! of bcrypt cost 10 hashes and a SQLite ledger, and an open-loop load generator (requests leave
//! on a fixed schedule, each in its own task, whatever the answers before them took).
//!
//! (a) sign-in latency through dripgate (every sign-in a first one, so it migrates beside the
//!     response) vs straight to the legacy app, interleaved blocks, p50 and p99 ratios;
//! (b) head-of-line: `GET /` p99 through dripgate while bcrypt-10 sign-ins saturate the hash pool,
//!     vs the same GET stream with no sign-ins, interleaved blocks;
//! (c) migrations per second against the fake at 0 and 50 ms provider latency, with the default
//!     provider rate (5 requests/s) and a high one, against the bounds set by the hash work and
//!     by the provider rate.
//!
//! Knobs (environment): `BENCH_REPS` (3), `BENCH_BLOCK_SECS` (5), `A_RATE` (8 sign-ins/s),
//! `B_GET_RATE` (200/s), `B_SIGNIN_RATE` (40/s), `C_USERS` (120 at a high rate, 20 at 5/s),
//! `C_WORKERS` (8), and dripgate's `[hash]` settings `HASH_POOL_SIZE` (default: cores - 1) and
//! `HASH_BACKGROUND` (true) to compare with hashing on every core at normal priority.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dripgate::server::BoundServer;
use dripgate::testkit::Fault;
use dripgate::testkit::kinde::{FakeKinde, FakeKindeOptions};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

mod world;

use world::*;

/// Every legacy user's password (one bcrypt-10 hash shared by all rows: same cost per verify,
/// and the store is built in a second instead of minutes).
const PASSWORD: &str = "Bench-Password-42";
/// Legacy users in the store.
const USERS: usize = 20_000;
/// Kinde operations the fake can be slowed on.
const KINDE_OPERATIONS: [&str; 6] = [
    "token",
    "getUsers",
    "getUserData",
    "createUser",
    "updateUser",
    "SetUserPassword",
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runtime(name: &str, workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Load generation and figures
// ---------------------------------------------------------------------------------------------

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(512)
        .build()
        .unwrap()
}

/// One sign-in; `true` when the app answered 302 (accepted).
async fn sign_in(client: reqwest::Client, base: String, email: String) -> bool {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("email", &email)
        .append_pair("password", PASSWORD)
        .finish();
    match client
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            resp.bytes().await.is_ok() && status == 302
        }
        Err(_) => false,
    }
}

/// One `GET /`; `true` on a 200.
async fn get_root(client: reqwest::Client, base: String) -> bool {
    match client.get(format!("{base}/")).send().await {
        Ok(resp) => {
            let ok = resp.status() == 200;
            resp.bytes().await.is_ok() && ok
        }
        Err(_) => false,
    }
}

/// Latencies of one open-loop run.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    failures: usize,
}

impl Samples {
    fn extend(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
    }

    /// The `q` quantile (nearest rank), in milliseconds.
    fn quantile_ms(&self, q: f64) -> f64 {
        let mut v = self.latencies.clone();
        v.sort();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1].as_secs_f64() * 1e3
    }

    fn summary(&self) -> String {
        format!(
            "n={:<5} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms  failed={}",
            self.latencies.len(),
            self.quantile_ms(0.50),
            self.quantile_ms(0.99),
            self.quantile_ms(1.0),
            self.failures
        )
    }
}

/// Sends `rate` requests per second for `duration` on a fixed schedule, each in its own task, so
/// a stalled server shows up as latency, not as fewer requests (no coordinated omission).
async fn open_loop<F, Fut>(rate: f64, duration: Duration, make: F) -> Samples
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let count = (rate * duration.as_secs_f64()).round().max(1.0) as u32;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let due = start + gap * i;
        tokio::time::sleep_until(due).await;
        let request = make();
        tasks.spawn(async move {
            // Timed from the send, not from `due`: tokio's timer wheel wakes up to 1 ms late,
            // which would add the same constant to both sides of every ratio.
            let sent = Instant::now();
            let ok = request.await;
            (sent.elapsed(), ok)
        });
    }
    let mut samples = Samples::default();
    while let Some(done) = tasks.join_next().await {
        let (latency, ok) = done.unwrap();
        samples.latencies.push(latency);
        if !ok {
            samples.failures += 1;
        }
    }
    samples
}

async fn metrics_page(admin: &str) -> String {
    client()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Sum of the samples of `name` whose label set contains `label` (all of them when empty).
fn metric_sum(page: &str, name: &str, label: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| label.is_empty() || l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn outcomes(page: &str) -> String {
    let mut parts: Vec<String> = dripgate::migrate::Outcome::LABELS
        .iter()
        .filter_map(|o| {
            let n = metric_sum(page, "dripgate_signins_total", &format!("outcome=\"{o}\""));
            (n > 0.0).then(|| format!("{o}={n}"))
        })
        .collect();
    let shed_hash = metric_sum(page, "dripgate_hash_verifications_shed_total", "");
    if shed_hash > 0.0 {
        parts.push(format!("hash_pool_shed={shed_hash}"));
    }
    parts.join(" ")
}

/// Waits (bounded) until every submitted sign-in has an outcome.
async fn settle(admin: &str, expected: f64, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let page = metrics_page(admin).await;
        let done = metric_sum(&page, "dripgate_signins_total", "");
        if done >= expected || Instant::now() > deadline {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios
// ---------------------------------------------------------------------------------------------

/// (a) Sign-in latency through dripgate in `migrate` phase vs straight to the legacy app.
fn scenario_a(store: &Path, reps: u32, block: Duration) {
    let rate: f64 = env_or("A_RATE", 8.0);
    println!("\n(a) sign-in latency, {rate}/s open loop, {reps} x {block:?} blocks each side");
    let world = World::start(
        store,
        &Tuning {
            provider_rps: 1000,
            queue_size: 1024,
            workers: 8,
        },
    );
    let world = Arc::new(world);
    let load = runtime("bench-load", 1);
    let (direct, via) = load.block_on(async {
        let http = client();
        let mut direct = Samples::default();
        let mut via = Samples::default();
        for _ in 0..reps {
            for through_dripgate in [false, true] {
                let base = if through_dripgate {
                    world.proxy_url.clone()
                } else {
                    world.legacy_url.clone()
                };
                let w = world.clone();
                let http = http.clone();
                let samples = open_loop(rate, block, move || {
                    sign_in(http.clone(), base.clone(), w.fresh_user())
                })
                .await;
                if through_dripgate {
                    via.extend(samples);
                } else {
                    direct.extend(samples);
                }
            }
        }
        (direct, via)
    });
    let page = load.block_on(settle(
        &world.admin_url,
        via.latencies.len() as f64,
        Duration::from_secs(120),
    ));
    println!("  direct   {}", direct.summary());
    println!("  dripgate {}", via.summary());
    println!(
        "  ratio    p50 {:.3}  p99 {:.3}   (target <= 1.1)",
        via.quantile_ms(0.5) / direct.quantile_ms(0.5),
        via.quantile_ms(0.99) / direct.quantile_ms(0.99)
    );
    println!("  outcomes {}", outcomes(&page));
    drop(load);
    Arc::into_inner(world).unwrap().stop();
}

/// (b) `GET /` p99 while sign-ins saturate the hash pool vs with no sign-ins.
fn scenario_b(store: &Path, reps: u32, block: Duration) {
    let get_rate: f64 = env_or("B_GET_RATE", 200.0);
    let signin_rate: f64 = env_or("B_SIGNIN_RATE", 40.0);
    println!(
        "\n(b) head-of-line: GET / at {get_rate}/s, idle vs with {signin_rate} bcrypt-10 sign-ins/s, \
         {reps} x {block:?} blocks each"
    );
    let world = Arc::new(World::start(
        store,
        &Tuning {
            provider_rps: 1000,
            queue_size: 1024,
            workers: 8,
        },
    ));
    let load = runtime("bench-load", 1);
    let (idle, loaded, signins) = load.block_on(async {
        let http = client();
        let mut idle = Samples::default();
        let mut loaded = Samples::default();
        let mut signins = Samples::default();
        for _ in 0..reps {
            for with_signins in [false, true] {
                let (h, base) = (http.clone(), world.proxy_url.clone());
                let gets = open_loop(get_rate, block, move || get_root(h.clone(), base.clone()));
                if with_signins {
                    let (h, base, w) = (http.clone(), world.proxy_url.clone(), world.clone());
                    let (gets, s) = tokio::join!(
                        gets,
                        open_loop(signin_rate, block, move || {
                            sign_in(h.clone(), base.clone(), w.fresh_user())
                        })
                    );
                    loaded.extend(gets);
                    signins.extend(s);
                    // Let the hash pool drain so the next idle block is idle.
                    settle(
                        &world.admin_url,
                        signins.latencies.len() as f64,
                        Duration::from_secs(120),
                    )
                    .await;
                } else {
                    idle.extend(gets.await);
                }
            }
        }
        (idle, loaded, signins)
    });
    let page = load.block_on(metrics_page(&world.admin_url));
    println!("  GET idle        {}", idle.summary());
    println!("  GET under load  {}", loaded.summary());
    println!("  sign-ins        {}", signins.summary());
    println!(
        "  ratio    GET p99 loaded/idle {:.3}   (target <= 2)   p50 {:.3}",
        loaded.quantile_ms(0.99) / idle.quantile_ms(0.99),
        loaded.quantile_ms(0.5) / idle.quantile_ms(0.5)
    );
    println!("  outcomes {}", outcomes(&page));
    drop(load);
    Arc::into_inner(world).unwrap().stop();
}

/// Median seconds of one bcrypt cost 10 verification on one thread.
fn bcrypt10_seconds(hash: &str) -> f64 {
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            assert!(bcrypt::verify(PASSWORD, hash).unwrap());
            t.elapsed().as_secs_f64()
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[2]
}

/// (c) Migrations per second against the fake.
fn scenario_c(store: &Path, bcrypt10: f64) {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // dripgate's hash pool: `HASH_POOL_SIZE`, by default cores - 1.
    let threads: usize = env_or("HASH_POOL_SIZE", cores.saturating_sub(1).max(1));
    // Each migration verifies the legacy hash and bcrypt-hashes the password for Kinde, both on
    // the pool.
    let hash_bound = threads as f64 / (2.0 * bcrypt10);
    println!(
        "\n(c) migrations/s; bcrypt-10 = {:.1} ms on one core, hash pool of {threads} thread(s): \
         hash bound {hash_bound:.1}/s",
        bcrypt10 * 1e3
    );
    for rps in [5_u32, 1000] {
        for latency_ms in [0_u64, 50] {
            let users: usize = env_or("C_USERS", if rps < 50 { 20 } else { 120 });
            let world = Arc::new(World::start(
                store,
                &Tuning {
                    provider_rps: rps,
                    queue_size: 4096,
                    workers: env_or("C_WORKERS", 8),
                },
            ));
            world.provider_latency(Duration::from_millis(latency_ms));
            let load = runtime("bench-load", 1);
            let (elapsed, page) = load.block_on(async {
                let http = client();
                let start = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..users {
                    let (h, base, email) =
                        (http.clone(), world.proxy_url.clone(), world.fresh_user());
                    tasks.spawn(sign_in(h, base, email));
                }
                while let Some(ok) = tasks.join_next().await {
                    assert!(ok.unwrap(), "a sign-in failed");
                }
                let page = settle(&world.admin_url, users as f64, Duration::from_secs(300)).await;
                (start.elapsed(), page)
            });
            let migrated = metric_sum(&page, "dripgate_signins_total", "outcome=\"migrated\"");
            let calls = world.provider_calls() as f64;
            let calls_per_migration = calls / migrated.max(1.0);
            // The limiter starts with a full bucket of `burst` (= rps) calls.
            let rate_seconds = (calls - f64::from(rps)).max(0.0) / f64::from(rps);
            let rate_bound = if rate_seconds > 0.0 {
                migrated / rate_seconds
            } else {
                f64::INFINITY
            };
            let measured = migrated / elapsed.as_secs_f64();
            let bound = hash_bound.min(rate_bound);
            println!(
                "  provider {rps:>4} req/s, latency {latency_ms:>2} ms: {migrated}/{users} migrated in \
                 {:.2} s = {measured:.2}/s; {calls_per_migration:.2} calls each -> rate bound \
                 {}; {:.0}% of min(hash, rate) bound",
                elapsed.as_secs_f64(),
                if rate_bound.is_finite() {
                    format!("{rate_bound:.1}/s")
                } else {
                    "none (all within the burst)".to_owned()
                },
                100.0 * measured / bound
            );
            let rest = outcomes(&page);
            if !rest.is_empty() {
                println!("      outcomes {rest}");
            }
            drop(load);
            Arc::into_inner(world).unwrap().stop();
        }
    }
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |s: &str| which.is_empty() || which.iter().any(|w| w == s);
    let reps: u32 = env_or("BENCH_REPS", 3);
    let block = Duration::from_secs(env_or("BENCH_BLOCK_SECS", 5));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("legacy.db");
    let hash = build_store(&store);
    let bcrypt10 = bcrypt10_seconds(&hash);
    println!(
        "migration benchmarks: {USERS} legacy users (bcrypt cost 10), legacy sign-in {} ms",
        env_or("LEGACY_SIGNIN_MS", 50)
    );
    if wants("a") {
        scenario_a(&store, reps, block);
    }
    if wants("b") {
        scenario_b(&store, reps, block);
    }
    if wants("c") {
        scenario_c(&store, bcrypt10);
    }
}
