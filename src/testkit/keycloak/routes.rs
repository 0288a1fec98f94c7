//! The Keycloak fake's HTTP side: the token endpoint, spec checks, fault injection, bearer
//! tokens and roles, and the admin operations dripgate uses.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{FakeKeycloakUser, Shared, State};
use crate::testkit::{Fault, Incoming_, Reply, json_response, signin_page};

pub(super) type Resp = Response<Full<Bytes>>;

/// `ErrorRepresentation`.
pub(super) fn error_message(status: u16, message: &str) -> Resp {
    json_response(status, &json!({"errorMessage": message}))
}

/// The OAuth error shape (token endpoint, and some admin errors).
pub(super) fn oauth_error(status: u16, error: &str, description: &str) -> Resp {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// The operation name of a spec template and method (the ones the fake implements).
fn operation(method: &hyper::Method, template: &str) -> Option<&'static str> {
    use hyper::Method as M;
    Some(match (method, template) {
        (&M::GET, "/admin/realms/{realm}/users") => "getUsers",
        (&M::POST, "/admin/realms/{realm}/users") => "createUser",
        (&M::GET, "/admin/realms/{realm}/users/{user-id}") => "getUser",
        (&M::PUT, "/admin/realms/{realm}/users/{user-id}") => "updateUser",
        (&M::PUT, "/admin/realms/{realm}/users/{user-id}/reset-password") => "resetPassword",
        (&M::GET, "/admin/realms/{realm}") => "getRealm",
        (&M::GET, "/admin/realms/{realm}/users/profile") => "getUserProfile",
        _ => return None,
    })
}

/// The `realm-management` roles that allow an operation.
fn allowed_roles(op: &str) -> &'static [&'static str] {
    match op {
        "getUsers" | "getUser" => &["view-users", "manage-users", "query-users"],
        "getRealm" | "getUserProfile" => &["view-realm", "manage-realm"],
        _ => &["manage-users"],
    }
}

/// Routes a request by the admin spec's templates (when no spec is loaded: by the fake's own).
fn route(s: &Shared, req: &Incoming_) -> Result<(&'static str, HashMap<String, String>), String> {
    let path = req.uri.path();
    let matched = match &s.options.spec {
        Some(spec) => spec.route(req.method.as_str(), path)?,
        None => own_route(req.method.as_str(), path).ok_or(format!("{path}: no such route"))?,
    };
    let op = operation(&req.method, &matched.template).ok_or(format!(
        "{} {}: not implemented by the fake",
        req.method, matched.template
    ))?;
    Ok((op, matched.params))
}

