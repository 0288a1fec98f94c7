#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Sign-in integrity end to end: dripgate and the legacy app never read one sign-in request
//! differently. Each tricky request is sent, as raw bytes, both to the legacy test app directly
//! (which reads repeated fields as PHP does, or as Go does with `?reader=first`, and names the
//! user it signed in) and through dripgate; a test fails if dripgate migrates or routes anyone
//! other than the user legacy reads, or lets legacy sign in a migrated user in `route`.

use crate::common;
use crate::migration_common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::Dripgate;
use dripgate::config::{LegacyUserBinding, UnreadInRoute};
use dripgate::ledger::State;
use dripgate::migrate::Phase;
use migration_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FORM: &str = "application/x-www-form-urlencoded";

/// One response read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Sends one request with exactly this target and body (no client-side normalization).
async fn raw_post(addr: SocketAddr, target: &str, content_type: &str, body: &[u8]) -> Raw {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut out))
        .await
        .expect("response within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Raw {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// A `dripgate_*` sample on the admin listener (0 when absent).
async fn sample(dg: &Dripgate, series: &str) -> u64 {
    let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
    common::metric(&page, series).unwrap_or(0.0) as u64
}

struct Setup {
    world: World,
    fake: Fake,
    victim: (&'static str, String),
    attacker: (&'static str, String),
}

async fn setup(tag: &str) -> Setup {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let victim = (
        "victim@example.com",
        canary_password(&format!("{tag}-victim")),
    );
    let attacker = (
        "me@example.com",
        canary_password(&format!("{tag}-attacker")),
    );
    world.add_user(victim.0, &victim.1).await;
    world.add_user(attacker.0, &attacker.1).await;
    Setup {
        world,
        fake,
        victim,
        attacker,
    }
}

/// The password-guessing oracle: `email=VICTIM&password=GUESS&email=ME&password=MINE`. Legacy
/// (last wins) signs the attacker in; dripgate must not verify the guess against the victim's
/// hash, let alone migrate the victim. With a first-wins legacy, the decoy order is reversed.
#[tokio::test]
async fn repeated_fields_never_verify_a_guess_behind_legacy() {
    let s = setup("oracle").await;
    let (victim, victim_pw) = (&s.victim.0, &s.victim.1);
    let (me, my_pw) = (&s.attacker.0, &s.attacker.1);
    let mut config = s.world.config(Some(&s.fake), legacy_signature());
    config.migration.phase = Phase::Migrate;
    let dg = Dripgate::start(config).await;
    let legacy_addr = s.world.app.addr;

    // The worst case: the guess is right.
    let last_wins = form(&[
        ("email", victim),
        ("password", victim_pw),
        ("email", me),
        ("password", my_pw),
    ]);
    let first_wins = form(&[
        ("email", me),
        ("password", my_pw),
        ("email", victim),
        ("password", victim_pw),
    ]);
    for (target, body) in [
        ("/signin", &last_wins),
        ("/signin?reader=first", &first_wins),
    ] {
        let direct = raw_post(legacy_addr, target, FORM, body).await;
        assert_eq!(direct.status, 302);
        assert_eq!(
            direct.header("x-legacy-user").as_deref(),
            Some(*me),
            "legacy reads me"
        );
        let via = raw_post(dg.addr, target, FORM, body).await;
        assert_eq!(via.status, 302, "the request itself still reaches legacy");
        assert_eq!(via.header("x-legacy-user").as_deref(), Some(*me));
    }
    wait_outcome(&dg, "unread", 2).await;
    assert_eq!(
        sample(
            &dg,
            "dripgate_signin_unread_total{reason=\"repeated_field\"}"
        )
        .await,
        2
    );
    assert_eq!(
        s.fake.users_with_email(victim),
        0,
        "the victim was not migrated"
    );
    assert_eq!(s.fake.users_with_email(me), 0);
    assert_eq!(
        outcome(&dg, "wrong_password").await,
        0,
        "no guess was verified"
    );
    let ledger = s.world.ledger().await;
    assert!(ledger.get(victim).await.unwrap().is_none());
    ledger.close().await;

    // A plain sign-in of the victim still migrates.
    sign_in_unchanged(&s.world, &dg.url(""), victim, victim_pw).await;
    wait_outcome(&dg, "migrated", 1).await;
    assert!(s.fake.verify(victim, victim_pw));
    s.world.assert_clean(&s.fake, &dg, victim, victim_pw).await;
}

/// In `route`, every request legacy could read as the migrated victim's sign-in either goes
/// to the provider (dripgate read the victim too) or is refused; none reaches legacy.
#[tokio::test]
async fn route_cannot_be_walked_around() {
    let s = setup("route").await;
    let (victim, victim_pw) = (s.victim.0, s.victim.1.clone());
    let (me, my_pw) = (s.attacker.0, s.attacker.1.clone());
    let mut config = s.world.config(Some(&s.fake), legacy_signature());
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    config.signin.max_body_bytes = 4096;
    let dg = Dripgate::start(config).await;
    sign_in_unchanged(&s.world, &dg.url(""), victim, &victim_pw).await;
    wait_outcome(&dg, "migrated", 1).await;
    let legacy_addr = s.world.app.addr;

    let enc = |v: &str| -> String { form_urlencoded::byte_serialize(v.as_bytes()).collect() };
    let (v, vp, m, mp) = (enc(victim), enc(&victim_pw), enc(me), enc(&my_pw));
    // (target, body, what dripgate must do: 400 refused)
    let refused: Vec<(String, String)> = vec![
        // The decoy first: legacy (last wins) signs the victim in.
        (
            "/signin".into(),
            format!("email={m}&password={mp}&email={v}&password={vp}"),
        ),
        // First wins, decoy last.
        (
            "/signin?reader=first".into(),
            format!("email={v}&password={vp}&email={m}&password={mp}"),
        ),
        // PHP's and Express's structures, ASP.NET's case, a NUL-cut name, a `;` pair.
        (
            "/signin".into(),
            format!("email={m}&password={vp}&email[]={v}"),
        ),
        (
            "/signin".into(),
            format!("Email={v}&email={m}&password={vp}"),
        ),
        (
            "/signin".into(),
            format!("email={m}&password={vp}&email%00x={v}"),
        ),
        (
            "/signin".into(),
            format!("email={m}&password={vp};email={v}"),
        ),
        // The fields in the query string ($_REQUEST).
        (
            format!("/signin?email={v}"),
            format!("email={m}&password={vp}"),
        ),
        // Control characters inside the identifier.
        (
            "/signin".into(),
            format!("email=victim%00%40example.com&password={vp}"),
        ),
    ];
    let before = s.world.app.requests.load(Ordering::SeqCst);
    for (target, body) in &refused {
        let via = raw_post(dg.addr, target, FORM, body.as_bytes()).await;
        assert_eq!(via.status, 400, "{target} {body}: {}", via.body);
        assert!(via.header("location").is_none());
        assert!(!via.body.contains(&victim_pw), "no credential echoed");
    }
    assert_eq!(
        s.world.app.requests.load(Ordering::SeqCst),
        before,
        "no refused request reached legacy"
    );
    // The two order cases are ones legacy itself reads as the victim's sign-in.
    for (target, body) in &refused[..2] {
        let direct = raw_post(legacy_addr, target, FORM, body.as_bytes()).await;
        assert_eq!(direct.header("x-legacy-user").as_deref(), Some(victim));
    }
    let before = s.world.app.requests.load(Ordering::SeqCst);
    assert!(
        sample(
            &dg,
            "dripgate_signin_refused_total{reason=\"repeated_field\"}"
        )
        .await
            >= 2
    );
    assert!(
        sample(
            &dg,
            "dripgate_signin_refused_total{reason=\"field_in_query\"}"
        )
        .await
            >= 1
    );
    wait_outcome(&dg, "refused", refused.len() as u64).await;

    // Every spelling of the path, and padding any stack trims, is the victim's sign-in: routed.
    let plain = format!("email={v}&password={vp}");
    let padded = format!("email=%1C%0B{v}%1F%00&password={vp}");
    for (target, body) in [
        ("//signin", &plain),
        ("/./signin", &plain),
        ("/x/../signin", &plain),
        ("/%73ignin", &plain),
        ("/%2e/signin", &plain),
        ("/signin/", &plain),
        ("/signin", &padded),
    ] {
        let via = raw_post(dg.addr, target, FORM, body.as_bytes()).await;
        assert_eq!(via.status, 303, "{target} {body}");
        let location = via.header("location").unwrap();
        assert!(
            location.ends_with(&format!("login_hint={}", enc(victim))),
            "{location}"
        );
    }
    assert_eq!(s.world.app.requests.load(Ordering::SeqCst), before);
    // Legacy reads the same bytes as the victim's sign-in too (the path spellings are the ones
    // the servers in front of PHP, Java and Node resolve to the sign-in path; this test app
    // routes on the exact path, so the bodies are compared at `/signin`).
    for body in [&plain, &padded] {
        let direct = raw_post(legacy_addr, "/signin", FORM, body.as_bytes()).await;
        assert_eq!(direct.status, 302, "{body}");
        assert_eq!(
            direct.header("x-legacy-user").as_deref(),
            Some(victim),
            "{body}"
        );
    }
    let before = s.world.app.requests.load(Ordering::SeqCst);

    // Over the size limit: 413, never forwarded.
    let big = format!("email={v}&password={vp}&pad={}", "x".repeat(5000));
    let refused = sample(&dg, r#"dripgate_signins_total{outcome="refused"}"#).await;
    let via = raw_post(dg.addr, "/signin", FORM, big.as_bytes()).await;
    assert_eq!(via.status, 413);
    assert_eq!(
        sample(&dg, r#"dripgate_signins_total{outcome="refused"}"#).await,
        refused + 1,
        "a refused body over the limit is a sign-in outcome"
    );
    // A multipart part another parser would name differently.
    let multipart = format!(
        "--B\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n{me}\r\n--B\r\nContent-Disposition: form-data; name*=utf-8''email\r\n\r\n{victim}\r\n--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{victim_pw}\r\n--B--\r\n"
    );
    let via = raw_post(
        dg.addr,
        "/signin",
        "multipart/form-data; boundary=B",
        multipart.as_bytes(),
    )
    .await;
    assert_eq!(via.status, 400);
    assert_eq!(s.world.app.requests.load(Ordering::SeqCst), before);

    // Requests without credential fields are not sign-ins (WordPress posts its lost-password
    // form to the sign-in path): legacy answers them, in every phase.
    let via = raw_post(dg.addr, "/signin", FORM, b"user_login=victim&redirect_to=").await;
    assert_eq!(via.status, 200);
    assert_eq!(s.world.app.requests.load(Ordering::SeqCst), before + 1);
    // An unmigrated user's plain sign-in goes to legacy as before.
    let via = raw_post(
        dg.addr,
        "/signin",
        FORM,
        format!("email={m}&password={mp}").as_bytes(),
    )
    .await;
    assert_eq!(via.status, 302);
    assert_eq!(via.header("x-legacy-user").as_deref(), Some(me));
    s.world.assert_clean(&s.fake, &dg, victim, &victim_pw).await;
}

/// Outside `route`, and in `route` with `unread_in_route = "forward"`, an ambiguous sign-in
/// reaches legacy untouched (legacy serves everyone there) but is never migrated.
#[tokio::test]
async fn ambiguous_sign_ins_are_forwarded_where_legacy_serves_everyone() {
    let s = setup("forward").await;
    let (victim, victim_pw) = (s.victim.0, s.victim.1.clone());
    let (me, my_pw) = (s.attacker.0, s.attacker.1.clone());
    let body = form(&[
        ("email", me),
        ("password", &my_pw),
        ("email", victim),
        ("password", &victim_pw),
    ]);
    for (phase, unread) in [
        (Phase::Observe, UnreadInRoute::Refuse),
        (Phase::Migrate, UnreadInRoute::Refuse),
        (Phase::Route, UnreadInRoute::Forward),
    ] {
        let mut config = s.world.config(Some(&s.fake), legacy_signature());
        config.migration.phase = phase;
        config.migration.route = redirect();
        config.signin.unread_in_route = unread;
        let dg = Dripgate::start(config).await;
        let direct = raw_post(s.world.app.addr, "/signin", FORM, &body).await;
        let via = raw_post(dg.addr, "/signin", FORM, &body).await;
        assert_eq!(via.status, direct.status, "{phase:?}");
        assert_eq!(via.body, direct.body, "{phase:?}");
        assert_eq!(via.header("x-legacy-user").as_deref(), Some(victim));
        wait_outcome(&dg, "unread", 1).await;
        assert_eq!(outcome(&dg, "refused").await, 0);
    }
    assert_eq!(s.fake.user_count(), 0, "nobody was migrated");
}

/// `legacy_user`: a sign-in is migrated only when legacy's success response names the user
/// dripgate read; the naming header does not reach the client.
#[tokio::test]
async fn legacy_success_must_name_the_user_read() {
    let s = setup("binding").await;
    let (victim, victim_pw) = (s.victim.0, s.victim.1.clone());
    let (me, my_pw) = (s.attacker.0, s.attacker.1.clone());
    // Legacy resolves the login name `victim` to the attacker's account (a legacy app whose
    // own reading dripgate's store does not share).
    s.world.app.set_login("victim", me);
    let mut config = s.world.config(Some(&s.fake), legacy_signature());
    config.migration.phase = Phase::Migrate;
    config.signin.routes[0].legacy_user = Some(LegacyUserBinding {
        header: Some("x-legacy-user".into()),
        ..LegacyUserBinding::default()
    });
    let dg = Dripgate::start(config).await;
    let via = sign_in(&dg.url(""), "victim", &my_pw).await;
    assert_eq!(via.status, 302, "legacy signed the attacker in");
    wait_outcome(&dg, "identity_mismatch", 1).await;
    assert_eq!(s.fake.user_count(), 0);

    let raw = raw_post(
        dg.addr,
        "/signin",
        FORM,
        &form(&[("email", victim), ("password", &victim_pw)]),
    )
    .await;
    assert_eq!(raw.status, 302);
    assert!(
        raw.header("x-legacy-user").is_none(),
        "the naming header is dropped"
    );
    wait_outcome(&dg, "migrated", 1).await;
    assert!(s.fake.verify(victim, &victim_pw));
    let ledger = s.world.ledger().await;
    assert_eq!(
        ledger.get(victim).await.unwrap().unwrap().state,
        State::Migrated
    );
    ledger.close().await;

    // A binding whose header legacy never sends proves nothing: nothing is migrated.
    let mut config = s.world.config(Some(&s.fake), legacy_signature());
    config.migration.phase = Phase::Migrate;
    config.signin.routes[0].legacy_user = Some(LegacyUserBinding {
        header: Some("x-not-sent".into()),
        ..LegacyUserBinding::default()
    });
    let dg2 = Dripgate::start(config).await;
    sign_in(&dg2.url(""), me, &my_pw).await;
    wait_outcome(&dg2, "identity_unproven", 1).await;
    assert_eq!(s.fake.users_with_email(me), 0);
}

/// Sign-in bodies share a memory budget: while one held body fills it, another sign-in waits
/// `buffer_wait`, then gets 503 (counted); pass-through requests are not affected.
#[tokio::test]
async fn sign_in_bodies_share_a_memory_budget() {
    let s = setup("budget").await;
    let mut config = s.world.config(Some(&s.fake), legacy_signature());
    config.signin.max_body_bytes = 8 * 1024;
    config.signin.buffer_budget_bytes = 8 * 1024;
    config.signin.buffer_wait = Duration::from_millis(200);
    let dg = Dripgate::start(config).await;
    // One sign-in declares 8 KiB and sends a part of it, holding the whole budget.
    let mut held = TcpStream::connect(dg.addr).await.unwrap();
    let head = format!(
        "POST /signin HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\nContent-Length: 8000\r\n\r\nemail="
    );
    held.write_all(head.as_bytes()).await.unwrap();
    let mut reserved = false;
    for _ in 0..100 {
        if sample(&dg, "dripgate_signin_buffered_bytes").await >= 8000 {
            reserved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reserved, "the held sign-in reserved its declared length");
    let via = raw_post(dg.addr, "/signin", FORM, b"email=a&password=b").await;
    assert_eq!(via.status, 503);
    assert_eq!(
        sample(&dg, "dripgate_signin_budget_exhausted_total").await,
        1
    );
    assert_eq!(
        sample(&dg, r#"dripgate_signins_total{outcome="budget_full"}"#).await,
        1,
        "the 503 is a sign-in outcome"
    );
    let (status, _) = common::get_text(&dg.url("/echo")).await;
    assert_eq!(status, 200, "pass-through is not held back");
    drop(held);
    let mut released = false;
    for _ in 0..100 {
        if sample(&dg, "dripgate_signin_buffered_bytes").await == 0 {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(released, "the dropped sign-in returned its room");
    let via = raw_post(dg.addr, "/signin", FORM, b"email=a&password=b").await;
    assert_eq!(via.status, 200, "room again: legacy answers");
}
