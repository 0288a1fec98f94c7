//! Reading the config: TOML text → environment overlay → typed [`Config`] → validation.
//!
//! Environment overrides: `DRIPGATE_<SECTION>__<KEY>` (double underscore between levels, any
//! case) sets `section.key`. A value is read as TOML when it parses as one (`8080`, `true`,
//! `["a", "b"]`, `[{ method = "POST", path = "/login" }]`) and as a plain string otherwise;
//! where the file already holds a string the value stays a string, and where it holds a list a
//! value without brackets is split on commas. For a secret key `k`, `DRIPGATE_..._K_FILE=/path`
//! reads the secret from that file. Variables without `__` (`DRIPGATE_CONFIG`,
//! `DRIPGATE_TEST_*`) are not overrides.

use std::path::Path;

use super::Config;

/// Keys whose values are secrets: they accept the `_FILE` environment form.
pub const SECRET_KEYS: &[&str] = &[
    "admin.token",
    "provider.kinde.client_secret",
    "provider.authgear.private_key_pem",
    "provider.http_provider.signing_key",
    "provider.keycloak.client_secret",
    "legacy.database_url",
    "ledger.url",
    "ledger.fingerprint_key",
];

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or a key is unknown or of the wrong type.
    #[error("{origin}: {key}{message}")]
    Parse {
        /// `file:line:column`, or the environment variable that caused it.
        origin: String,
        /// The key at fault, followed by ": " when known.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("invalid value for {key}: {message}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The effective config could not be rendered.
    #[error("cannot render config: {0}")]
    Render(String),
}

/// The operator's to fix; reading the same file again gives the same answer.
impl crate::failure::Classified for ConfigError {
    fn blame(&self) -> crate::failure::Blame {
        crate::failure::Blame::Config
    }

    fn retry(&self) -> crate::failure::Retry {
        crate::failure::Retry::Never
    }
}

/// Loads, overlays the process environment onto, and validates the config at `path`.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let config = parse_str(&text, &path.display().to_string(), std::env::vars())?;
    config.validate()?;
    Ok(config)
}

/// Parses TOML `text` (named `origin` in errors) and applies the `DRIPGATE_*` overrides in `env`.
/// Does not run [`Config::validate`].
pub fn parse_str(
    text: &str,
    origin: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    // Parse the text as a typed Config first: only then do errors carry a position.
    toml::from_str::<Config>(text).map_err(|e| located_error(text, origin, &e))?;
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| located_error(text, origin, &e))?;
    apply_env_overrides(&mut table, env)
}

/// Applies every `DRIPGATE_*__*` variable in `env` to `table` and deserializes the result.
/// Variables are applied in sorted order and checked together, so that keys that are only valid
/// as a group (a `[server.tls]` section's certificate and key) can all come from the environment.
/// When the result is invalid, the error names the variable without which it would be valid.
pub fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| {
            name.strip_prefix("DRIPGATE_")
                .is_some_and(|rest| rest.contains("__"))
        })
        .collect();
    overrides.sort();
    let file = table.clone();
    for (name, value) in &overrides {
        set_override(table, name, value)?;
    }
    deserialize(table)
        .map(Config::with_preset_defaults)
        .map_err(|e| ConfigError::Parse {
            origin: blame(&file, &overrides),
            key: String::new(),
            message: e.message().to_owned(),
        })
}

/// Where an invalid config came from: the one variable whose removal makes the file plus the
/// other overrides valid, else the config as a whole. Runs only on the error path.
fn blame(file: &toml::Table, overrides: &[(String, String)]) -> String {
    let culprit = overrides.iter().enumerate().find_map(|(skip, (name, _))| {
        let mut table = file.clone();
        let applied = (overrides.iter().enumerate())
            .filter(|(i, _)| *i != skip)
            .try_for_each(|(_, (n, v))| set_override(&mut table, n, v));
        (applied.is_ok() && deserialize(&table).is_ok()).then_some(name)
    });
    match culprit {
        Some(name) => format!("environment variable {name}"),
        None => "config".to_owned(),
    }
}

fn deserialize(table: &toml::Table) -> Result<Config, toml::de::Error> {
    toml::Value::Table(table.clone()).try_into()
}

fn set_override(table: &mut toml::Table, name: &str, raw: &str) -> Result<(), ConfigError> {
    let rest = name.trim_start_matches("DRIPGATE_").to_ascii_lowercase();
    let mut path: Vec<String> = rest.split("__").map(str::to_owned).collect();
    let bad = |message: &str| ConfigError::Parse {
        origin: format!("environment variable {name}"),
        key: String::new(),
        message: message.to_owned(),
    };
    if path.iter().any(String::is_empty) {
        return Err(bad("empty key segment (check for a stray '__')"));
    }
    let mut value = None;
    if let Some(stem) = path.last().and_then(|last| last.strip_suffix("_file")) {
        let mut secret_path = path[..path.len() - 1].to_vec();
        secret_path.push(stem.to_owned());
        if SECRET_KEYS.contains(&secret_path.join(".").as_str()) {
            let mut file = toml::Table::new();
            file.insert("file".to_owned(), toml::Value::String(raw.to_owned()));
            value = Some(toml::Value::Table(file));
            path = secret_path;
        }
    }
    let Some((leaf, parents)) = path.split_last() else {
        return Err(bad("no key"));
    };
    let mut node = table;
    for part in parents {
        let entry = node
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| bad(&format!("`{part}` is not a section")))?;
    }
    let value = value.unwrap_or_else(|| typed_value(node.get(leaf), raw));
    node.insert(leaf.clone(), value);
    Ok(())
}

