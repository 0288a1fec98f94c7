//! The soak's world: the legacy app and hash store, the Kinde fake, the PostgreSQL ledger
//! behind the relay, the two replicas, the users and what every client saw.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dripgate::config::Secret;
use dripgate::ledger::Ledger;
use dripgate::testkit::kinde::FakeKinde;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool};

use super::legacy::Legacy;
use super::relay::Relay;
use super::replica::{Replica, Shared};
use crate::ledger_common::TestDb;
use crate::migration_common::Seen;

/// Every password the soak makes carries this marker, so one substring search over what
/// dripgate wrote finds any of them.
pub const MARKER: &str = "pw7Q";

/// A legacy user and every password it had.
pub struct User {
    pub email: String,
    pub legacy_id: String,
    /// Its passwords at legacy, oldest first; the last is the current one.
    pub passwords: Vec<String>,
    /// The legacy hash of each password.
    pub hashes: Vec<String>,
    /// The account's own password, when it was made at the provider before the migration.
    pub seeded: Option<String>,
}

/// One sign-in a client sent and what it got.
pub struct Sent {
    pub id: String,
    pub round: u64,
    pub email: String,
    /// The response, or `None` when the connection failed (a replica killed under it).
    pub seen: Option<Seen>,
}

pub struct World {
    _dir: tempfile::TempDir,
    pub legacy: Legacy,
    pub store: SqlitePool,
    pub kinde: FakeKinde,
    pub db: TestDb,
    /// The ledger's database, read directly for the checks.
    pub pg: sqlx::PgPool,
    pub ledger: Ledger,
    /// One relay per replica in front of PostgreSQL: cut together (the ledger down) or one
    /// (the ledger split between the replicas).
    pub relays: Vec<Arc<Relay>>,
    pub shared: Shared,
    pub replicas: Vec<Arc<Mutex<Replica>>>,
    pub users: Vec<User>,
    pub phase: &'static str,
    pub client: reqwest::Client,
    next_request: u64,
    next_password: u64,
    pub seed: u64,
    pub sent: Vec<Sent>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Sign-ins by what the client got.
    pub answers: BTreeMap<&'static str, u64>,
}

pub const FINGERPRINT_KEY: &str = "soak-fingerprint-key-0123456789abcdef";

