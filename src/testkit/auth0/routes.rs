//! The Auth0 fake's HTTP side: routing by the spec's paths, fault injection, spec validation,
//! the token endpoint, bearer tokens and scopes, the rate limit, and the operations.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use rand::Rng;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{Bucket, FakeAuth0User, Issued, Shared, State, required_scope};
use crate::testkit::{Fault, Incoming_, Reply, json_response, query_params, signin_page};

type Resp = Response<Full<Bytes>>;

/// A 24-hex id like the ones Auth0 generates.
pub(super) fn object_id() -> String {
    let bytes: [u8; 12] = rand::rng().random();
    hex::encode(bytes)
}

fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Auth0's error body.
pub(super) fn error(status: u16, message: &str, code: Option<&str>) -> Resp {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut body = json!({"statusCode": status, "error": reason, "message": message});
    if let Some(code) = code {
        body["errorCode"] = json!(code);
    }
    json_response(status, &body)
}

fn route(method: &hyper::Method, path: &str) -> Option<(&'static str, Option<String>)> {
    use hyper::Method as M;
    match (method, path) {
        (&M::POST, "/oauth/token") => Some(("token", None)),
        (&M::GET, "/api/v2/users-by-email") => Some(("get_users-by-email", None)),
        (&M::POST, "/api/v2/users") => Some(("post_users", None)),
        (&M::GET, "/api/v2/connections") => Some(("get_connections", None)),
        (m, p) => {
            let raw = p.strip_prefix("/api/v2/users/")?;
            if raw.is_empty() || raw.contains('/') {
                return None;
            }
            let id = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .ok()?
                .into_owned();
            match *m {
                M::GET => Some(("get_users_by_id", Some(id))),
                M::PATCH => Some(("patch_users_by_id", Some(id))),
                _ => None,
            }
        }
    }
}

fn content_type(req: &Incoming_) -> String {
    req.headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub(super) async fn handle(s: &Shared, req: Incoming_) -> Reply {
    if req.uri.path() == signin_page::PATH {
        return Reply::Send(signin_page::handle(&req, "Auth0", |email, pw| {
            let user = s
                .lock()
                .users
                .values()
                .find(|u| {
                    u.connection == s.options.connection && u.email.eq_ignore_ascii_case(email)
                })
                .cloned();
            user.and_then(|u| u.password_bcrypt)
                .is_some_and(|h| bcrypt::verify(pw, &h).unwrap_or(false))
        }));
    }
    let Some((op, path_id)) = route(&req.method, req.uri.path()) else {
        s.lock().knobs.violation(format!(
            "{} {}: not an operation of the spec the fake serves",
            req.method,
            req.uri.path()
        ));
        return Reply::Send(error(404, "Not Found", None));
    };
    let _in_flight = (op != "token").then(|| InFlight::enter(s));
    let fault = s.lock().knobs.arrive(op);
    let mut hang_after = false;
    let mut close_after = false;
    match fault {
        Some(Fault::Status(code)) => {
            return Reply::Send(error(code, "Injected failure", None));
        }
        Some(Fault::RateLimit { reset_secs }) => {
            let reset = epoch_secs().floor() as u64 + reset_secs;
            return Reply::Send(too_many(s, reset));
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::ResetConnection) => return Reply::Reset,
        Some(Fault::CommitThenHang) => hang_after = true,
        Some(Fault::CommitThenClose) => close_after = true,
        Some(Fault::PasswordPolicy) if matches!(op, "post_users" | "patch_users_by_id") => {
            return Reply::Send(weak());
        }
        Some(Fault::PasswordPolicy) | None => {}
    }
    let reply = if op == "token" {
        token(s, &req)
    } else {
        api(s, op, path_id, &req).await
    };
    if hang_after {
        Reply::Hang
    } else if close_after {
        Reply::Reset
    } else {
        Reply::Send(reply)
    }
}

/// Counts a Management API request from its arrival until its answer (or hang) ends.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(s: &'a Shared) -> Self {
        let mut st = s.lock();
        st.in_flight += 1;
        st.max_in_flight = st.max_in_flight.max(st.in_flight);
        Self(s)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.in_flight = st.in_flight.saturating_sub(1);
    }
}

fn weak() -> Resp {
    error(400, "PasswordStrengthError: Password is too weak", None)
}

/// 429 with Auth0's headers; `X-RateLimit-Reset` is the Unix time the bucket has room again.
fn too_many(s: &Shared, reset_epoch: u64) -> Resp {
    let mut r = error(
        429,
        "Global limit has been reached",
        Some("too_many_requests"),
    );
    let limit = s.options.rate_limit.map_or(0.0, |l| l.burst);
    for (name, value) in [
        ("x-ratelimit-limit", format!("{limit}")),
        ("x-ratelimit-remaining", "0".to_string()),
        ("x-ratelimit-reset", reset_epoch.to_string()),
    ] {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            r.headers_mut().insert(name, v);
        }
    }
    r
}