/// Reads an environment value in the type the file already has at that key, else as TOML.
fn typed_value(existing: Option<&toml::Value>, raw: &str) -> toml::Value {
    match existing {
        Some(toml::Value::String(_)) => return toml::Value::String(raw.to_owned()),
        Some(toml::Value::Array(_)) if !raw.trim_start().starts_with('[') => {
            let items = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect();
            return toml::Value::Array(items);
        }
        _ => {}
    }
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// Turns a TOML error into `file:line:col: key: message`, without echoing the line (it may hold
/// a secret).
fn located_error(text: &str, origin: &str, err: &toml::de::Error) -> ConfigError {
    let Some(span) = err.span() else {
        return ConfigError::Parse {
            origin: origin.to_owned(),
            key: String::new(),
            message: err.message().to_owned(),
        };
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let key = key_at(before, text);
    ConfigError::Parse {
        origin: format!("{origin}:{line}:{column}"),
        key: key.map(|k| format!("{k}: ")).unwrap_or_default(),
        message: err.message().to_owned(),
    }
}

/// The dotted key whose line contains the end of `before`: the nearest `[section]` header above
/// plus the `key =` on that line.
fn key_at(before: &str, text: &str) -> Option<String> {
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = text[line_start..line_end].trim();
    let section = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    if line.starts_with('[') {
        return Some(
            line.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned(),
        );
    }
    let key = line.split('=').next()?.trim();
    if key.is_empty() {
        return section;
    }
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n";
        let err = parse_str(text, "d.toml", env(&[])).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.starts_with("d.toml:3:1: server.lisen:"), "{msg}");
        assert!(msg.contains("unknown field `lisen`"), "{msg}");
    }

    #[test]
    fn wrong_type_names_key() {
        let text = "[server]\nmax_connections = \"many\"\n";
        let msg = parse_str(text, "d.toml", env(&[]))
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("server.max_connections"), "{msg}");
        assert!(msg.starts_with("d.toml:2:"), "{msg}");
    }

    #[test]
    fn env_overrides_keys_with_types() {
        let text = "[upstream]\nurl = \"http://127.0.0.1:1\"\n[forwarding]\ntrusted_proxies = []\n";
        let cfg = parse_str(
            text,
            "d.toml",
            env(&[
                ("DRIPGATE_UPSTREAM__URL", "http://127.0.0.1:2"),
                ("DRIPGATE_SERVER__MAX_CONNECTIONS", "7"),
                ("DRIPGATE_SHUTDOWN__DELAY", "250ms"),
                (
                    "DRIPGATE_FORWARDING__TRUSTED_PROXIES",
                    "10.0.0.0/8, 192.168.0.0/16",
                ),
                (
                    "DRIPGATE_SIGNIN__ROUTES",
                    "[{ method = \"POST\", path = \"/wp-login.php\" }]",
                ),
                ("DRIPGATE_CONFIG", "ignored.toml"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.upstream.url, "http://127.0.0.1:2");
        assert_eq!(cfg.server.max_connections, 7);
        assert_eq!(cfg.shutdown.delay, std::time::Duration::from_millis(250));
        assert_eq!(cfg.forwarding.trusted_proxies.len(), 2);
        assert_eq!(cfg.signin.routes[0].path, "/wp-login.php");
    }

    #[test]
    fn keys_valid_only_together_can_all_come_from_the_environment() {
        let cert = ("DRIPGATE_SERVER__TLS__CERT_FILE", "/etc/dripgate/cert.pem");
        let key = ("DRIPGATE_SERVER__TLS__KEY_FILE", "/etc/dripgate/key.pem");
        let cfg = parse_str("", "d.toml", env(&[cert, key])).unwrap();
        let tls = cfg.server.tls.expect("tls section from the environment");
        assert_eq!(
            tls.cert_file,
            std::path::Path::new("/etc/dripgate/cert.pem")
        );
        assert_eq!(tls.key_file, std::path::Path::new("/etc/dripgate/key.pem"));

        let msg = parse_str(
            "",
            "d.toml",
            env(&[cert, ("DRIPGATE_SERVER__MAX_CONNECTIONS", "9")]),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(msg.contains("DRIPGATE_SERVER__TLS__CERT_FILE"), "{msg}");
        assert!(msg.contains("key_file"), "{msg}");
    }

    #[test]
    fn bad_env_override_names_the_variable() {
        let msg = parse_str("", "d.toml", env(&[("DRIPGATE_SERVER__LISTN", "x")]))
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("DRIPGATE_SERVER__LISTN"), "{msg}");
        assert!(msg.contains("unknown field `listn`"), "{msg}");
    }
}
