//! Shared harness of the end-to-end migration tests: a legacy app with a login form and its own
//! user table, a legacy hash store (SQLite, bcrypt hashes) holding the same users, a provider
//! fake, a SQLite ledger and an audit file in a temp dir, log capture, and the invariants every
//! test ends with.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dripgate::config::{Config, FailureSignature, Secret, SigninRoute};
use dripgate::ledger::{Ledger, LedgerConfig, State, UserRecord};
use dripgate::legacy::{LegacyConfig, Preset};
use dripgate::migrate::phase::{OnExistingUser, RouteTarget};
use dripgate::provider::{ProviderConfig, ProviderKind};
use dripgate::signin::extract::BodyKind;
use dripgate::testkit::Fault;
use dripgate::testkit::authgear::{FakeAuthgear, FakeAuthgearOptions};
use dripgate::testkit::cognito::FakeCognito;
use dripgate::testkit::generic::FakeGenericHttp;
use dripgate::testkit::keycloak::FakeKeycloak;
use dripgate::testkit::kinde::FakeKinde;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use crate::common::legacy_app::LegacyApp;
use crate::common::{Dripgate, config_for, metric};
use crate::provider_common;

mod child;
mod fake;

pub use child::ChildDripgate;
pub use fake::Fake;

/// Every log line of this test binary (all tests), captured by a global subscriber.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per test binary), at trace level for dripgate.
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("dripgate=trace,debug"))
            .with_writer(move || LogWriter(writer.clone()))
            .with_ansi(false)
            .try_init();
        buf
    });
}

/// Everything logged so far.
pub fn logs() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned())
        .unwrap_or_default()
}

/// A password no other test uses, to search for in every output.
pub fn canary_password(test: &str) -> String {
    let n: u64 = rand::random();
    format!("Canary-{test}-{n:016x}!")
}

/// What a client saw from one sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Vec<String>,
    pub x_legacy: Option<String>,
    pub body: String,
}

/// A client that never follows redirects and never uses a proxy.
pub fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Posts the sign-in form to `base` + `/signin`.
pub async fn sign_in(base: &str, email: &str, password: &str) -> Seen {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .append_pair("password", password)
        .finish();
    let resp = raw_client()
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let location = header("location");
    let x_legacy = header("x-legacy");
    let set_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    Seen {
        status,
        location,
        set_cookie,
        x_legacy,
        body,
    }
}

/// The `[migration.route]` redirect target of the end-to-end tests.
pub const TEMPLATE: &str = "https://auth.example.test/login?login_hint={login_hint}";

/// A redirect to [`TEMPLATE`].
pub fn redirect() -> Option<RouteTarget> {
    Some(RouteTarget::Redirect {
        url_template: TEMPLATE.into(),
    })
}

/// Signs in at `base` (a dripgate) and checks the client saw exactly what legacy answers
/// directly.
pub async fn sign_in_unchanged(world: &World, base: &str, email: &str, password: &str) -> Seen {
    let direct = sign_in(&world.legacy_url(), email, password).await;
    let via = sign_in(base, email, password).await;
    assert_eq!(
        via, direct,
        "legacy's answer changed on its way through dripgate"
    );
    via
}

/// The `on_existing_user` policies and the outcome each counts for a user found at the provider.
pub const EXISTING_USER_POLICIES: [(OnExistingUser, &str); 2] = [
    (OnExistingUser::Skip, "conflict"),
    (OnExistingUser::Adopt, "adopted"),
];

/// A legacy user whose email was already taken at the provider, signed in once.
pub struct ExistingUserSignIn<T> {
    pub world: World,
    pub dg: Dripgate,
    pub password: String,
    /// What `insert` returned (e.g. the provider's id of the user it made).
    pub inserted: T,
    /// The user's ledger row after the sign-in.
    pub row: UserRecord,
}

