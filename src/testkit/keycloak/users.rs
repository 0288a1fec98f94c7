//! The Keycloak fake's user writes: create (one transaction, 409 on a taken username or
//! email), update (`UserRepresentation` fields, required actions, credentials), and
//! `reset-password` with the realm's password policy.

use serde_json::{Value, json};

use super::credential::FakeCredential;
use super::routes::{Resp, error_message, policy_refusal, text, user_not_found};
use super::{FakeKeycloakUser, Shared, State, new_id};
use crate::testkit::json_response;

pub(super) fn create(s: &Shared, st: &mut State, body: &Value) -> Resp {
    let Some(username) = text(body, "username").map(|u| u.to_lowercase()) else {
        return error_message(400, "User name is missing");
    };
    let email = text(body, "email").map(|e| e.to_lowercase());
    if st.users.values().any(|u| u.username == username) {
        return error_message(409, "User exists with same username");
    }
    if email.is_some() && st.users.values().any(|u| u.email == email) {
        return error_message(409, "User exists with same email");
    }
    let id = new_id();
    let mut user = FakeKeycloakUser {
        id: id.clone(),
        username,
        email,
        email_verified: false,
        enabled: false,
        first_name: None,
        last_name: None,
        attributes: Default::default(),
        required_actions: Vec::new(),
        credential: None,
    };
    // All of it is one transaction: a refused credential creates no user.
    if let Err(r) = apply(s, st, &mut user, body) {
        return *r;
    }
    st.users.insert(id.clone(), user);
    let mut r = crate::testkit::response(201, "application/json", "");
    let location = format!("{}/admin/realms/{}/users/{id}", s.base_url, s.options.realm);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&location) {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    r
}

pub(super) fn update(s: &Shared, st: &mut State, id: &str, body: &Value) -> Resp {
    let Some(mut user) = st.users.get(id).cloned() else {
        return user_not_found();
    };
    if let Some(email) = text(body, "email").map(|e| e.to_lowercase())
        && st
            .users
            .values()
            .any(|u| u.id != id && u.email.as_deref() == Some(email.as_str()))
    {
        return error_message(409, "User exists with same email");
    }
    if let Err(r) = apply(s, st, &mut user, body) {
        return *r;
    }
    st.users.insert(id.to_string(), user);
    crate::testkit::response(204, "application/json", "")
}

/// Applies a `UserRepresentation` to `user` (create or update).
fn apply(
    s: &Shared,
    st: &mut State,
    user: &mut FakeKeycloakUser,
    body: &Value,
) -> Result<(), Box<Resp>> {
    if let Some(e) = text(body, "email") {
        user.email = Some(e.to_lowercase());
    }
    for (key, slot) in [
        ("emailVerified", &mut user.email_verified),
        ("enabled", &mut user.enabled),
    ] {
        if let Some(b) = body.get(key).and_then(Value::as_bool) {
            *slot = b;
        }
    }
    if let Some(v) = text(body, "firstName") {
        user.first_name = Some(v);
    }
    if let Some(v) = text(body, "lastName") {
        user.last_name = Some(v);
    }
    if let Some(attrs) = body.get("attributes").and_then(Value::as_object) {
        user.attributes = if s.options.unmanaged_attributes {
            attrs
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect(),
                    )
                })
                .collect()
        } else {
            Default::default()
        };
    }
    if let Some(actions) = body.get("requiredActions").and_then(Value::as_array) {
        user.required_actions = actions
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
    }
    for cred in body
        .get("credentials")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if cred.get("type").and_then(Value::as_str) != Some("password") {
            st.knobs
                .violation(format!("credential of type {:?}", cred.get("type")));
            return Err(Box::new(error_message(400, "unsupported credential type")));
        }
        let stored = match (
            text(cred, "value"),
            text(cred, "secretData"),
            text(cred, "credentialData"),
        ) {
            (Some(value), _, _) => check_policy(s, user, &value)
                .map_err(|(k, d)| Box::new(error_message(400, &format!("{k}: {d}"))))?,
            (None, Some(secret), Some(data)) => {
                FakeCredential::import(&data, &secret).map_err(|e| {
                    st.knobs.violation(format!("credential: {e}"));
                    Box::new(error_message(400, "Could not create credential"))
                })?
            }
            _ => {
                st.knobs
                    .violation("credential without value or secretData/credentialData".into());
                return Err(Box::new(error_message(400, "Could not create credential")));
            }
        };
        if cred.get("temporary").and_then(Value::as_bool) == Some(true) {
            add_update_password(user);
        }
        user.credential = Some(stored);
    }
    Ok(())
}

fn add_update_password(user: &mut FakeKeycloakUser) {
    if !user.required_actions.iter().any(|a| a == "UPDATE_PASSWORD") {
        user.required_actions.push("UPDATE_PASSWORD".into());
    }
}

/// The realm's policy: `length(n)`, `passwordHistory(1)`; Ok is the credential to store.
fn check_policy(
    s: &Shared,
    user: &FakeKeycloakUser,
    password: &str,
) -> Result<FakeCredential, (&'static str, String)> {
    let min = s.options.min_password_length;
    if password.chars().count() < min {
        return Err((
            "invalidPasswordMinLengthMessage",
            format!("Invalid password: minimum length {min}."),
        ));
    }
    if s.options.password_history
        && user
            .credential
            .as_ref()
            .is_some_and(|c| c.verify(password.as_bytes()))
    {
        return Err((
            "invalidPasswordHistoryMessage",
            "Invalid password: must not be equal to any of last 1 passwords.".into(),
        ));
    }
    Ok(FakeCredential::hash(password, s.options.hash_iterations))
}

pub(super) fn reset_password(s: &Shared, st: &mut State, id: &str, body: &Value) -> Resp {
    let Some(mut user) = st.users.get(id).cloned() else {
        return user_not_found();
    };
    let Some(value) = text(body, "value") else {
        return json_response(400, &json!({"error": "No password provided"}));
    };
    if value.trim().is_empty() {
        return json_response(400, &json!({"error": "Empty password not allowed"}));
    }
    match check_policy(s, &user, &value) {
        Ok(c) => user.credential = Some(c),
        Err((key, description)) => return policy_refusal(key, &description),
    }
    if body.get("temporary").and_then(Value::as_bool) == Some(true) {
        add_update_password(&mut user);
    } else {
        user.required_actions.retain(|a| a != "UPDATE_PASSWORD");
    }
    st.users.insert(id.to_string(), user);
    crate::testkit::response(204, "application/json", "")
}
