//! Shared helpers of the provider tests: spec-based request validators and client configs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cognito;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dripgate::provider::Provider;
use dripgate::provider::config::{
    AuthgearConfig, HttpConfig, KindeConfig, LimitsConfig, PasswordTransfer,
};
use dripgate::testkit::Validator;
use dripgate::testkit::authgear::{FakeAuthgear, FakeAuthgearOptions};
use dripgate::testkit::kinde::{FakeKinde, FakeKindeOptions};
use serde_json::{Map, Value};

mod http_spec;
pub use http_spec::*;
pub mod keycloak;

pub fn spec_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/provider_specs")
        .join(name)
}

pub fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or(Value::String(s.clone())),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// The Kinde OpenAPI document as JSON.
pub fn kinde_spec() -> Value {
    let text = std::fs::read_to_string(spec_path("kinde-management-api.yaml")).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    yaml_to_json(&docs[0])
}

/// The request-body schema of the operation with this operationId.
pub fn kinde_request_schema(spec: &Value, operation_id: &str) -> Option<Value> {
    for item in spec["paths"].as_object()?.values() {
        for op in item.as_object()?.values() {
            if op.get("operationId").and_then(Value::as_str) == Some(operation_id) {
                return op
                    .pointer("/requestBody/content/application~1json/schema")
                    .cloned();
            }
        }
    }
    None
}

/// Validates `v` against an OpenAPI 3.0 schema object (type, nullable, enum, required,
/// properties, additionalProperties, items, allOf/oneOf/anyOf, $ref into components).
pub fn validate_schema(spec: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = spec
            .pointer(r.trim_start_matches('#'))
            .ok_or(format!("{at}: bad $ref {r}"))?;
        return validate_schema(spec, target, v, at);
    }
    if v.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate_schema(spec, s, v, at)?;
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(any) = schema.get(key).and_then(Value::as_array)
            && !any.iter().any(|s| validate_schema(spec, s, v, at).is_ok())
        {
            return Err(format!("{at}: matches none of {key}"));
        }
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => true,
        };
        if !ok {
            return Err(format!("{at}: expected {t}, got {v}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {e:?}"));
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
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate_schema(spec, s, val, &format!("{at}.{k}"))?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{at}: unexpected property '{k}'"));
                    }
                    Some(s @ Value::Object(_)) => {
                        validate_schema(spec, s, val, &format!("{at}.{k}"))?
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            validate_schema(spec, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// A validator for the Kinde fake built from the spec file.
pub fn kinde_validator() -> Validator {
    let spec = Arc::new(kinde_spec());
    Arc::new(move |op: &str, body: &Value| {
        let schema = kinde_request_schema(&spec, op)
            .ok_or(format!("no request schema for {op} in the spec"))?;
        validate_schema(&spec, &schema, body, "body")
    })
}

/// A validator for the Authgear fake: the query must validate against the SDL and the variables
/// must coerce to the declared types.
pub fn authgear_validator() -> Validator {
    let sdl = std::fs::read_to_string(spec_path("authgear-admin-schema.graphql")).unwrap();
    let schema =
        Arc::new(apollo_compiler::Schema::parse_and_validate(sdl, "schema.graphql").unwrap());
    Arc::new(move |_op: &str, body: &Value| {
        let query = body
            .get("query")
            .and_then(Value::as_str)
            .ok_or("no query")?;
        let doc = apollo_compiler::ExecutableDocument::parse_and_validate(
            &schema,
            query,
            "request.graphql",
        )
        .map_err(|e| e.errors.to_string())?;
        let name = body.get("operationName").and_then(Value::as_str);
        let op = doc.operations.get(name).map_err(|e| format!("{e:?}"))?;
        let vars = body
            .get("variables")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let vars: apollo_compiler::response::JsonMap =
            serde_json::from_value(vars).map_err(|e| e.to_string())?;
        apollo_compiler::request::coerce_variable_values(&schema, op, &vars)
            .map_err(|e| format!("{e:?}"))?;
        Ok(())
    })
}

pub fn fast_limits() -> LimitsConfig {
    LimitsConfig {
        requests_per_second: 1000,
        burst: 1000,
        max_concurrency: 8,
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(5),
    }
}

pub fn http(request_timeout: Duration) -> HttpConfig {
    HttpConfig {
        request_timeout,
        connect_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(10),
        ca_bundle: None,
    }
}

pub async fn kinde_fake() -> FakeKinde {
    let fake = FakeKinde::start("127.0.0.1:0", FakeKindeOptions::default())
        .await
        .unwrap();
    fake.set_validator(kinde_validator());
    fake
}

pub fn kinde_config(fake: &FakeKinde) -> KindeConfig {
    KindeConfig {
        base_url: fake.base_url(),
        client_id: fake.options().client_id.clone(),
        client_secret: fake.options().client_secret.clone().into(),
        audience: None,
        scope: None,
        password_transfer: PasswordTransfer::Bcrypt,
        bcrypt_cost: 4,
        is_temporary_password: false,
        mark_email_verified: Some(true),
    }
}

pub fn read_spec_file(name: &str) -> String {
    std::fs::read_to_string(spec_path(name)).unwrap()
}

pub async fn authgear_fake() -> FakeAuthgear {
    let fake = FakeAuthgear::start(
        "127.0.0.1:0",
        FakeAuthgearOptions {
            project_id: "myapp".into(),
            key_id: "test-key-1".into(),
            public_key_pem: read_spec_file("authgear-test-key.pub.pem"),
            min_password_length: 8,
            password_history: true,
        },
    )
    .await
    .unwrap();
    fake.set_validator(authgear_validator());
    fake
}

pub fn authgear_config(fake: &FakeAuthgear) -> AuthgearConfig {
    AuthgearConfig {
        base_url: fake.base_url(),
        project_id: "myapp".into(),
        key_id: "test-key-1".into(),
        private_key_pem: read_spec_file("authgear-test-key.pem").into(),
        jwt_lifetime: Duration::from_secs(300),
        login_id_key: "email".into(),
        set_password_expired: false,
    }
}

/// Runs `n` `find_user_by_email` calls on `client` at once, for emails nobody has: each finds
/// none (the callers share whatever credentials the client caches).
pub async fn find_unknown_users_at_once<P: Provider + 'static>(client: P, n: usize) {
    let client = Arc::new(client);
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.find_user_by_email(&format!("u{i}@example.com")).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), None);
    }
}
