//! Every request the Keycloak fake receives, checked against the Admin REST API's OpenAPI file
//! (`tests/provider_specs/keycloak-admin-api.json`): the path must be one of its templates
//! with that method, every query parameter one it declares (of its type), and the body must
//! match the request schema, with objects closed: a property the schema does not declare (or
//! declares deprecated) is refused, as a strict Keycloak client library would refuse to send it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Environment variable naming the spec file (else [`KeycloakSpec::default_path`]).
pub const SPEC_ENV: &str = "DRIPGATE_KEYCLOAK_SPEC";

/// The parsed spec.
#[derive(Debug)]
pub struct KeycloakSpec {
    doc: Value,
    /// `(method, template segments, template)`.
    routes: Vec<(String, Vec<String>, String)>,
}

/// A request matched to the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The path template, e.g. `/admin/realms/{realm}/users/{user-id}`.
    pub template: String,
    /// Path parameters by name.
    pub params: HashMap<String, String>,
}

impl KeycloakSpec {
    /// `$DRIPGATE_KEYCLOAK_SPEC`, else the copy vendored in the repository,
    /// `tests/provider_specs/keycloak-admin-api.json` (provenance in `SOURCES.md` there).
    pub fn default_path() -> PathBuf {
        std::env::var_os(SPEC_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/provider_specs/keycloak-admin-api.json")
            })
    }

    /// Reads and indexes the spec file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let doc: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut routes = Vec::new();
        for (template, item) in doc["paths"].as_object().ok_or("spec has no paths")? {
            let segments: Vec<String> = template.split('/').map(str::to_string).collect();
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                if method != "parameters" {
                    routes.push((
                        method.to_ascii_uppercase(),
                        segments.clone(),
                        template.clone(),
                    ));
                }
            }
        }
        Ok(Self { doc, routes })
    }

    /// The template matching `method path`, preferring literal segments over parameters.
    pub fn route(&self, method: &str, path: &str) -> Result<Matched, String> {
        let parts: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, Matched)> = None;
        let mut path_known = false;
        for (m, segments, template) in &self.routes {
            if segments.len() != parts.len() {
                continue;
            }
            let mut params = HashMap::new();
            let mut literal = 0;
            let fits = segments.iter().zip(&parts).all(|(s, p)| {
                if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    let decoded = percent_encoding::percent_decode_str(p).decode_utf8_lossy();
                    params.insert(name.to_string(), decoded.into_owned());
                    !p.is_empty()
                } else {
                    literal += 1;
                    s == p
                }
            });
            if !fits {
                continue;
            }
            path_known = true;
            if m == method && best.as_ref().is_none_or(|(l, _)| literal > *l) {
                best = Some((
                    literal,
                    Matched {
                        template: template.clone(),
                        params,
                    },
                ));
            }
        }
        match best {
            Some((_, m)) => Ok(m),
            None if path_known => Err(format!("{method} is not an operation of {path}")),
            None => Err(format!("{path} is not a path of the spec")),
        }
    }

    fn operation(&self, method: &str, template: &str) -> &Value {
        &self.doc["paths"][template][method.to_ascii_lowercase()]
    }

    /// Checks the query parameters against the declared ones (path- and operation-level).
    pub fn check_query(
        &self,
        method: &str,
        template: &str,
        query: &[(String, String)],
    ) -> Result<(), String> {
        let op = self.operation(method, template);
        let declared: Vec<&Value> = [
            &self.doc["paths"][template]["parameters"],
            &op["parameters"],
        ]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter(|p| p["in"] == "query")
        .collect();
        for (name, value) in query {
            let Some(p) = declared.iter().find(|p| p["name"] == name.as_str()) else {
                return Err(format!("query parameter {name:?} is not declared"));
            };
            let ok = match p["schema"]["type"].as_str() {
                Some("boolean") => matches!(value.as_str(), "true" | "false"),
                Some("integer") => value.parse::<i64>().is_ok(),
                _ => true,
            };
            if !ok {
                return Err(format!(
                    "query parameter {name}={value:?} is not a {}",
                    p["schema"]["type"]
                ));
            }
        }
        Ok(())
    }

    /// Checks the JSON body against the operation's request schema; `None`: no body sent.
    pub fn check_body(
        &self,
        method: &str,
        template: &str,
        body: Option<&Value>,
    ) -> Result<(), String> {
        let schema = self
            .operation(method, template)
            .pointer("/requestBody/content/application~1json/schema");
        match (schema, body) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err("the operation takes no JSON body".into()),
            (Some(_), None) => Err("the operation needs a JSON body".into()),
            (Some(schema), Some(body)) => self.validate(schema, body, "body"),
        }
    }

    fn validate(&self, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = self
                .doc
                .pointer(r.trim_start_matches('#'))
                .ok_or(format!("{at}: bad $ref {r}"))?;
            return self.validate(target, v, at);
        }
        for s in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.validate(s, v, at)?;
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
                // The kind, not the value: a misplaced password must not reach an error text.
                return Err(format!("{at}: expected {t}, got {}", kind(v)));
            }
        }
        if let Some(e) = schema.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            return Err(format!("{at}: not one of {e:?}"));
        }
        if let Some(obj) = v.as_object() {
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, val) in obj {
                let here = format!("{at}.{k}");
                match (
                    props.and_then(|p| p.get(k)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(s), _) if s["deprecated"] == true => {
                        return Err(format!("{here}: deprecated property"));
                    }
                    (Some(s), _) => self.validate(s, val, &here)?,
                    (None, Some(s @ Value::Object(_))) => self.validate(s, val, &here)?,
                    (None, Some(Value::Bool(true))) => {}
                    // Closed: neither declared nor allowed as an additional property.
                    (None, _) if props.is_some() || schema["type"] == "object" => {
                        return Err(format!("{at}: unknown property {k:?}"));
                    }
                    // `{}`: any value.
                    (None, _) => {}
                }
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                self.validate(items, item, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }
}

/// A JSON value's kind, for error texts.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
