//! `dripgate provider check` for Cognito: a signed `DescribeUserPool` (credentials, region, pool),
//! what the pool says that matters to the migration (password policy, the legacy-id attribute in
//! the schema, sign-in by email), and the IAM actions the migration needs, probed where a probe
//! changes nothing: calls about a user that does not exist answer `UserNotFoundException` when
//! IAM allows the action and `AccessDeniedException` (naming the action) when it does not.

use rand::Rng;
use serde_json::Value;

use super::transport::{Category, plain};
use super::wire::{AdminSetUserPassword, PoolRef, UserRef};
use super::{CognitoClient, CognitoUsername, encode, not_found_is_none};
use crate::provider::limit::Idempotency;
use crate::provider::{CheckReport, Operation, ProviderError};

type Line = (String, Result<String, String>);

fn describe_policy(pool: &Value) -> String {
    let Some(p) = pool.pointer("/Policies/PasswordPolicy") else {
        return "no password policy in the answer".into();
    };
    let flag = |k: &str| p.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mut needs: Vec<&str> = Vec::new();
    for (key, what) in [
        ("RequireUppercase", "upper case"),
        ("RequireLowercase", "lower case"),
        ("RequireNumbers", "digits"),
        ("RequireSymbols", "symbols"),
    ] {
        if flag(key) {
            needs.push(what);
        }
    }
    let min = p.get("MinimumLength").and_then(Value::as_u64).unwrap_or(8);
    let history = p
        .get("PasswordHistorySize")
        .and_then(Value::as_u64)
        .map(|n| format!(", remembers {n} previous"))
        .unwrap_or_default();
    let needs = if needs.is_empty() {
        String::new()
    } else {
        format!(", needs {}", needs.join(", "))
    };
    format!(
        "at least {min} characters{needs}{history}: legacy passwords it refuses stay at legacy (blocked_policy)"
    )
}

impl CognitoClient {
    fn legacy_attribute_line(&self, pool: &Value) -> Option<Line> {
        let wanted = self.config.legacy_id_attribute.as_ref()?;
        let found = pool
            .get("SchemaAttributes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|a| a.get("Name").and_then(Value::as_str) == Some(wanted.as_str()));
        let aspect = format!("legacy id attribute {wanted}");
        Some(if found {
            (aspect, Ok("in the pool's schema".into()))
        } else {
            (
                aspect,
                Err("not in the pool's schema: add it (AddCustomAttributes) or unset legacy_id_attribute; creates would fail".into()),
            )
        })
    }

    fn username_line(&self, pool: &Value) -> Line {
        let by_email = pool
            .get("UsernameAttributes")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "email"));
        let aspect = "username".to_string();
        match (self.config.username, by_email) {
            (CognitoUsername::LegacyId, true) => (
                aspect,
                Err("the pool signs in by email (UsernameAttributes = [email]): it takes only emails as Username; set username = \"email\"".into()),
            ),
            (CognitoUsername::Email, true) => (aspect, Ok("email (the pool signs in by email)".into())),
            (mode, false) => (
                aspect,
                Ok(format!("{mode:?} (the pool has usernames; email is an attribute)").to_lowercase()),
            ),
        }
    }

    /// A call that changes nothing: `UserNotFoundException` proves IAM allows the action.
    async fn probe(&self, target: &'static str, category: Category, body: &[u8]) -> Line {
        let aspect = format!("IAM cognito-idp:{target}");
        let result = self
            .call(
                Operation::Check,
                target,
                category,
                Idempotency::Idempotent,
                body,
                not_found_is_none,
            )
            .await;
        let line = match result {
            Ok(_) | Err(ProviderError::NotFound { .. }) => Ok("allowed".to_string()),
            Err(e) => Err(e.to_string()),
        };
        (aspect, line)
    }

    async fn probes(&self) -> Result<Vec<Line>, ProviderError> {
        let suffix: [u8; 8] = rand::rng().random();
        let nobody = format!("dripgate-permission-check-{}", hex::encode(suffix));
        let probe_password = format!("Never-Set-{}!a1", hex::encode(suffix));
        let user = encode(&UserRef {
            user_pool_id: self.pool(),
            username: &nobody,
        })?;
        let list = encode(&super::ListUsers {
            user_pool_id: self.pool(),
            filter: Some(format!("email = \"{nobody}@invalid.example\"")),
            limit: 1,
        })?;
        let set = encode(&AdminSetUserPassword {
            user_pool_id: self.pool(),
            username: &nobody,
            password: &probe_password,
            permanent: true,
        })?;
        Ok(vec![
            self.probe("ListUsers", Category::List, &list).await,
            self.probe("AdminGetUser", Category::Read, &user).await,
            self.probe("AdminSetUserPassword", Category::AccountRecovery, &set)
                .await,
            self.probe("AdminResetUserPassword", Category::AccountRecovery, &user)
                .await,
            (
                "IAM cognito-idp:AdminCreateUser".to_string(),
                Ok("not probed (a probe would create a user); the first migration shows it".into()),
            ),
        ])
    }

    pub(super) async fn check(&self) -> CheckReport {
        let mut lines = Vec::new();
        let describe = async {
            let body = encode(&PoolRef {
                user_pool_id: self.pool(),
            })?;
            self.call(
                Operation::Check,
                "DescribeUserPool",
                Category::PoolRead,
                Idempotency::Idempotent,
                &body,
                plain,
            )
            .await
        }
        .await;
        let credentials = format!(
            "access key {}{}, region {}",
            self.access_key_id(),
            if self.has_session_token() {
                " with session token"
            } else {
                ""
            },
            self.config.region
        );
        match describe {
            Ok(answer) => {
                let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                let pool = v.get("UserPool").cloned().unwrap_or(Value::Null);
                let name = pool.get("Name").and_then(Value::as_str).unwrap_or("?");
                lines.push((
                    "signed call (DescribeUserPool)".to_string(),
                    Ok(format!("{credentials}: pool {} ({name})", self.pool())),
                ));
                lines.push(("password policy".to_string(), Ok(describe_policy(&pool))));
                lines.extend(self.legacy_attribute_line(&pool));
                lines.push(self.username_line(&pool));
            }
            Err(e @ ProviderError::Auth { .. }) if e.to_string().contains("IAM denies") => {
                // Signed and authenticated, but not allowed to read the pool: go on probing.
                lines.push((
                    "signed call (DescribeUserPool)".to_string(),
                    Err(e.to_string()),
                ));
            }
            Err(e) => {
                lines.push((
                    "signed call (DescribeUserPool)".to_string(),
                    Err(format!("{credentials}: {e}")),
                ));
                return CheckReport { lines };
            }
        }
        match self.probes().await {
            Ok(more) => lines.extend(more),
            Err(e) => lines.push(("IAM".to_string(), Err(e.to_string()))),
        }
        CheckReport { lines }
    }
}
