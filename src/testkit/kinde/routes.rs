//! The Kinde fake's HTTP side: routing by the spec's paths, fault injection, the token endpoint
//! and the management API operations.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::password::{set_password, verify};
use super::{FakeKindeUser, Issued, Shared, State, new_id};
use crate::testkit::{Fault, Incoming_, Reply, json_response, query_params, signin_page};

pub(super) fn errors(code: &str, message: &str) -> Value {
    json!({"errors": [{"code": code, "message": message}]})
}

fn route(method: &hyper::Method, path: &str) -> Option<(&'static str, Option<String>)> {
    use hyper::Method as M;
    match (method, path) {
        (&M::POST, "/oauth2/token") => Some(("token", None)),
        (&M::GET, "/api/v1/users") => Some(("getUsers", None)),
        (&M::GET, "/api/v1/user") => Some(("getUserData", None)),
        (&M::POST, "/api/v1/user") => Some(("createUser", None)),
        (&M::PATCH, "/api/v1/user") => Some(("updateUser", None)),
        (&M::PUT, p) => {
            let rest = p
                .strip_prefix("/api/v1/users/")?
                .strip_suffix("/password")?;
            (!rest.is_empty() && !rest.contains('/'))
                .then(|| ("SetUserPassword", Some(rest.to_string())))
        }
        _ => None,
    }
}

fn required_scope(op: &str) -> &'static str {
    match op {
        "getUsers" | "getUserData" => "read:users",
        "createUser" => "create:users",
        "updateUser" => "update:users",
        _ => "update:user_passwords",
    }
}

pub(super) async fn handle(s: &Shared, req: Incoming_) -> Reply {
    if req.uri.path() == signin_page::PATH {
        return Reply::Send(signin_page::handle(&req, "Kinde", |email, pw| {
            let user = s
                .lock()
                .users
                .values()
                .find(|u| {
                    u.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
                })
                .cloned();
            user.and_then(|u| u.password)
                .is_some_and(|p| verify(&p, pw))
        }));
    }
    let Some((op, path_id)) = route(&req.method, req.uri.path()) else {
        return Reply::Send(json_response(
            404,
            &json!({"errors": {"code": "ROUTE_NOT_FOUND", "message": "The requested API route does not exist"}}),
        ));
    };
    let fault = s.lock().knobs.arrive(op);
    let mut hang_after = false;
    let mut close_after = false;
    match fault {
        Some(Fault::Status(code)) => {
            return Reply::Send(json_response(
                code,
                &errors("INTERNAL_ERROR", "Injected failure"),
            ));
        }
        Some(Fault::RateLimit { reset_secs }) => {
            let mut r = json_response(429, &errors("TOO_MANY_REQUESTS", "Request was throttled"));
            if let Ok(v) = hyper::header::HeaderValue::from_str(&reset_secs.to_string()) {
                r.headers_mut().insert("ratelimit-reset", v);
            }
            return Reply::Send(r);
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::ResetConnection) => return Reply::Reset,
        Some(Fault::CommitThenHang) => hang_after = true,
        Some(Fault::CommitThenClose) => close_after = true,
        Some(Fault::PasswordPolicy) if op == "SetUserPassword" => {
            return Reply::Send(json_response(
                400,
                &errors(
                    "INVALID_PASSWORD",
                    "The password does not meet the password policy",
                ),
            ));
        }
        Some(Fault::PasswordPolicy) | None => {}
    }
    let reply = if op == "token" {
        token(s, &req)
    } else {
        api(s, op, path_id, &req)
    };
    if hang_after {
        Reply::Hang
    } else if close_after {
        Reply::Reset
    } else {
        Reply::Send(reply)
    }
}

