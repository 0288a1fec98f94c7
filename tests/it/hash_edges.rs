//! Edge cases of the hash module: locked values, malformed values, caps, Latin-1 bytes, the
//! bounded pool, and a seeded property test that parsing never panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dripgate::hash::{
    self, Format, HashConfig, HashError, HashMetrics, LegacyHash, Password, SaltPosition,
    VerifyError, VerifyPool,
};

fn caps() -> HashConfig {
    HashConfig::default()
}

#[test]
fn locked_values_never_verify() {
    for h in [
        "!",
        "*",
        "!!",
        "*LK*",
        "*0",
        "!$6$ib2rpW.228CstWVn$y6JOcxdc",
        "!$2y$04$nqGXDXoUonurGkhUWrcva.XDMPmkZLA.PoxuCdiRVLwSvYyjyVd4e",
    ] {
        for f in Format::ALL {
            let r = hash::verify(&LegacyHash::new(f, h), b"", &caps());
            assert_eq!(r, Ok(false), "{f} {h}");
        }
        assert_eq!(hash::verify(&LegacyHash::auto(h), b"x", &caps()), Ok(false));
    }
}

#[test]
fn malformed_values_are_typed_errors() {
    let cases = [
        (Format::Bcrypt, "$2y$04$short"),
        (Format::Crypt, "ab"),
        (Format::Crypt, "$9$whatever"),
        (Format::Md5, "zz"),
        (Format::Sha256, "04b29c5e0c3e9573004e070295b0550b"),
        (Format::Phpass, "$P$Bshort"),
        (Format::Drupal, "$Q$notdrupal"),
        (Format::Django, "pbkdf2_sha256$x$salt$hash"),
        (Format::Argon2, "$argon2id$v=19$m=1024$salt$hash"),
        (Format::Pbkdf2, "$pbkdf2-sha256$0$c2FsdA$aGFzaA"),
        (Format::Scrypt, "$scrypt$ln=0,r=8,p=1$c2FsdA$aGFzaA"),
    ];
    for (f, h) in cases {
        let r = hash::verify(&LegacyHash::new(f, h), b"password", &caps());
        assert!(r.is_err(), "{f} {h}: {r:?}");
    }
    assert_eq!(
        hash::verify(&LegacyHash::auto("not a hash"), b"x", &caps()),
        Err(HashError::Undetected)
    );
}

