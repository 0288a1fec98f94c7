//! The `dripgate` binary: check-config, --version/--help, health, serve with SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::legacy_app::LegacyApp;

const BIN: &str = env!("CARGO_BIN_EXE_dripgate");

fn example_config() -> String {
    format!(
        "{}/config/dripgate.example.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn dripgate(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn example_config_is_valid_and_printed() {
    let out = dripgate(&["check-config", "--config", &example_config()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[upstream]"));
    assert!(text.contains("url = \"http://127.0.0.1:3000\""));
}

#[test]
fn unknown_key_exits_2_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\nconect_timeout = \"1s\"\n",
    )
    .unwrap();
    let out = dripgate(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad.toml:3:1"), "{err}");
    assert!(err.contains("upstream.conect_timeout"), "{err}");
    assert!(err.contains("unknown field `conect_timeout`"), "{err}");
}

#[test]
fn env_overrides_show_in_effective_config_and_bad_ones_are_named() {
    let out = Command::new(BIN)
        .args(["check-config", "--config", &example_config()])
        .env("DRIPGATE_UPSTREAM__URL", "http://127.0.0.1:4321")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("http://127.0.0.1:4321"));

    let out = Command::new(BIN)
        .args(["check-config", "--config", &example_config()])
        .env("DRIPGATE_UPSTREAM__TIMEOUT", "3s")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DRIPGATE_UPSTREAM__TIMEOUT"), "{err}");
}

#[test]
fn semantic_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[upstream]\nurl = \"ftp://legacy\"\n").unwrap();
    let out = dripgate(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream.url"));
}

