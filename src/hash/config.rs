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
    /// Verifications running at once on the blocking pool. Default: the number of CPU cores.
    pub pool_size: usize,
    /// Verifications allowed to wait for a worker; more are shed. Default 64.
    pub queue_limit: usize,
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
            pool_size: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_limit: 64,
        }
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