fn oauth_error(status: u16, error: &str, description: &str) -> Resp {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn token(s: &Shared, req: &Incoming_) -> Resp {
    let ct = content_type(req);
    let form: HashMap<String, String> = if ct.starts_with("application/x-www-form-urlencoded") {
        form_urlencoded::parse(&req.body).into_owned().collect()
    } else if ct.starts_with("application/json") {
        serde_json::from_slice(&req.body).unwrap_or_default()
    } else {
        s.lock()
            .knobs
            .violation(format!("token: content type {ct:?}"));
        return oauth_error(400, "invalid_request", "Unsupported content type");
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(400, "unsupported_grant_type", "Unsupported grant type");
    }
    let opts = &s.options;
    if form.get("client_id") != Some(&opts.client_id)
        || form.get("client_secret") != Some(&opts.client_secret)
    {
        return oauth_error(401, "access_denied", "Unauthorized");
    }
    let audience = format!("{}/api/v2/", s.base_url);
    match form.get("audience") {
        Some(a) if *a == audience => {}
        Some(a) => {
            return oauth_error(
                403,
                "access_denied",
                &format!("Service not enabled within domain: {a}"),
            );
        }
        None => return oauth_error(403, "access_denied", "No audience parameter was provided"),
    }
    let token = format!("fake-auth0.{}{}", object_id(), object_id());
    let scope = opts.scopes.join(" ");
    s.lock().tokens.insert(
        token.clone(),
        Issued {
            expires_at: Instant::now() + opts.token_lifetime,
            scopes: opts.scopes.clone(),
        },
    );
    json_response(
        200,
        &json!({"access_token": token, "scope": scope, "expires_in": opts.token_lifetime.as_secs().max(1), "token_type": "Bearer"}),
    )
}

/// Takes one request from the bucket, or returns the Unix time it has room again.
fn take_token(s: &Shared, st: &mut State) -> Result<(), u64> {
    let Some(limit) = s.options.rate_limit else {
        return Ok(());
    };
    let now = Instant::now();
    let bucket = st.bucket.get_or_insert(Bucket {
        tokens: limit.burst,
        at: now,
    });
    let elapsed = now.duration_since(bucket.at).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(limit.burst);
    bucket.at = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        return Ok(());
    }
    let wait = (1.0 - bucket.tokens) / limit.per_second;
    st.rate_limited += 1;
    Err((epoch_secs() + wait).ceil() as u64)
}

async fn api(s: &Shared, op: &str, path_id: Option<String>, req: &Incoming_) -> Resp {
    let params = query_params(&req.uri);
    let ct = content_type(req);
    let body: Value = if req.body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => {
                return error(
                    400,
                    "Invalid request payload JSON format",
                    Some("invalid_body"),
                );
            }
        }
    };
    let bearer = req
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let password_hash = match body.get("password").and_then(Value::as_str) {
        Some(p) if s.options.policy.refuse(p).is_none() => bcrypt::hash(p, 4).ok(),
        _ => None,
    };
    let mut st = s.lock();
    let request = json!({
        "method": req.method.as_str(), "path": req.uri.path(), "query": params,
        "content_type": ct, "body": body,
    });
    if let Some(validator) = st.validator.clone()
        && let Err(e) = validator(op, &request)
    {
        st.knobs.violation(format!("{op}: {e}"));
        return error(
            400,
            &format!("Payload validation error: {e}"),
            Some("invalid_body"),
        );
    }
    let scopes = match st.tokens.get(&bearer) {
        Some(t) if t.expires_at > Instant::now() => t.scopes.clone(),
        Some(_) => {
            return error(
                401,
                "Expired token received for JSON Web Token validation",
                None,
            );
        }
        None => return error(401, "Invalid token", None),
    };
    if let Some(needed) = required_scope(op)
        && !scopes.iter().any(|sc| sc == needed)
    {
        return error(
            403,
            &format!("Insufficient scope, expected any of: {needed}"),
            Some("insufficient_scope"),
        );
    }
    if let Err(reset) = take_token(s, &mut st) {
        return too_many(s, reset);
    }
    match op {
        "get_users-by-email" => {
            let email = params.get("email").cloned().unwrap_or_default();
            // Case-sensitive, as the spec says: the stored (lower-case) form must be asked for.
            let mut found: Vec<&FakeAuth0User> =
                st.users.values().filter(|u| u.email == email).collect();
            found.sort_by(|a, b| a.user_id.cmp(&b.user_id));
            json_response(
                200,
                &Value::Array(found.into_iter().map(user_json).collect()),
            )
        }
        "get_users_by_id" => match path_id.as_ref().and_then(|id| st.users.get(id)) {
            Some(u) => json_response(200, &user_json(u)),
            None => not_found(),
        },
        "post_users" => create(s, &mut st, &body, password_hash),
        "patch_users_by_id" => update(
            s,
            &mut st,
            path_id.unwrap_or_default(),
            &body,
            password_hash,
        ),
        _ => connections(s, &params),
    }
}

fn not_found() -> Resp {
    error(404, "The user does not exist.", Some("inexistent_user"))
}

