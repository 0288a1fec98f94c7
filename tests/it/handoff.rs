//! `dripgate handoff` end to end, on the built binary with the Kinde fake: a legacy store of
//! 2,000 users in five hash formats, 300 of them migrated through sign-ins; a dry run whose
//! per-format counts match the store and which changes nothing; then a real run SIGKILLed
//! half-way and started again while sign-ins go on beside it. Afterwards: exactly one provider
//! user per legacy user and one create each, every `handoff_hash` user's password verifies at
//! the fake, every `handoff_reset` user has the change flag, the runs' reports cover every user
//! not migrated by a sign-in, and the ledger records a completed run. With PostgreSQL, the same
//! with two replicas serving the sign-ins.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

use crate::common::Dripgate;
use crate::ledger_common;
use crate::migration_common::*;
use dripgate::hash::SaltPosition;
use dripgate::ledger::{LedgerConfig, Method, State};

const USERS: usize = 2_000;
const SIGNED_IN: usize = 300;
const FORMATS: [&str; 5] = ["bcrypt", "md5", "sha256", "phpass", "sha1"];

struct User {
    email: String,
    password: String,
    format: &'static str,
}

fn make_user(i: usize) -> (User, String, Option<String>) {
    let format = FORMATS[i % FORMATS.len()];
    let email = format!("user{i:05}@example.com");
    let password = format!("pw-{i}-{:08x}", rand::random::<u32>());
    let salt = format!("s{:07x}", rand::random::<u32>() & 0x0fff_ffff);
    let salted = [password.as_bytes(), salt.as_bytes()].concat();
    let (hash, salt) = match format {
        "bcrypt" => (bcrypt::hash(&password, 4).unwrap(), None),
        "md5" => (hex::encode(Md5::digest(&salted)), Some(salt)),
        "sha256" => (hex::encode(Sha256::digest(&salted)), Some(salt)),
        "phpass" => (
            dripgate::demo::users::phpass(password.as_bytes(), &salt[..8], 8),
            None,
        ),
        _ => (hex::encode(Sha1::digest(password.as_bytes())), None),
    };
    (
        User {
            email,
            password,
            format,
        },
        hash,
        salt,
    )
}

/// The legacy store (format and salt columns) and the legacy app's accounts.
async fn fill_store(world: &World) -> Vec<User> {
    sqlx::raw_sql(
        "ALTER TABLE users ADD COLUMN salt TEXT; ALTER TABLE users ADD COLUMN format TEXT",
    )
    .execute(&world.store)
    .await
    .unwrap();
    let made: Vec<_> = tokio::task::spawn_blocking(|| (0..USERS).map(make_user).collect())
        .await
        .unwrap();
    let mut tx = world.store.begin().await.unwrap();
    let mut users = Vec::with_capacity(USERS);
    for (user, hash, salt) in made {
        let login = user.email.split('@').next().unwrap().to_owned();
        sqlx::query("INSERT INTO users (login, email, hash, salt, format) VALUES (?, ?, ?, ?, ?)")
            .bind(&login)
            .bind(&user.email)
            .bind(hash)
            .bind(salt)
            .bind(user.format)
            .execute(&mut *tx)
            .await
            .unwrap();
        world.app.set_user(&user.email, &user.password);
        users.push(user);
    }
    tx.commit().await.unwrap();
    users
}

fn legacy_overrides(ledger_url: Option<&str>) -> String {
    let ledger = ledger_url
        .map(|u| format!("url = \"{u}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[legacy]
columns = {{ format = "format", salt = "salt" }}
salt_position = "suffix"

[ledger]
lease = "3s"
{ledger}
[provider.limits]
requests_per_second = 250
burst = 25

[handoff]
concurrency = 8

[handoff.policy]
phpass = "reset"
"#
    )
}

/// A serving dripgate (in process) on the world's store and the given ledger.
async fn serve(world: &World, fake: &Fake, ledger: &LedgerConfig, replica: &str) -> Dripgate {
    let mut config = world.config(Some(fake), legacy_signature());
    let legacy = config.legacy.as_mut().unwrap();
    legacy.columns.format = Some("format".into());
    legacy.columns.salt = Some("salt".into());
    legacy.salt_position = Some(SaltPosition::Suffix);
    config.ledger = ledger.clone();
    config.migration.replica_id = Some(replica.into());
    Dripgate::start(config).await
}

fn handoff_cmd(config: &Path, fake: &Fake, extra: &[&str]) -> Command {
    let Fake::Kinde(kinde) = fake else {
        panic!("the hand-off test uses the Kinde fake")
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dripgate"));
    cmd.arg("handoff")
        .arg("--config")
        .arg(config)
        .args(extra)
        .env("TEST_PROVIDER_SECRET", &kinde.options().client_secret)
        .env("DRIPGATE_LOG__LEVEL", "warn")
        .env_remove("RUST_LOG");
    cmd
}

fn report_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn migrated_count(ledger: &dripgate::ledger::Ledger) -> u64 {
    ledger.counts().await.unwrap()[&State::Migrated]
}

/// Signs users in through `replicas` (round robin, random users) until `stop`.
fn sign_in_load(
    replicas: Vec<String>,
    users: Arc<Vec<(String, String)>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) && n < 3_000 {
            let (email, password) = &users[rand::random_range(0..users.len())];
            sign_in(&replicas[n % replicas.len()], email, password).await;
            n += 1;
        }
        n
    })
}

