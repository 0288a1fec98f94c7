//! Verify cost per format, with std::time (no criterion). Run: `cargo bench --bench hash_verify`.
//!
//! For bcrypt the figure is compared with the `bcrypt` crate's own `verify` at the same cost in
//! the same run; dripgate's overhead should stay within 10 %.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use dripgate::hash::{self, HashConfig, LegacyHash};

/// Median ns per call of `f` over several batches lasting about `budget` in total.
fn measure(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    f();
    let once = start.elapsed().max(Duration::from_nanos(1));
    let per_batch = budget / 7;
    let iters = (per_batch.as_nanos() / once.as_nanos()).clamp(1, 100_000) as u32;
    let mut samples = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        samples.push(t.elapsed().as_nanos() as f64 / f64::from(iters));
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn main() {
    let caps = HashConfig::default();
    let budget = Duration::from_millis(
        std::env::var("BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1400),
    );
    let bcrypt10 = "$2y$10$eS.DTZ3X3QLOwj.MHHSjOOs9aLTa6WBwTwCI/N7M776diclWhV10K";
    let bcrypt10_pw = "isquvowyt2019";

    // (label, format, hash, password) — all from tests/fixtures/hash-vectors.jsonl.
    let cases: Vec<(&str, LegacyHash, &str)> = vec![
        ("bcrypt cost 10", LegacyHash::auto(bcrypt10), bcrypt10_pw),
        (
            "bcrypt $2x$ cost 5",
            LegacyHash::auto("$2x$05$d1esBfvxPNEB9VMysiQNT.FT79qPx3TN6DR4k7S9Dz03sgIj6.us2"),
            "x",
        ),
        (
            "md5 salted hex",
            LegacyHash::new(hash::Format::Md5, "34afa672b3600c497c452f412fbfa492")
                .salted("WT1JYxNl3niIpkew", hash::SaltPosition::Prefix),
            "x",
        ),
        (
            "sha256 unsalted",
            LegacyHash::auto("1f9ece4f1a181ee3f95a778c01c915a2ccca1592decb6507e6e7331106b68f78"),
            "x",
        ),
        ("crypt DES", LegacyHash::auto("EqwJklPbKP6sM"), "x"),
        (
            "crypt md5-crypt $1$",
            LegacyHash::auto("$1$nThI5Hvf$0Mx1xYOJDzG54DjJqGwDL/"),
            "x",
        ),
        (
            "crypt sha256-crypt 5000",
            LegacyHash::auto("$5$2BYUEDsIvXTuHXMm$J.ePR8YHJ08dFGc7PXfLoRxuHTHQzfYNbSD6Dic2Bk7"),
            "x",
        ),
        (
            "crypt sha512-crypt 5000",
            LegacyHash::auto(
                "$6$3cM1zmilPhG/sMMZ$oI.CrrY5Xj23krB1Bp7eTX2SxpOfG8aOzcnY.Np57nmHfGKtIFBVKftjutGU2Lv.DRoA34Jap.Fcg4hdJEO8b1",
            ),
            "x",
        ),
        (
            "crypt sha1-crypt 480",
            LegacyHash::auto("$sha1$480$36emfQhD$yCUoCtFNvBsW1VHS1rENiNNpGXbJ"),
            "x",
        ),
        (
            "crypt bsdi 725",
            LegacyHash::auto("_J9..HjKFzCKVe41WvYU"),
            "x",
        ),
        (
            "wordpress $wp$ cost 10",
            LegacyHash::new(
                hash::Format::Wordpress,
                "$wp$2y$10$DuPlxM2ZM/UenSxIu.55lO35Rl.oq9VO3wX63lR/ElK583Cuv/9ma",
            ),
            "x",
        ),
        (
            "wordpress phpass 2^13",
            LegacyHash::new(
                hash::Format::Wordpress,
                "$P$BoQjkeN0kFwKVNabNE6n1VyuxNIKCo0",
            ),
            "x",
        ),
        (
            "drupal $S$ 2^15",
            LegacyHash::auto("$S$DmXyMekx5pqsQnUba0PQFLdKIsOmI.g1icjvnuVAnyZ7ltW4ojAz"),
            "x",
        ),
        (
            "django pbkdf2_sha256 10000",
            LegacyHash::auto(
                "pbkdf2_sha256$10000$wiz1PhWVUgEXkkXY0utkzY$S1lL5oqhk/XMbgwMZivNyMURjeoSO9T4V+R0huvUy4w=",
            ),
            "x",
        ),
        (
            "argon2id m=65536 t=4",
            LegacyHash::auto(
                "$argon2id$v=19$m=65536,t=4,p=1$g2gSyeT0Vc9GxWAyT+8s+g$3GPThPcXpW3eGfyLBPPk0+bUy3Vd/GclUronFK3Bi7I",
            ),
            "x",
        ),
        (
            "argon2id m=1024 t=2",
            LegacyHash::auto(
                "$argon2id$v=19$m=1024,t=2,p=2$8txc/scGQy9jfvqVqHNNNQ$F0N2Dnjm80E5a3Uznr8sRnZdbow/sNgctkxvmRttNjA",
            ),
            "x",
        ),
    ];

    println!("{:<32} {:>16}", "format", "ns/verify");
    // Interleave the two so machine noise hits both alike; compare the medians.
    let (mut raw_s, mut ours_s) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        raw_s.push(measure(budget / 7, || {
            black_box(bcrypt::verify(black_box(bcrypt10_pw), black_box(bcrypt10)).unwrap());
        }));
        ours_s.push(measure(budget / 7, || {
            black_box(hash::verify(&cases[0].1, black_box(bcrypt10_pw.as_bytes()), &caps).unwrap());
        }));
    }
    raw_s.sort_by(|a, b| a.total_cmp(b));
    ours_s.sort_by(|a, b| a.total_cmp(b));
    let (raw, ours) = (raw_s[4], ours_s[4]);
    println!("{:<32} {:>16.0}", "bcrypt crate verify, cost 10", raw);
    println!("{:<32} {:>16.0}", "dripgate bcrypt, cost 10", ours);
    println!("dripgate/bcrypt-crate ratio: {:.3}", ours / raw);
    for (label, h, pw) in cases.iter().skip(1) {
        let ns = measure(budget, || {
            let _ = black_box(hash::verify(h, black_box(pw.as_bytes()), &caps));
        });
        println!("{label:<32} {ns:>16.0}");
    }
}
