//! End to end: the cutover's shared state and its end. Phase `complete` is refused without a
//! completed hand-off unless forced, then sends every sign-in (migrated or not) to the
//! provider and none to legacy, and rolls back with one call. Replicas sharing a PostgreSQL
//! ledger apply a `POST /phase` made on another within the poll interval, and a restarted one
//! comes back with the ledger's phase, not its file's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common;
use crate::ledger_common;
use crate::migration_common;

use common::Dripgate;
use dripgate::migrate::Phase;
use migration_common::*;

/// `POST /phase` with `body`; the status and the answer's text.
async fn set_phase(dg: &Dripgate, body: &str) -> (u16, String) {
    let resp = raw_client()
        .post(dg.admin_url("/phase"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn status(dg: &Dripgate) -> serde_json::Value {
    let (_, status) = common::get_text(&dg.admin_url("/status")).await;
    serde_json::from_str(&status).unwrap()
}

async fn phase_of(dg: &Dripgate) -> String {
    let status = status(dg).await;
    status["migration"]["settings"]["phase"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn complete_needs_a_handoff_or_force_sends_every_signin_to_the_provider_and_rolls_back() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "eve@example.com";
    let password = canary_password("complete");
    world.add_user(email, &password).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    let dg = Dripgate::start(config).await;

    // No hand-off recorded: refused, nothing changed.
    let (code, text) = set_phase(&dg, r#"{"phase": "complete"}"#).await;
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("hand-off"), "{text}");
    assert_eq!(phase_of(&dg).await, "route");
    assert!(world.audit_events("phase.changed").is_empty());

    // Forced: switched and audited as forced.
    let (code, text) = set_phase(&dg, r#"{"phase": "complete", "force": true}"#).await;
    assert_eq!(code, 200, "{text}");
    let changes = world.expect_audit_events("phase.changed", 1).await;
    let detail = changes[0]["detail"].as_str().unwrap();
    assert!(detail.contains("route -> complete"), "{detail}");
    assert!(detail.contains("forced"), "{detail}");
    let now = status(&dg).await;
    assert_eq!(now["migration"]["settings_origin"]["source"], "admin_api");
    assert_eq!(
        now["migration"]["handoff_completed_at"],
        serde_json::Value::Null
    );

    // An unmigrated user's sign-in, with the right password, reaches the provider, not legacy.
    let legacy_before = world.app.requests.load(Ordering::SeqCst);
    let seen = sign_in(&dg.url(""), email, &password).await;
    assert_eq!(seen.status, 303);
    assert_eq!(
        seen.location.as_deref(),
        Some("https://auth.example.test/login?login_hint=eve%40example.com")
    );
    // So does a wrong password and an unknown user: legacy's sign-in is closed.
    let unknown = sign_in(&dg.url(""), "nobody@example.com", "x").await;
    assert_eq!(unknown.status, 303);
    assert_eq!(world.app.requests.load(Ordering::SeqCst), legacy_before);
    assert_eq!(
        fake.calls("createUser"),
        0,
        "nothing migrates on a sign-in legacy never saw"
    );
    // The rest of the app is still proxied.
    let (code, _) = common::get_text(&dg.url("/download?bytes=10")).await;
    assert_eq!(code, 200);
    assert_eq!(world.app.requests.load(Ordering::SeqCst), legacy_before + 1);

    // Rollback to `route` is one call: the sign-in reaches legacy again and migrates.
    let (code, text) = set_phase(&dg, r#"{"phase": "route"}"#).await;
    assert_eq!(code, 200, "{text}");
    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "migrated", 1).await;

    // With a completed hand-off recorded, the switch needs no force.
    let ledger = world.ledger().await;
    let at = ledger.record_handoff_completed("run-1").await.unwrap();
    assert_eq!(ledger.handoff_completed_at().await.unwrap(), Some(at));
    ledger.close().await;
    let (code, text) = set_phase(&dg, r#"{"phase": "complete"}"#).await;
    assert_eq!(code, 200, "{text}");
    let changes = world.expect_audit_events("phase.changed", 3).await;
    let detail = changes[2]["detail"].as_str().unwrap();
    assert!(detail.contains("hand-off completed at"), "{detail}");
    assert_eq!(status(&dg).await["migration"]["handoff_completed_at"], at);
    let (_, metrics) = common::get_text(&dg.admin_url("/metrics")).await;
    assert_eq!(
        common::metric(&metrics, "dripgate_phase{phase=\"complete\"}"),
        Some(1.0)
    );
    // A migrated user's sign-in goes to the provider too.
    let before = world.app.requests.load(Ordering::SeqCst);
    assert_eq!(sign_in(&dg.url(""), email, &password).await.status, 303);
    assert_eq!(world.app.requests.load(Ordering::SeqCst), before);

    // Rollback to `migrate`, one call.
    let (code, _) = set_phase(&dg, r#"{"phase": "migrate"}"#).await;
    assert_eq!(code, 200);
    sign_in_unchanged(&world, &dg.url(""), email, &password).await;

    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}

#[tokio::test]
async fn complete_is_refused_where_it_cannot_run() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    // No route target: `complete` has nowhere to send sign-ins.
    let dg = Dripgate::start(world.config(Some(&fake), legacy_signature())).await;
    let (code, text) = set_phase(&dg, r#"{"phase": "complete", "force": true}"#).await;
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("route target"), "{text}");
    assert_eq!(phase_of(&dg).await, "migrate");
    dg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_phase_through_postgres_and_a_restart_keeps_it() {
    let Some(db) = ledger_common::postgres("cutover_shared").await else {
        return;
    };
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let config = |replica: &str| {
        let mut config = world.config(Some(&fake), legacy_signature());
        config.ledger = db.config.clone();
        config.migration.replica_id = Some(replica.into());
        config.migration.route = redirect();
        config.migration.settings_poll_interval = Duration::from_millis(200);
        config
    };
    let a = Dripgate::start(config("replica-a")).await;
    let b = Dripgate::start(config("replica-b")).await;
    assert_eq!(phase_of(&b).await, "migrate");
    assert_eq!(
        status(&b).await["migration"]["settings_origin"]["source"],
        "file"
    );

    let (code, text) = set_phase(&a, r#"{"phase": "route", "canary_percent": 40}"#).await;
    assert_eq!(code, 200, "{text}");
    // Applied by the other replica within a few poll intervals (bounded wait).
    let mut applied = false;
    for _ in 0..50 {
        if phase_of(&b).await == "route" {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(applied, "replica-b never applied the change");
    let origin = &status(&b).await["migration"];
    assert_eq!(origin["settings"]["canary_percent"], 40.0);
    assert_eq!(origin["settings_origin"]["source"], "admin_api");
    assert!(origin["settings_origin"]["changed_at"].is_i64());
    assert_eq!(origin["settings_origin"]["version"], 2);
    assert!(
        origin["settings_origin"]["changed_by"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1")
    );
    let (_, metrics) = common::get_text(&b.admin_url("/metrics")).await;
    assert_eq!(
        common::metric(
            &metrics,
            "dripgate_settings_polls_total{result=\"applied\"}"
        ),
        Some(1.0)
    );
    // The change is audited once, by the replica that made it.
    let changes = world.expect_audit_events("phase.changed", 1).await;
    assert_eq!(changes[0]["replica"], "replica-a");

    // A restarted replica comes back with the ledger's phase, not its file's (`migrate`).
    b.stop().await;
    let b = Dripgate::start(config("replica-b")).await;
    assert_eq!(phase_of(&b).await, "route");
    assert_eq!(
        status(&b).await["migration"]["settings"]["canary_percent"],
        40.0
    );

    a.stop().await;
    b.stop().await;
    db.cleanup().await;
}