async fn scenario(world: World, ledger_config: LedgerConfig, replicas: usize) {
    let fake = Fake::kinde().await;
    let Fake::Kinde(kinde) = &fake else {
        unreachable!()
    };
    let users = fill_store(&world).await;
    let mut ledger_config = ledger_config;
    ledger_config.lease = Duration::from_secs(3);
    let mut serving = Vec::new();
    for r in 0..replicas {
        serving.push(serve(&world, &fake, &ledger_config, &format!("replica-{r}")).await);
    }
    let ledger = open_ledger(&ledger_config).await;

    // 300 users migrate through sign-ins (60 of each format).
    for (i, u) in users.iter().take(SIGNED_IN).enumerate() {
        sign_in(&serving[i % replicas].url(""), &u.email, &u.password).await;
    }
    for _ in 0..600 {
        if migrated_count(&ledger).await >= SIGNED_IN as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(migrated_count(&ledger).await, SIGNED_IN as u64);
    let creates_before = kinde.calls("createUser");
    assert_eq!(creates_before, SIGNED_IN as u64);

    let pg_url = ledger_config
        .url
        .expose()
        .starts_with("postgres")
        .then(|| ledger_config.url.expose().to_owned());
    let config = world.write_child_config(&fake, &legacy_overrides(pg_url.as_deref()));

    // Dry run: counts per format and action, nothing touched.
    let plan = world.dir.path().join("plan.jsonl");
    let out = handoff_cmd(
        &config,
        &fake,
        &["--dry-run", "--report", plan.to_str().unwrap()],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut planned: BTreeMap<(String, String, bool), usize> = BTreeMap::new();
    for line in report_lines(&plan) {
        assert_eq!(line["result"], "would_hand_off", "{line}");
        let key = (
            line["format"].as_str().unwrap().to_owned(),
            line["action"].as_str().unwrap().to_owned(),
            line["fallback"].as_bool().unwrap(),
        );
        *planned.entry(key).or_default() += 1;
    }
    let per_format = (USERS - SIGNED_IN) / FORMATS.len();
    let expected: BTreeMap<(String, String, bool), usize> = [
        ("bcrypt", "legacy_hash", false),
        ("md5", "legacy_hash", false),
        ("sha256", "legacy_hash", false),
        ("phpass", "reset", false),
        ("sha1", "reset", true),
    ]
    .into_iter()
    .map(|(f, a, fb)| ((f.to_owned(), a.to_owned(), fb), per_format))
    .collect();
    assert_eq!(planned, expected, "{stdout}");
    assert!(stdout.contains("already migrated"), "{stdout}");
    assert_eq!(
        kinde.calls("createUser"),
        creates_before,
        "dry run called the provider"
    );
    assert_eq!(
        ledger.counts().await.unwrap().values().sum::<u64>(),
        SIGNED_IN as u64
    );
    assert!(
        ledger.latest_handoff().await.unwrap().is_none(),
        "dry run wrote a run"
    );

    // The real run, killed half-way, while sign-ins go on.
    let all: Arc<Vec<(String, String)>> = Arc::new(
        users
            .iter()
            .map(|u| (u.email.clone(), u.password.clone()))
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let load = sign_in_load(
        serving.iter().map(|d| d.url("")).collect(),
        all.clone(),
        stop.clone(),
    );
    let report = world.dir.path().join("handoff.jsonl");
    let report_arg = report.to_str().unwrap().to_owned();
    let mut first = handoff_cmd(&config, &fake, &["--report", &report_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let half = (USERS - SIGNED_IN) / 2;
    for _ in 0..1_200 {
        if report_lines(&report).len() >= half || first.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        first.try_wait().unwrap().is_none(),
        "the run ended before it was killed"
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let after_kill = report_lines(&report).len();
    assert!(after_kill < USERS - SIGNED_IN, "killed after the end");
    let run = ledger.latest_handoff().await.unwrap().unwrap();
    assert!(run.finished_at_ms.is_none() && !run.completed, "{run:?}");
    assert!(ledger.last_completed_handoff().await.unwrap().is_none());
    assert!(ledger.handoff_completed_at().await.unwrap().is_none());

    let out = handoff_cmd(&config, &fake, &["--report", &report_arg])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stop.store(true, Ordering::Relaxed);
    let signins = load.await.unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("completed"), "{stdout}");
    assert!(signins > 0);
    let completed = ledger.last_completed_handoff().await.unwrap().unwrap();
    assert!(completed.completed && completed.finished_at_ms.is_some());
    // The marker the switch to phase `complete` asks for.
    assert!(ledger.handoff_completed_at().await.unwrap().is_some());

    // One provider user per legacy user, one create each, passwords and flags as handed off.
    let by_email: HashMap<String, usize> = kinde.users().iter().fold(HashMap::new(), |mut m, u| {
        *m.entry(u.email.clone().unwrap().to_lowercase())
            .or_default() += 1;
        m
    });
    assert_eq!(by_email.len(), USERS);
    assert!(by_email.values().all(|n| *n == 1), "a second provider user");
    assert_eq!(
        kinde.calls("createUser"),
        USERS as u64,
        "a create was repeated"
    );
    let mut methods: BTreeMap<Method, usize> = BTreeMap::new();
    let mut live_during = HashSet::new();
    for (i, u) in users.iter().enumerate() {
        let row = ledger.get(&u.email).await.unwrap().unwrap();
        assert_eq!(row.state, State::Migrated, "{}", u.email);
        *methods.entry(row.method).or_default() += 1;
        let at = kinde.user_by_email(&u.email).unwrap();
        match row.method {
            Method::HandoffReset => {
                assert!(at.password_reset_requested, "{}: no change flag", u.email);
                // No password, or the user's own: a sign-in that held the user before its lease
                // ran out (3 s here) may have set it before the hand-off took the user over.
                assert!(
                    at.password.is_none() || kinde.verify_password(&u.email, u.password.as_bytes()),
                    "{}: a password that is not the user's",
                    u.email
                );
                assert!(matches!(u.format, "phpass" | "sha1"), "{}", u.email);
            }
            Method::HandoffHash | Method::Live => {
                assert!(
                    kinde.verify_password(&u.email, u.password.as_bytes()),
                    "{}",
                    u.email
                );
                if row.method == Method::HandoffHash {
                    assert!(
                        matches!(u.format, "bcrypt" | "md5" | "sha256"),
                        "{}",
                        u.email
                    );
                } else if i >= SIGNED_IN {
                    live_during.insert(u.email.clone());
                }
            }
        }
    }
    assert_eq!(
        methods.values().sum::<usize>(),
        USERS,
        "methods: {methods:?}"
    );

    // The reports of both runs list every user not migrated by a sign-in, each handed off
    // once at most, and none with a hash.
    let lines = report_lines(&report);
    let mut reported = HashSet::new();
    let mut handed: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        let key = line["key"].as_str().unwrap().to_owned();
        if line["result"] == "handed_off" {
            *handed.entry(key.clone()).or_default() += 1;
        }
        reported.insert(key);
    }
    assert!(handed.values().all(|n| *n == 1), "handed off twice");
    let remainder: HashSet<String> = users[SIGNED_IN..].iter().map(|u| u.email.clone()).collect();
    let covered: HashSet<String> = reported.union(&live_during).cloned().collect();
    assert_eq!(covered, remainder, "the reports miss users");
    let text = std::fs::read_to_string(&report).unwrap();
    for u in users.iter().take(50) {
        assert!(!text.contains(&u.password));
    }
    assert!(
        !text.contains("$2b$") && !text.contains("$P$"),
        "a hash in the report"
    );
    assert!(!world.audit_events("user.handed_off").is_empty());
    println!(
        "hand-off: {after_kill} lines before the kill, {} in all, {} sign-ins beside it, {} migrated by them, {methods:?}",
        lines.len(),
        signins,
        live_during.len()
    );
    ledger.close().await;
    for dg in serving {
        dg.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_killed_and_resumed_beside_signins_sqlite() {
    let world = World::new().await;
    let ledger = world.ledger_config();
    scenario(world, ledger, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_killed_and_resumed_beside_two_replicas_postgres() {
    let Some(db) = ledger_common::postgres("handoff").await else {
        return;
    };
    let world = World::new().await;
    scenario(world, db.config.clone(), 2).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_refuses_what_it_cannot_do_and_filters() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    for i in 0..6u32 {
        let domain = if i.is_multiple_of(2) {
            "a.example"
        } else {
            "b.example"
        };
        world
            .add_user(&format!("u{i}@{domain}"), "pw-filters-1")
            .await;
    }
    let observe = world.write_child_config(&fake, "[migration]\nphase = \"observe\"\n");
    let out = handoff_cmd(&observe, &fake, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("observe"));

    let config = world.write_child_config(&fake, "");
    let out = handoff_cmd(&config, &fake, &["--created-before", "2020-01-01"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no creation-time column"), "{err}");
    let out = handoff_cmd(&config, &fake, &["--created-before", "2020-1-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let ids = world.dir.path().join("ids.txt");
    std::fs::write(&ids, "# pilot\nu0@a.example\n3\n").unwrap();
    let plan = world.dir.path().join("plan.jsonl");
    let args = [
        "--dry-run",
        "--domain",
        "A.example",
        "--report",
        plan.to_str().unwrap(),
    ];
    let out = handoff_cmd(&config, &fake, &args).output().unwrap();
    assert!(out.status.success());
    let keys: Vec<String> = report_lines(&plan)
        .iter()
        .map(|l| l["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.iter().all(|k| k.ends_with("@a.example")));
    std::fs::remove_file(&plan).unwrap();
    let args = [
        "--dry-run",
        "--ids-file",
        ids.to_str().unwrap(),
        "--report",
        plan.to_str().unwrap(),
    ];
    let out = handoff_cmd(&config, &fake, &args).output().unwrap();
    assert!(out.status.success());
    let mut keys: Vec<String> = report_lines(&plan)
        .iter()
        .map(|l| l["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    // By key, and by legacy id (row 3 is u2@a.example).
    assert_eq!(keys, ["u0@a.example", "u2@a.example"]);
    assert_eq!(fake.user_count(), 0);

    // A real run of the pilot: two users, then nothing left for them.
    let out = handoff_cmd(&config, &fake, &["--ids-file", ids.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(fake.user_count(), 2);
    assert!(fake.verify("u0@a.example", "pw-filters-1"));
    let ledger = world.ledger().await;
    let row = ledger.get("u0@a.example").await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.method),
        (State::Migrated, Method::HandoffHash)
    );

    // The password changes at legacy: the next legacy sign-in re-syncs it, like any migrated
    // user's (the hand-off recorded the legacy hash's fingerprint).
    world.change_password("u0@a.example", "pw-filters-2").await;
    let dg = Dripgate::start(world.config(Some(&fake), legacy_signature())).await;
    sign_in(&dg.url(""), "u0@a.example", "pw-filters-2").await;
    wait_outcome(&dg, "resynced", 1).await;
    assert!(fake.verify("u0@a.example", "pw-filters-2"));
    assert!(!fake.verify("u0@a.example", "pw-filters-1"));
    let row = ledger.get("u0@a.example").await.unwrap().unwrap();
    assert_eq!((row.state, row.method), (State::Migrated, Method::Live));
    assert_eq!(fake.user_count(), 2);
    ledger.close().await;
    dg.stop().await;
}

/// The library path with Authgear, which imports no hash: `legacy_hash` falls back to `reset`
/// (counted), the user is created without a password and its password set expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authgear_users_fall_back_to_reset() {
    use dripgate::handoff::{self, Filters, HandoffConfig, HandoffMetrics, Options, Policies};
    let world = World::new().await;
    let fake = Fake::authgear().await;
    world.add_user("ann@example.com", "pw-authgear-1").await;
    world.add_user("ben@example.com", "pw-authgear-2").await;
    let config = world.config(Some(&fake), legacy_signature());
    let registry = prometheus::Registry::new();
    let engine = dripgate::server::build_engine(&config, &registry)
        .await
        .unwrap()
        .unwrap();
    let options = Options {
        policies: Policies::new(&HandoffConfig::default()).unwrap(),
        filters: Filters::default(),
        dry_run: false,
        concurrency: 2,
        report: None,
        hold_wait: Duration::from_secs(5),
        progress_every: Duration::from_millis(100),
    };
    let metrics = HandoffMetrics::register(&registry).unwrap();
    let summary = handoff::run(
        &engine,
        options,
        metrics,
        Arc::new(|_: &handoff::Progress| {}),
    )
    .await
    .unwrap();
    assert!(summary.completed, "{summary:?}");
    assert_eq!(summary.counts.fallbacks, 2);
    let Fake::Authgear(authgear) = &fake else {
        unreachable!()
    };
    for email in ["ann@example.com", "ben@example.com"] {
        let user = authgear.user_by_email(email).unwrap();
        assert!(user.password_expired, "{email}");
        assert!(!authgear.verify_password(email, b"pw-authgear-1"));
        let row = engine.ledger().get(email).await.unwrap().unwrap();
        assert_eq!(row.method, Method::HandoffReset);
    }
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains(r#"dripgate_handoff_users_total{action="reset",result="handed_off"} 2"#),
        "{text}"
    );
    world.expect_audit_events("user.handed_off", 2).await;
    assert!(
        engine
            .ledger()
            .last_completed_handoff()
            .await
            .unwrap()
            .is_some()
    );
}
