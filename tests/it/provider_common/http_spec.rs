//! The generic HTTP provider's contract, docs/generic-http-provider.openapi.yaml, as a request
//! validator for the reference fake: the path and method must be an operation of the file (with
//! the operationId the fake routed to), every query parameter declared, every required query
//! and header parameter present (strings within their length bounds), and the body valid
//! against the operation's request schema (unknown properties rejected).

use std::sync::Arc;

use dripgate::provider::generic::GenericHttpConfig;
use dripgate::testkit::generic::{
    FakeGenericHttp, FakeGenericHttpOptions, SpecRequest, SpecValidator,
};
use serde_json::Value;

use super::{validate_schema, yaml_to_json};

/// The contract as JSON.
pub fn http_spec() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/generic-http-provider.openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    yaml_to_json(&docs[0])
}

fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => spec.pointer(r.trim_start_matches('#')).unwrap_or(v),
        None => v,
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

fn check_string(name: &str, value: &str, schema: &Value) -> Result<(), String> {
    let len = value.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        return Err(format!("{name}: shorter than {min}"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        return Err(format!("{name}: longer than {max}"));
    }
    Ok(())
}

fn check_parameters(spec: &Value, op: &Value, req: &SpecRequest<'_>) -> Result<(), String> {
    let params: Vec<&Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| resolve(spec, p))
        .collect();
    for (name, _) in req.query {
        if !params
            .iter()
            .any(|p| p["in"] == "query" && p["name"] == name.as_str())
        {
            return Err(format!("query parameter {name:?} is not in the contract"));
        }
    }
    for p in params {
        let name = p["name"].as_str().unwrap_or_default();
        let value = match p["in"].as_str() {
            Some("query") => req
                .query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
            Some("header") => req
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap_or_default().to_string()),
            _ => continue,
        };
        match value {
            None if p["required"] == true => return Err(format!("{name} is required")),
            None => {}
            Some(v) => check_string(name, &v, &p["schema"])?,
        }
    }
    Ok(())
}

fn check_body(spec: &Value, op: &Value, req: &SpecRequest<'_>) -> Result<(), String> {
    let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") else {
        return if req.body.is_empty() {
            Ok(())
        } else {
            Err("a body where the contract has none".into())
        };
    };
    let body: Value =
        serde_json::from_slice(req.body).map_err(|e| format!("body is not JSON: {e}"))?;
    validate_schema(spec, schema, &body, "body")
}

/// The validator for [`FakeGenericHttp::set_validator`].
pub fn http_validator() -> SpecValidator {
    let spec = Arc::new(http_spec());
    Arc::new(move |req: &SpecRequest<'_>| {
        let (template, item) = spec["paths"]
            .as_object()
            .and_then(|paths| paths.iter().find(|(t, _)| template_matches(t, req.path)))
            .ok_or(format!("{} is not a path of the contract", req.path))?;
        let op = item.get(req.method.to_ascii_lowercase()).ok_or(format!(
            "{} {template} is not an operation of the contract",
            req.method
        ))?;
        if op["operationId"] != req.operation {
            return Err(format!(
                "{} {template} is {}, not {}",
                req.method, op["operationId"], req.operation
            ));
        }
        check_parameters(&spec, op, req)?;
        check_body(&spec, op, req)
    })
}

/// A generic HTTP fake (bcrypt cost 4) checking every request against the contract file.
pub async fn http_fake_with(options: FakeGenericHttpOptions) -> FakeGenericHttp {
    let fake = FakeGenericHttp::start(
        "127.0.0.1:0",
        FakeGenericHttpOptions {
            bcrypt_cost: 4,
            ..options
        },
    )
    .await
    .unwrap();
    fake.set_validator(http_validator());
    fake
}

/// [`http_fake_with`] the default options.
pub async fn http_fake() -> FakeGenericHttp {
    http_fake_with(FakeGenericHttpOptions::default()).await
}

/// The client config for `fake` (its first key), with the endpoint's optional operations on.
pub fn http_provider_config(fake: &FakeGenericHttp) -> GenericHttpConfig {
    let (key_id, key) = fake.options().keys[0].clone();
    GenericHttpConfig {
        base_url: fake.base_url(),
        key_id,
        signing_key: key.into(),
        require_password_change: fake.options().require_password_change,
        import_hash_methods: Vec::new(),
        password_transfer: Default::default(),
        mark_email_verified: Some(true),
    }
}
