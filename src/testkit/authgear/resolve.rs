//! The Authgear fake's GraphQL operations: one transaction per request over the root fields
//! (`getUsersByStandardAttribute`, `getUserByLoginID`, `node`, `createUser`, `resetPassword`,
//! `setPasswordExpired`), the password policy and Authgear's error extensions.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde_json::{Map, Value, json};

use super::graphql::{self, Field};
use super::{FakeAuthgearUser, Shared, State};
use crate::provider::authgear::{user_node_id, user_raw_id};

/// A GraphQL error with Authgear's extensions.
fn api_error(message: &str, name: &str, reason: &str, info: Option<Value>, path: &str) -> Value {
    let mut ext = json!({"errorName": name, "reason": reason});
    if let Some(info) = info {
        ext["info"] = info;
    }
    json!({"message": message, "path": [path], "extensions": ext})
}

/// Runs the root fields in one transaction: any error rolls every change back.
pub(super) fn execute(
    s: &Shared,
    roots: &[&Field],
    vars: &Map<String, Value>,
    policy_fault: bool,
) -> Value {
    let mut st = s.lock();
    let snapshot = st.users.clone();
    let mut data = Map::new();
    let mut errors = Vec::new();
    for field in roots {
        let args: Map<String, Value> = field
            .args
            .iter()
            .map(|(k, v)| (k.clone(), v.resolve(vars)))
            .collect();
        match resolve(s, &mut st, field, &args, policy_fault) {
            Ok(v) => {
                data.insert(
                    field.key().to_string(),
                    graphql::project(&field.selections, &v),
                );
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        json!({"data": data})
    } else {
        st.users = snapshot;
        json!({"data": null, "errors": errors})
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn user_value(u: &FakeAuthgearUser) -> Value {
    // The primary password authenticator, when the user has a password.
    let password = u.password_hash.as_ref().map(|_| {
        json!({
            "__typename": "Authenticator",
            "id": URL_SAFE_NO_PAD.encode(format!("Authenticator:pw-{}", u.raw_id)),
            "kind": "PRIMARY", "type": "PASSWORD", "isDefault": true, "expireAfter": null,
            "claims": {}, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
        })
    });
    json!({
        "__typename": "User",
        "id": u.node_id,
        "primaryPassword": password,
        "standardAttributes": {"email": u.email, "email_verified": false, "updated_at": now_secs()},
        "isDisabled": false, "isDeactivated": false, "isAnonymous": false, "isAnonymized": false,
        "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "lastLoginAt": null,
    })
}

fn payload(typename: &str, u: &FakeAuthgearUser) -> Value {
    json!({"__typename": typename, "user": user_value(u)})
}

fn new_uuid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn check_policy(
    s: &Shared,
    password: &str,
    current: Option<&str>,
    path: &str,
    forced: bool,
) -> Result<(), Value> {
    let min = s.options.min_password_length;
    let mut causes = Vec::new();
    if forced || password.chars().count() < min {
        causes.push(json!({"Name": "PasswordTooShort", "Info": {"min_length": min, "pw_length": password.chars().count()}}));
    }
    if s.options.password_history
        && current.is_some_and(|h| bcrypt::verify(password, h).unwrap_or(false))
    {
        causes.push(json!({"Name": "PasswordReused", "Info": {"history_size": 1}}));
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(api_error(
        "invalid password",
        "Invalid",
        "PasswordPolicyViolated",
        Some(json!({"causes": causes})),
        path,
    ))
}

fn hash(password: &str) -> Result<String, Value> {
    bcrypt::hash(password, 4).map_err(|_| json!({"message": "unexpected error"}))
}

fn user_id_arg(st: &State, input: &Value, path: &str) -> Result<String, Value> {
    let id = input
        .get("userID")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let raw = user_raw_id(id)
        .ok_or_else(|| api_error("invalid user ID", "Invalid", "Invalid", None, path))?;
    if st.users.contains_key(&raw) {
        Ok(raw)
    } else {
        Err(api_error(
            "user not found",
            "NotFound",
            "UserNotFound",
            None,
            path,
        ))
    }
}

fn resolve(
    s: &Shared,
    st: &mut State,
    field: &Field,
    args: &Map<String, Value>,
    policy_fault: bool,
) -> Result<Value, Value> {
    let path = field.name.as_str();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    match path {
        "__typename" => Ok(json!("Query")),
        "getUsersByStandardAttribute" => {
            let name = text(args.get("attributeName")).unwrap_or_default();
            if !matches!(
                name.as_str(),
                "email" | "phone_number" | "preferred_username"
            ) {
                return Err(api_error(
                    "invalid attribute name",
                    "Invalid",
                    "GetUsersInvalidArgument",
                    None,
                    path,
                ));
            }
            let value = text(args.get("attributeValue"))
                .unwrap_or_default()
                .to_lowercase();
            let mut found: Vec<&FakeAuthgearUser> = st
                .users
                .values()
                .filter(|u| name == "email" && u.email == value)
                .collect();
            found.sort_by(|a, b| a.raw_id.cmp(&b.raw_id));
            Ok(Value::Array(found.into_iter().map(user_value).collect()))
        }
        "getUserByLoginID" => {
            let value = text(args.get("loginIDValue"))
                .unwrap_or_default()
                .to_lowercase();
            Ok(st
                .users
                .values()
                .find(|u| u.email == value)
                .map(user_value)
                .unwrap_or(Value::Null))
        }
        "node" => {
            let id = text(args.get("id")).unwrap_or_default();
            Ok(user_raw_id(&id)
                .and_then(|raw| st.users.get(&raw))
                .map(user_value)
                .unwrap_or(Value::Null))
        }
        "createUser" => {
            let input = args.get("input").cloned().unwrap_or(Value::Null);
            let login = input.get("definition").and_then(|d| d.get("loginID"));
            let key = text(login.and_then(|l| l.get("key"))).unwrap_or_default();
            let value = text(login.and_then(|l| l.get("value"))).unwrap_or_default();
            if key.is_empty() || value.is_empty() {
                return Err(api_error(
                    "login ID key & value is required",
                    "Invalid",
                    "Invalid",
                    None,
                    path,
                ));
            }
            if key != "email" {
                return Err(api_error(
                    "invalid login ID key",
                    "Invalid",
                    "InvariantViolated",
                    Some(json!({"cause": {"kind": "InvalidLoginIDKey"}})),
                    path,
                ));
            }
            let email = value.to_lowercase();
            if st.users.values().any(|u| u.email == email) {
                return Err(api_error(
                    "identity already exists",
                    "Invalid",
                    "InvariantViolated",
                    Some(
                        json!({"cause": {"kind": "DuplicatedIdentity"}, "IdentityTypeIncoming": "login_id", "LoginIDTypeIncoming": "email", "IdentityTypeExisting": "login_id", "LoginIDTypeExisting": "email"}),
                    ),
                    path,
                ));
            }
            let (password_hash, generated) = match input.get("password") {
                None | Some(Value::Null) => (None, false),
                Some(Value::String(p)) if p.is_empty() => (Some(hash(&new_uuid())?), true),
                Some(Value::String(p)) => {
                    check_policy(s, p, None, path, policy_fault)?;
                    (Some(hash(p)?), false)
                }
                Some(_) => return Err(json!({"message": "password must be a string"})),
            };
            let raw = new_uuid();
            let user = FakeAuthgearUser {
                raw_id: raw.clone(),
                node_id: user_node_id(&raw),
                email,
                password_hash,
                password_generated: generated,
                password_expired: input
                    .get("setPasswordExpired")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            };
            let out = payload("CreateUserPayload", &user);
            st.users.insert(raw, user);
            Ok(out)
        }
        "resetPassword" => {
            let input = args.get("input").cloned().unwrap_or(Value::Null);
            let raw = user_id_arg(st, &input, path)?;
            let current = st.users.get(&raw).and_then(|u| u.password_hash.clone());
            let (new_hash, generated) = match input.get("password").and_then(Value::as_str) {
                None | Some("") => (hash(&new_uuid())?, true),
                Some(p) => {
                    check_policy(s, p, current.as_deref(), path, policy_fault)?;
                    (hash(p)?, false)
                }
            };
            let expired = input
                .get("setPasswordExpired")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let user = st
                .users
                .get_mut(&raw)
                .ok_or_else(|| json!({"message": "unexpected error"}))?;
            user.password_hash = Some(new_hash);
            user.password_generated = generated;
            user.password_expired = expired;
            Ok(payload("ResetPasswordPayload", user))
        }
        "setPasswordExpired" => {
            let input = args.get("input").cloned().unwrap_or(Value::Null);
            let raw = user_id_arg(st, &input, path)?;
            let expired = input
                .get("expired")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let user = st
                .users
                .get_mut(&raw)
                .ok_or_else(|| json!({"message": "unexpected error"}))?;
            user.password_expired = expired;
            Ok(payload("SetPasswordExpiredPayload", user))
        }
        other => Err(
            json!({"message": format!("Cannot query field \"{other}\" (not implemented by the fake).")}),
        ),
    }
}
