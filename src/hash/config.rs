//! `[hash]` config: work-factor caps and the verification pool's size.

use serde::{Deserialize, Serialize};

/// Caps on the work a stored hash may ask for, and the blocking pool's size.
///
/// A hash whose parameters exceed a cap is not verified (`HashError::CostTooHigh`), so a hostile
/// or corrupt row cannot pin a core. Defaults are documented on each field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashConfig {
    /// Highest bcrypt cost verified (log2 rounds). Default 16 (about 4 s per verify on one core).
    pub bcrypt_max_cost: u32,
    /// Highest `rounds` for sha256/sha512-crypt, sha1-crypt and BSDi DES. Default 1 000 000.
    pub crypt_max_rounds: u32,
    /// Highest phpass/Drupal log2 iteration count. Default 20 (WordPress uses 13, Drupal 15–16).
    pub phpass_max_count_log2: u32,
    /// Highest PBKDF2 iteration count (Django, passlib). Default 2 000 000.
    pub pbkdf2_max_iterations: u32,
    /// Highest memory an argon2 or scrypt hash may use, in KiB. Default 262 144 (256 MiB).
    pub max_memory_kib: u32,
    /// Highest argon2 time cost `t`. Default 16.
    pub argon2_max_time: u32,
    /// Highest argon2 lanes `p` or scrypt `p`. Default 16.
    pub max_parallelism: u32,
    /// Longest password verified, in bytes. Default 4096 (WordPress's limit).
    pub max_password_bytes: usize,
    /// Password hashing threads (legacy verifications and, for Kinde, the bcrypt of the password
    /// sent to the provider). Default: the number of CPU cores minus one (at least 1), so
    /// pass-through traffic always keeps a core.
    pub pool_size: usize,
    /// Verifications allowed to wait for a worker; more are shed. Default 64.
    pub queue_limit: usize,
    /// Run the hashing threads at the lowest CPU priority (nice 19, `SCHED_BATCH` on Linux), so
    /// that proxied requests win the CPU whenever both want it. Migration is background work.
    /// Default true.
    pub background_priority: bool,
}

impl Default for HashConfig {
    fn default() -> Self {
        HashConfig {
            bcrypt_max_cost: 16,
            crypt_max_rounds: 1_000_000,
            phpass_max_count_log2: 20,
            pbkdf2_max_iterations: 2_000_000,
            max_memory_kib: 262_144,
            argon2_max_time: 16,
            max_parallelism: 16,
            max_password_bytes: 4096,
            pool_size: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .max(1),
            queue_limit: 64,
            background_priority: true,
        }
    }
}

impl HashConfig {
    /// The configured cap of a work-factor parameter, named as in
    /// [`HashError::CostTooHigh`](super::HashError::CostTooHigh).
    pub fn cap(&self, param: &str) -> Option<u64> {
        let cap = match param {
            "cost" => self.bcrypt_max_cost,
            "rounds" => self.crypt_max_rounds,
            "count_log2" => self.phpass_max_count_log2,
            "iterations" => self.pbkdf2_max_iterations,
            "memory_kib" => self.max_memory_kib,
            "time" => self.argon2_max_time,
            "parallelism" => self.max_parallelism,
            _ => return None,
        };
        Some(u64::from(cap))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_config() {
        let c: HashConfig = serde_json::from_str(r#"{"bcrypt_max_cost": 12}"#).unwrap();
        assert_eq!(c.bcrypt_max_cost, 12);
        assert_eq!(c.queue_limit, HashConfig::default().queue_limit);
        assert!(serde_json::from_str::<HashConfig>(r#"{"nope": 1}"#).is_err());
        assert!(HashConfig::default().pool_size >= 1);
    }
}
