//! The Auth0 Management API spec (tests/provider_specs/auth0-management-api-oas.json, OpenAPI
//! 3.1) as a request checker for the Auth0 fake, the fake and client settings the Auth0 tests
//! share, and tests of the checker itself (it must refuse what the spec refuses).
//!
//! Each request is checked for: an operation with that operationId whose path template and
//! method match; query parameters declared by the operation, of their declared type, required
//! ones present; a JSON body exactly when the operation has a request body, validated against
//! its schema. The schema check is stricter than the spec in one way: an object schema that
//! lists `properties` refuses any other property even where it says
//! `additionalProperties: true` (`UpdateUserRequestContent`), so a misspelt field is caught;
//! free-form objects (`app_metadata`: no properties listed) take anything.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dripgate::provider::auth0::{Auth0Config, Auth0PasswordTransfer};
use dripgate::testkit::Validator;
use dripgate::testkit::auth0::{FakeAuth0, FakeAuth0Options};
use serde_json::{Value, json};

use crate::provider_common::spec_path;

/// The spec, parsed once per test binary.
pub fn spec() -> Arc<Value> {
    static SPEC: OnceLock<Arc<Value>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = std::fs::read_to_string(spec_path("auth0-management-api-oas.json")).unwrap();
        Arc::new(serde_json::from_str(&text).unwrap())
    })
    .clone()
}

/// `(path template, method, operation object)` of an operationId.
pub fn operation<'a>(spec: &'a Value, id: &str) -> Option<(&'a str, &'a str, &'a Value)> {
    for (path, item) in spec["paths"].as_object()? {
        for (method, op) in item.as_object()? {
            if op.get("operationId").and_then(Value::as_str) == Some(id) {
                return Some((path, method, op));
            }
        }
    }
    None
}

/// The `oAuth2ClientCredentials` scopes an operation accepts.
pub fn scopes(op: &Value) -> Vec<String> {
    op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("oAuth2ClientCredentials"))
        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn path_matches(template: &str, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v2") else {
        return false;
    };
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = rest.split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

fn check_query(
    spec: &Value,
    op: &Value,
    query: &serde_json::Map<String, Value>,
) -> Result<(), String> {
    let declared: Vec<&Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .collect();
    for p in &declared {
        let name = p["name"].as_str().unwrap_or_default();
        if p["required"] == true && !query.contains_key(name) {
            return Err(format!("query parameter '{name}' is required"));
        }
    }
    for (name, value) in query {
        let p = declared
            .iter()
            .find(|p| p["name"] == json!(name))
            .ok_or(format!("query parameter '{name}' is not declared"))?;
        let text = value.as_str().unwrap_or_default();
        let typed = match p["schema"]["type"].as_str() {
            Some("boolean") => match text {
                "true" => json!(true),
                "false" => json!(false),
                _ => return Err(format!("query '{name}': {text:?} is not a boolean")),
            },
            Some("integer") => json!(
                text.parse::<i64>()
                    .map_err(|_| format!("query '{name}': {text:?} is not an integer"))?
            ),
            _ => json!(text),
        };
        validate(spec, &p["schema"], &typed, &format!("query.{name}"))?;
    }
    Ok(())
}

