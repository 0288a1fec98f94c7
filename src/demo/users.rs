//! The demo's legacy user table: a SQLite file with generated users in mixed hash formats.
//!
//! Every fifth user shares one format: bcrypt (cost 4), md5 and sha256 salted with a separate
//! `salt` column (suffix: `H(password ‖ salt)`), phpass `$P$` (WordPress) and sha512-crypt `$6$`.
//! Costs are kept at their minimum so that a few thousand users are generated in about a second.

use std::path::Path;

use md5::{Digest, Md5};
use rand::Rng;
use sha_crypt::{CustomizedPasswordHasher as _, Params, ShaCrypt};
use sha2::Sha256;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::DemoError;

/// One generated user, with the plaintext password the demo chose for it.
#[derive(Debug, Clone)]
pub struct SampleUser {
    /// Sign-in email.
    pub email: String,
    /// The plaintext password (demo data only).
    pub password: String,
    /// The label of the stored hash format, e.g. `bcrypt` or `phpass (WordPress $P$)`.
    pub format: &'static str,
}

/// A generated row of the `users` table.
struct Row {
    email: String,
    given_name: String,
    family_name: String,
    hash: String,
    salt: Option<String>,
    format: &'static str,
}

/// The formats in rotation: (value of the `format` column, label shown to people).
const FORMATS: [(&str, &str); 5] = [
    ("bcrypt", "bcrypt"),
    ("md5", "md5 + salt column"),
    ("sha256", "sha256 + salt column"),
    ("phpass", "phpass (WordPress $P$)"),
    ("crypt", "sha512-crypt ($6$)"),
];

const GIVEN: [&str; 8] = [
    "Ada", "Brian", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro",
];
const FAMILY: [&str; 8] = [
    "Lovelace",
    "Kernighan",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Singh",
];

/// Phpass's base64 alphabet.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Creates `path` (replacing an existing file) with `count` users; returns one sample user of
/// each format (the first users, so they are easy to find).
pub async fn generate(path: &Path, count: usize) -> Result<Vec<SampleUser>, DemoError> {
    let (rows, samples) = tokio::task::spawn_blocking(move || make_rows(count))
        .await
        .map_err(|e| DemoError::Setup(format!("user generation stopped: {e}")))??;
    if path.exists() {
        std::fs::remove_file(path)
            .map_err(|e| DemoError::Setup(format!("cannot replace {}: {e}", path.display())))?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(sql_error)?;
    sqlx::query(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, \
         given_name TEXT, family_name TEXT, hash TEXT NOT NULL, salt TEXT, format TEXT NOT NULL)",
    )
    .execute(&pool)
    .await
    .map_err(sql_error)?;
    let mut tx = pool.begin().await.map_err(sql_error)?;
    for row in &rows {
        sqlx::query(
            "INSERT INTO users (email, given_name, family_name, hash, salt, format) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&row.email)
        .bind(&row.given_name)
        .bind(&row.family_name)
        .bind(&row.hash)
        .bind(&row.salt)
        .bind(row.format)
        .execute(&mut *tx)
        .await
        .map_err(sql_error)?;
    }
    tx.commit().await.map_err(sql_error)?;
    pool.close().await;
    Ok(samples)
}

fn sql_error(e: sqlx::Error) -> DemoError {
    DemoError::Setup(format!("legacy user table: {e}"))
}

fn make_rows(count: usize) -> Result<(Vec<Row>, Vec<SampleUser>), DemoError> {
    let mut rng = rand::rng();
    let mut rows = Vec::with_capacity(count);
    let mut samples = Vec::new();
    for i in 0..count {
        let (format, label) = FORMATS[i % FORMATS.len()];
        let given = GIVEN[i % GIVEN.len()];
        let family = FAMILY[(i / GIVEN.len()) % FAMILY.len()];
        let email = format!(
            "{}.{}{}@example.com",
            given.to_lowercase(),
            family.to_lowercase(),
            i + 1
        );
        let password = format!(
            "{}-{:06}",
            given.to_lowercase(),
            rng.random_range(0..1_000_000)
        );
        let (hash, salt) = hash_password(format, password.as_bytes(), &mut rng)?;
        if i < FORMATS.len() {
            samples.push(SampleUser {
                email: email.clone(),
                password,
                format: label,
            });
        }
        rows.push(Row {
            email,
            given_name: given.to_owned(),
            family_name: family.to_owned(),
            hash,
            salt,
            format,
        });
    }
    Ok((rows, samples))
}

/// The stored hash (and separate salt, for the salted digests) of `password` in `format`.
fn hash_password(
    format: &str,
    password: &[u8],
    rng: &mut impl Rng,
) -> Result<(String, Option<String>), DemoError> {
    let salt: String = (0..8)
        .map(|_| char::from(ITOA64[rng.random_range(0..64)]))
        .collect();
    let salted = [password, salt.as_bytes()].concat();
    Ok(match format {
        "bcrypt" => (
            bcrypt::hash(password, 4).map_err(|e| DemoError::Setup(format!("bcrypt: {e}")))?,
            None,
        ),
        "md5" => (hex::encode(Md5::digest(&salted)), Some(salt)),
        "sha256" => (hex::encode(Sha256::digest(&salted)), Some(salt)),
        "phpass" => (phpass(password, &salt, 8), None),
        _ => {
            let raw_salt: [u8; 12] = rng.random();
            let params = Params::new(Params::ROUNDS_MIN)
                .map_err(|e| DemoError::Setup(format!("sha512-crypt: {e}")))?;
            let hash = ShaCrypt::SHA512
                .hash_password_customized(password, &raw_salt, None, None, params)
                .map_err(|e| DemoError::Setup(format!("sha512-crypt: {e}")))?;
            (hash.to_string(), None)
        }
    })
}

/// A phpass portable hash `$P$`: `h = md5(salt ‖ pw)`, then 2^`count_log2` times
/// `h = md5(h ‖ pw)`, written as the setting plus phpass base64 of `h`.
pub fn phpass(password: &[u8], salt: &str, count_log2: u8) -> String {
    let mut h = Md5::digest([salt.as_bytes(), password].concat()).to_vec();
    for _ in 0..(1u64 << count_log2) {
        h = Md5::digest([h.as_slice(), password].concat()).to_vec();
    }
    let mut out = String::from("$P$");
    out.push(char::from(ITOA64[usize::from(count_log2 & 0x3f)]));
    out.push_str(salt);
    for chunk in h.chunks(3) {
        let mut value = 0u32;
        for (k, b) in chunk.iter().enumerate() {
            value |= u32::from(*b) << (8 * k);
        }
        for k in 0..=chunk.len() {
            out.push(char::from(ITOA64[((value >> (6 * k)) & 0x3f) as usize]));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::hash::{HashConfig, LegacyHash, SaltPosition, verify};

    #[test]
    fn every_generated_format_verifies_with_the_real_verifier() {
        let (rows, samples) = make_rows(10).unwrap();
        assert_eq!(samples.len(), FORMATS.len());
        for (row, sample) in rows.iter().zip(&samples) {
            let format = row.format.parse().unwrap();
            let mut hash = LegacyHash::new(format, row.hash.clone());
            if let Some(salt) = &row.salt {
                hash = hash.salted(salt.clone(), SaltPosition::Suffix);
            }
            let caps = HashConfig::default();
            assert!(
                verify(&hash, sample.password.as_bytes(), &caps).unwrap(),
                "{}",
                row.format
            );
            assert!(!verify(&hash, b"wrong", &caps).unwrap(), "{}", row.format);
        }
    }
}