fn oauth_error(
    status: u16,
    error: &str,
    description: &str,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn token(s: &Shared, req: &Incoming_) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let ct = req
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        s.lock()
            .knobs
            .violation(format!("token: content type {ct:?}"));
        return oauth_error(
            400,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&req.body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let opts = &s.options;
    if form.get("client_id") != Some(&opts.client_id)
        || form.get("client_secret") != Some(&opts.client_secret)
    {
        return oauth_error(401, "invalid_client", "Client authentication failed");
    }
    let audience = format!("{}/api", s.base_url);
    match form.get("audience") {
        None => return oauth_error(400, "invalid_request", "The audience parameter is required"),
        Some(a) if *a != audience => {
            return oauth_error(
                400,
                "unauthorized_client",
                "The client is not authorized for this audience",
            );
        }
        Some(_) => {}
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let lifetime = opts.token_lifetime.as_secs().max(1);
    let scope = opts.scopes.join(" ");
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let jti: [u8; 16] = rand::rng().random();
    let payload = URL_SAFE_NO_PAD.encode(
        json!({
            "aud": [audience], "azp": opts.client_id, "exp": now + lifetime, "gty": ["client_credentials"],
            "iat": now, "iss": s.base_url, "jti": hex::encode(jti), "scope": scope,
        })
        .to_string(),
    );
    let sig: [u8; 32] = rand::rng().random();
    let token = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig));
    s.lock().tokens.insert(
        token.clone(),
        Issued {
            expires_at: Instant::now() + opts.token_lifetime,
            scopes: opts.scopes.clone(),
        },
    );
    json_response(
        200,
        &json!({"access_token": token, "expires_in": lifetime, "scope": scope, "token_type": "bearer"}),
    )
}

fn api(
    s: &Shared,
    op: &str,
    path_id: Option<String>,
    req: &Incoming_,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let bearer = req
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let mut st = s.lock();
    let scopes = match st.tokens.get(bearer) {
        Some(t) if t.expires_at > Instant::now() => t.scopes.clone(),
        _ => {
            return json_response(
                401,
                &errors("UNAUTHORIZED", "Missing or expired access token"),
            );
        }
    };
    if !scopes.iter().any(|sc| sc == required_scope(op)) {
        return if op == "SetUserPassword" {
            crate::testkit::response(403, "application/json", "")
        } else {
            json_response(
                403,
                &errors("FORBIDDEN", "Unauthorized - invalid credentials"),
            )
        };
    }
    let params = query_params(&req.uri);
    let has_body = matches!(op, "createUser" | "updateUser" | "SetUserPassword");
    let body: Value = if has_body && !req.body.is_empty() {
        let ct = req
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !ct.starts_with("application/json") {
            st.knobs.violation(format!("{op}: content type {ct:?}"));
            return json_response(
                400,
                &errors("INVALID_REQUEST", "Content-Type must be application/json"),
            );
        }
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => {
                return json_response(
                    400,
                    &errors("INVALID_JSON", "The request body is not valid JSON"),
                );
            }
        }
    } else {
        Value::Null
    };
    if has_body
        && let Some(validator) = st.validator.clone()
        && let Err(e) = validator(op, &body)
    {
        st.knobs.violation(format!("{op}: {e}"));
        return json_response(400, &errors("INVALID_REQUEST", &e));
    }
    match op {
        "getUsers" => {
            let wanted: Vec<String> = params
                .get("email")
                .map(|e| e.split(',').map(|x| x.trim().to_lowercase()).collect())
                .unwrap_or_default();
            let page_size = params
                .get("page_size")
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(10);
            let mut users: Vec<&FakeKindeUser> = st
                .users
                .values()
                .filter(|u| {
                    wanted.is_empty()
                        || u.email
                            .as_ref()
                            .is_some_and(|e| wanted.contains(&e.to_lowercase()))
                })
                .collect();
            users.sort_by(|a, b| a.id.cmp(&b.id));
            let list: Vec<Value> = users.into_iter().take(page_size).map(listed).collect();
            json_response(
                200,
                &json!({"code": "OK", "message": "Success", "users": list, "next_token": null}),
            )
        }
        "getUserData" => match params.get("id").and_then(|id| st.users.get(id)) {
            Some(u) => json_response(200, &single(u)),
            None => not_found(),
        },
        "createUser" => create(&mut st, &body),
        "updateUser" => {
            let Some(u) = params.get("id").and_then(|id| st.users.get_mut(id)) else {
                return not_found();
            };
            if let Some(v) = body.get("given_name").and_then(Value::as_str) {
                u.given_name = Some(v.to_string());
            }
            if let Some(v) = body.get("family_name").and_then(Value::as_str) {
                u.family_name = Some(v.to_string());
            }
            if let Some(v) = body.get("provided_id").and_then(Value::as_str) {
                u.provided_id = Some(v.to_string());
            }
            if let Some(v) = body
                .get("is_password_reset_requested")
                .and_then(Value::as_bool)
            {
                u.password_reset_requested = v;
            }
            json_response(
                200,
                &json!({
                    "id": u.id, "given_name": u.given_name, "family_name": u.family_name, "email": u.email,
                    "is_suspended": false, "is_password_reset_requested": u.password_reset_requested, "picture": null,
                }),
            )
        }
        _ => set_password(s, &mut st, path_id.unwrap_or_default(), &body),
    }
}

