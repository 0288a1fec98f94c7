//! `GET /status` (schema `dripgate.status/v1`): counts, share, trailing rates, the ETA to
//! `migration.target_share` and the hourly series, read from the ledger after real migrations
//! through a running dripgate; and the status page `GET /` with its Content-Security-Policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::common;
use crate::migration_common;

use common::Dripgate;
use dripgate::ledger::State;
use dripgate::testkit::Fault;
use migration_common::*;

pub const USERS: [&str; 5] = [
    "ann@example.com",
    "bob@example.com",
    "cy@example.com",
    "dee@example.com",
    "eve@example.com",
];

/// A dripgate in `migrate` phase over five legacy users of whom the first three sign in and
/// migrate and the fourth fails at the provider once; returns it with the world and fake.
pub async fn migrated_world(test: &str) -> (World, Fake, Dripgate, String) {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let password = canary_password(test);
    for email in USERS {
        world.add_user(email, &password).await;
    }
    let config = world.config(Some(&fake), legacy_signature());
    let dg = Dripgate::start(config).await;
    for email in &USERS[..3] {
        sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    }
    wait_outcome(&dg, "migrated", 3).await;
    fake.fail_next("createUser", 1, Fault::Status(500));
    sign_in_unchanged(&world, &dg.url(""), USERS[3], &password).await;
    wait_outcome(&dg, "fallback", 1).await;
    (world, fake, dg, password)
}

