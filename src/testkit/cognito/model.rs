//! Requests checked against a botocore service model (JSON protocol): the operation exists, and
//! its input is the operation's input shape — required members present, no unknown members,
//! member types, string lengths, enums and patterns, list and map sizes, integer ranges.

use std::collections::HashMap;
use std::sync::Mutex;

use regex::Regex;
use serde_json::Value;

/// A loaded botocore model (`service-2.json`).
pub struct BotocoreModel {
    model: Value,
    patterns: Mutex<HashMap<String, Option<Regex>>>,
}

impl std::fmt::Debug for BotocoreModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotocoreModel")
            .field("targetPrefix", &self.target_prefix())
            .finish_non_exhaustive()
    }
}

impl BotocoreModel {
    /// Reads a model from its JSON text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let model: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !model.get("shapes").is_some_and(Value::is_object)
            || !model.get("operations").is_some_and(Value::is_object)
        {
            return Err("not a botocore model: no shapes or operations".into());
        }
        Ok(Self {
            model,
            patterns: Mutex::new(HashMap::new()),
        })
    }

    /// Reads a model file.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text)
    }

    /// `metadata.targetPrefix`.
    pub fn target_prefix(&self) -> &str {
        self.model
            .pointer("/metadata/targetPrefix")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.<key>` as a string.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.model.get("metadata")?.get(key)?.as_str()
    }

    /// Whether the model has this operation.
    pub fn has_operation(&self, op: &str) -> bool {
        self.model["operations"].get(op).is_some()
    }

    /// The names of the error shapes the operation declares.
    pub fn errors(&self, op: &str) -> Vec<String> {
        self.model["operations"][op]["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("shape").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// Checks `input` against the operation's input shape.
    pub fn validate_input(&self, op: &str, input: &Value) -> Result<(), String> {
        let operation = self.model["operations"]
            .get(op)
            .ok_or_else(|| format!("operation {op} is not in the model"))?;
        let Some(shape) = operation.pointer("/input/shape").and_then(Value::as_str) else {
            return Ok(());
        };
        self.check(shape, input, op)
    }

    fn pattern(&self, p: &str) -> Option<Regex> {
        let mut cache = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(p.to_string())
            .or_insert_with(|| Regex::new(p).ok())
            .clone()
    }

    fn check(&self, shape_name: &str, v: &Value, at: &str) -> Result<(), String> {
        let shape = self.model["shapes"]
            .get(shape_name)
            .ok_or_else(|| format!("{at}: shape {shape_name} is not in the model"))?;
        let num = |k: &str| shape.get(k).and_then(Value::as_i64);
        let kind = shape
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match kind {
            "structure" => self.check_structure(shape, v, at),
            "list" => {
                let items = v
                    .as_array()
                    .ok_or_else(|| format!("{at}: expected a list"))?;
                check_len(items.len(), num("min"), num("max"), at)?;
                let member = shape
                    .pointer("/member/shape")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                for (i, item) in items.iter().enumerate() {
                    self.check(member, item, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
            "map" => {
                let entries = v
                    .as_object()
                    .ok_or_else(|| format!("{at}: expected a map"))?;
                check_len(entries.len(), num("min"), num("max"), at)?;
                let key = shape
                    .pointer("/key/shape")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let value = shape
                    .pointer("/value/shape")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                for (k, item) in entries {
                    self.check(key, &Value::String(k.clone()), &format!("{at}.<key>"))?;
                    self.check(value, item, &format!("{at}.{k}"))?;
                }
                Ok(())
            }
            "string" => self.check_string(shape, v, at),
            "integer" | "long" => {
                let n = v
                    .as_i64()
                    .ok_or_else(|| format!("{at}: expected an integer"))?;
                if num("min").is_some_and(|m| n < m) || num("max").is_some_and(|m| n > m) {
                    return Err(format!("{at}: {n} is out of range"));
                }
                Ok(())
            }
            "boolean" => v
                .is_boolean()
                .then_some(())
                .ok_or_else(|| format!("{at}: expected a boolean")),
            "double" | "float" | "timestamp" => v
                .is_number()
                .then_some(())
                .ok_or_else(|| format!("{at}: expected a number")),
            "blob" => v
                .is_string()
                .then_some(())
                .ok_or_else(|| format!("{at}: expected base64 text")),
            other => Err(format!("{at}: shape type {other} not understood")),
        }
    }

    fn check_structure(&self, shape: &Value, v: &Value, at: &str) -> Result<(), String> {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("{at}: expected a structure"))?;
        let members = shape.get("members").and_then(Value::as_object);
        for r in shape
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or_default();
            if !obj.contains_key(r) {
                return Err(format!("{at}: required member {r} is missing"));
            }
        }
        for (k, val) in obj {
            let member = members
                .and_then(|m| m.get(k))
                .ok_or_else(|| format!("{at}: unknown member {k}"))?;
            let target = member
                .get("shape")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.check(target, val, &format!("{at}.{k}"))?;
        }
        Ok(())
    }

    fn check_string(&self, shape: &Value, v: &Value, at: &str) -> Result<(), String> {
        let s = v
            .as_str()
            .ok_or_else(|| format!("{at}: expected a string"))?;
        let num = |k: &str| shape.get(k).and_then(Value::as_i64);
        check_len(s.chars().count(), num("min"), num("max"), at)?;
        if let Some(options) = shape.get("enum").and_then(Value::as_array)
            && !options.iter().any(|o| o.as_str() == Some(s))
        {
            return Err(format!("{at}: not one of the enum values"));
        }
        if let Some(p) = shape.get("pattern").and_then(Value::as_str) {
            // Smithy/botocore patterns are not anchored.
            match self.pattern(p) {
                Some(re) if !re.is_match(s) => {
                    return Err(format!("{at}: value does not match the pattern {p}"));
                }
                None => return Err(format!("{at}: the model's pattern {p} does not compile")),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

fn check_len(n: usize, min: Option<i64>, max: Option<i64>, at: &str) -> Result<(), String> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    if min.is_some_and(|m| n < m) {
        return Err(format!(
            "{at}: shorter than the minimum {}",
            min.unwrap_or_default()
        ));
    }
    if max.is_some_and(|m| n > m) {
        return Err(format!(
            "{at}: longer than the maximum {}",
            max.unwrap_or_default()
        ));
    }
    Ok(())
}
