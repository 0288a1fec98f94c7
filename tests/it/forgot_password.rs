//! End to end: forgot-password bridging with the legacy test app, a SQLite store and ledger and
//! the Kinde fake. In `route`, a reset request for a user not yet migrated provisions them at
//! the provider (once) and every request, for a known or an unknown identifier, gets the same
//! answer: a 303 to the provider's reset page; the route is rate-limited per identifier and per
//! client; in `observe` and `migrate` the request reaches legacy unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::common;
use crate::migration_common;

use common::Dripgate;
use dripgate::config::Config;
use dripgate::ledger::State;
use dripgate::migrate::Phase;
use dripgate::signin::config::ForgotPasswordRoute;
use dripgate::signin::extract::BodyKind;
use migration_common::*;

const RESET: &str = "https://auth.example.test/reset?login_hint={login_hint}";

/// An argon2id hash: a format Kinde does not import, so such a user is provisioned without a
/// password and with a change requested.
const ARGON2: &str = "$argon2id$v=19$m=65536,t=4,p=1$g2gSyeT0Vc9GxWAyT+8s+g$3GPThPcXpW3eGfyLBPPk0+bUy3Vd/GclUronFK3Bi7I";

/// `config` with the forgot-password route `POST /forgot` (form field `email`) and, beside the
/// sign-in route `POST /signin`, the WordPress-style field `user_login` on the same path.
fn with_reset(mut config: Config, phase: Phase) -> Config {
    config.migration.phase = phase;
    config.migration.route = redirect();
    config.migration.reset_url_template = Some(RESET.into());
    let route = |path: &str, field: &str, query: &[&str]| ForgotPasswordRoute {
        method: "POST".into(),
        path: path.into(),
        case_insensitive_path: false,
        body: BodyKind::Form,
        identifier_field: field.into(),
        query: query.iter().map(|q| (*q).to_owned()).collect(),
    };
    config.signin.forgot_password.routes = vec![
        route("/forgot", "email", &[]),
        route("/signin", "user_login", &["action=lostpassword"]),
    ];
    config.signin.forgot_password.answer_after = Duration::from_millis(300);
    config
}

/// What a client sees of one answer.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    /// Header names and value lengths, `date` left out (it may tick between two answers).
    headers: Vec<(String, usize)>,
    location: Option<String>,
    body_len: usize,
}

async fn reset(base: &str, path: &str, field: &str, identifier: &str) -> Answer {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair(field, identifier)
        .finish();
    let resp = raw_client()
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let mut headers: Vec<(String, usize)> = resp
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.as_str().to_owned(), value.len()))
        .collect();
    headers.sort();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    Answer {
        status: resp.status().as_u16(),
        headers,
        location,
        body_len: resp.bytes().await.unwrap().len(),
    }
}