/// `/status` once the legacy store has been counted.
pub async fn status(dg: &Dripgate) -> serde_json::Value {
    for _ in 0..100 {
        let (code, body) = common::get_text(&dg.admin_url("/status")).await;
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["migration"]["progress"]["legacy_users"]
            .as_u64()
            .is_some()
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the legacy store was never counted");
}

#[tokio::test]
async fn status_v1_counts_rates_eta_and_the_hourly_series_match_the_ledger() {
    let (world, _fake, dg, password) = migrated_world("status_v1").await;
    let v = status(&dg).await;
    let body = v.to_string();
    assert_eq!(v["schema"], "dripgate.status/v1");
    let m = &v["migration"];
    let p = &m["progress"];
    assert_eq!(p["migrated_users"], 3);
    assert_eq!(p["legacy_users"], 5);
    assert_eq!(p["not_migrated_users"], 2);
    assert_eq!(p["share"], 0.6);
    assert_eq!(m["ledger_users"]["migrated"], 3);

    // Rates: all three within the trailing hour and day.
    let r = &m["rate"];
    assert_eq!(r["rate_method"], "trailing_1h");
    assert_eq!(r["last_hour"], 3);
    assert_eq!(r["last_24h"], 3);
    assert_eq!(r["users_per_hour"], 3.0);
    assert_eq!(r["users_per_hour_24h"], 0.125);

    // ETA to 0.8 of 5 = 4 users: one more at 3/24 users an hour is 8 hours.
    let e = &m["eta"];
    assert_eq!(e["target_share"], 0.8);
    assert_eq!(e["rate_method"], "trailing_24h");
    assert_eq!(e["users_to_target"], 1);
    assert_eq!(e["reached"], false);
    assert_eq!(e["seconds"], 8 * 3600);
    assert_eq!(
        e["at_ms"].as_i64().unwrap(),
        p["as_of_ms"].as_i64().unwrap() + 8 * 3600 * 1000
    );

    // The series: 14 days of hours, the last one the current hour, and the users in each
    // bucket are the ledger rows whose migrated_at falls in it.
    let s = &m["series"];
    assert_eq!(s["bucket_seconds"], 3600);
    let buckets: Vec<u64> = s["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(buckets.len(), 14 * 24);
    let start = s["start_ms"].as_i64().unwrap();
    assert_eq!(start % 3_600_000, 0);
    let last_start = start + (buckets.len() as i64 - 1) * 3_600_000;
    assert!(last_start <= p["as_of_ms"].as_i64().unwrap());
    let ledger = world.ledger().await;
    let mut in_last = 0;
    for email in &USERS[..3] {
        let row = ledger.get(email).await.unwrap().unwrap();
        assert_eq!(row.state, State::Migrated);
        if row.migrated_at.unwrap() >= last_start {
            in_last += 1;
        }
    }
    ledger.close().await;
    assert_eq!(*buckets.last().unwrap(), in_last);
    assert_eq!(buckets.iter().sum::<u64>(), 3);

    // The provider failure, by reason, with no user named anywhere.
    let failures = m["failures"].as_object().unwrap();
    assert_eq!(
        failures.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        1
    );
    for email in USERS {
        assert!(!body.contains(email), "{email} in /status");
    }
    assert!(!body.contains(&password));
    dg.stop().await;
}

#[tokio::test]
async fn signins_of_the_last_hour_are_counted_by_outcome_for_this_replica() {
    let (_world, _fake, dg, password) = migrated_world("status_signins").await;
    // One more sign-in, refused by legacy.
    sign_in(&dg.url(""), USERS[4], "not the password").await;
    wait_outcome(&dg, "legacy_rejected", 1).await;
    let v = status(&dg).await;
    let m = &v["migration"];
    assert_eq!(m["signins_scope"], "this_replica");
    let last_hour = m["signins_last_hour"].as_object().unwrap();
    assert_eq!(last_hour["migrated"], 3);
    assert_eq!(last_hour["fallback"], 1);
    assert_eq!(last_hour["legacy_rejected"], 1);
    // Every outcome label is there, and each equals the process's own counter (the process
    // started well within the hour).
    let (_, metrics) = common::get_text(&dg.admin_url("/metrics")).await;
    assert_eq!(last_hour.len(), dripgate::migrate::Outcome::LABELS.len());
    for (label, n) in last_hour {
        assert_eq!(n.as_u64().unwrap(), outcome_in(&metrics, label), "{label}");
    }
    let body = v.to_string();
    for email in USERS {
        assert!(!body.contains(email));
    }
    assert!(!body.contains(&password));
    dg.stop().await;
}

#[tokio::test]
async fn the_series_survives_a_restart() {
    let (world, fake, dg, _) = migrated_world("status_restart").await;
    let before = status(&dg).await["migration"]["series"]["migrations"].clone();
    dg.stop().await;
    let dg = Dripgate::start(world.config(Some(&fake), legacy_signature())).await;
    let after = status(&dg).await;
    assert_eq!(after["migration"]["progress"]["migrated_users"], 3);
    let after = &after["migration"]["series"]["migrations"];
    // Same sums (the window may have moved on by an hour between the two reads).
    let sum = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(sum(&before), 3);
    assert_eq!(sum(after), 3);
    dg.stop().await;
}

#[tokio::test]
async fn the_status_page_is_self_contained_under_a_strict_csp() {
    let (_world, _fake, dg, password) = migrated_world("status_page").await;
    let resp = common::client()
        .get(dg.admin_url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(header("content-type").starts_with("text/html"));
    let csp = header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.contains("connect-src 'self'"));
    assert!(!csp.contains("unsafe"));
    assert_eq!(header("x-content-type-options"), "nosniff");
    let page = resp.text().await.unwrap();
    assert!(page.contains("<svg id=\"chart\""));
    assert!(page.contains("fetch(\"/status\""));
    for email in USERS {
        assert!(!page.contains(email));
    }
    assert!(!page.contains(&password));
    dg.stop().await;
}

#[tokio::test]
async fn the_page_changes_the_phase_only_with_the_admin_token() {
    const TOKEN: &str = "status-page-token-8d41c0e2a7";
    let world = World::new().await;
    let mut config = world.config(None, dripgate::config::FailureSignature::default());
    config.migration.phase = dripgate::migrate::Phase::Observe;
    config.migration.canary_percent = 0.0;
    config.admin.token = Some(dripgate::config::Secret::inline(TOKEN));
    let dg = Dripgate::start(config).await;

    // The form: a password field for the token, the controls hidden until one is typed, a
    // POST /phase with the token as a bearer and a JSON body; nothing stored.
    let (code, page) = common::get_text(&dg.admin_url("/")).await;
    assert_eq!(code, 200);
    assert!(page.contains("<form id=\"controls\""));
    assert!(page.contains("<input type=\"password\" id=\"token\""));
    assert!(page.contains("<fieldset id=\"change\" hidden>"));
    assert!(page.contains("<select id=\"new-phase\">"));
    assert!(page.contains("fetch(\"/phase\""));
    assert!(page.contains("\"Authorization\": \"Bearer \" + token.value"));
    assert!(page.contains("\"Content-Type\": \"application/json\""));
    for storage in ["localStorage", "sessionStorage", "document.cookie"] {
        assert!(!page.contains(storage));
    }

    // The request the page sends (same origin), without the token and with it.
    let origin = dg.admin_url("");
    let origin = origin.trim_end_matches('/');
    let send = |auth: Option<String>| {
        let mut req = common::client()
            .post(dg.admin_url("/phase"))
            .header("origin", origin)
            .header("content-type", "application/json")
            .body(r#"{"phase":"observe","canary_percent":12.5}"#);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send()
    };
    let refused = send(None).await.unwrap();
    assert_eq!(refused.status(), 401);
    let refused = send(Some("Bearer not-the-token".to_owned())).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(status_settings(&dg).await["canary_percent"], 0.0);
    let ok = send(Some(format!("Bearer {TOKEN}"))).await.unwrap();
    assert_eq!(ok.status(), 200);
    let now: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(now["phase"], "observe");
    assert_eq!(now["canary_percent"], 12.5);
    assert_eq!(status_settings(&dg).await["canary_percent"], 12.5);
    let (_, status) = common::get_text(&dg.admin_url("/status")).await;
    assert!(!status.contains(TOKEN));
    dg.stop().await;
}

async fn status_settings(dg: &Dripgate) -> serde_json::Value {
    let (_, body) = common::get_text(&dg.admin_url("/status")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["migration"]["settings"].clone()
}

const BIN: &str = env!("CARGO_BIN_EXE_dripgate");

/// `dripgate status` with `args`, bounded; (exit code, stdout, stderr).
async fn dripgate_status(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(BIN)
                .arg("status")
                .args(&args)
                .env_remove("DRIPGATE_ADMIN_URL")
                .output()
                .unwrap()
        }),
    )
    .await
    .expect("dripgate status returns")
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn dripgate_status_prints_the_figures_and_exits_by_dependency_health() {
    let (world, _fake, dg, password) = migrated_world("status_cli").await;
    let v = status(&dg).await;
    // Every dependency reported up before asserting exit 0.
    for _ in 0..100 {
        if common::get_text(&dg.admin_url("/status"))
            .await
            .1
            .contains("\"up\": false")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else {
            break;
        }
    }
    let admin = dg.admin_url("");
    let (code, out, err) = dripgate_status(&["--admin", &admin]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("phase      migrate (canary 100 %)"), "{out}");
    assert!(out.contains("set by     file, settings version 1"), "{out}");
    assert!(
        out.contains("migrated   3 of 5 legacy users (60.0 %)"),
        "{out}"
    );
    assert!(
        out.contains("[########################........|.......]"),
        "{out}"
    );
    assert!(
        out.contains("rate       3 users/hour (trailing_1h)"),
        "{out}"
    );
    assert!(
        out.contains("ETA        8 h 0 min (1 user to go), at 0.125 users/hour (trailing_24h)"),
        "{out}"
    );
    assert!(out.contains("legacy_upstream up"), "{out}");
    assert!(out.contains("ledger up"), "{out}");
    for email in USERS {
        assert!(!out.contains(email));
    }
    assert!(!out.contains(&password));

    // --json prints /status itself.
    let (code, out, _) = dripgate_status(&["--admin", &admin, "--json"]).await;
    assert_eq!(code, 0);
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed["schema"], "dripgate.status/v1");
    for field in ["migrated_users", "legacy_users", "share"] {
        let p = &printed["migration"]["progress"][field];
        assert_eq!(p, &v["migration"]["progress"][field]);
    }

    // --watch redraws until interrupted.
    let child = std::process::Command::new(BIN)
        .args(["status", "--watch", "--admin", &admin])
        .env_remove("DRIPGATE_ADMIN_URL")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let pid = child.id();
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()),
    )
    .await
    .expect("--watch ends on SIGINT")
    .unwrap();
    // Ended by Ctrl-C with every dependency up: exit 0.
    assert_eq!(out.status.code(), Some(0));
    let out = String::from_utf8(out.stdout).unwrap();
    assert!(out.matches("\x1b[2J").count() >= 2, "{out}");
    drop(world);
    dg.stop().await;

    // The admin listener gone: exit 1.
    let (code, _, err) = dripgate_status(&["--admin", &admin]).await;
    assert_eq!(code, 1);
    assert!(err.contains("dripgate status:"), "{err}");
}

