//! `dripgate hash verify` end to end: the JSONL mode over the fixtures and the exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

fn run(args: &[&str], stdin: &[u8]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dripgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn jsonl_over_the_fixtures() {
    let input = include_str!("../fixtures/hash-vectors.jsonl");
    let (code, out) = run(&["hash", "verify", "--jsonl"], input.as_bytes());
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 60);
    for (line, v) in lines.iter().zip(input.lines()) {
        let v: serde_json::Value = serde_json::from_str(v).unwrap();
        let want = serde_json::json!({ "ok": v["password_matches"] });
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(line).unwrap(),
            want,
            "{}",
            v["id"]
        );
    }
    let (_, out) = run(
        &["hash", "verify", "--jsonl"],
        b"{\"hash\":\"nope\",\"password\":\"x\"}\n",
    );
    assert!(out.contains("\"error\""));
}

#[test]
fn exit_codes() {
    let h = "$2y$04$nqGXDXoUonurGkhUWrcva.XDMPmkZLA.PoxuCdiRVLwSvYyjyVd4e";
    assert_eq!(
        run(&["hash", "verify", "--hash", h], b"ispllopei4226\n").0,
        0
    );
    assert_eq!(run(&["hash", "verify", "--hash", h], b"ispllopei422").0, 1);
    assert_eq!(
        run(
            &["hash", "verify", "--hash", "junk", "--format", "bcrypt"],
            b"x"
        )
        .0,
        2
    );
    let (code, out) = run(&["hash", "formats"], b"");
    assert_eq!(code, 0);
    assert!(out.contains("wordpress") && out.contains("argon2"));
}