#[test]
fn version_and_help_with_examples() {
    let out = dripgate(&["--version"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = dripgate(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:"), "{help}");
    assert!(help.contains("check-config"));
}

/// Starts `dripgate serve` with `workers` async workers on free ports and returns the child and
/// its proxy and admin addresses as read from its start-up log line.
fn spawn_serve(
    upstream: std::net::SocketAddr,
    workers: usize,
) -> (std::process::Child, String, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--config", &example_config()])
        .env("DRIPGATE_SERVER__WORKER_THREADS", workers.to_string())
        .env("DRIPGATE_SERVER__LISTEN", "127.0.0.1:0")
        .env("DRIPGATE_ADMIN__LISTEN", "127.0.0.1:0")
        .env("DRIPGATE_UPSTREAM__URL", format!("http://{upstream}"))
        .env("DRIPGATE_SHUTDOWN__DELAY", "200ms")
        .env("DRIPGATE_LOG__FORMAT", "json")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let start = lines
        .by_ref()
        .take(50)
        .map(Result::unwrap)
        .find(|l| l.contains("dripgate serving"))
        .expect("start-up line");
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let v: serde_json::Value = serde_json::from_str(&start).unwrap();
    (
        child,
        v["listen"].as_str().unwrap().to_owned(),
        v["admin"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_request_then_exits_0() {
    sigterm_drains_then_exits_0(0).await;
}

/// The same with one worker, which runs on tokio's current-thread scheduler.
#[tokio::test]
async fn one_worker_serves_and_drains_on_sigterm() {
    sigterm_drains_then_exits_0(1).await;
}

async fn sigterm_drains_then_exits_0(workers: usize) {
    let app = LegacyApp::start().await;
    let (mut child, listen, admin) = spawn_serve(app.addr, workers);
    let health = Command::new(BIN)
        .args(["health", "--url", &format!("http://{admin}/readyz")])
        .output()
        .unwrap();
    assert!(health.status.success());

    let slow = tokio::spawn(
        common::client()
            .get(format!("http://{listen}/slow?ms=1000"))
            .send(),
    );
    for _ in 0..200 {
        if app.requests.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let resp = slow.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "slow done");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    let health = Command::new(BIN)
        .args([
            "health",
            "--url",
            &format!("http://{admin}/readyz"),
            "--timeout-secs",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(health.status.code(), Some(1));
}

// ---- check-config opens what serve opens, and refuses what serve refuses, alike. ----

/// Writes `text` as `dripgate.toml` in `dir`.
fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("dripgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `dripgate <command> --config path` with free ports; its exit code and stderr.
fn run_with(command: &str, path: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args([command, "--config", path.to_str().unwrap()])
        .env("DRIPGATE_SERVER__LISTEN", "127.0.0.1:0")
        .env("DRIPGATE_ADMIN__LISTEN", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

/// A `[legacy]` export in `dir` and the config lines naming it and a ledger in `ledger_dir`.
fn export_and_ledger(dir: &std::path::Path, ledger_dir: &std::path::Path) -> String {
    let export = dir.join("users.csv");
    std::fs::write(
        &export,
        "id,login,email,hash\n1,ann,ann@example.com,$2y$04$abcdefghijklmnopqrstuu5Mh3zLFz7s0h3rjIWvV/0YFHl6.Q6C\n",
    )
    .unwrap();
    format!(
        "[legacy]\npreset = \"generic\"\n[legacy.export]\npath = \"{}\"\n\
         [ledger]\nurl = \"sqlite://{}/ledger.db\"\n[migration]\nphase = \"observe\"\n",
        export.display(),
        ledger_dir.display()
    )
}

#[test]
fn a_mismatched_tls_pair_fails_check_config_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::tls::TestCa::new();
    let (cert, _) = ca.issue(dir.path(), "first");
    let key = dir.path().join("other-key.pem");
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let path = write_config(
        dir.path(),
        &format!(
            "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let (code, err) = run_with("check-config", &path);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&cert.display().to_string()), "{err}");
    assert!(err.contains(&key.display().to_string()), "{err}");
    assert!(err.contains("do not match"), "{err}");
    // serve refuses the same pair.
    let (code, serve_err) = run_with("serve", &path);
    assert_ne!(code, Some(0));
    assert!(serve_err.contains("do not match"), "{serve_err}");
}

#[test]
fn credentials_in_the_upstream_url_are_refused_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let password = "pw-5e8d0c1b9a";
    let path = write_config(
        dir.path(),
        &format!("[upstream]\nurl = \"http://legacy-user:{password}@127.0.0.1:3000\"\n"),
    );
    for command in ["check-config", "serve"] {
        let (code, err) = run_with(command, &path);
        assert_eq!(code, Some(2), "{command}: {err}");
        assert!(err.contains("upstream.url"), "{err}");
        assert!(err.contains("credentials"), "{err}");
        assert!(!err.contains(password), "{err}");
        assert!(!err.contains("legacy-user"), "{err}");
    }
}

#[test]
fn migrate_without_a_provider_fails_check_config_as_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    let text = export_and_ledger(dir.path(), dir.path()).replace("observe", "migrate");
    let path = write_config(dir.path(), &text);
    let (code, check_err) = run_with("check-config", &path);
    assert_eq!(code, Some(2), "{check_err}");
    assert!(
        check_err.contains("phases migrate and route need a [provider] section"),
        "{check_err}"
    );
    let (_, serve_err) = run_with("serve", &path);
    assert_eq!(check_err, serve_err);
    // The same config in observe phase is fine (and opens the export and the ledger dir).
    let path = write_config(dir.path(), &export_and_ledger(dir.path(), dir.path()));
    let (code, err) = run_with("check-config", &path);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !dir.path().join("ledger.db").exists(),
        "check-config created the ledger"
    );
}

#[test]
fn an_unwritable_ledger_directory_fails_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let path = write_config(dir.path(), &export_and_ledger(dir.path(), &missing));
    let (code, err) = run_with("check-config", &path);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("ledger") && err.contains("does not exist"),
        "{err}"
    );

    // A read-only directory; where the tests run as root (permissions do not stop root),
    // /proc, which takes no new files.
    let read_only = dir.path().join("ro");
    std::fs::create_dir(&read_only).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
    let ledger_dir = if std::fs::write(read_only.join("probe"), "x").is_ok() {
        std::path::PathBuf::from("/proc")
    } else {
        read_only.clone()
    };
    let path = write_config(dir.path(), &export_and_ledger(dir.path(), &ledger_dir));
    let (code, err) = run_with("check-config", &path);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("ledger") && err.contains("not writable"),
        "{err}"
    );
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_missing_legacy_export_fails_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let text = export_and_ledger(dir.path(), dir.path()).replace("users.csv", "gone.csv");
    let path = write_config(dir.path(), &text);
    let (code, err) = run_with("check-config", &path);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("gone.csv"), "{err}");
}

#[test]
fn a_non_loopback_admin_listener_needs_a_token_which_check_config_redacts() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[admin]\nlisten = \"0.0.0.0:9090\"\n");
    let out = dripgate(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin.token") && err.contains("not a loopback"),
        "{err}"
    );

    let token = "tok-1c4f9e2b7a3d5e6f";
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let path = write_config(
        dir.path(),
        &format!(
            "[admin]\nlisten = \"0.0.0.0:9090\"\ntoken = {{ file = \"{}\" }}\n",
            token_file.display()
        ),
    );
    let out = dripgate(&["check-config", "--config", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("token = \"<redacted: file"), "{text}");
    assert!(!text.contains(token), "{text}");
}