/// Waits (bounded) until `key`'s ledger row is `migrated`.
async fn wait_migrated(world: &World, key: &str) {
    let ledger = world.ledger().await;
    for _ in 0..200 {
        let row = ledger.get(key).await.unwrap();
        if row.is_some_and(|r| r.state == State::Migrated) {
            ledger.close().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{key} never migrated");
}

#[tokio::test]
async fn known_and_unknown_identifiers_get_the_same_answer_and_the_user_is_provisioned_once() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let (ann, bob) = ("ann@example.com", "bob@example.com");
    let password = canary_password("forgot-known");
    world.add_user(ann, &password).await;
    let argon = "cid@example.com";
    sqlx::query("INSERT INTO users (login, email, hash) VALUES (?, ?, ?)")
        .bind("cid")
        .bind(argon)
        .bind(ARGON2)
        .execute(&world.store)
        .await
        .unwrap();
    let config = with_reset(world.config(Some(&fake), legacy_signature()), Phase::Route);
    let dg = Dripgate::start(config).await;
    let legacy_before = world.app.requests.load(std::sync::atomic::Ordering::SeqCst);

    // `bob` is unknown, `ann` known and not migrated: the same answer, but for the hint.
    let known = reset(&dg.url(""), "/forgot", "email", ann).await;
    let unknown = reset(&dg.url(""), "/forgot", "email", bob).await;
    assert_eq!(known.status, 303);
    assert_eq!(known.headers, unknown.headers, "same headers, same lengths");
    assert_eq!(known.body_len, unknown.body_len);
    assert_eq!(
        known.location.as_deref(),
        Some("https://auth.example.test/reset?login_hint=ann%40example.com")
    );
    assert_eq!(
        unknown.location.as_deref(),
        Some("https://auth.example.test/reset?login_hint=bob%40example.com")
    );

    // `ann` was provisioned once, with her legacy bcrypt hash (Kinde imports it).
    wait_migrated(&world, ann).await;
    assert_eq!(fake.users_with_email(ann), 1);
    assert_eq!(fake.users_with_email(bob), 0);
    assert!(fake.verify(ann, &password), "the legacy hash was imported");
    let again = reset(&dg.url(""), "/forgot", "email", ann).await;
    assert_eq!(
        again, known,
        "a migrated user's request goes straight there"
    );
    assert_eq!(fake.calls("createUser"), 1, "provisioned exactly once");

    // A format Kinde does not import: created without a password, a change requested. The
    // request comes on the sign-in path with WordPress's lost-password field.
    let on_signin_path = reset(
        &dg.url(""),
        "/signin?action=lostpassword",
        "user_login",
        argon,
    )
    .await;
    assert_eq!(on_signin_path.status, 303);
    assert_eq!(
        on_signin_path.location.as_deref(),
        Some("https://auth.example.test/reset?login_hint=cid%40example.com")
    );
    wait_migrated(&world, argon).await;
    let Fake::Kinde(kinde) = &fake else {
        unreachable!()
    };
    let cid = kinde.user_by_email(argon).unwrap();
    assert!(cid.password.is_none(), "no password without a proven one");
    assert!(cid.password_reset_requested);
    assert_eq!(fake.calls("createUser"), 2);
    assert_eq!(
        world.app.requests.load(std::sync::atomic::Ordering::SeqCst),
        legacy_before,
        "no reset request reached legacy"
    );
    // The same field without the route's query (WordPress's registration posts `user_login`
    // too) is no reset request: it reaches legacy.
    let other = reset(
        &dg.url(""),
        "/signin?action=register",
        "user_login",
        "new@example.com",
    )
    .await;
    assert_ne!(other.status, 303);
    assert_eq!(
        world.app.requests.load(std::sync::atomic::Ordering::SeqCst),
        legacy_before + 1
    );
    world
        .expect_audit_events("user.provisioned_for_reset", 2)
        .await;
    let (_, metrics) = common::get_text(&dg.admin_url("/metrics")).await;
    for (result, n) in [
        ("provisioned_with_hash", 1.0),
        ("provisioned_without_password", 1.0),
        ("migrated", 1.0),
        ("unknown", 1.0),
    ] {
        let series = format!("dripgate_forgot_password_total{{result=\"{result}\"}}");
        assert_eq!(common::metric(&metrics, &series), Some(n), "{series}");
    }
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
    world.assert_secret_nowhere(&[&dg], &password, &[]).await;
    dg.stop().await;
}

#[tokio::test]
async fn authgear_users_are_provisioned_without_a_password_for_its_reset_page() {
    let world = World::new().await;
    let fake = Fake::authgear().await;
    let email = "fay@example.com";
    let password = canary_password("forgot-authgear");
    world.add_user(email, &password).await;
    let config = with_reset(world.config(Some(&fake), legacy_signature()), Phase::Route);
    let dg = Dripgate::start(config).await;
    let answer = reset(&dg.url(""), "/forgot", "email", email).await;
    assert_eq!(answer.status, 303);
    wait_migrated(&world, email).await;
    assert_eq!(fake.users_with_email(email), 1);
    assert!(
        !fake.verify(email, &password),
        "no password without a proven one"
    );
    assert_eq!(reset(&dg.url(""), "/forgot", "email", email).await, answer);
    assert_eq!(fake.calls("createUser"), 1);
    assert!(
        fake.spec_violations().is_empty(),
        "{:?}",
        fake.spec_violations()
    );
    world.assert_secret_nowhere(&[&dg], &password, &[]).await;
    dg.stop().await;
}

#[tokio::test]
async fn the_reset_route_is_limited_per_identifier_and_per_client() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let mut config = with_reset(world.config(Some(&fake), legacy_signature()), Phase::Route);
    config.signin.forgot_password.per_identifier = 2;
    config.signin.forgot_password.per_client = 3;
    config.signin.forgot_password.answer_after = Duration::from_millis(10);
    let dg = Dripgate::start(config).await;
    let base = dg.url("");

    assert_eq!(
        reset(&base, "/forgot", "email", "x@example.com")
            .await
            .status,
        303
    );
    // Another spelling of the same identifier counts for it.
    assert_eq!(
        reset(&base, "/forgot", "email", "X@Example.com")
            .await
            .status,
        303
    );
    let limited = reset(&base, "/forgot", "email", "x@example.com").await;
    assert_eq!(limited.status, 429, "the identifier's limit trips");
    assert!(
        limited
            .headers
            .iter()
            .any(|(name, _)| name == "retry-after")
    );
    // The client has made three requests now: its own limit trips for any identifier.
    assert_eq!(
        reset(&base, "/forgot", "email", "y@example.com")
            .await
            .status,
        429
    );
    let (_, metrics) = common::get_text(&dg.admin_url("/metrics")).await;
    assert_eq!(
        common::metric(
            &metrics,
            "dripgate_forgot_password_total{result=\"rate_limited\"}"
        ),
        Some(2.0)
    );
    dg.stop().await;
}

