//! `dripgate provider check` for Keycloak: the token, one read, the service account's
//! `realm-management` roles (read from the token), the realm's password policy and whether the
//! legacy-id attribute survives the user profile (where the service account may read them), and
//! the hash formats imported.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::KeycloakClient;
use super::wire::RealmRead;
use crate::provider::limit::Idempotency;
use crate::provider::{CheckReport, Operation, ProviderError};

/// The `realm-management` roles the migration needs.
pub const NEEDED_ROLES: [&str; 2] = ["manage-users", "view-users"];

type Line = (String, Result<String, String>);

/// The `realm-management` client roles in an access token's payload (Keycloak puts them in
/// `resource_access`), or None when the token is not a readable JWT.
fn token_roles(token: &str) -> Option<Vec<String>> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let roles = claims
        .pointer("/resource_access/realm-management/roles")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(roles)
}

fn roles_line(token: &str) -> Line {
    let aspect = "roles (realm-management)".to_string();
    let Some(roles) = token_roles(token) else {
        return (aspect, Ok("not readable from the token (not a JWT)".into()));
    };
    // realm-admin is composite: it includes every realm-management role.
    let has = |r: &str| roles.iter().any(|x| x == r || x == "realm-admin");
    let missing: Vec<&str> = NEEDED_ROLES.into_iter().filter(|r| !has(r)).collect();
    if missing.is_empty() {
        (aspect, Ok(NEEDED_ROLES.join(", ")))
    } else {
        (
            aspect,
            Err(format!(
                "the service account lacks {}: assign them under the client's \"Service account roles\"",
                missing.join(", ")
            )),
        )
    }
}

impl KeycloakClient {
    async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value, ProviderError> {
        let op = Operation::Check;
        let mut url = self.admin_url(segments)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let answer = self
            .call(op, Idempotency::Idempotent, reqwest::Method::GET, url, None)
            .await?;
        serde_json::from_slice(&answer.body).map_err(|e| ProviderError::Invalid {
            provider: super::KIND,
            operation: op,
            status: Some(answer.status),
            detail: format!("response: {e}"),
        })
    }

    async fn policy_line(&self) -> Line {
        let aspect = "password policy".to_string();
        match self.get(&[], &[]).await {
            Ok(realm) => {
                let policy = serde_json::from_value::<RealmRead>(realm)
                    .ok()
                    .and_then(|r| r.password_policy)
                    .filter(|p| !p.is_empty());
                (
                    aspect,
                    Ok(match policy {
                        Some(p) => format!(
                            "{p} (passwords it refuses are kept at legacy as blocked_policy)"
                        ),
                        None => "none set".into(),
                    }),
                )
            }
            Err(ProviderError::Auth { .. }) => (
                aspect,
                Ok("not readable without view-realm; refusals show as blocked_policy".into()),
            ),
            Err(e) => (aspect, Err(e.to_string())),
        }
    }

    async fn legacy_id_line(&self) -> Line {
        let name = self.config.legacy_id_attribute.as_str();
        let aspect = format!("legacy id attribute {name:?}");
        if name.is_empty() {
            return (
                "legacy id attribute".into(),
                Ok("not stored (legacy_id_attribute = \"\")".into()),
            );
        }
        match self.get(&["users", "profile"], &[]).await {
            Ok(profile) => {
                let declared = profile["attributes"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["name"] == name));
                let policy = profile["unmanagedAttributePolicy"].as_str().unwrap_or("");
                if declared {
                    (aspect, Ok("declared in the user profile".into()))
                } else if matches!(policy, "ENABLED" | "ADMIN_EDIT") {
                    (
                        aspect,
                        Ok(format!("kept as an unmanaged attribute ({policy})")),
                    )
                } else {
                    (
                        aspect,
                        Err("Keycloak would drop it: declare it in the realm's user profile, or set \
                             \"Unmanaged attributes\" to \"Only administrators can write\""
                            .into()),
                    )
                }
            }
            Err(ProviderError::NotFound { .. }) => (
                aspect,
                Ok("no declarative user profile (Keycloak < 24): kept".into()),
            ),
            Err(ProviderError::Auth { .. }) => (
                aspect,
                Ok("user profile not readable without view-realm; not checked".into()),
            ),
            Err(e) => (aspect, Err(e.to_string())),
        }
    }

    pub(super) async fn check(&self) -> CheckReport {
        let mut lines = Vec::new();
        let deadline = self.transport.limiter().deadline_from_now();
        let token = match self.token(deadline).await {
            Ok(t) => t,
            Err(e) => {
                lines.push(("token".to_string(), Err(e.to_string())));
                return CheckReport { lines };
            }
        };
        lines.push((
            "token".to_string(),
            Ok(format!(
                "service account token of client {:?} from realm {:?}",
                self.config.client_id,
                self.config.token_realm()
            )),
        ));
        let read = self
            .get(&["users"], &[("max", "1"), ("briefRepresentation", "true")])
            .await;
        lines.push((
            "read users (view-users)".to_string(),
            read.map(|_| format!("GET /admin/realms/{}/users answered", self.config.realm))
                .map_err(|e| e.to_string()),
        ));
        lines.push(roles_line(token.value.expose_secret()));
        lines.push(self.policy_line().await);
        lines.push(self.legacy_id_line().await);
        let imports: Vec<&str> = self
            .imports()
            .iter()
            .flat_map(|m| super::password::algorithms(*m).iter().copied())
            .collect();
        lines.push((
            "hash import".to_string(),
            Ok(format!(
                "{} ({}); other formats get the password",
                imports.join(", "),
                match self.config.password_transfer {
                    super::KeycloakPasswordTransfer::LegacyHash =>
                        "password_transfer = legacy_hash",
                    super::KeycloakPasswordTransfer::Plaintext =>
                        "not used: password_transfer = plaintext",
                }
            )),
        ));
        CheckReport { lines }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_resource_access() {
        let claims =
            r#"{"resource_access":{"realm-management":{"roles":["view-users","manage-users"]}}}"#;
        let token = format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims));
        assert!(roles_line(&token).1.is_ok());
        let claims = r#"{"resource_access":{"realm-management":{"roles":["view-users"]}}}"#;
        let token = format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims));
        assert!(roles_line(&token).1.unwrap_err().contains("manage-users"));
        assert!(roles_line("opaque").1.is_ok());
    }
}