#[tokio::test]
async fn dripgate_status_exits_1_when_a_dependency_is_down() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dg = Dripgate::start(common::config_for(dead)).await;
    for _ in 0..100 {
        if common::get_text(&dg.admin_url("/status"))
            .await
            .1
            .contains("\"up\": false")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, out, _) = dripgate_status(&["--admin", &dg.admin_url("")]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("legacy_upstream DOWN"), "{out}");
    assert!(out.contains("pass-through"), "{out}");
    dg.stop().await;
}

#[tokio::test]
async fn the_latest_census_recorded_in_the_ledger_is_in_status_and_on_the_page() {
    let world = World::new().await;
    let mut config = world.config(None, dripgate::config::FailureSignature::default());
    config.migration.phase = dripgate::migrate::Phase::Observe;
    let dg = Dripgate::start(config).await;
    let read = || async {
        let (code, body) = common::get_text(&dg.admin_url("/status")).await;
        assert_eq!(code, 200);
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let v = read().await;
    assert!(v["migration"].is_object(), "{v}");
    assert!(v["migration"]["census"].is_null(), "{v}");

    // What `dripgate legacy census` records: the summary, never the example ids.
    let mut census = dripgate::legacy::Census {
        backend: "sqlite".into(),
        preset: "wordpress".into(),
        users: 5,
        migratable: 4,
        ..Default::default()
    };
    census.formats.insert("bcrypt".into(), 3);
    census.formats.insert("phpass".into(), 2);
    census
        .not_migratable
        .insert(dripgate::legacy::Reason::DuplicateKey, 1);
    census.examples.insert(
        dripgate::legacy::Reason::DuplicateKey,
        vec!["dup@example.com".into()],
    );
    let ledger = world.ledger().await;
    let summary = serde_json::to_string(&census.summary()).unwrap();
    let taken = ledger.record_census(&summary).await.unwrap();
    ledger.close().await;

    let v = read().await;
    let c = &v["migration"]["census"];
    assert_eq!(c["taken_at"].as_i64(), Some(taken), "{v}");
    let s = &c["summary"];
    assert_eq!(s["users"], 5);
    assert_eq!(s["migratable"], 4);
    assert_eq!(s["not_migratable_total"], 1);
    assert_eq!(s["not_migratable"]["duplicate_key"], 1);
    assert_eq!(s["formats"]["bcrypt"], 3);
    assert_eq!(s["formats"]["phpass"], 2);
    assert!(!v.to_string().contains("dup@example.com"));

    let (code, page) = common::get_text(&dg.admin_url("/")).await;
    assert_eq!(code, 200);
    assert!(page.contains("<h2>Legacy store census</h2>"));
    assert!(page.contains("m.census"));
    dg.stop().await;
}