/// The patterns the spec uses on fields dripgate may send (no regex engine in the tests).
fn pattern_matches(pattern: &str, s: &str) -> Result<bool, String> {
    match pattern {
        r"^\S*$" => Ok(!s.chars().any(char::is_whitespace)),
        r"^\+[0-9]{1,15}$" => Ok(s
            .strip_prefix('+')
            .is_some_and(|d| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))),
        other => Err(format!("pattern {other} is not known to the checker")),
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// Validates `v` against an OpenAPI 3.1 (JSON Schema 2020-12 subset) schema; see the module doc.
pub fn validate(spec: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = spec
            .pointer(r.trim_start_matches('#'))
            .ok_or(format!("{at}: bad $ref {r}"))?;
        validate(spec, target, v, at)?;
    }
    for s in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        validate(spec, s, v, at)?;
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(any) = schema.get(key).and_then(Value::as_array)
            && !any.iter().any(|s| validate(spec, s, v, at).is_ok())
        {
            return Err(format!("{at}: matches none of {key}"));
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| type_ok(t, v)) {
        return Err(format!("{at}: expected {types:?}, got {v}"));
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {e:?}"));
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            return Err(format!("{at}: shorter than minLength"));
        }
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            return Err(format!("{at}: longer than maxLength"));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && !pattern_matches(p, s)?
        {
            return Err(format!("{at}: does not match {p}"));
        }
        if schema.get("format") == Some(&json!("email"))
            && !s
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
        {
            return Err(format!("{at}: not an email address"));
        }
    }
    if let Some(n) = v.as_f64() {
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            return Err(format!("{at}: below minimum"));
        }
        if schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            return Err(format!("{at}: above maximum"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or_default();
            if !obj.contains_key(r) {
                return Err(format!("{at}: '{r}' is a required property"));
            }
        }
        let props = schema
            .get("properties")
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty());
        for (k, val) in obj {
            match (
                props.and_then(|p| p.get(k)),
                props,
                schema.get("additionalProperties"),
            ) {
                (Some(s), _, _) => validate(spec, s, val, &format!("{at}.{k}"))?,
                (None, Some(_), _) | (None, None, Some(Value::Bool(false))) => {
                    return Err(format!("{at}: unexpected property '{k}'"));
                }
                (None, None, Some(s @ Value::Object(_))) => {
                    validate(spec, s, val, &format!("{at}.{k}"))?
                }
                _ => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            validate(spec, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Checks one request as the fake describes it (see `testkit::auth0`).
pub fn check_request(spec: &Value, op_id: &str, request: &Value) -> Result<(), String> {
    let (template, method, op) =
        operation(spec, op_id).ok_or(format!("no operation {op_id} in the spec"))?;
    let sent_method = request["method"].as_str().unwrap_or_default();
    if !sent_method.eq_ignore_ascii_case(method) {
        return Err(format!("{op_id} is {method}, not {sent_method}"));
    }
    let path = request["path"].as_str().unwrap_or_default();
    if !path_matches(template, path) {
        return Err(format!("path {path} does not match {template}"));
    }
    let empty = serde_json::Map::new();
    check_query(spec, op, request["query"].as_object().unwrap_or(&empty))?;
    let body = &request["body"];
    match op.pointer("/requestBody/content") {
        None if body.is_null() => Ok(()),
        None => Err(format!("{op_id} takes no request body")),
        Some(content) => {
            let ct = request["content_type"].as_str().unwrap_or_default();
            let media = ct.split(';').next().unwrap_or_default().trim();
            let schema = content
                .get(media)
                .ok_or(format!("content type {ct:?} is not declared"))?
                .get("schema")
                .ok_or("no schema")?;
            validate(spec, schema, body, "body")
        }
    }
}

/// A validator for the Auth0 fake built from the spec file.
pub fn auth0_validator() -> Validator {
    let spec = spec();
    Arc::new(move |op: &str, request: &Value| check_request(&spec, op, request))
}

/// The fake without its rate limit (tests that are not about it), validated against the spec.
pub async fn auth0_fake() -> FakeAuth0 {
    auth0_fake_with(FakeAuth0Options {
        rate_limit: None,
        ..FakeAuth0Options::default()
    })
    .await
}

pub async fn auth0_fake_with(options: FakeAuth0Options) -> FakeAuth0 {
    let fake = FakeAuth0::start("127.0.0.1:0", options).await.unwrap();
    fake.set_validator(auth0_validator());
    fake
}

/// Client settings for `fake`, at a rate no test waits on.
pub fn auth0_config(fake: &FakeAuth0) -> Auth0Config {
    auth0_config_for(&fake.base_url())
}

/// Client settings for a fake with default options at `base_url`.
pub fn auth0_config_for(base_url: &str) -> Auth0Config {
    let defaults = FakeAuth0Options::default();
    Auth0Config {
        domain: None,
        base_url: Some(base_url.to_string()),
        client_id: defaults.client_id,
        client_secret: defaults.client_secret.into(),
        audience: None,
        connection: defaults.connection,
        mark_email_verified: Some(true),
        password_transfer: Auth0PasswordTransfer::Password,
        requests_per_second: 1000,
        burst: 1000,
    }
}

pub fn fast_http() -> dripgate::provider::config::HttpConfig {
    crate::provider_common::http(Duration::from_secs(5))
}

#[test]
fn the_checker_refuses_what_the_spec_refuses() {
    let spec = spec();
    let create = |body: Value| {
        json!({"method": "POST", "path": "/api/v2/users", "query": {},
               "content_type": "application/json", "body": body})
    };
    let ok = create(
        json!({"connection": "c", "email": "a@example.com", "password": "x",
                           "user_id": "abc", "app_metadata": {"dripgate_legacy_id": "1"}}),
    );
    check_request(&spec, "post_users", &ok).unwrap();
    for (bad, why) in [
        (
            create(json!({"email": "a@example.com"})),
            "connection missing",
        ),
        (
            create(json!({"connection": "c", "nickname_typo": "x"})),
            "unknown property",
        ),
        (
            create(json!({"connection": "c", "user_id": "a b"})),
            "user_id with a space",
        ),
        (
            create(json!({"connection": "c", "email_verified": "yes"})),
            "wrong type",
        ),
        (
            create(json!({"connection": "c", "given_name": ""})),
            "empty given_name",
        ),
        (
            create(json!({"connection": "c", "email": "not-an-email"})),
            "bad email",
        ),
    ] {
        assert!(check_request(&spec, "post_users", &bad).is_err(), "{why}");
    }
    let patch = |body: Value| {
        json!({"method": "PATCH", "path": "/api/v2/users/auth0%7Cabc", "query": {},
               "content_type": "application/json", "body": body})
    };
    check_request(
        &spec,
        "patch_users_by_id",
        &patch(json!({"password": "x", "connection": "c"})),
    )
    .unwrap();
    assert!(check_request(&spec, "patch_users_by_id", &patch(json!({"pasword": "x"}))).is_err());
    let find = |query: Value| {
        json!({"method": "GET", "path": "/api/v2/users-by-email", "query": query,
               "content_type": "", "body": null})
    };
    check_request(
        &spec,
        "get_users-by-email",
        &find(json!({"email": "a@example.com"})),
    )
    .unwrap();
    assert!(
        check_request(&spec, "get_users-by-email", &find(json!({}))).is_err(),
        "email is required"
    );
    assert!(
        check_request(
            &spec,
            "get_users-by-email",
            &find(json!({"email": "a", "q": "x"}))
        )
        .is_err()
    );
    let wrong_method = json!({"method": "PUT", "path": "/api/v2/users", "query": {}, "content_type": "", "body": null});
    assert!(check_request(&spec, "post_users", &wrong_method).is_err());
}

#[test]
fn the_fake_requires_the_scopes_the_spec_declares() {
    let spec = spec();
    for op in [
        "get_users-by-email",
        "get_users_by_id",
        "post_users",
        "patch_users_by_id",
        "get_connections",
    ] {
        let (_, _, o) = operation(&spec, op).unwrap();
        let needed = dripgate::testkit::auth0::required_scope(op).unwrap();
        assert!(
            scopes(o).iter().any(|s| s == needed),
            "{op}: {needed} not in {:?}",
            scopes(o)
        );
    }
    for scope in dripgate::provider::auth0::REQUIRED_SCOPES {
        let declared = spec
            .pointer("/components/securitySchemes/oAuth2ClientCredentials/flows/clientCredentials/scopes")
            .unwrap();
        assert!(
            declared.get(scope).is_some(),
            "{scope} is not a scope of the spec"
        );
    }
}
