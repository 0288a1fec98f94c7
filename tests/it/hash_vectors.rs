//! Every vector of tests/fixtures/hash-vectors.jsonl, as its README says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dripgate::hash::{self, DigestEncoding, Format, HashConfig, LegacyHash, SaltPosition};
use serde_json::Value;

fn legacy(v: &Value) -> LegacyHash {
    let format: Format = v["format"].as_str().unwrap().parse().unwrap();
    let h = LegacyHash::new(format, v["hash"].as_str().unwrap());
    let h = h.with_salt(v["salt"].as_str().map(|s| s.as_bytes().to_vec()));
    let h = h.with_salt_position(
        v["salt_position"]
            .as_str()
            .map(|s| s.parse::<SaltPosition>().unwrap()),
    );
    h.with_encoding(
        v["encoding"]
            .as_str()
            .map(|s| s.parse::<DigestEncoding>().unwrap()),
    )
}

#[test]
fn every_fixture_vector() {
    let caps = HashConfig::default();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hash-vectors.jsonl"
    ))
    .unwrap();
    let mut failures = Vec::new();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_str().unwrap().to_owned();
        let h = legacy(&v);
        let mut check =
            |what: &str, pw: &str, want: bool| match hash::verify(&h, pw.as_bytes(), &caps) {
                Ok(got) if got == want => {}
                other => failures.push(format!("{id} {what}: want {want}, got {other:?}")),
            };
        check(
            "password",
            v["password"].as_str().unwrap(),
            v["password_matches"].as_bool().unwrap(),
        );
        check(
            "wrong_password",
            v["wrong_password"].as_str().unwrap(),
            false,
        );
        for a in v["also_accepts"].as_array().unwrap() {
            check(
                "also_accepts",
                a.as_str().unwrap(),
                v["password_matches"].as_bool().unwrap(),
            );
        }
        for r in v["also_rejects"].as_array().unwrap() {
            check("also_rejects", r.as_str().unwrap(), false);
        }
        // Auto-detection must agree wherever the value is self-describing.
        let auto = LegacyHash::auto(v["hash"].as_str().unwrap());
        if v["salt"].is_null()
            && !["wordpress", "drupal", "django", "crypt", "md5", "sha256"]
                .contains(&v["format"].as_str().unwrap())
        {
            if let Ok(got) = hash::verify(&auto, v["password"].as_str().unwrap().as_bytes(), &caps)
            {
                if got != v["password_matches"].as_bool().unwrap() {
                    failures.push(format!("{id} auto: got {got}"));
                }
            } else {
                failures.push(format!("{id} auto: error"));
            }
        }
        n += 1;
    }
    assert_eq!(n, 60, "fixture file should hold 60 vectors");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
