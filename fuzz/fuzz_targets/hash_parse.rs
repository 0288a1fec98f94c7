//! Fuzzes format detection and every format's parser with cheap caps: must never panic.
#![no_main]

use dripgate::hash::{self, Format, HashConfig, LegacyHash};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let caps = HashConfig {
        bcrypt_max_cost: 4,
        crypt_max_rounds: 1000,
        phpass_max_count_log2: 7,
        pbkdf2_max_iterations: 1000,
        max_memory_kib: 64,
        argon2_max_time: 1,
        max_parallelism: 1,
        ..HashConfig::default()
    };
    let _ = hash::detect(s);
    let _ = hash::verify(&LegacyHash::auto(s), b"password", &caps);
    for f in Format::ALL {
        let _ = hash::verify(&LegacyHash::new(f, s), b"p\xe4ss", &caps);
    }
});
