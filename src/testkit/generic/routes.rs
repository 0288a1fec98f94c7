//! The fake's HTTP side: routing by the contract's paths, the signature, contract checks, fault
//! injection and the operations. `GET /_fake/state` (unsigned, not part of the contract) shows
//! the users without password material, for the demo.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{FakeHttpUser, Remembered, Shared, SpecRequest, State, auth, new_id};
use crate::provider::generic::sign;
use crate::testkit::kinde::StoredPassword;
use crate::testkit::{Fault, Incoming_, Reply, json_response, signin_page};

/// Where the contract's paths start on the fake (part of `base_url`).
pub(super) const BASE_PATH: &str = "/v1";

type Resp = Response<Full<Bytes>>;
/// A refusal, boxed: responses are large and refusals rare.
type Refused = Box<Resp>;

fn error(status: u16, code: &str, message: &str) -> Resp {
    json_response(status, &json!({"code": code, "message": message}))
}

fn route(method: &hyper::Method, path: &str) -> Option<(&'static str, Option<String>)> {
    use hyper::Method as M;
    let path = path.strip_prefix(BASE_PATH)?;
    match (method, path) {
        (&M::GET, "/capabilities") => Some(("getCapabilities", None)),
        (&M::GET, "/users") => Some(("findUserByEmail", None)),
        (&M::POST, "/users") => Some(("createUser", None)),
        (&M::PUT, p) => {
            let rest = p.strip_prefix("/users/")?;
            let (id, op) = match rest.split_once('/')? {
                (id, "password") => (id, "setPassword"),
                (id, "password-change-required") => (id, "requirePasswordChange"),
                _ => return None,
            };
            let id = percent_encoding::percent_decode_str(id)
                .decode_utf8()
                .ok()?
                .into_owned();
            (!id.is_empty()).then_some((op, Some(id)))
        }
        _ => None,
    }
}

pub(super) async fn handle(s: &Shared, req: Incoming_) -> Reply {
    match req.uri.path() {
        signin_page::PATH => {
            return Reply::Send(signin_page::handle(&req, "generic HTTP", |email, pw| {
                s.lock()
                    .user_by_email(email)
                    .and_then(|u| u.password.clone())
                    .is_some_and(|p| crate::testkit::kinde::verify_stored(&p, pw))
            }));
        }
        "/_fake/state" => return Reply::Send(state_view(&s.lock())),
        _ => {}
    }
    let Some((op, path_id)) = route(&req.method, req.uri.path()) else {
        let what = format!("no operation for {} {}", req.method, req.uri.path());
        s.lock().knobs.violation(what.clone());
        return Reply::Send(error(404, "not_found", &what));
    };
    let fault = s.lock().knobs.arrive(op);
    if let Err(code) = auth::check(s, &req) {
        s.lock().refusals.push(format!("{op}: {code}"));
        return Reply::Send(error(401, code, "request signature refused"));
    }
    if let Err(e) = check_contract(s, op, &req) {
        s.lock().knobs.violation(format!("{op}: {e}"));
        return Reply::Send(error(400, "invalid_request", &e));
    }
    let mut hang_after = false;
    let mut close_after = false;
    match fault {
        Some(Fault::Status(code)) => {
            return Reply::Send(error(code, "internal", "Injected failure"));
        }
        Some(Fault::RateLimit { reset_secs }) => {
            let mut r = error(429, "rate_limited", "Slow down");
            r.headers_mut()
                .insert(hyper::header::RETRY_AFTER, reset_secs.into());
            return Reply::Send(r);
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::ResetConnection) => return Reply::Reset,
        Some(Fault::CommitThenHang) => hang_after = true,
        Some(Fault::CommitThenClose) => close_after = true,
        Some(Fault::PasswordPolicy) => {
            return Reply::Send(policy_refusal(vec!["injected".into()]));
        }
        None => {}
    }
    let reply = operation(s, op, path_id, &req).await;
    if hang_after {
        Reply::Hang
    } else if close_after {
        Reply::Reset
    } else {
        Reply::Send(reply)
    }
}

/// The plugged-in validator (the OpenAPI file, in tests) and the content type.
fn check_contract(s: &Shared, op: &str, req: &Incoming_) -> Result<(), String> {
    let has_body = op != "getCapabilities" && op != "findUserByEmail";
    let json = req
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if has_body && !json {
        return Err("the body must be application/json".into());
    }
    if !has_body && !req.body.is_empty() {
        return Err("this operation takes no body".into());
    }
    let Some(validator) = s.lock().validator.clone() else {
        return Ok(());
    };
    let query: Vec<(String, String)> = req
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    validator(&SpecRequest {
        operation: op,
        method: req.method.as_str(),
        path: req.uri.path().strip_prefix(BASE_PATH).unwrap_or_default(),
        query: &query,
        headers: &req.headers,
        body: &req.body,
    })
}

