//! The benchmark's servers: a legacy app, a SQLite legacy store, the Kinde fake and dripgate,
//! each on a runtime of its own.

use super::*;

// ---------------------------------------------------------------------------------------------
// The legacy app
// ---------------------------------------------------------------------------------------------

pub(super) fn reply(
    status: u16,
    headers: &[(&str, &str)],
    body: &'static str,
) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

pub(super) async fn legacy_handle(
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
pub(super) async fn start_legacy(signin_delay: Duration) -> SocketAddr {
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
pub(super) struct Tuning {
    pub(super) provider_rps: u32,
    pub(super) queue_size: usize,
    pub(super) workers: usize,
}

/// One scenario's servers; dropped at the end of it.
pub(super) struct World {
    pub(super) _dir: tempfile::TempDir,
    pub(super) world_rt: Runtime,
    pub(super) dripgate_rt: Runtime,
    pub(super) legacy_url: String,
    pub(super) proxy_url: String,
    pub(super) admin_url: String,
    pub(super) fake: FakeKinde,
    pub(super) stop: Option<oneshot::Sender<()>>,
    pub(super) next_user: AtomicUsize,
}

impl World {
    pub(super) fn start(store: &Path, tuning: &Tuning) -> World {
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
    pub(super) fn fresh_user(&self) -> String {
        let n = self.next_user.fetch_add(1, Ordering::Relaxed);
        assert!(n < USERS, "the store has only {USERS} users");
        user_email(n)
    }

    /// Slows every Kinde operation of the fake by `latency` (for the next 10 000 calls of each).
    pub(super) fn provider_latency(&self, latency: Duration) {
        if latency.is_zero() {
            return;
        }
        for op in KINDE_OPERATIONS {
            self.fake.fail_next(op, 10_000, Fault::Delay(latency));
        }
    }

    /// Provider calls made so far (all operations, the token included).
    pub(super) fn provider_calls(&self) -> u64 {
        KINDE_OPERATIONS.iter().map(|op| self.fake.calls(op)).sum()
    }

    pub(super) fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.dripgate_rt.shutdown_timeout(Duration::from_secs(10));
        self.world_rt.shutdown_timeout(Duration::from_secs(5));
    }
}

pub(super) fn user_email(n: usize) -> String {
    format!("user{n:05}@bench.example")
}

pub(super) fn config_toml(
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
pub(super) fn build_store(path: &Path) -> String {
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
