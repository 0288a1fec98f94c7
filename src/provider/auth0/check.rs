//! `dripgate provider check` for Auth0: the token, the scopes it grants, one read, the database
//! connection and its password policy (where the application may read connections), and what
//! Auth0 cannot do (per-user hash import, a password-change flag).

use serde_json::Value;

use super::wire::{CHANGE_REQUIRED_KEY, Connection};
use super::{Auth0Client, Auth0PasswordTransfer, REQUIRED_SCOPES};
use crate::provider::limit::Idempotency;
use crate::provider::{CheckReport, Operation, ProviderError};

/// Why the Auth0 client imports no legacy hash.
pub(super) const NO_HASH_IMPORT: &str = "Auth0's Management API has no per-user password hash import (only bulk \
     user-import jobs with custom_password_hash)";

type Line = (String, Result<String, String>);

fn line(aspect: &str, result: Result<String, String>) -> Line {
    (aspect.to_string(), result)
}

/// The scopes line: every scope the migration needs must be in the token's `scope`.
fn scopes_line(granted: Option<&str>) -> Line {
    let Some(granted) = granted else {
        return line("scopes", Err("the token response carries no scope".into()));
    };
    let have: Vec<&str> = granted.split_whitespace().collect();
    let missing: Vec<&str> = REQUIRED_SCOPES
        .iter()
        .copied()
        .filter(|s| !have.contains(s))
        .collect();
    if missing.is_empty() {
        line("scopes", Ok(REQUIRED_SCOPES.join(" ") + " granted"))
    } else {
        line("scopes", Err(format!("missing {}", missing.join(" "))))
    }
}

/// The password policy of a database connection's `options`, in words.
fn policy_words(options: &Value) -> String {
    let mut parts = vec![format!(
        "passwordPolicy {}",
        options
            .get("passwordPolicy")
            .and_then(Value::as_str)
            .unwrap_or("not set")
    )];
    if let Some(n) = options
        .pointer("/password_complexity_options/min_length")
        .and_then(Value::as_u64)
    {
        parts.push(format!("min length {n}"));
    }
    let on = |key: &str| {
        options
            .pointer(&format!("/{key}/enable"))
            .and_then(Value::as_bool)
            == Some(true)
    };
    if on("password_dictionary") {
        parts.push("dictionary on".into());
    }
    if on("password_history") {
        let size = options
            .pointer("/password_history/size")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        parts.push(format!("history {size}"));
    }
    if on("password_no_personal_info") {
        parts.push("no personal info".into());
    }
    parts.join(", ")
}

impl Auth0Client {
    pub(super) async fn check(&self) -> CheckReport {
        let mut lines = Vec::new();
        let deadline = self.limiter.deadline_from_now();
        if let Err(e) = self.token(deadline).await {
            lines.push(line("token", Err(e.to_string())));
            return CheckReport { lines };
        }
        lines.push(line(
            "token",
            Ok(format!(
                "client credentials token for audience {}",
                self.config.audience()
            )),
        ));
        let granted = self.granted.lock().ok().and_then(|g| g.clone());
        lines.push(scopes_line(granted.as_deref()));
        lines.push(line(
            "read users (read:users)",
            self.find("provider-check@dripgate.invalid")
                .await
                .map(|_| "GET /api/v2/users-by-email answered".to_string())
                .map_err(|e| e.to_string()),
        ));
        lines.extend(self.connection_lines().await);
        lines.push(line("hash import", Ok(self.hash_import_words())));
        lines.push(line(
            "password change",
            Ok(format!(
                "Auth0 has no change-at-next-sign-in flag: dripgate sets app_metadata.{CHANGE_REQUIRED_KEY} \
                 = true; enforce it with a post-login Action"
            )),
        ));
        CheckReport { lines }
    }

    fn hash_import_words(&self) -> String {
        match self.config.password_transfer {
            Auth0PasswordTransfer::LegacyHash => format!(
                "{NO_HASH_IMPORT}: password_transfer = \"legacy_hash\" falls back to the password \
                 the user proved"
            ),
            Auth0PasswordTransfer::Password => {
                format!("{NO_HASH_IMPORT}; the password the user proved is sent")
            }
        }
    }

    /// The connection exists and is a database connection (strategy `auth0`), and its password
    /// policy — when the application may read connections (`read:connections`).
    async fn connection_lines(&self) -> Vec<Line> {
        let name = &self.config.connection;
        let op = Operation::Check;
        let result = async {
            let mut url = self.url("/api/v2/connections")?;
            url.query_pairs_mut().append_pair("name", name);
            let answer = self
                .call(op, Idempotency::Idempotent, reqwest::Method::GET, url, None)
                .await?;
            serde_json::from_slice::<Vec<Connection>>(&answer.body).map_err(|e| {
                ProviderError::Invalid {
                    provider: super::KIND,
                    operation: op,
                    status: Some(200),
                    detail: format!("connections response: {e}"),
                }
            })
        }
        .await;
        let connections = match result {
            Ok(c) => c,
            Err(ProviderError::Auth { .. }) => {
                return vec![line(
                    "connection",
                    Ok(format!(
                        "{name}: not checked (the application may not read connections; grant \
                         read:connections to check it)"
                    )),
                )];
            }
            Err(e) => return vec![line("connection", Err(e.to_string()))],
        };
        let Some(c) = connections
            .into_iter()
            .find(|c| c.name.as_deref() == Some(name.as_str()))
        else {
            return vec![line(
                "connection",
                Err(format!("{name}: no such connection")),
            )];
        };
        if c.strategy.as_deref() != Some("auth0") {
            return vec![line(
                "connection",
                Err(format!(
                    "{name}: strategy {} is not a database connection (auth0)",
                    c.strategy.as_deref().unwrap_or("unknown")
                )),
            )];
        }
        let options = c.options.unwrap_or(Value::Null);
        vec![
            line("connection", Ok(format!("{name}: database connection"))),
            line(
                "password policy",
                Ok(format!(
                    "{}; a legacy password it refuses leaves the user on legacy (blocked_policy)",
                    policy_words(&options)
                )),
            ),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_scopes_are_named() {
        assert!(
            scopes_line(Some(
                "read:users create:users update:users read:connections"
            ))
            .1
            .is_ok()
        );
        assert_eq!(
            scopes_line(Some("read:users")).1,
            Err("missing create:users update:users".into())
        );
        assert!(scopes_line(None).1.is_err());
    }

    #[test]
    fn the_policy_is_described() {
        let words = policy_words(&json!({
            "passwordPolicy": "good",
            "password_complexity_options": {"min_length": 10},
            "password_dictionary": {"enable": true},
            "password_history": {"enable": true, "size": 5},
        }));
        assert_eq!(
            words,
            "passwordPolicy good, min length 10, dictionary on, history 5"
        );
    }
}
