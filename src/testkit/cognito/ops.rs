//! The Cognito fake's operations: what the pool does with a (signed, model-checked) request.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::{Value, json};

use super::routes::{aws_error, ok};
use super::{FakeCognitoUser, FakePasswordPolicy, Shared, State, new_uuid, salted};
use crate::testkit::Reply;

/// Standard attributes of every pool's schema.
const STANDARD: [&str; 18] = [
    "sub",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
];

/// Attributes `ListUsers` can filter on (custom attributes are not searchable).
const SEARCHABLE: [&str; 10] = [
    "username",
    "email",
    "phone_number",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "cognito:user_status",
    "status",
    "sub",
];

/// Cognito's password symbols.
const SYMBOLS: &str = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ";

fn text<'a>(body: &'a Value, key: &str) -> &'a str {
    body.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn attributes_json(u: &FakeCognitoUser) -> Vec<Value> {
    u.attributes
        .iter()
        .map(|(k, v)| json!({"Name": k, "Value": v}))
        .collect()
}

fn user_type(u: &FakeCognitoUser) -> Value {
    json!({
        "Username": u.username, "Attributes": attributes_json(u), "UserCreateDate": epoch(),
        "UserLastModifiedDate": epoch(), "Enabled": true, "UserStatus": u.status,
    })
}

fn not_found() -> Reply {
    aws_error(400, "UserNotFoundException", "User does not exist.")
}

/// The user a `Username` parameter names: the username (case-insensitive, as pools are by
/// default), the `sub`, or the email alias.
fn find_user<'a>(st: &'a mut State, name: &str) -> Option<&'a mut FakeCognitoUser> {
    st.users.iter_mut().find(|u| {
        u.username.eq_ignore_ascii_case(name)
            || u.sub == name
            || u.email().is_some_and(|e| e.eq_ignore_ascii_case(name))
    })
}

pub(super) fn handle(s: &Shared, op: &str, body: &Value) -> Reply {
    if text(body, "UserPoolId") != s.options.user_pool_id {
        return aws_error(
            400,
            "ResourceNotFoundException",
            &format!("User pool {} does not exist.", text(body, "UserPoolId")),
        );
    }
    let mut st = s.lock();
    match op {
        "AdminCreateUser" => create(s, &mut st, body),
        "AdminSetUserPassword" => set_password(&s.options.password_policy, &mut st, body),
        "AdminGetUser" => match find_user(&mut st, text(body, "Username")) {
            Some(u) => ok(&json!({
                "Username": u.username, "UserAttributes": attributes_json(u),
                "UserCreateDate": epoch(), "UserLastModifiedDate": epoch(), "Enabled": true,
                "UserStatus": u.status,
            })),
            None => not_found(),
        },
        "ListUsers" => list(&st, body),
        "AdminResetUserPassword" => match find_user(&mut st, text(body, "Username")) {
            Some(u) => {
                u.status = "RESET_REQUIRED".into();
                u.password = None;
                st.messages_sent += 1;
                ok(&json!({}))
            }
            None => not_found(),
        },
        _ => describe(s, &st),
    }
}

fn schema_allows(s: &Shared, name: &str) -> bool {
    match name.strip_prefix("custom:") {
        Some(custom) => s.options.custom_attributes.iter().any(|c| c == custom),
        None => STANDARD.contains(&name) && name != "sub",
    }
}

fn create(s: &Shared, st: &mut State, body: &Value) -> Reply {
    let username = text(body, "Username");
    let mut attributes = BTreeMap::new();
    for a in body
        .get("UserAttributes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (name, value) = (text(a, "Name"), text(a, "Value"));
        if !schema_allows(s, name) {
            return aws_error(
                400,
                "InvalidParameterException",
                &format!(
                    "Attributes did not conform to the schema: {name}: Attribute does not exist in the schema."
                ),
            );
        }
        attributes.insert(name.to_string(), value.to_string());
    }
    let sub = new_uuid();
    let email_as_username = s.options.email_as_username;
    if email_as_username {
        if !username.contains('@') {
            return aws_error(
                400,
                "InvalidParameterException",
                "Username should be an email.",
            );
        }
        let email = attributes
            .entry("email".to_string())
            .or_insert_with(|| username.to_string());
        if !email.eq_ignore_ascii_case(username) {
            return aws_error(
                400,
                "InvalidParameterException",
                "Username and email attribute differ.",
            );
        }
    }
    let email = attributes.get("email").cloned();
    let clash = |u: &FakeCognitoUser| {
        email
            .as_deref()
            .is_some_and(|e| u.email().is_some_and(|x| x.eq_ignore_ascii_case(e)))
    };
    if email_as_username && st.users.iter().any(clash) {
        return aws_error(
            400,
            "UsernameExistsException",
            "An account with the given email already exists.",
        );
    }
    if !email_as_username {
        if st
            .users
            .iter()
            .any(|u| u.username.eq_ignore_ascii_case(username))
        {
            return aws_error(
                400,
                "UsernameExistsException",
                "User account already exists",
            );
        }
        let verified = attributes
            .get("email_verified")
            .is_some_and(|v| v == "true");
        if verified && st.users.iter().any(clash) {
            return aws_error(
                400,
                "AliasExistsException",
                "An account with the given email already exists.",
            );
        }
    }
    if text(body, "MessageAction") != "SUPPRESS" {
        st.messages_sent += 1;
    }
    attributes.insert("sub".to_string(), sub.clone());
    let user = FakeCognitoUser {
        username: if email_as_username {
            sub.clone()
        } else {
            username.to_string()
        },
        sub,
        attributes,
        status: "FORCE_CHANGE_PASSWORD".into(),
        password: None,
    };
    let answer = json!({"User": user_type(&user)});
    st.users.push(user);
    ok(&answer)
}

