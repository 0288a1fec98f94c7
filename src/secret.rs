//! Secrets in the config: given inline, from an environment variable, or from a file.
//!
//! A secret is resolved when the config loads and is kept as a [`SecretString`], so it never
//! shows in `Debug` output, logs or `check-config`, which prints only where it came from.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A resolved secret and a description of its source (never its value).
#[derive(Clone)]
pub struct Secret {
    value: SecretString,
    source: SecretSource,
}

/// Where a secret came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the config file itself (discouraged outside local demos).
    Inline,
    /// Read from the named environment variable.
    Env(String),
    /// Read from the file at this path (trailing newline removed).
    File(PathBuf),
}

impl Secret {
    /// Wraps a value given in code (tests, defaults).
    pub fn inline(value: impl Into<String>) -> Self {
        Self {
            value: SecretString::from(value.into()),
            source: SecretSource::Inline,
        }
    }

    /// The secret value; call only where it is sent to the system it is for.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    /// The secret wrapped as a [`SecretString`].
    pub fn secret_string(&self) -> &SecretString {
        &self.value
    }

    /// Where the secret came from.
    pub fn source(&self) -> &SecretSource {
        &self.source
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::inline(value)
    }
}

impl ExposeSecret<str> for Secret {
    fn expose_secret(&self) -> &str {
        self.value.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted>, {})", self.source)
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline => f.write_str("inline"),
            Self::Env(var) => write!(f, "env {var}"),
            Self::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("<redacted: {}>", self.source))
    }
}

/// The forms a secret may take in TOML: `"value"`, `{ env = "VAR" }` or `{ file = "/path" }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecretSpec {
    Inline(String),
    Env { env: String },
    File { file: PathBuf },
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = SecretSpec::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "a secret must be a string, { env = \"VAR\" } or { file = \"/path\" }",
            )
        })?;
        resolve(spec).map_err(serde::de::Error::custom)
    }
}

fn resolve(spec: SecretSpec) -> Result<Secret, String> {
    let (value, source) = match spec {
        SecretSpec::Inline(value) => (value, SecretSource::Inline),
        SecretSpec::Env { env } => {
            let value = std::env::var(&env)
                .map_err(|_| format!("secret environment variable {env} is not set"))?;
            (value, SecretSource::Env(env))
        }
        SecretSpec::File { file } => {
            let mut value = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read secret file {}: {e}", file.display()))?;
            let trimmed = value.trim_end_matches(['\r', '\n']).len();
            value.truncate(trimmed);
            (value, SecretSource::File(file))
        }
    };
    if value.is_empty() {
        return Err(format!("secret from {source} is empty"));
    }
    Ok(Secret {
        value: SecretString::from(value),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        s: Secret,
    }

    #[test]
    fn debug_and_serialize_never_show_the_value() {
        let h: Holder = toml::from_str("s = \"hunter2\"").unwrap();
        assert_eq!(h.s.expose(), "hunter2");
        assert!(!format!("{:?}", h.s).contains("hunter2"));
        let json = serde_json::to_string(&h.s).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
    }

    #[test]
    fn file_secret_drops_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "abc\n").unwrap();
        let text = format!("s = {{ file = {:?} }}", path.display().to_string());
        let h: Holder = toml::from_str(&text).unwrap();
        assert_eq!(h.s.expose(), "abc");
        assert_eq!(h.s.source(), &SecretSource::File(path));
    }

    #[test]
    fn missing_env_secret_is_an_error() {
        let err = toml::from_str::<Holder>("s = { env = \"DRIPGATE_TEST_SURELY_UNSET_VAR\" }")
            .err()
            .unwrap();
        assert!(err.to_string().contains("DRIPGATE_TEST_SURELY_UNSET_VAR"));
    }
}