#[tokio::test]
async fn observe_and_migrate_pass_reset_requests_to_legacy_untouched() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "dee@example.com";
    world.add_user(email, &canary_password("forgot-pass")).await;
    let mut config = with_reset(
        world.config(Some(&fake), legacy_signature()),
        Phase::Observe,
    );
    // The legacy test app echoes `/login` bodies: the reset request is seen as sent.
    config.signin.forgot_password.routes[0].path = "/login".into();
    let dg = Dripgate::start(config).await;
    let body = "email=dee%40example.com&next=%2F";
    let post = |base: String| async move {
        let resp = raw_client()
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let direct = post(world.legacy_url()).await;
    assert_eq!(direct.0, 200);
    assert_eq!(
        post(dg.url("")).await,
        direct,
        "observe: legacy's answer, unchanged"
    );
    let resp = raw_client()
        .post(dg.admin_url("/phase"))
        .header("content-type", "application/json")
        .body(r#"{"phase": "migrate"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        post(dg.url("")).await,
        direct,
        "migrate: legacy's answer, unchanged"
    );
    assert_eq!(fake.writes(), 0, "nothing provisioned");
    let ledger = world.ledger().await;
    assert!(ledger.get(email).await.unwrap().is_none());
    ledger.close().await;
    let (_, metrics) = common::get_text(&dg.admin_url("/metrics")).await;
    assert_eq!(
        common::metric(
            &metrics,
            "dripgate_forgot_password_total{result=\"forwarded\"}"
        ),
        Some(2.0)
    );
    dg.stop().await;
}

/// In `route`, a reset request that stacks could read as two different users' (a repeated
/// field: PHP takes the last, Go's `FormValue` the first; another spelling of the field; the
/// field in the query too; a query naming the route's condition twice) is refused: never
/// answered as someone's reset, never passed to legacy's reset, nobody provisioned.
#[tokio::test]
async fn reset_requests_readable_two_ways_are_refused_in_route() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    for email in ["ada@example.com", "bob@example.com"] {
        world
            .add_user(email, &canary_password("forgot-twice"))
            .await;
    }
    let config = with_reset(world.config(Some(&fake), legacy_signature()), Phase::Route);
    let dg = Dripgate::start(config).await;
    let cases = [
        ("/forgot", "email=ada%40example.com&email=bob%40example.com"),
        ("/forgot", "email%5B%5D=ada%40example.com"),
        ("/forgot?email=bob%40example.com", "email=ada%40example.com"),
        (
            "/signin?action=register&action=lostpassword",
            "user_login=ada%40example.com",
        ),
    ];
    for (target, body) in cases {
        let resp = raw_client()
            .post(dg.url(target))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{target} {body}");
        assert!(resp.headers().get("location").is_none(), "{target} {body}");
    }
    assert_eq!(fake.writes(), 0, "nobody provisioned");
    let ledger = world.ledger().await;
    for email in ["ada@example.com", "bob@example.com"] {
        assert!(ledger.get(email).await.unwrap().is_none(), "{email}");
    }
    ledger.close().await;
    dg.stop().await;
}