pub(super) fn not_found() -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    json_response(
        404,
        &json!({"errors": {"code": "USER_NOT_FOUND", "message": "The user does not exist"}}),
    )
}

fn listed(u: &FakeKindeUser) -> Value {
    json!({
        "id": u.id, "provided_id": u.provided_id, "email": u.email, "username": null,
        "last_name": u.family_name, "first_name": u.given_name, "is_suspended": false, "picture": null,
        "total_sign_ins": 0, "failed_sign_ins": 0, "last_signed_in": null,
        "created_on": "2026-01-01T00:00:00.000000+00:00",
        "identities": u.email.as_ref().map(|e| vec![json!({"type": "email", "identity": e})]).unwrap_or_default(),
    })
}

fn single(u: &FakeKindeUser) -> Value {
    json!({
        "id": u.id, "provided_id": u.provided_id, "preferred_email": u.email, "username": null,
        "last_name": u.family_name, "first_name": u.given_name, "is_suspended": false, "picture": null,
        "total_sign_ins": 0, "failed_sign_ins": 0, "last_signed_in": null,
        "created_on": "2026-01-01T00:00:00.000000+00:00",
    })
}

fn create(st: &mut State, body: &Value) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let mut email = None;
    let mut verified = false;
    for identity in body
        .get("identities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if identity.get("type").and_then(Value::as_str) == Some("email") {
            email = identity
                .get("details")
                .and_then(|d| d.get("email"))
                .and_then(Value::as_str)
                .map(str::to_string);
            verified = identity
                .get("is_verified")
                .and_then(Value::as_bool)
                .unwrap_or(false);
        }
    }
    if let Some(e) = &email {
        let taken = st
            .users
            .values()
            .any(|u| u.email.as_ref().is_some_and(|x| x.eq_ignore_ascii_case(e)));
        if taken {
            return json_response(
                400,
                &errors(
                    "USER_ALREADY_EXISTS",
                    "A user with this email already exists",
                ),
            );
        }
    }
    let profile = body.get("profile");
    let text = |v: Option<&Value>, k: &str| {
        v.and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let id = new_id();
    let user = FakeKindeUser {
        id: id.clone(),
        email: email.clone(),
        email_verified: verified,
        given_name: text(profile, "given_name"),
        family_name: text(profile, "family_name"),
        provided_id: text(Some(body), "provided_id"),
        password: None,
        password_reset_requested: false,
    };
    st.users.insert(id.clone(), user);
    let identities: Vec<Value> = email
        .iter()
        .map(|_| json!({"type": "email", "result": {"created": true}}))
        .collect();
    json_response(
        200,
        &json!({"id": id, "created": true, "identities": identities}),
    )
}
