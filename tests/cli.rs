//! The `dripgate` binary: check-config, --version/--help, health, serve with SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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