/// Adds the legacy user `email` (a canary password), lets `insert` make a user with that email at
/// `fake`, starts dripgate with `on_existing_user = mode`, signs in once (unchanged for the
/// client) and waits until `expected` is counted.
pub async fn sign_in_over_existing_user<T>(
    fake: &Fake,
    email: &str,
    (mode, expected): (OnExistingUser, &str),
    insert: impl FnOnce(&Fake) -> T,
) -> ExistingUserSignIn<T> {
    let world = World::new().await;
    let password = canary_password(expected);
    world.add_user(email, &password).await;
    let inserted = insert(fake);
    let mut config = world.config(Some(fake), legacy_signature());
    config.migration.on_existing_user = mode;
    let dg = Dripgate::start(config).await;
    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, expected, 1).await;
    let ledger = world.ledger().await;
    let row = ledger.get(email).await.unwrap().unwrap();
    ledger.close().await;
    ExistingUserSignIn {
        world,
        dg,
        password,
        inserted,
        row,
    }
}

/// One test's legacy app, legacy store, ledger and audit file.
pub struct World {
    pub dir: tempfile::TempDir,
    pub app: LegacyApp,
    pub store: SqlitePool,
    pub store_path: PathBuf,
    pub ledger_path: PathBuf,
    pub audit_path: PathBuf,
}

impl World {
    pub async fn new() -> Self {
        capture_logs();
        let dir = tempfile::tempdir().unwrap();
        let store_path = dir.path().join("legacy.db");
        let store = SqlitePool::connect_with(
            SqliteConnectOptions::new()
                .filename(&store_path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT NOT NULL, \
             email TEXT NOT NULL, hash TEXT NOT NULL)",
        )
        .execute(&store)
        .await
        .unwrap();
        Self {
            ledger_path: dir.path().join("ledger.db"),
            audit_path: dir.path().join("audit.jsonl"),
            store_path,
            store,
            app: LegacyApp::start().await,
            dir,
        }
    }

    /// `http://` address of the legacy app.
    pub fn legacy_url(&self) -> String {
        format!("http://{}", self.app.addr)
    }

    /// Adds a user to the legacy app's table and to the hash store (bcrypt, cost 4); the user's
    /// login name is the email's local part, accepted by both.
    pub async fn add_user(&self, email: &str, password: &str) {
        self.app.set_user(email, password);
        let hash = bcrypt::hash(password, 4).unwrap();
        let login = email.split('@').next().unwrap().to_owned();
        self.app.set_login(&login, email);
        sqlx::query("INSERT INTO users (login, email, hash) VALUES (?, ?, ?)")
            .bind(login)
            .bind(email)
            .bind(hash)
            .execute(&self.store)
            .await
            .unwrap();
    }

    /// The user changes their password at the legacy app (table and hash store).
    pub async fn change_password(&self, email: &str, password: &str) {
        self.app.set_user(email, password);
        let hash = bcrypt::hash(password, 4).unwrap();
        sqlx::query("UPDATE users SET hash = ? WHERE email = ?")
            .bind(hash)
            .bind(email)
            .execute(&self.store)
            .await
            .unwrap();
    }

    /// The `[legacy]` section for the store.
    pub fn legacy_config(&self) -> LegacyConfig {
        LegacyConfig::sql(
            Preset::Generic,
            format!("sqlite://{}", self.store_path.display()),
        )
    }

    /// A SQLite ledger in the temp dir.
    pub fn ledger_config(&self) -> LedgerConfig {
        LedgerConfig {
            url: Secret::inline(format!("sqlite://{}", self.ledger_path.display())),
            counts_interval: Duration::ZERO,
            ..LedgerConfig::default()
        }
    }

    /// A dripgate config: legacy app upstream, `POST /signin` (form) as the sign-in route with
    /// the given failure signature, the store, the ledger, the audit file, the provider.
    pub fn config(&self, fake: Option<&Fake>, failure: FailureSignature) -> Config {
        let mut config = config_for(self.app.addr);
        config.signin.routes = vec![SigninRoute {
            method: "POST".into(),
            path: "/signin".into(),
            body: BodyKind::Form,
            identifier_field: "email".into(),
            password_field: "password".into(),
            legacy_failure: failure,
            legacy_user: None,
            case_insensitive_path: false,
        }];
        config.legacy = Some(self.legacy_config());
        config.ledger = self.ledger_config();
        config.audit.file = Some(self.audit_path.clone());
        config.provider = fake.map(Fake::provider_config);
        config.migration.replica_id = Some("test-replica".into());
        config
    }

