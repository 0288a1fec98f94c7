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
// The legacy app
// ---------------------------------------------------------------------------------------------

fn reply(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn legacy_handle(
    req: Request<Incoming>,
    signin_delay: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() == Method::POST && req.uri().path() == "/signin" {
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Ok(reply(400, &[], "bad body\n")),
        };
        let ok = form_urlencoded::parse(&body).any(|(k, v)| k == "password" && v == PASSWORD);
        tokio::time::sleep(signin_delay).await;
        return Ok(if ok {
            reply(
                302,
                &[("location", "/home"), ("set-cookie", "session=s; HttpOnly")],
                "",
            )
        } else {
            reply(200, &[], "<form>wrong email or password</form>\n")
        });
    }
    Ok(reply(200, &[], "hello from legacy\n"))
}

/// Serves the legacy app on 127.0.0.1:0 (on the current runtime) and returns its address.
async fn start_legacy(signin_delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req| legacy_handle(req, signin_delay));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// The world: legacy app, store, provider fake, dripgate
// ---------------------------------------------------------------------------------------------

/// dripgate settings that differ between the scenarios.
struct Tuning {
    provider_rps: u32,
    queue_size: usize,
    workers: usize,
}

/// One scenario's servers; dropped at the end of it.
struct World {
    _dir: tempfile::TempDir,
    world_rt: Runtime,
    dripgate_rt: Runtime,
    legacy_url: String,
    proxy_url: String,
    admin_url: String,
    fake: FakeKinde,
    stop: Option<oneshot::Sender<()>>,
    next_user: AtomicUsize,
}

impl World {
    fn start(store: &Path, tuning: &Tuning) -> World {
        let dir = tempfile::tempdir().unwrap();
        let world_rt = runtime("bench-world", 2);
        let delay = Duration::from_millis(env_or("LEGACY_SIGNIN_MS", 50));
        let legacy = world_rt.block_on(start_legacy(delay));
        let fake = world_rt
            .block_on(FakeKinde::start("127.0.0.1:0", FakeKindeOptions::default()))
            .unwrap();
        let text = config_toml(legacy, store, &dir.path().join("ledger.db"), &fake, tuning);
        let config = dripgate::config::parse_str(&text, "bench config", std::iter::empty())
            .unwrap_or_else(|e| panic!("bench config: {e}"));
        // Two async workers, as on a 2-core host; the hash pool is sized by core count.
        let dripgate_rt = runtime("dripgate", 2);
        let bound = dripgate_rt.block_on(BoundServer::bind(config)).unwrap();
        let proxy_url = format!("http://{}", bound.proxy_addr());
        let admin_url = format!("http://{}", bound.admin_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        dripgate_rt.spawn(bound.serve(async {
            let _ = stopped.await;
        }));
        World {
            _dir: dir,
            world_rt,
            dripgate_rt,
            legacy_url: format!("http://{legacy}"),
            proxy_url,
            admin_url,
            fake,
            stop: Some(stop),
            next_user: AtomicUsize::new(0),
        }
    }

    /// A legacy user who has not signed in yet.
    fn fresh_user(&self) -> String {
        let n = self.next_user.fetch_add(1, Ordering::Relaxed);
        assert!(n < USERS, "the store has only {USERS} users");
        user_email(n)
    }

    /// Slows every Kinde operation of the fake by `latency` (for the next 10 000 calls of each).
    fn provider_latency(&self, latency: Duration) {
        if latency.is_zero() {
            return;
        }
        for op in KINDE_OPERATIONS {
            self.fake.fail_next(op, 10_000, Fault::Delay(latency));
        }
    }

    /// Provider calls made so far (all operations, the token included).
    fn provider_calls(&self) -> u64 {
        KINDE_OPERATIONS.iter().map(|op| self.fake.calls(op)).sum()
    }

    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.dripgate_rt.shutdown_timeout(Duration::from_secs(10));
        self.world_rt.shutdown_timeout(Duration::from_secs(5));
    }
}

fn user_email(n: usize) -> String {
    format!("user{n:05}@bench.example")
}

fn config_toml(
    legacy: SocketAddr,
    store: &Path,
    ledger: &Path,
    fake: &FakeKinde,
    tuning: &Tuning,
) -> String {
    let kinde = fake.options();
    let sqlite = |p: &Path| toml::Value::String(format!("sqlite://{}", p.display())).to_string();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
worker_threads = 2

[admin]
listen = "127.0.0.1:0"

[upstream]
url = "http://{legacy}"

[shutdown]
delay = "0s"
drain_timeout = "5s"

[log]
level = "error"

[[signin.routes]]
method = "POST"
path = "/signin"
body = "form"
identifier_field = "email"
password_field = "password"
legacy_failure = {{ status = [200] }}

[legacy]
preset = "generic"
database_url = {store}
table = "users"
format = "auto"
columns = {{ id = "id", login = "", email = "email", hash = "hash" }}

[hash]
{hash_pool}background_priority = {background}

[provider]
kind = "kinde"

[provider.kinde]
base_url = "{provider_url}"
client_id = "{client_id}"
client_secret = "{client_secret}"
bcrypt_cost = 10

[provider.limits]
requests_per_second = {rps}
burst = {rps}

[ledger]
url = {ledger}

[audit]
file = {audit}

[migration]
phase = "migrate"
queue_size = {queue}
workers = {workers}
"#,
        store = sqlite(store),
        ledger = sqlite(ledger),
        audit = toml::Value::String(ledger.with_extension("audit.jsonl").display().to_string()),
        provider_url = fake.base_url(),
        client_id = kinde.client_id,
        client_secret = kinde.client_secret,
        rps = tuning.provider_rps,
        queue = tuning.queue_size,
        workers = tuning.workers,
        hash_pool = std::env::var("HASH_POOL_SIZE")
            .map(|n| format!("pool_size = {n}\n"))
            .unwrap_or_default(),
        background = env_or("HASH_BACKGROUND", true),
    )
}

/// Writes the legacy store: `USERS` rows sharing one bcrypt cost 10 hash of [`PASSWORD`].
fn build_store(path: &Path) -> String {
    let hash = bcrypt::hash(PASSWORD, 10).unwrap();
    let rt = runtime("bench-store", 1);
    rt.block_on(async {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
        let pool = SqlitePool::connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, hash TEXT NOT NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let mut tx = pool.begin().await.unwrap();
        for n in 0..USERS {
            sqlx::query("INSERT INTO users (email, hash) VALUES (?, ?)")
                .bind(user_email(n))
                .bind(&hash)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        pool.close().await;
    });
    hash
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