impl World {
    pub async fn new(db: TestDb, seed: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store_path = dir.path().join("legacy.db");
        let store = SqlitePool::connect_with(
            SqliteConnectOptions::new()
                .filename(&store_path)
                .journal_mode(SqliteJournalMode::Wal)
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
        let legacy = Legacy::start().await;
        let kinde = crate::provider_common::kinde_fake().await;
        let direct = db.config.url.expose().to_owned();
        let pg = url::Url::parse(&direct).unwrap();
        let target = format!(
            "{}:{}",
            pg.host_str().unwrap(),
            pg.port_or_known_default().unwrap_or(5432)
        );
        let mut relays = Vec::new();
        for _ in 0..2 {
            relays.push(Arc::new(Relay::start(target.clone()).await));
        }
        let mut ledger_config = db.config.clone();
        ledger_config.fingerprint_key = Some(Secret::inline(FINGERPRINT_KEY.to_owned()));
        let ledger = crate::migration_common::open_ledger(&ledger_config).await;
        let pg = sqlx::PgPool::connect(&direct).await.unwrap();
        let shared = Shared {
            dir: dir.path().to_owned(),
            legacy: legacy.addr,
            store: store_path,
            ledger_urls: relays.iter().map(|r| r.through(&direct)).collect(),
            kinde_url: kinde.base_url(),
            kinde_client_id: kinde.options().client_id.clone(),
            kinde_secret: kinde.options().client_secret.clone(),
            fingerprint_key: FINGERPRINT_KEY.to_owned(),
        };
        let mut replicas = Vec::new();
        for (index, name) in ["replica-a", "replica-b"].into_iter().enumerate() {
            let mut r = Replica::new(name, index);
            r.write_config(&shared, "migrate");
            r.start(&shared).unwrap();
            replicas.push(Arc::new(Mutex::new(r)));
        }
        Self {
            _dir: dir,
            legacy,
            store,
            kinde,
            db,
            pg,
            ledger,
            relays,
            shared,
            replicas,
            users: Vec::new(),
            phase: "migrate",
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            next_request: 0,
            next_password: 0,
            seed,
            sent: Vec::new(),
            faults: BTreeMap::new(),
            answers: BTreeMap::new(),
        }
    }

    /// A password no other part of the soak uses, with the marker.
    pub fn password(&mut self) -> String {
        self.next_password += 1;
        let salt: u32 = rand::random();
        format!("{MARKER}-{:x}-{}-{salt:08x}", self.seed, self.next_password)
    }

    /// A new legacy user (app table and hash store); returns its index.
    pub async fn add_user(&mut self) -> usize {
        let n = self.users.len();
        let email = format!("u{n}-{:x}@soak.example", self.seed & 0xffff);
        let password = self.password();
        let hash = bcrypt::hash(&password, 4).unwrap();
        let login = email.split('@').next().unwrap().to_owned();
        let id = sqlx::query("INSERT INTO users (login, email, hash) VALUES (?, ?, ?)")
            .bind(login)
            .bind(&email)
            .bind(&hash)
            .execute(&self.store)
            .await
            .unwrap()
            .last_insert_rowid();
        self.legacy.set_user(&email, &password);
        self.users.push(User {
            email,
            legacy_id: id.to_string(),
            passwords: vec![password],
            hashes: vec![hash],
            seeded: None,
        });
        n
    }

    /// The user changes their password at legacy (app table and hash store).
    pub async fn change_password(&mut self, user: usize) {
        let password = self.password();
        let hash = bcrypt::hash(&password, 4).unwrap();
        let email = self.users[user].email.clone();
        sqlx::query("UPDATE users SET hash = ? WHERE email = ?")
            .bind(&hash)
            .bind(&email)
            .execute(&self.store)
            .await
            .unwrap();
        self.legacy.set_user(&email, &password);
        let u = &mut self.users[user];
        u.passwords.push(password);
        u.hashes.push(hash);
    }

    /// The replica the next sign-in goes to: the two in turn, the live one while the other is
    /// down (as a front with health checks would).
    pub fn pick(&mut self, turn: usize) -> Option<String> {
        let n = self.replicas.len();
        (0..n).find_map(|k| self.replicas[(turn + k) % n].lock().unwrap().url())
    }

    /// Signs `email` in with `password` at `base`; records what the client got.
    pub fn signin_future(
        &mut self,
        round: u64,
        base: Option<String>,
        email: &str,
        password: &str,
    ) -> impl std::future::Future<Output = Sent> + use<> {
        self.next_request += 1;
        let id = format!("{:x}-{}", self.seed, self.next_request);
        let client = self.client.clone();
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("email", email)
            .append_pair("password", password)
            .finish();
        let email = email.to_owned();
        async move {
            let seen = match base {
                Some(base) => send(&client, &base, &id, body).await,
                None => None,
            };
            Sent {
                id,
                round,
                email,
                seen,
            }
        }
    }
}

async fn send(client: &reqwest::Client, base: &str, id: &str, body: String) -> Option<Seen> {
    let resp = client
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-soak-id", id)
        .body(body)
        .send()
        .await
        .ok()?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    };
    let location = header("location");
    let x_legacy = header("x-legacy");
    let set_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect();
    let status = resp.status().as_u16();
    let body = resp.text().await.ok()?;
    Some(Seen {
        status,
        location,
        set_cookie,
        x_legacy,
        body,
    })
}

/// Where the soak's report goes, when asked (`DRIPGATE_SOAK_REPORT`).
pub fn report_path() -> Option<PathBuf> {
    std::env::var_os("DRIPGATE_SOAK_REPORT").map(PathBuf::from)
}
