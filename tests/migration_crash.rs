//! End to end with the real binary: `dripgate serve` is SIGKILLed after the provider created the
//! user but before the password was set; after a restart, the next sign-in finishes the
//! migration without a second provider user. The child's stdout (JSON logs at trace level) is
//! searched for the password too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod migration_common;
mod provider_common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dripgate::ledger::State;
use dripgate::provider::fake::Fault;
use migration_common::*;

const BIN: &str = env!("CARGO_BIN_EXE_dripgate");

/// Writes the TOML config; the provider's client secret comes from the environment.
fn write_config(world: &World, fake: &Fake) -> std::path::PathBuf {
    let Fake::Kinde(kinde) = fake else {
        panic!("the crash test uses the Kinde fake")
    };
    let text = format!(
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
lease = "1s"
counts_interval = "0s"

[audit]
file = "{audit}"

[migration]
phase = "migrate"
replica_id = "child"

[provider]
kind = "kinde"

[provider.kinde]
base_url = "{base}"
client_id = "{client_id}"
client_secret = {{ env = "TEST_KINDE_SECRET" }}
bcrypt_cost = 4

[provider.http]
request_timeout = "120s"
deadline = "240s"

[provider.limits]
requests_per_second = 1000
burst = 1000
max_attempts = 1
"#,
        legacy = world.app.addr,
        store = world.store_path.display(),
        ledger = world.ledger_path.display(),
        audit = world.audit_path.display(),
        base = kinde.base_url(),
        client_id = kinde.options().client_id,
    );
    let path = world.dir.path().join("dripgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `dripgate serve` child: its addresses and everything it printed.
struct Running {
    child: Child,
    listen: String,
    admin: String,
}

fn spawn(config: &std::path::Path, fake: &Fake, out: &Arc<Mutex<String>>) -> Running {
    let Fake::Kinde(kinde) = fake else {
        panic!("the crash test uses the Kinde fake")
    };
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("DRIPGATE_SERVER__LISTEN", "127.0.0.1:0")
        .env("DRIPGATE_ADMIN__LISTEN", "127.0.0.1:0")
        .env("DRIPGATE_SHUTDOWN__DELAY", "0s")
        .env("TEST_KINDE_SECRET", &kinde.options().client_secret)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_out = out.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut o = err_out.lock().unwrap();
            o.push_str(&line);
            o.push('\n');
        }
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut start = None;
    for line in lines.by_ref().take(200) {
        let line = line.unwrap();
        out.lock().unwrap().push_str(&format!("{line}\n"));
        if line.contains("dripgate serving") {
            start = Some(line);
            break;
        }
    }
    let start = start.unwrap_or_else(|| panic!("no start-up line: {}", out.lock().unwrap()));
    let out = out.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut o = out.lock().unwrap();
            o.push_str(&line);
            o.push('\n');
        }
    });
    let v: serde_json::Value = serde_json::from_str(&start).unwrap();
    Running {
        child,
        listen: format!("http://{}", v["listen"].as_str().unwrap()),
        admin: format!("http://{}", v["admin"].as_str().unwrap()),
    }
}

async fn metric_page(admin: &str) -> String {
    common::get_text(&format!("{admin}/metrics")).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_create_and_set_password_is_finished_after_restart() {
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "lou@example.com";
    let password = canary_password("crash");
    world.add_user(email, &password).await;
    let config = write_config(&world, &fake);
    let out = Arc::new(Mutex::new(String::new()));

    // The first set-password call hangs (it is answered only long after the test is over).
    fake.fail_next("SetUserPassword", 1, Fault::Delay(Duration::from_secs(300)));
    let mut first = spawn(&config, &fake, &out);
    let seen = sign_in(&first.listen, email, &password).await;
    assert_eq!(seen.status, 302, "legacy answered the sign-in");
    let mut reached = false;
    for _ in 0..400 {
        if fake.calls("createUser") == 1 && fake.calls("SetUserPassword") == 1 {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reached, "the fake saw the create and the set-password call");
    let pid = first.child.id().to_string();
    let killed = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(killed.success());
    first.child.wait().unwrap();

    let ledger = world.ledger().await;
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(
        row.state,
        State::Created,
        "killed between create and set-password"
    );
    assert!(row.provider_user_id.is_some());
    assert!(!fake.verify(email, &password), "no password set yet");

    // Restart; sign in until the migration is finished (the dead process's lease expires
    // after 1 s; until then a sign-in finds the migration in progress).
    let mut second = spawn(&config, &fake, &out);
    let mut migrated = false;
    for _ in 0..40 {
        let seen = sign_in(&second.listen, email, &password).await;
        assert_eq!(seen.status, 302);
        for _ in 0..20 {
            let page = metric_page(&second.admin).await;
            if outcome_in(&page, "migrated") >= 1 {
                migrated = true;
                break;
            }
            if outcome_in(&page, "in_progress") + outcome_in(&page, "fallback") > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if migrated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        migrated,
        "a sign-in after the restart finished the migration"
    );
    let row = ledger.get(email).await.unwrap().unwrap();
    assert_eq!(row.state, State::Migrated);
    assert_eq!(fake.calls("createUser"), 1, "no second create");
    assert_eq!(fake.users_with_email(email), 1);
    assert!(fake.verify(email, &password));
    assert_ledger_invariants(&ledger, &fake, &[(email, &password)]).await;
    ledger.close().await;

    let metrics = metric_page(&second.admin).await;
    let status = common::get_text(&format!("{}/status", second.admin))
        .await
        .1;
    let _ = Command::new("kill")
        .args(["-TERM", &second.child.id().to_string()])
        .status();
    let _ = second.child.wait();
    let logs = out.lock().unwrap().clone();
    assert!(logs.contains("dripgate serving"), "child output captured");
    world
        .assert_secret_nowhere(&[], &password, &[&logs, &metrics, &status])
        .await;
}
