//! A fake Kinde: `POST /oauth2/token` and the management API paths dripgate uses, with the
//! spec's status codes and body shapes (see docs/PROVIDERS.md).
//!
//! Operation names (for counters and faults) are the spec's operationIds: `token`, `getUsers`,
//! `getUserData`, `createUser`, `updateUser`, `SetUserPassword`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::Digest;
use rand::Rng;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    Fault, Incoming_, Knobs, Reply, ServerHandle, Validator, json_response, query_params, serve,
};

/// Scopes dripgate needs.
pub const ALL_SCOPES: [&str; 4] = [
    "read:users",
    "create:users",
    "update:users",
    "update:user_passwords",
];

/// Fake settings.
#[derive(Debug, Clone)]
pub struct FakeKindeOptions {
    /// The M2M client id it accepts.
    pub client_id: String,
    /// The M2M client secret it accepts.
    pub client_secret: String,
    /// Scopes granted to the client.
    pub scopes: Vec<String>,
    /// Token lifetime (`expires_in`).
    pub token_lifetime: Duration,
    /// Accept the plaintext `{"password": …}` body some Kinde pages show (the spec does not).
    pub accept_plaintext_password: bool,
}

impl Default for FakeKindeOptions {
    fn default() -> Self {
        Self {
            client_id: "fake-m2m-client".into(),
            client_secret: "fake-m2m-secret".into(),
            scopes: ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
            token_lifetime: Duration::from_secs(86_400),
            accept_plaintext_password: false,
        }
    }
}

/// Password material as stored by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPassword {
    /// `hashing_method` (or `plaintext`).
    pub method: String,
    /// `hashed_password` (or the plaintext).
    pub hash: String,
    /// `salt`.
    pub salt: Option<String>,
    /// `salt_position`.
    pub salt_position: Option<String>,
    /// `is_temporary_password`.
    pub temporary: bool,
}

/// A user held by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeKindeUser {
    /// `kp_` + 32 hex.
    pub id: String,
    /// Email identity (as given).
    pub email: Option<String>,
    /// Whether the email identity is verified.
    pub email_verified: bool,
    /// `profile.given_name`.
    pub given_name: Option<String>,
    /// `profile.family_name`.
    pub family_name: Option<String>,
    /// `provided_id`.
    pub provided_id: Option<String>,
    /// The password, once set.
    pub password: Option<StoredPassword>,
    /// `is_password_reset_requested`.
    pub password_reset_requested: bool,
}

#[derive(Debug)]
struct Issued {
    expires_at: Instant,
    scopes: Vec<String>,
}

#[derive(Default)]
struct State {
    users: HashMap<String, FakeKindeUser>,
    tokens: HashMap<String, Issued>,
    knobs: Knobs,
    validator: Option<Validator>,
}

