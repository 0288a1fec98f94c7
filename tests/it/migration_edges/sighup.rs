//! A phase switch by SIGHUP on the real binary, with a keep-alive connection open across it.

use super::*;

/// The child's config in phase `phase`, with a redirect route target either way.
fn child_overrides(phase: &str) -> String {
    format!(
        r#"
[migration]
phase = "{phase}"

[migration.route]
mode = "redirect"
url_template = "{TEMPLATE}"
"#
    )
}

/// Sends `GET path` on an open HTTP/1.1 connection and reads one response (status, body).
async fn get_on(conn: &mut tokio::io::BufReader<TcpStream>, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nhost: legacy.test\r\n\r\n");
    conn.get_mut().write_all(request.as_bytes()).await.unwrap();
    let read = async {
        let mut status_line = String::new();
        conn.read_line(&mut status_line).await.unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let (mut length, mut chunked) = (None, false);
        loop {
            let mut line = String::new();
            assert!(conn.read_line(&mut line).await.unwrap() > 0, "closed early");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.parse::<usize>().unwrap()),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => assert!(!value.eq_ignore_ascii_case("close"), "{line}"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                conn.read_line(&mut size).await.unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                conn.read_exact(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body = vec![0; length.expect("a length or chunks")];
            conn.read_exact(&mut body).await.unwrap();
        }
        (status, String::from_utf8(body).unwrap())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("response within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_switches_the_phase_to_route_and_keeps_open_connections() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let (first, first_pw) = ("hal@example.com", canary_password("sighup-hal"));
    let (second, second_pw) = ("ida@example.com", canary_password("sighup-ida"));
    world.add_user(first, &first_pw).await;
    world.add_user(second, &second_pw).await;
    let config = world.write_child_config(&fake, &child_overrides("migrate"));
    let out = Arc::new(Mutex::new(String::new()));
    let mut running = ChildDripgate::spawn(&config, &fake, &out);
    let base = running.url();
    let metrics = async |admin: &str| common::get_text(&format!("{admin}/metrics")).await.1;

    // A keep-alive connection, opened before the reload.
    let mut conn = tokio::io::BufReader::new(TcpStream::connect(running.listen).await.unwrap());
    let (status, body) = get_on(&mut conn, "/echo?before").await;
    assert_eq!(status, 200);
    assert!(body.contains("/echo?before"), "{body}");

    // In `migrate`, both users sign in at legacy and are migrated.
    for (email, password) in [(first, &first_pw), (second, &second_pw)] {
        sign_in_accepted(&world, &base, email, password).await;
    }
    let admin = running.admin.clone();
    eventually("both users migrated", async || {
        outcome_in(&metrics(&admin).await, "migrated") >= 2
    })
    .await;
    let stay = sign_in_accepted(&world, &base, first, &first_pw).await;
    assert_eq!(stay.status, 302, "not routed in migrate");

    world.write_child_config(&fake, &child_overrides("route"));
    let pid = running.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually("/status shows phase route", async || {
        let (_, status) = common::get_text(&format!("{admin}/status")).await;
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        v["migration"]["settings"]["phase"] == "route"
    })
    .await;
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the child is still running after SIGHUP"
    );

    let routed = sign_in(&base, second, &second_pw).await;
    assert_eq!(
        routed.status, 303,
        "a migrated user is routed after the reload"
    );
    assert_eq!(routed.location.as_deref(), Some(routed_to(second).as_str()));
    eventually("routed counted", async || {
        outcome_in(&metrics(&admin).await, "routed") >= 1
    })
    .await;
    let page = metrics(&admin).await;
    assert_eq!(series(&page, "dripgate_phase{phase=\"route\"}"), 1);
    assert_eq!(series(&page, "dripgate_phase{phase=\"migrate\"}"), 0);

    let changes = world.expect_audit_events("phase.changed", 1).await;
    assert_eq!(changes[0]["phase"], "route");
    let detail = changes[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("migrate -> route") && detail.contains("sighup"),
        "{detail}"
    );

    // The connection opened before the reload still serves requests.
    let (status, body) = get_on(&mut conn, "/echo?after").await;
    assert_eq!(status, 200);
    assert!(body.contains("/echo?after"), "{body}");

    let status_page = common::get_text(&format!("{admin}/status")).await.1;
    let page = metrics(&admin).await;
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = running.child.wait();
    let ledger = world.ledger().await;
    assert_ledger_invariants(&ledger, &fake, &[(first, &first_pw), (second, &second_pw)]).await;
    assert_eq!(
        ledger.get(second).await.unwrap().unwrap().state,
        State::Migrated
    );
    ledger.close().await;
    let logs = out.lock().unwrap().clone();
    assert!(logs.contains("migration phase changed"), "reload logged");
    for pw in [&first_pw, &second_pw] {
        world
            .assert_secret_nowhere(&[], pw, &[&logs, &page, &status_page])
            .await;
    }
}

/// The child's config in `phase` with `canary` percent, a redirect route target either way.
fn child_overrides_canary(phase: &str, canary: u32) -> String {
    child_overrides(phase).replace(
        &format!("phase = \"{phase}\"\n"),
        &format!("phase = \"{phase}\"\ncanary_percent = {canary}.0\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_applies_only_a_changed_file_and_a_restart_keeps_the_ledgers_phase() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let config = world.write_child_config(&fake, &child_overrides("migrate"));
    let out = Arc::new(Mutex::new(String::new()));
    let mut running = ChildDripgate::spawn(&config, &fake, &out);
    let settings = async |admin: &str| {
        let (_, status) = common::get_text(&format!("{admin}/status")).await;
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        v["migration"].clone()
    };
    let hup = |child: &std::process::Child| {
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    };

    // A change through the admin API is stored in the ledger.
    let admin = running.admin.clone();
    let resp = raw_client()
        .post(format!("{admin}/phase"))
        .header("content-type", "application/json")
        .body(r#"{"phase": "route"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // A SIGHUP with the file unchanged does not undo it.
    hup(&running.child);
    eventually("the unchanged reload logged", async || {
        out.lock()
            .unwrap()
            .contains("the file's phase and canary share are unchanged")
    })
    .await;
    let m = settings(&admin).await;
    assert_eq!(m["settings"]["phase"], "route");
    assert_eq!(m["settings_origin"]["source"], "admin_api");

    // A changed file is written as a new change, source `config_reload`.
    world.write_child_config(&fake, &child_overrides_canary("migrate", 50));
    hup(&running.child);
    eventually("the changed file applied", async || {
        settings(&admin).await["settings"]["phase"] == "migrate"
    })
    .await;
    let m = settings(&admin).await;
    assert_eq!(m["settings"]["canary_percent"], 50.0);
    assert_eq!(m["settings_origin"]["source"], "config_reload");
    assert_eq!(m["settings_origin"]["version"], 3);

    // Back to `route` through the API; a restart with the file (`migrate`) keeps `route`.
    let resp = raw_client()
        .post(format!("{admin}/phase"))
        .header("content-type", "application/json")
        .body(r#"{"phase": "route"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let _ = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status();
    let _ = running.child.wait();
    running = ChildDripgate::spawn(&config, &fake, &out);
    let m = settings(&running.admin).await;
    assert_eq!(
        m["settings"]["phase"], "route",
        "the ledger's phase, not the file's"
    );
    assert_eq!(m["settings_origin"]["source"], "admin_api");
    assert_eq!(m["settings_origin"]["version"], 4);
    let _ = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status();
    let _ = running.child.wait();
    let changes = world.audit_events("phase.changed");
    assert_eq!(
        changes.len(),
        3,
        "two API changes and one reload, each audited once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_with_an_invalid_file_keeps_the_running_phase_and_serving() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let (email, password) = ("jo@example.com", canary_password("sighup-invalid"));
    world.add_user(email, &password).await;
    let config = world.write_child_config(&fake, &child_overrides("migrate"));
    let out = Arc::new(Mutex::new(String::new()));
    let mut running = ChildDripgate::spawn(&config, &fake, &out);
    let base = running.url();
    let admin = running.admin.clone();
    let pid = running.child.id().to_string();

    // Not TOML at all, then TOML that fails validation (`route` without a route target).
    let valid = std::fs::read_to_string(&config).unwrap();
    let no_target = valid
        .replace("[migration.route]", "[unused]")
        .replace("phase = \"migrate\"", "phase = \"route\"");
    for (n, broken) in ["[migration\nphase = ", no_target.as_str()]
        .into_iter()
        .enumerate()
    {
        std::fs::write(&config, broken).unwrap();
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
        eventually("the refused reload is logged", async || {
            out.lock().unwrap().matches("config reload failed").count() > n
        })
        .await;
        assert!(running.child.try_wait().unwrap().is_none(), "still running");
        let (_, status) = common::get_text(&format!("{admin}/status")).await;
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(v["migration"]["settings"]["phase"], "migrate", "phase kept");
    }
    // Serving and migrating as before.
    sign_in_accepted(&world, &base, email, &password).await;
    eventually("migrated after the refused reloads", async || {
        let page = common::get_text(&format!("{admin}/metrics")).await.1;
        outcome_in(&page, "migrated") >= 1
    })
    .await;
    assert!(world.audit_events("phase.changed").is_empty());
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = running.child.wait();
    let logs = out.lock().unwrap().clone();
    world.assert_secret_nowhere(&[], &password, &[&logs]).await;
}