fn own_route(method: &str, path: &str) -> Option<super::spec::Matched> {
    let parts: Vec<&str> = path.split('/').collect();
    let (template, params): (&str, Vec<(&str, &str)>) = match (method, parts.as_slice()) {
        (_, ["", "admin", "realms", realm]) => ("/admin/realms/{realm}", vec![("realm", *realm)]),
        (_, ["", "admin", "realms", realm, "users"]) => {
            ("/admin/realms/{realm}/users", vec![("realm", *realm)])
        }
        (_, ["", "admin", "realms", realm, "users", "profile"]) => (
            "/admin/realms/{realm}/users/profile",
            vec![("realm", *realm)],
        ),
        (_, ["", "admin", "realms", realm, "users", id]) => (
            "/admin/realms/{realm}/users/{user-id}",
            vec![("realm", *realm), ("user-id", *id)],
        ),
        (_, ["", "admin", "realms", realm, "users", id, "reset-password"]) => (
            "/admin/realms/{realm}/users/{user-id}/reset-password",
            vec![("realm", *realm), ("user-id", *id)],
        ),
        _ => return None,
    };
    Some(super::spec::Matched {
        template: template.into(),
        params: params
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

pub(super) async fn handle(s: &Shared, req: Incoming_) -> Reply {
    if req.uri.path() == signin_page::PATH {
        return Reply::Send(signin_page::handle(&req, "Keycloak", |email, pw| {
            let email = email.to_lowercase();
            let st = s.lock();
            st.users
                .values()
                .find(|u| u.email.as_deref() == Some(email.as_str()))
                .and_then(|u| u.credential.as_ref())
                .is_some_and(|c| c.verify(pw))
        }));
    }
    let token_path = format!("/realms/{}/protocol/openid-connect/token", s.options.realm);
    let (op, params) = if req.uri.path() == token_path && req.method == hyper::Method::POST {
        ("token", HashMap::new())
    } else {
        match route(s, &req) {
            Ok(r) => r,
            Err(e) => {
                s.lock().knobs.violation(e);
                return Reply::Send(json_response(404, &json!({"error": "HTTP 404 Not Found"})));
            }
        }
    };
    let fault = s.lock().knobs.arrive(op);
    let mut hang_after = false;
    let mut close_after = false;
    match fault {
        Some(Fault::Status(code)) => {
            return Reply::Send(error_message(code, "Injected failure"));
        }
        Some(Fault::RateLimit { reset_secs }) => {
            // Keycloak has no rate limit of its own; a gateway in front answers this way.
            let mut r = json_response(429, &json!({"error": "too_many_requests"}));
            if let Ok(v) = hyper::header::HeaderValue::from_str(&reset_secs.to_string()) {
                r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
            }
            return Reply::Send(r);
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::ResetConnection) => return Reply::Reset,
        Some(Fault::CommitThenHang) => hang_after = true,
        Some(Fault::CommitThenClose) => close_after = true,
        Some(Fault::PasswordPolicy) if op == "resetPassword" => {
            return Reply::Send(policy_refusal(
                "invalidPasswordMinDigitsMessage",
                "Invalid password: must contain at least 1 numerical digits.",
            ));
        }
        Some(Fault::PasswordPolicy) | None => {}
    }
    let reply = if op == "token" {
        super::token::token(s, &req)
    } else {
        admin(s, op, &params, &req)
    };
    if hang_after {
        Reply::Hang
    } else if close_after {
        Reply::Reset
    } else {
        Reply::Send(reply)
    }
}

pub(super) fn policy_refusal(key: &str, description: &str) -> Resp {
    oauth_error(400, key, description)
}

pub(super) fn header(req: &Incoming_, name: hyper::header::HeaderName) -> String {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Spec checks of the query and body; returns the parsed body.
fn check_request(
    s: &Shared,
    st: &mut State,
    op: &str,
    req: &Incoming_,
) -> Result<Option<Value>, Box<Resp>> {
    let body = if req.body.is_empty() {
        None
    } else {
        let ct = header(req, hyper::header::CONTENT_TYPE);
        if !ct.starts_with("application/json") {
            st.knobs.violation(format!("{op}: content type {ct:?}"));
            return Err(Box::new(json_response(
                415,
                &json!({"error": "HTTP 415 Unsupported Media Type"}),
            )));
        }
        match serde_json::from_slice::<Value>(&req.body) {
            Ok(v) => Some(v),
            Err(_) => {
                st.knobs.violation(format!("{op}: body is not JSON"));
                return Err(Box::new(error_message(
                    400,
                    "unable to parse the request body",
                )));
            }
        }
    };
    if let Some(spec) = &s.options.spec {
        let query: Vec<(String, String)> = req
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let template = spec
            .route(req.method.as_str(), req.uri.path())
            .map(|m| m.template);
        let checked = template.and_then(|t| {
            spec.check_query(req.method.as_str(), &t, &query)?;
            spec.check_body(req.method.as_str(), &t, body.as_ref())
        });
        if let Err(e) = checked {
            st.knobs.violation(format!("{op}: {e}"));
            return Err(Box::new(error_message(400, &e)));
        }
    }
    Ok(body)
}

fn admin(s: &Shared, op: &str, params: &HashMap<String, String>, req: &Incoming_) -> Resp {
    let mut st = s.lock();
    let bearer = header(req, hyper::header::AUTHORIZATION);
    let roles = match bearer
        .strip_prefix("Bearer ")
        .and_then(|t| st.tokens.get(t))
    {
        Some(t) if t.expires_at > Instant::now() => t.roles.clone(),
        _ => return json_response(401, &json!({"error": "HTTP 401 Unauthorized"})),
    };
    if params.get("realm") != Some(&s.options.realm) {
        return json_response(404, &json!({"error": "Realm not found."}));
    }
    let body = match check_request(s, &mut st, op, req) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if !roles
        .iter()
        .any(|r| allowed_roles(op).contains(&r.as_str()))
    {
        return json_response(403, &json!({"error": "HTTP 403 Forbidden"}));
    }
    let query: HashMap<String, String> = req
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let user_id = params.get("user-id").cloned().unwrap_or_default();
    let body = body.unwrap_or(Value::Null);
    match op {
        "getUsers" => json_response(200, &Value::Array(search(&st, &query))),
        "createUser" => super::users::create(s, &mut st, &body),
        "getUser" => match st.users.get(&user_id) {
            Some(u) => json_response(200, &representation(u, false)),
            None => user_not_found(),
        },
        "updateUser" => super::users::update(s, &mut st, &user_id, &body),
        "resetPassword" => super::users::reset_password(s, &mut st, &user_id, &body),
        "getRealm" => json_response(
            200,
            &json!({
                "id": s.options.realm, "realm": s.options.realm, "enabled": true,
                "passwordPolicy": s.options.password_policy(),
            }),
        ),
        _ => {
            let mut profile = json!({"attributes": [
                {"name": "username"}, {"name": "email"}, {"name": "firstName"}, {"name": "lastName"},
            ]});
            if s.options.unmanaged_attributes {
                profile["unmanagedAttributePolicy"] = json!("ADMIN_EDIT");
            }
            json_response(200, &profile)
        }
    }
}

pub(super) fn user_not_found() -> Resp {
    json_response(404, &json!({"error": "User not found"}))
}

fn representation(u: &FakeKeycloakUser, brief: bool) -> Value {
    let mut v = json!({
        "id": u.id, "username": u.username, "email": u.email, "emailVerified": u.email_verified,
        "enabled": u.enabled, "firstName": u.first_name, "lastName": u.last_name,
        "createdTimestamp": 1_767_225_600_000u64, "totp": false,
        "requiredActions": u.required_actions, "notBefore": 0,
    });
    if !brief && !u.attributes.is_empty() {
        v["attributes"] = json!(u.attributes);
    }
    v
}

/// `GET …/users`: `email`/`username` (exact with `exact=true`, else substring; both compared
/// lower-case as Keycloak stores them), `search`, `first`, `max` (default 100).
fn search(st: &State, q: &HashMap<String, String>) -> Vec<Value> {
    let exact = q.get("exact").is_some_and(|v| v == "true");
    let hit = |have: Option<&str>, want: Option<&String>| match want {
        None => true,
        Some(w) => {
            let w = w.to_lowercase();
            have.is_some_and(|h| if exact { h == w } else { h.contains(&w) })
        }
    };
    let mut users: Vec<&FakeKeycloakUser> = st
        .users
        .values()
        .filter(|u| {
            hit(u.email.as_deref(), q.get("email")) && hit(Some(&u.username), q.get("username"))
        })
        .filter(|u| {
            q.get("search").is_none_or(|s| {
                let s = s.to_lowercase();
                u.username.contains(&s) || u.email.as_deref().is_some_and(|e| e.contains(&s))
            })
        })
        .collect();
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let first = q.get("first").and_then(|v| v.parse().ok()).unwrap_or(0);
    let max = q.get("max").and_then(|v| v.parse().ok()).unwrap_or(100);
    let brief = q.get("briefRepresentation").is_some_and(|v| v == "true");
    users
        .into_iter()
        .skip(first)
        .take(max)
        .map(|u| representation(u, brief))
        .collect()
}

pub(super) fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}