    /// A second handle on the test's ledger.
    pub async fn ledger(&self) -> Ledger {
        open_ledger(&self.ledger_config()).await
    }

    /// The audit file's text (empty if absent).
    pub fn audit(&self) -> String {
        std::fs::read_to_string(&self.audit_path).unwrap_or_default()
    }

    /// The audit events of this kind, checked to be exactly `n`. The audit writer is a thread of
    /// its own, so an event can land just after the response or the metric that announced it:
    /// this waits (bounded: 200 × 50 ms) for `n` to be there before counting.
    pub async fn expect_audit_events(&self, kind: &str, n: usize) -> Vec<serde_json::Value> {
        let mut events = self.audit_events(kind);
        for _ in 0..200 {
            if events.len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            events = self.audit_events(kind);
        }
        assert_eq!(events.len(), n, "{kind}: {events:?}");
        events
    }

    /// Audit events of this kind.
    pub fn audit_events(&self, kind: &str) -> Vec<serde_json::Value> {
        self.audit()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == kind)
            .collect()
    }

    /// Checks that `secret` appears in no log line, audit event, ledger file, metric or status
    /// page (of every running instance in `dripgates`), and in `extra` outputs.
    pub async fn assert_secret_nowhere(
        &self,
        dripgates: &[&Dripgate],
        secret: &str,
        extra: &[&str],
    ) {
        assert!(!logs().contains(secret), "password in the logs");
        assert!(!self.audit().contains(secret), "password in the audit file");
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let path = PathBuf::from(format!("{}{suffix}", self.ledger_path.display()));
            assert_not_in_file(&path, secret);
        }
        for dg in dripgates {
            let (_, metrics) = crate::common::get_text(&dg.admin_url("/metrics")).await;
            assert!(!metrics.contains(secret), "password in /metrics");
            let (_, status) = crate::common::get_text(&dg.admin_url("/status")).await;
            assert!(!status.contains(secret), "password in /status");
        }
        for (i, text) in extra.iter().enumerate() {
            assert!(!text.contains(secret), "password in extra output #{i}");
        }
    }

    /// The invariants: at most one provider user per legacy user, and every `migrated` row's
    /// user signs in at the provider with their current legacy password.
    pub async fn assert_invariants(&self, fake: &Fake, users: &[(&str, &str)]) {
        let ledger = self.ledger().await;
        assert_ledger_invariants(&ledger, fake, users).await;
        ledger.close().await;
    }

    /// How a one-user test ends: the ledger agrees with the provider for the user, and the
    /// password is nowhere dripgate writes or serves.
    pub async fn assert_clean(&self, fake: &Fake, dg: &Dripgate, email: &str, password: &str) {
        self.assert_invariants(fake, &[(email, password)]).await;
        self.assert_secret_nowhere(&[dg], password, &[]).await;
    }
}

impl World {
    /// Writes a `dripgate serve` config for a child process: the world's legacy app, store,
    /// ledger and audit file, the provider fake (its secret from `TEST_PROVIDER_SECRET`, which
    /// [`ChildDripgate::spawn`] sets), JSON logs at trace level, phase `migrate`. `overrides` is
    /// TOML merged over that, table by table.
    pub fn write_child_config(&self, fake: &Fake, overrides: &str) -> PathBuf {
        let base = format!(
            r#"
[upstream]
url = "http://{legacy}"

[log]
format = "json"
level = "dripgate=trace,info"

[[signin.routes]]
method = "POST"
path = "/signin"
body = "form"
identifier_field = "email"
password_field = "password"
legacy_failure = {{ status = [200], success_cookie = "session" }}

[legacy]
preset = "generic"
database_url = "sqlite://{store}"

[ledger]
url = "sqlite://{ledger}"
counts_interval = "0s"

[audit]
file = "{audit}"

[migration]
phase = "migrate"
replica_id = "child"

{provider}
[provider.limits]
requests_per_second = 1000
burst = 1000
"#,
            legacy = self.app.addr,
            store = self.store_path.display(),
            ledger = self.ledger_path.display(),
            audit = self.audit_path.display(),
            provider = fake.child_provider_toml(),
        );
        let mut config: toml::Table = base.parse().unwrap();
        merge_toml(&mut config, overrides.parse().unwrap());
        let path = self.dir.path().join("dripgate.toml");
        std::fs::write(&path, config.to_string()).unwrap();
        path
    }
}