/// The policy's complaint about `password`, if any (Cognito's wording).
fn policy_violation(p: &FakePasswordPolicy, password: &str) -> Option<&'static str> {
    if password.chars().count() < p.min_length {
        return Some("Password not long enough");
    }
    let has = |f: fn(char) -> bool| password.chars().any(f);
    if p.require_uppercase && !has(|c| c.is_uppercase()) {
        return Some("Password must have uppercase characters");
    }
    if p.require_lowercase && !has(|c| c.is_lowercase()) {
        return Some("Password must have lowercase characters");
    }
    if p.require_numbers && !has(|c| c.is_ascii_digit()) {
        return Some("Password must have numeric characters");
    }
    if p.require_symbols && !has(|c| SYMBOLS.contains(c)) {
        return Some("Password must have symbol characters");
    }
    None
}

fn set_password(policy: &FakePasswordPolicy, st: &mut State, body: &Value) -> Reply {
    let password = text(body, "Password");
    if let Some(why) = policy_violation(policy, password) {
        return aws_error(
            400,
            "InvalidPasswordException",
            &format!("Password did not conform with policy: {why}"),
        );
    }
    let permanent = body
        .get("Permanent")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(user) = find_user(st, text(body, "Username")) else {
        return not_found();
    };
    if permanent {
        let salt: [u8; 16] = rand::rng().random();
        user.password = Some((salt, salted(&salt, password.as_bytes())));
        user.status = "CONFIRMED".into();
    } else {
        user.password = None;
        user.status = "FORCE_CHANGE_PASSWORD".into();
    }
    ok(&json!({}))
}

/// `attr = "value"` or `attr ^= "value"` with `\"` and `\\` escapes.
fn parse_filter(filter: &str) -> Result<(String, bool, String), String> {
    let eq = filter
        .find('=')
        .ok_or("Filter must be: attribute = \"value\"")?;
    let prefix = filter[..eq].ends_with('^');
    let name = filter[..eq].trim_end_matches('^').trim().to_string();
    let rest = &filter[eq + 1..];
    let quoted = rest.trim();
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .ok_or("Filter value must be quoted")?;
    let mut value = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(chars.next().ok_or("dangling escape")?),
            '"' => return Err("unescaped quotation mark in the filter value".into()),
            c => value.push(c),
        }
    }
    Ok((name, prefix, value))
}

fn attr_of<'a>(u: &'a FakeCognitoUser, name: &str) -> Option<&'a str> {
    match name {
        "username" => Some(&u.username),
        "cognito:user_status" | "status" => Some(&u.status),
        _ => u.attributes.get(name).map(String::as_str),
    }
}

fn list(st: &State, body: &Value) -> Reply {
    let limit = body
        .get("Limit")
        .and_then(Value::as_u64)
        .unwrap_or(60)
        .min(60);
    let filter = text(body, "Filter");
    let wanted = if filter.is_empty() {
        None
    } else {
        match parse_filter(filter) {
            Ok((name, _, _)) if !SEARCHABLE.contains(&name.as_str()) => {
                return aws_error(
                    400,
                    "InvalidParameterException",
                    &format!("Attribute {name} is not searchable."),
                );
            }
            Ok(parsed) => Some(parsed),
            Err(e) => return aws_error(400, "InvalidParameterException", &e),
        }
    };
    // `=` matches exactly, `^=` is a prefix; both compare case-sensitively here.
    let users: Vec<Value> = st
        .users
        .iter()
        .filter(|u| match &wanted {
            None => true,
            Some((name, prefix, value)) => attr_of(u, name).is_some_and(|a| {
                if *prefix {
                    a.starts_with(value.as_str())
                } else {
                    a == value
                }
            }),
        })
        .take(usize::try_from(limit).unwrap_or(60))
        .map(user_type)
        .collect();
    ok(&json!({"Users": users}))
}

fn describe(s: &Shared, st: &State) -> Reply {
    let o = &s.options;
    let p = &o.password_policy;
    let mut schema: Vec<Value> = STANDARD
        .iter()
        .map(|n| json!({"Name": n, "AttributeDataType": "String", "Mutable": *n != "sub", "Required": *n == "email"}))
        .collect();
    for c in &o.custom_attributes {
        schema.push(json!({"Name": format!("custom:{c}"), "AttributeDataType": "String", "Mutable": true, "Required": false}));
    }
    let mut pool = json!({
        "Id": o.user_pool_id, "Name": o.pool_name,
        "Policies": {"PasswordPolicy": {
            "MinimumLength": p.min_length, "RequireUppercase": p.require_uppercase,
            "RequireLowercase": p.require_lowercase, "RequireNumbers": p.require_numbers,
            "RequireSymbols": p.require_symbols, "TemporaryPasswordValidityDays": 7,
        }},
        "SchemaAttributes": schema,
        "UsernameConfiguration": {"CaseSensitive": false},
        "EstimatedNumberOfUsers": st.users.len(),
    });
    if o.email_as_username {
        pool["UsernameAttributes"] = json!(["email"]);
    } else {
        pool["AliasAttributes"] = json!(["email"]);
    }
    ok(&json!({"UserPool": pool}))
}