async fn operation(s: &Shared, op: &str, id: Option<String>, req: &Incoming_) -> Resp {
    match op {
        "getCapabilities" => json_response(200, &capabilities(s)),
        "findUserByEmail" => find(s, req),
        "createUser" => create(s, req).await,
        "setPassword" => set_password(s, &id.unwrap_or_default(), req).await,
        _ => require_change(s, &id.unwrap_or_default(), req),
    }
}

fn capabilities(s: &Shared) -> Value {
    let o = &s.options;
    let mut ops = Vec::new();
    if o.require_password_change {
        ops.push("require_password_change");
    }
    if !o.hash_methods.is_empty() {
        ops.push("import_hash");
    }
    json!({
        "contract": crate::provider::generic::CONTRACT,
        "operations": ops,
        "hash_methods": o.hash_methods,
        "password_policy": {"min_length": o.min_password_length},
    })
}

fn user_json(u: &FakeHttpUser) -> Value {
    json!({
        "id": u.id, "email": u.email, "legacy_id": u.legacy_id, "email_verified": u.email_verified,
        "given_name": u.given_name, "family_name": u.family_name,
        "password_change_required": u.password_change_required,
    })
}

fn find(s: &Shared, req: &Incoming_) -> Resp {
    let params = crate::testkit::query_params(&req.uri);
    let email = params.get("email").map(|e| e.trim()).unwrap_or_default();
    match s.lock().user_by_email(email) {
        Some(u) => json_response(200, &user_json(u)),
        None => error(404, "user_not_found", "No user has this email"),
    }
}