#[test]
fn errors_never_contain_the_hash_or_password() {
    let secret_hash = "$2y$04$SECRETSECRETSECRETSECRETSECRET";
    let e = hash::verify(
        &LegacyHash::new(Format::Bcrypt, secret_hash),
        b"hunter2",
        &caps(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains("SECRET") && !msg.contains("hunter2"), "{msg}");
    assert!(!format!("{e:?}").contains("SECRET"));
}

#[test]
fn work_factor_caps() {
    let tight = HashConfig {
        bcrypt_max_cost: 4,
        crypt_max_rounds: 5000,
        phpass_max_count_log2: 10,
        pbkdf2_max_iterations: 999,
        max_memory_kib: 1023,
        ..HashConfig::default()
    };
    let cases = [
        (
            Format::Bcrypt,
            "$2a$05$Czf2asH2yMyqVE88Emml6u6Mk5Hbk6.PAaiCDauUE8i1Xm7lRzndm",
        ),
        (
            Format::Crypt,
            "$5$rounds=10000$OZBRjYzI4eYf/oRm$t1F8tz7ud/JSEv4G5p5ghUKcWr8J4kHYEwjusIkeud8",
        ),
        (Format::Wordpress, "$P$BoQjkeN0kFwKVNabNE6n1VyuxNIKCo0"),
        (
            Format::Drupal,
            "$S$DmXyMekx5pqsQnUba0PQFLdKIsOmI.g1icjvnuVAnyZ7ltW4ojAz",
        ),
        (
            Format::Django,
            "pbkdf2_sha256$1000$xAyHRtXttYb7$uXIHHrqHRZjyBrJ0HVClIuFybEt8VVSuWMHPLWyLkDo=",
        ),
        (
            Format::Argon2,
            "$argon2id$v=19$m=65536,t=4,p=1$g2gSyeT0Vc9GxWAyT+8s+g$3GPThPcXpW3eGfyLBPPk0+bUy3Vd/GclUronFK3Bi7I",
        ),
        (
            Format::Scrypt,
            "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0MTIzNA$FE8Vp8fwcNY9jOZ1Bw2dENy7rSGNBAiIrAbe5qNp2IE",
        ),
    ];
    for (f, h) in cases {
        let r = hash::verify(&LegacyHash::new(f, h), b"password", &tight);
        assert!(
            matches!(r, Err(HashError::CostTooHigh { .. })),
            "{f}: {r:?}"
        );
    }
    let long = vec![b'a'; caps().max_password_bytes + 1];
    assert!(matches!(
        hash::verify(
            &LegacyHash::new(Format::Md5, "04b29c5e0c3e9573004e070295b0550b"),
            &long,
            &caps()
        ),
        Err(HashError::PasswordTooLong { .. })
    ));
}

#[test]
fn latin1_password_bytes_verify() {
    // md5 of "pässword" encoded as Latin-1 (0xE4), as posted from an ISO-8859-1 page.
    let latin1 = b"p\xe4ssword";
    let h = LegacyHash::new(Format::Md5, "0126cf1f6e0dba240af4c5537ca51d0e");
    assert_eq!(hash::verify(&h, latin1, &caps()), Ok(true));
    assert_eq!(hash::verify(&h, "pässword".as_bytes(), &caps()), Ok(false));
    // bcrypt over Latin-1 bytes.
    let b = bcrypt::hash_with_salt(latin1, 4, [3u8; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    assert_eq!(
        hash::verify(&LegacyHash::auto(b), latin1, &caps()),
        Ok(true)
    );
}

#[test]
fn passlib_pbkdf2_and_scrypt() {
    // Made with Python's hashlib (pbkdf2_hmac, scrypt) in passlib's layout.
    for h in [
        "$pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0MTIzNA$Gv1ppJ66rBGZ4SMZjQl10XY734zFaJuHAY10Xd6pb.U",
        "$pbkdf2-sha512$1000$c2FsdHNhbHRzYWx0MTIzNA$jO1VfTTb6vUnXy3vwC1nAOIc7ZOal5/ChCzzH3WNpDMn0zsYpLn/iACzP91yo8s416cQM2K9DDdbvYtu3Pwwtw",
        "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0MTIzNA$FE8Vp8fwcNY9jOZ1Bw2dENy7rSGNBAiIrAbe5qNp2IE",
    ] {
        assert_eq!(
            hash::verify(&LegacyHash::auto(h), b"password", &caps()),
            Ok(true),
            "{h}"
        );
        assert_eq!(
            hash::verify(&LegacyHash::auto(h), b"passwore", &caps()),
            Ok(false),
            "{h}"
        );
    }
}

#[test]
fn salted_digest_settings_are_checked() {
    let h = LegacyHash::new(Format::Md5, "34afa672b3600c497c452f412fbfa492")
        .with_salt(Some(b"s".to_vec()));
    assert!(matches!(
        hash::verify(&h, b"x", &caps()),
        Err(HashError::Settings { .. })
    ));
    let h = LegacyHash::new(
        Format::Bcrypt,
        "$2y$04$nqGXDXoUonurGkhUWrcva.XDMPmkZLA.PoxuCdiRVLwSvYyjyVd4e",
    )
    .salted("s", SaltPosition::Prefix);
    assert!(matches!(
        hash::verify(&h, b"x", &caps()),
        Err(HashError::Settings { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_verifies_and_sheds_when_full() {
    let registry = prometheus::Registry::new();
    let metrics = HashMetrics::register(&registry).unwrap();
    let config = HashConfig {
        pool_size: 1,
        queue_limit: 1,
        ..HashConfig::default()
    };
    let pool = VerifyPool::new(config, metrics.clone()).unwrap();
    let slow = "$2y$10$eS.DTZ3X3QLOwj.MHHSjOOs9aLTa6WBwTwCI/N7M776diclWhV10K";
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            pool.verify(
                LegacyHash::auto(slow),
                Password::from_slice(b"isquvowyt2019"),
            )
            .await
        }));
        tokio::task::yield_now().await;
    }
    let mut ok = 0;
    let mut shed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => ok += 1,
            Err(VerifyError::Shed) => shed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        ok >= 1 && shed >= 1 && ok + shed == 6,
        "ok={ok} shed={shed}"
    );
    assert_eq!(metrics.shed.get(), shed);
    assert_eq!(metrics.in_flight.get(), 0);
    let text = dripgate::metrics::render(&registry).unwrap();
    assert!(text.contains("dripgate_hash_verify_duration_seconds_bucket{format=\"bcrypt\""));
    assert!(!text.contains("eS.DTZ3X3"));
    // A wrong password through the pool is Ok(false), a bad hash a typed error.
    assert!(
        !pool
            .verify(LegacyHash::auto(slow), Password::from_slice(b"no"))
            .await
            .unwrap()
    );
    assert!(matches!(
        pool.verify(
            LegacyHash::new(Format::Bcrypt, "bad"),
            Password::from_slice(b"no")
        )
        .await,
        Err(VerifyError::Hash(HashError::Malformed { .. }))
    ));
}

/// A small deterministic PRNG (xorshift64*), so the property test needs no extra crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn parsing_never_panics_on_mutated_or_random_input() {
    let text = include_str!("../fixtures/hash-vectors.jsonl");
    let seeds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["hash"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let alphabet: Vec<char> = "$./0123456789abcdefxyzABCXYZ_=+,!*U\u{0}\u{1f}é🙂 rounds=m=t=p=v=19"
        .chars()
        .collect();
    // Cheap caps so that a mutated cost cannot make the test slow.
    let caps = HashConfig {
        bcrypt_max_cost: 5,
        crypt_max_rounds: 2000,
        phpass_max_count_log2: 8,
        pbkdf2_max_iterations: 2000,
        max_memory_kib: 2048,
        argon2_max_time: 2,
        max_parallelism: 2,
        ..HashConfig::default()
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..4000 {
        let s: String = if i % 4 == 0 {
            (0..rng.below(100))
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect()
        } else {
            let mut chars: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
            for _ in 0..=rng.below(3) {
                match rng.below(3) {
                    0 if !chars.is_empty() => {
                        let at = rng.below(chars.len());
                        chars.remove(at);
                    }
                    1 => {
                        let at = rng.below(chars.len() + 1);
                        chars.insert(at, alphabet[rng.below(alphabet.len())]);
                    }
                    _ if !chars.is_empty() => {
                        let at = rng.below(chars.len());
                        chars[at] = alphabet[rng.below(alphabet.len())];
                    }
                    _ => {}
                }
            }
            chars.into_iter().collect()
        };
        let _ = hash::detect(&s);
        let f = Format::ALL[rng.below(Format::ALL.len())];
        let r = hash::verify(&LegacyHash::new(f, s.clone()), b"password", &caps);
        assert!(
            !matches!(r, Err(HashError::Internal { .. })),
            "{f} {s:?}: {r:?}"
        );
        let _ = hash::verify(&LegacyHash::auto(s), b"p\xe4ss\0word", &caps);
    }
}

/// The calling thread's scheduling policy and nice value, as the kernel reports them.
#[cfg(target_os = "linux")]
fn own_policy_and_nice() -> (thread_priority::ThreadSchedulePolicy, i64) {
    let policy = thread_priority::unix::thread_schedule_policy().unwrap();
    // Field 19 of /proc/thread-self/stat; fields are counted after the `(comm)` field, which
    // may itself contain spaces.
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 1..];
    let nice = after_comm
        .split_whitespace()
        .nth(16)
        .unwrap()
        .parse()
        .unwrap();
    (policy, nice)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn hash_threads_run_at_background_priority_unless_disabled() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
    for (background, policy, nice) in [
        (true, NormalThreadSchedulePolicy::Batch, 19),
        (
            false,
            NormalThreadSchedulePolicy::Other,
            own_policy_and_nice().1,
        ),
    ] {
        let registry = prometheus::Registry::new();
        let config = HashConfig {
            pool_size: 1,
            background_priority: background,
            ..HashConfig::default()
        };
        let pool = VerifyPool::new(config, HashMetrics::register(&registry).unwrap()).unwrap();
        let seen = pool.run(own_policy_and_nice).await.unwrap();
        assert_eq!(
            seen,
            (ThreadSchedulePolicy::Normal(policy), nice),
            "background = {background}"
        );
    }
}