/// Merges `overrides` into `base`: tables key by key, anything else replaced.
fn merge_toml(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(into)), toml::Value::Table(from)) => merge_toml(into, from),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Opens a ledger handle with its own registry.
pub async fn open_ledger(config: &LedgerConfig) -> Ledger {
    Ledger::open(config, &prometheus::Registry::new())
        .await
        .unwrap()
}

/// The invariants on any ledger handle.
pub async fn assert_ledger_invariants(ledger: &Ledger, fake: &Fake, users: &[(&str, &str)]) {
    for (email, password) in users {
        assert!(
            fake.users_with_email(email) <= 1,
            "{email}: more than one provider user"
        );
        let record = ledger.get(&email.to_lowercase()).await.unwrap();
        if let Some(r) = &record {
            assert!(
                !format!("{r:?}").contains(password),
                "{email}: password in the ledger row"
            );
            if r.state == State::Migrated {
                assert!(
                    fake.verify(email, password),
                    "{email}: migrated, but the provider does not accept the password"
                );
                assert!(r.provider_user_id.is_some());
            }
        }
    }
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
}

fn assert_not_in_file(path: &Path, secret: &str) {
    if let Ok(bytes) = std::fs::read(path) {
        let needle = secret.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "password in {}",
            path.display()
        );
    }
}

/// The failure signature of the test legacy app: a 200 (the form re-shown), or no session cookie.
pub fn legacy_signature() -> FailureSignature {
    FailureSignature {
        status: vec![200],
        location_contains: None,
        success_cookie: Some("session".into()),
    }
}

/// `dripgate_signins_total{outcome}` on a running dripgate.
pub async fn outcome(dg: &Dripgate, outcome: &str) -> u64 {
    let (_, page) = crate::common::get_text(&dg.admin_url("/metrics")).await;
    outcome_in(&page, outcome)
}

/// `dripgate_signins_total{outcome}` in a metrics page.
pub fn outcome_in(page: &str, outcome: &str) -> u64 {
    metric(
        page,
        &format!("dripgate_signins_total{{outcome=\"{outcome}\"}}"),
    )
    .unwrap_or(0.0) as u64
}

/// Waits (bounded: 400 × 50 ms) until `outcome` was counted at least `n` times.
pub async fn wait_outcome(dg: &Dripgate, name: &str, n: u64) {
    for _ in 0..400 {
        if outcome(dg, name).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, page) = crate::common::get_text(&dg.admin_url("/metrics")).await;
    let counted: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("dripgate_signins_total"))
        .collect();
    panic!("outcome {name} not counted {n} times: {counted:#?}");
}

/// Sum of every sign-in outcome counted (i.e. migration jobs and routing decisions done).
pub async fn total_outcomes(dg: &Dripgate) -> u64 {
    let (_, page) = crate::common::get_text(&dg.admin_url("/metrics")).await;
    dripgate::migrate::Outcome::LABELS
        .iter()
        .map(|l| outcome_in(&page, l))
        .sum()
}

/// Waits (bounded) until at least `n` outcomes were counted in total.
pub async fn wait_total(dg: &Dripgate, n: u64) {
    for _ in 0..400 {
        if total_outcomes(dg).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} outcomes counted");
}