fn user_json(u: &FakeAuth0User) -> Value {
    let (strategy, id) = u.user_id.split_once('|').unwrap_or(("auth0", &u.user_id));
    json!({
        "user_id": u.user_id, "email": u.email, "email_verified": u.email_verified,
        "given_name": u.given_name, "family_name": u.family_name,
        "identities": [{"connection": u.connection, "user_id": id, "provider": strategy, "isSocial": strategy != "auth0"}],
        "app_metadata": u.app_metadata, "user_metadata": {},
        "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
        "logins_count": 0,
    })
}

fn text(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_string)
}

fn create(s: &Shared, st: &mut State, body: &Value, password_hash: Option<String>) -> Resp {
    if text(body, "connection").as_deref() != Some(s.options.connection.as_str()) {
        return error(
            400,
            "The connection does not exist.",
            Some("inexistent_connection"),
        );
    }
    let (Some(email), Some(password)) = (text(body, "email"), text(body, "password")) else {
        return error(
            400,
            "Payload validation error: 'Missing required property: email or password'",
            Some("invalid_body"),
        );
    };
    if let Some(name) = s.options.policy.refuse(&password) {
        let message = match name {
            "PasswordDictionaryError" => "PasswordDictionaryError: Password is too common",
            _ => "PasswordStrengthError: Password is too weak",
        };
        return error(400, message, None);
    }
    let email = email.to_lowercase();
    let user_id = format!("auth0|{}", text(body, "user_id").unwrap_or_else(object_id));
    let taken = st.users.contains_key(&user_id)
        || st
            .users
            .values()
            .any(|u| u.connection == s.options.connection && u.email == email);
    if taken {
        return error(409, "The user already exists.", Some("auth0_idp_error"));
    }
    let user = FakeAuth0User {
        user_id: user_id.clone(),
        email,
        email_verified: body
            .get("email_verified")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        connection: s.options.connection.clone(),
        given_name: text(body, "given_name"),
        family_name: text(body, "family_name"),
        app_metadata: body.get("app_metadata").cloned().unwrap_or(json!({})),
        password_bcrypt: password_hash,
        previous_passwords: Vec::new(),
        created_via_api: true,
    };
    let answer = user_json(&user);
    st.users.insert(user_id, user);
    json_response(201, &answer)
}

fn used_before(u: &FakeAuth0User, password: &str, history: usize) -> bool {
    history > 0
        && u.password_bcrypt
            .iter()
            .chain(u.previous_passwords.iter().rev().take(history))
            .any(|h| bcrypt::verify(password, h).unwrap_or(false))
}

fn update(
    s: &Shared,
    st: &mut State,
    id: String,
    body: &Value,
    password_hash: Option<String>,
) -> Resp {
    let Some(u) = st.users.get_mut(&id) else {
        return not_found();
    };
    if let Some(password) = text(body, "password") {
        for other in ["email", "email_verified", "username"] {
            if body.get(other).is_some() {
                return error(
                    400,
                    &format!("Cannot update password and {other} simultaneously"),
                    Some("invalid_body"),
                );
            }
        }
        if text(body, "connection").as_deref() != Some(u.connection.as_str()) {
            return error(
                400,
                "Connection is required and must be the user's connection when updating password",
                Some("invalid_body"),
            );
        }
        if let Some(name) = s.options.policy.refuse(&password) {
            let message = match name {
                "PasswordDictionaryError" => "PasswordDictionaryError: Password is too common",
                _ => "PasswordStrengthError: Password is too weak",
            };
            return error(400, message, None);
        }
        if used_before(u, &password, s.options.policy.history) {
            return error(
                400,
                "PasswordHistoryError: Password has previously been used",
                None,
            );
        }
        if let Some(old) = u.password_bcrypt.take() {
            u.previous_passwords.push(old);
        }
        u.password_bcrypt = password_hash;
    }
    if let Some(Value::Object(patch)) = body.get("app_metadata") {
        let meta = u.app_metadata.as_object_mut();
        let mut merged = meta.map(std::mem::take).unwrap_or_else(Map::new);
        for (k, v) in patch {
            if v.is_null() {
                merged.remove(k);
            } else {
                merged.insert(k.clone(), v.clone());
            }
        }
        u.app_metadata = Value::Object(merged);
    }
    json_response(200, &user_json(u))
}

fn connections(s: &Shared, params: &HashMap<String, String>) -> Resp {
    let all = [
        json!({"id": "con_fakedatabase00001", "name": s.options.connection, "strategy": "auth0",
               "options": s.options.policy.options(), "realms": [s.options.connection], "is_domain_connection": false}),
        json!({"id": "con_fakegoogle0000001", "name": "google-oauth2", "strategy": "google-oauth2",
               "options": {}, "realms": ["google-oauth2"], "is_domain_connection": false}),
    ];
    let list: Vec<Value> = all
        .into_iter()
        .filter(|c| params.get("name").is_none_or(|n| c["name"] == json!(n)))
        .collect();
    json_response(200, &Value::Array(list))
}