struct Shared {
    options: FakeKindeOptions,
    base_url: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running fake Kinde; stops when dropped.
pub struct FakeKinde {
    shared: Arc<Shared>,
    _server: ServerHandle,
}

impl std::fmt::Debug for FakeKinde {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKinde")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

fn errors(code: &str, message: &str) -> Value {
    json!({"errors": [{"code": code, "message": message}]})
}

impl FakeKinde {
    /// Starts the fake on `addr` (e.g. `127.0.0.1:0`).
    pub async fn start(addr: &str, options: FakeKindeOptions) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let base_url = format!("http://{local}");
        let shared = Arc::new(Shared {
            options,
            base_url,
            state: Mutex::new(State::default()),
        });
        let s = shared.clone();
        let server = serve(listener, move |req| {
            let s = s.clone();
            async move { handle(&s, req).await }
        })?;
        Ok(Self {
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The audience tokens must ask for: `<base_url>/api`.
    pub fn audience(&self) -> String {
        format!("{}/api", self.shared.base_url)
    }

    /// The fake's settings.
    pub fn options(&self) -> &FakeKindeOptions {
        &self.shared.options
    }

    /// Validates every request body with `validator` (e.g. built from the spec file).
    pub fn set_validator(&self, validator: Validator) {
        self.shared.lock().validator = Some(validator);
    }

    /// Every user.
    pub fn users(&self) -> Vec<FakeKindeUser> {
        let mut v: Vec<_> = self.shared.lock().users.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The user with this email (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Option<FakeKindeUser> {
        self.shared
            .lock()
            .users
            .values()
            .find(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .cloned()
    }

    /// Adds a user directly (as if created earlier), returning its id.
    pub fn insert_user(&self, email: &str) -> String {
        let id = new_id();
        let user = FakeKindeUser {
            id: id.clone(),
            email: Some(email.to_string()),
            email_verified: true,
            given_name: None,
            family_name: None,
            provided_id: None,
            password: None,
            password_reset_requested: false,
        };
        self.shared.lock().users.insert(id.clone(), user);
        id
    }

    /// Whether `plaintext` signs in as the user with `email` (bcrypt, md5, sha256, plaintext).
    pub fn verify_password(&self, email: &str, plaintext: &[u8]) -> bool {
        let Some(pw) = self.user_by_email(email).and_then(|u| u.password) else {
            return false;
        };
        verify(&pw, plaintext)
    }

    /// Calls seen for an operation (operationId, or `token`).
    pub fn calls(&self, operation: &str) -> u64 {
        self.shared.lock().knobs.calls(operation)
    }

    /// Queues `fault` for the next `n` calls of `operation`.
    pub fn fail_next(&self, operation: &str, n: usize, fault: Fault) {
        self.shared.lock().knobs.fail_next(operation, n, fault);
    }

    /// Makes every token issued so far expire now (the next use gets 401).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for t in self.shared.lock().tokens.values_mut() {
            t.expires_at = now;
        }
    }

    /// Requests that broke the spec (checked by the validator and the fake's own rules).
    pub fn spec_violations(&self) -> Vec<String> {
        self.shared.lock().knobs.violations()
    }

    /// When each call arrived.
    pub fn arrivals(&self) -> Vec<(String, Instant)> {
        self.shared.lock().knobs.arrivals()
    }
}

fn new_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    format!("kp_{}", hex::encode(bytes))
}

fn verify(pw: &StoredPassword, plaintext: &[u8]) -> bool {
    let salted = |salt: &Option<String>, pos: &Option<String>| -> Vec<u8> {
        let salt = salt.as_deref().unwrap_or_default().as_bytes();
        match pos.as_deref() {
            Some("suffix") => [plaintext, salt].concat(),
            _ => [salt, plaintext].concat(),
        }
    };
    match pw.method.as_str() {
        "bcrypt" => bcrypt::verify(plaintext, &pw.hash).unwrap_or(false),
        "md5" => hex::encode(md5::Md5::digest(salted(&pw.salt, &pw.salt_position)))
            .eq_ignore_ascii_case(&pw.hash),
        "sha256" => hex::encode(sha2::Sha256::digest(salted(&pw.salt, &pw.salt_position)))
            .eq_ignore_ascii_case(&pw.hash),
        "plaintext" => pw.hash.as_bytes() == plaintext,
        _ => false,
    }
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

async fn handle(s: &Shared, req: Incoming_) -> Reply {
    if req.uri.path() == super::signin_page::PATH {
        return Reply::Send(super::signin_page::handle(&req, "Kinde", |email, pw| {
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
            super::response(403, "application/json", "")
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

fn not_found() -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
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

const METHODS: [&str; 8] = [
    "bcrypt",
    "crypt",
    "md5",
    "sha256",
    "wordpress",
    "pbkdf2",
    "firebase-scrypt",
    "aspnet-identity-v2",
];

fn set_password(
    s: &Shared,
    st: &mut State,
    id: String,
    body: &Value,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    if !st.users.contains_key(&id) {
        return not_found();
    }
    let temporary = body
        .get("is_temporary_password")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let stored = match (
        body.get("hashed_password").and_then(Value::as_str),
        body.get("password").and_then(Value::as_str),
    ) {
        (Some(hash), _) => {
            let method = body
                .get("hashing_method")
                .and_then(Value::as_str)
                .unwrap_or("bcrypt");
            if !METHODS.contains(&method) {
                return json_response(
                    400,
                    &errors("INVALID_HASHING_METHOD", "Unsupported hashing_method"),
                );
            }
            let salt = body.get("salt").and_then(Value::as_str).map(str::to_string);
            let salt_position = body
                .get("salt_position")
                .and_then(Value::as_str)
                .map(str::to_string);
            if method == "bcrypt"
                && !(hash.starts_with("$2a$")
                    || hash.starts_with("$2b$")
                    || hash.starts_with("$2y$"))
            {
                return json_response(400, &errors("INVALID_PASSWORD_HASH", "Not a bcrypt hash"));
            }
            if salt.is_some() && salt_position.is_none() && matches!(method, "md5" | "sha256") {
                return json_response(
                    400,
                    &errors(
                        "INVALID_SALT_POSITION",
                        "salt_position is required with a salt",
                    ),
                );
            }
            // Kinde rewrites $2b$ to $2a$ (same algorithm).
            let hash = hash
                .strip_prefix("$2b$")
                .map(|r| format!("$2a${r}"))
                .unwrap_or_else(|| hash.to_string());
            StoredPassword {
                method: method.to_string(),
                hash,
                salt,
                salt_position,
                temporary,
            }
        }
        (None, Some(plain)) if s.options.accept_plaintext_password => StoredPassword {
            method: "plaintext".into(),
            hash: plain.to_string(),
            salt: None,
            salt_position: None,
            temporary,
        },
        _ => {
            st.knobs
                .violation("SetUserPassword: 'hashed_password' is a required property".into());
            return json_response(
                400,
                &errors(
                    "INVALID_REQUEST",
                    "'hashed_password' is a required property",
                ),
            );
        }
    };
    if let Some(u) = st.users.get_mut(&id) {
        u.password = Some(stored);
    }
    json_response(200, &json!({"message": "Success", "code": "OK"}))
}
