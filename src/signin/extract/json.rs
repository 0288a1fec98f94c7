//! JSON sign-in bodies, parsed strictly: a key repeated in any object is refused (parsers keep
//! the first or the last), and so is a credential key that another key of its object equals
//! but for case (ASP.NET Core binds JSON properties without case).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{FieldSpec, Raw, Unread};

const DUPLICATE: &str = "duplicate key";

/// The identifier and password of a JSON body.
pub(super) fn fields(spec: &FieldSpec, body: &[u8]) -> Result<[Raw; 2], Unread> {
    let value = match serde_json::from_slice::<Strict>(body) {
        Ok(Strict(v)) => v,
        Err(e) if e.to_string().starts_with(DUPLICATE) => return Err(Unread::RepeatedField),
        Err(_) => return Err(Unread::Malformed),
    };
    Ok([
        field(&value, &spec.identifier)?,
        field(&value, &spec.password)?,
    ])
}

/// The string at `name` (a key of the top object, or a JSON pointer).
fn field(root: &Value, name: &str) -> Result<Raw, Unread> {
    let (parent, key) = match name.rfind('/') {
        Some(i) if name.starts_with('/') => (root.pointer(&name[..i]), unescape(&name[i + 1..])),
        _ => (Some(root), name.to_owned()),
    };
    let Some(Value::Object(object)) = parent else {
        return Ok(None);
    };
    let case_twins = object
        .keys()
        .filter(|k| k.eq_ignore_ascii_case(&key))
        .count();
    if case_twins > 1 {
        return Err(Unread::AliasedField);
    }
    match object.get(&key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(Zeroizing::new(s.as_bytes().to_vec()))),
        Some(_) => Err(Unread::NotText),
    }
}

/// A JSON pointer segment's `~1` and `~0` escapes undone.
fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// A JSON value whose objects have no repeated key.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if out.insert(key, value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(out))
    }
}