/// `PasswordHash`, strictly: unknown fields are a contract violation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashIn {
    method: String,
    hash: String,
    salt: Option<String>,
    salt_position: Option<String>,
    iterations: Option<u32>,
    variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserIn {
    email: String,
    email_verified: bool,
    given_name: Option<String>,
    family_name: Option<String>,
    legacy_id: Option<String>,
    password: Option<String>,
    password_hash: Option<HashIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordUpdateIn {
    password: Option<String>,
    password_hash: Option<HashIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeIn {
    required: bool,
}

/// Parses a body strictly; a failure is recorded as a contract violation.
fn parse<T: for<'de> Deserialize<'de>>(s: &Shared, op: &str, body: &[u8]) -> Result<T, Refused> {
    serde_json::from_slice(body).map_err(|e| {
        s.lock().knobs.violation(format!("{op}: body: {e}"));
        Box::new(error(
            400,
            "invalid_request",
            "the body does not match the contract",
        ))
    })
}

fn policy_refusal(reasons: Vec<String>) -> Resp {
    json_response(
        422,
        &json!({"code": "password_policy", "message": "The password breaks the password policy", "reasons": reasons}),
    )
}

/// What is stored for a password: a bcrypt of a plaintext (computed off the async workers),
/// or the imported hash after the policy and method checks.
async fn credential(
    s: &Shared,
    password: Option<String>,
    hash: Option<HashIn>,
) -> Result<Option<StoredPassword>, Refused> {
    match (password, hash) {
        (Some(_), Some(_)) => Err(Box::new(error(
            400,
            "invalid_request",
            "password and password_hash are exclusive",
        ))),
        (Some(pw), None) => {
            if pw.chars().count() < s.options.min_password_length {
                return Err(Box::new(policy_refusal(vec!["too_short".into()])));
            }
            let cost = s.options.bcrypt_cost;
            let hashed = tokio::task::spawn_blocking(move || bcrypt::hash(pw, cost))
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| Box::new(error(500, "internal", "hashing failed")))?;
            Ok(Some(stored("bcrypt", hashed, None)))
        }
        (None, Some(h)) => imported(s, h).map(Some),
        (None, None) => Ok(None),
    }
}

fn stored(method: &str, hash: String, h: Option<&HashIn>) -> StoredPassword {
    StoredPassword {
        method: method.to_string(),
        hash,
        salt: h.and_then(|h| h.salt.clone()),
        salt_position: h.and_then(|h| h.salt_position.clone()),
        iterations: h.and_then(|h| h.iterations),
        variant: h.and_then(|h| h.variant.clone()),
        temporary: false,
    }
}

fn imported(s: &Shared, h: HashIn) -> Result<StoredPassword, Refused> {
    if !s.options.hash_methods.contains(&h.method) {
        return Err(Box::new(error(
            422,
            "unsupported_hash_method",
            "This hash method is not imported here",
        )));
    }
    let hex_len = |n: usize| h.hash.len() == n && h.hash.bytes().all(|b| b.is_ascii_hexdigit());
    let well_formed = match h.method.as_str() {
        "bcrypt" => h.hash.starts_with("$2"),
        "crypt" => h.hash.starts_with('$'),
        "wordpress" => h.hash.starts_with("$P$"),
        "md5" => hex_len(32),
        "sha256" => hex_len(64),
        "pbkdf2" => h.variant.is_some() && h.salt.is_some() && h.iterations.is_some(),
        _ => false,
    };
    let salt_only_for_digests =
        h.salt_position.is_none() || matches!(h.method.as_str(), "md5" | "sha256");
    if !well_formed || !salt_only_for_digests {
        return Err(Box::new(error(
            422,
            "invalid_hash",
            "The hash is not what its method says",
        )));
    }
    Ok(stored(&h.method, h.hash.clone(), Some(&h)))
}

async fn create(s: &Shared, req: &Incoming_) -> Resp {
    let op = "createUser";
    let body: NewUserIn = match parse(s, op, &req.body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(key) = req
        .headers
        .get(sign::IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        s.lock()
            .knobs
            .violation(format!("{op}: no Idempotency-Key"));
        return error(400, "invalid_request", "Idempotency-Key is required");
    };
    if let Some(answer) = replay(&s.lock(), &key, &body.email) {
        return answer;
    }
    let password = match credential(s, body.password, body.password_hash).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let mut st = s.lock();
    // Again under the lock: a resend may have been answered while this one was hashing.
    if let Some(answer) = replay(&st, &key, &body.email) {
        return answer;
    }
    if let Some(existing) = st.user_by_email(&body.email) {
        return json_response(
            409,
            &json!({"code": "user_exists", "message": "A user has this email", "existing_id": existing.id}),
        );
    }
    let user = FakeHttpUser {
        id: new_id(),
        email: body.email.clone(),
        email_verified: body.email_verified,
        given_name: body.given_name,
        family_name: body.family_name,
        legacy_id: body.legacy_id,
        password,
        password_change_required: false,
    };
    let answer = json_response(201, &user_json(&user));
    st.idempotency.insert(
        key,
        Remembered {
            email: body.email,
            user_id: user.id.clone(),
        },
    );
    st.users.insert(user.id.clone(), user);
    answer
}

/// The answer to a resend of a create already done under `key` (the first answer's user), or
/// 422 when the key came with another email.
fn replay(st: &State, key: &str, email: &str) -> Option<Resp> {
    let first = st.idempotency.get(key)?;
    if !first.email.eq_ignore_ascii_case(email) {
        return Some(error(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used for another user",
        ));
    }
    Some(match st.users.get(&first.user_id) {
        Some(u) => json_response(200, &user_json(u)),
        None => error(
            404,
            "user_not_found",
            "The user created under this key is gone",
        ),
    })
}

async fn set_password(s: &Shared, id: &str, req: &Incoming_) -> Resp {
    let body: PasswordUpdateIn = match parse(s, "setPassword", &req.body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if !s.lock().users.contains_key(id) {
        return error(404, "user_not_found", "No such user");
    }
    let password = match credential(s, body.password, body.password_hash).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            s.lock()
                .knobs
                .violation("setPassword: neither password nor password_hash".into());
            return error(
                400,
                "invalid_request",
                "password or password_hash is required",
            );
        }
        Err(r) => return *r,
    };
    match s.lock().users.get_mut(id) {
        Some(u) => {
            u.password = Some(password);
            Response::builder()
                .status(204)
                .body(Full::new(Bytes::new()))
                .unwrap_or_default()
        }
        None => error(404, "user_not_found", "No such user"),
    }
}

fn require_change(s: &Shared, id: &str, req: &Incoming_) -> Resp {
    let body: ChangeIn = match parse(s, "requirePasswordChange", &req.body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if !s.options.require_password_change {
        return error(501, "not_supported", "Not implemented here");
    }
    match s.lock().users.get_mut(id) {
        Some(u) => {
            u.password_change_required = body.required;
            Response::builder()
                .status(204)
                .body(Full::new(Bytes::new()))
                .unwrap_or_default()
        }
        None => error(404, "user_not_found", "No such user"),
    }
}

/// The admin view: users and what kind of password each has (never the material).
fn state_view(st: &State) -> Resp {
    let mut users: Vec<&FakeHttpUser> = st.users.values().collect();
    users.sort_by(|a, b| a.email.cmp(&b.email));
    let users: Vec<Value> = users
        .into_iter()
        .map(|u| {
            let mut v = user_json(u);
            v["password"] = json!(u.password.as_ref().map(|p| p.method.clone()));
            v
        })
        .collect();
    json_response(
        200,
        &json!({"users": users, "remembered_creates": st.idempotency.len(), "refusals": st.refusals}),
    )
}
