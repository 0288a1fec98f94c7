//! The GraphQL side of the Authgear fake: the operation a request names, read from the document
//! with `apollo-parser` (operations, fields, aliases, arguments, variables, inline fragments;
//! fragment definitions and spreads are not supported), and the projection of a result onto
//! the selections. (Validation against the SDL is done at test time by the test harness.)

use apollo_parser::cst::{self, CstNode};
use serde_json::{Map, Value};

/// `query` or `mutation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// A read.
    Query,
    /// A write.
    Mutation,
}

/// One operation of a document.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Query or mutation.
    pub kind: OperationKind,
    /// Its name, if any.
    pub name: Option<String>,
    /// Root selections.
    pub selections: Vec<Selection>,
}

/// A selection.
#[derive(Debug, Clone)]
pub enum Selection {
    /// A field.
    Field(Field),
    /// `... on Type { … }` (or without a type condition).
    Inline(Option<String>, Vec<Selection>),
}

/// A field selection.
#[derive(Debug, Clone)]
pub struct Field {
    /// Alias, if given.
    pub alias: Option<String>,
    /// Field name.
    pub name: String,
    /// Arguments in order.
    pub args: Vec<(String, GValue)>,
    /// Sub-selections.
    pub selections: Vec<Selection>,
}

impl Field {
    /// The key in the response: alias or name.
    pub fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

/// An input value as written.
#[derive(Debug, Clone)]
pub enum GValue {
    /// `$name`.
    Var(String),
    /// A literal (enums as strings).
    Lit(Value),
    /// A list.
    List(Vec<GValue>),
    /// An input object.
    Object(Vec<(String, GValue)>),
}

impl GValue {
    /// Resolves variables to a JSON value (undefined variables become null).
    pub fn resolve(&self, vars: &Map<String, Value>) -> Value {
        match self {
            Self::Var(n) => vars.get(n).cloned().unwrap_or(Value::Null),
            Self::Lit(v) => v.clone(),
            Self::List(items) => Value::Array(items.iter().map(|i| i.resolve(vars)).collect()),
            Self::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.resolve(vars)))
                    .collect(),
            ),
        }
    }
}

/// Parses a document and picks the operation (by name, or the only one).
pub fn parse_operation(query: &str, operation_name: Option<&str>) -> Result<Operation, String> {
    let tree = apollo_parser::Parser::new(query).parse();
    if let Some(e) = tree.errors().next() {
        return Err(format!("syntax error at {}: {}", e.index(), e.message()));
    }
    let mut ops = Vec::new();
    for definition in tree.document().definitions() {
        let cst::Definition::OperationDefinition(op) = definition else {
            return Err(format!("unsupported definition `{}`", definition.kind()));
        };
        ops.push(operation(&op)?);
    }
    match operation_name {
        Some(name) => ops
            .into_iter()
            .find(|o| o.name.as_deref() == Some(name))
            .ok_or_else(|| format!("unknown operation named \"{name}\"")),
        None if ops.len() == 1 => ops.into_iter().next().ok_or_else(|| "no operation".into()),
        None => Err("must provide operation name if query contains multiple operations".into()),
    }
}

fn name_of(name: Option<cst::Name>) -> Result<String, String> {
    name.map(|n| n.text().to_string())
        .ok_or_else(|| "expected a name".to_string())
}

fn operation(op: &cst::OperationDefinition) -> Result<Operation, String> {
    let kind = match op.operation_type() {
        // The shorthand `{ … }` is a query.
        None => OperationKind::Query,
        Some(t) if t.query_token().is_some() => OperationKind::Query,
        Some(t) if t.mutation_token().is_some() => OperationKind::Mutation,
        Some(t) => return Err(format!("unsupported definition `{}`", t.syntax().text())),
    };
    Ok(Operation {
        kind,
        name: op.name().map(|n| n.text().to_string()),
        selections: selection_set(op.selection_set())?,
    })
}

fn selection_set(set: Option<cst::SelectionSet>) -> Result<Vec<Selection>, String> {
    let mut out = Vec::new();
    for selection in set.iter().flat_map(cst::SelectionSet::selections) {
        match selection {
            cst::Selection::Field(f) => {
                let mut args = Vec::new();
                for arg in f.arguments().iter().flat_map(cst::Arguments::arguments) {
                    let name = name_of(arg.name())?;
                    let value = arg.value().ok_or("expected a value")?;
                    args.push((name, value_of(&value)?));
                }
                out.push(Selection::Field(Field {
                    alias: f
                        .alias()
                        .and_then(|a| a.name())
                        .map(|n| n.text().to_string()),
                    name: name_of(f.name())?,
                    args,
                    selections: selection_set(f.selection_set())?,
                }));
            }
            cst::Selection::InlineFragment(inline) => {
                let condition = inline
                    .type_condition()
                    .and_then(|c| c.named_type())
                    .and_then(|t| t.name())
                    .map(|n| n.text().to_string());
                out.push(Selection::Inline(
                    condition,
                    selection_set(inline.selection_set())?,
                ));
            }
            cst::Selection::FragmentSpread(_) => {
                return Err("fragment spreads are not supported by the fake".into());
            }
        }
    }
    Ok(out)
}

fn value_of(value: &cst::Value) -> Result<GValue, String> {
    Ok(match value {
        cst::Value::Variable(v) => GValue::Var(name_of(v.name())?),
        cst::Value::StringValue(s) => GValue::Lit(Value::String(String::from(s))),
        cst::Value::IntValue(i) => {
            let text = i.syntax().text().to_string();
            match text.parse::<i64>() {
                Ok(n) => GValue::Lit(Value::from(n)),
                Err(_) => GValue::Lit(Value::from(
                    text.parse::<f64>()
                        .map_err(|_| format!("bad number {text}"))?,
                )),
            }
        }
        cst::Value::FloatValue(f) => {
            let text = f.syntax().text().to_string();
            GValue::Lit(Value::from(
                text.parse::<f64>()
                    .map_err(|_| format!("bad number {text}"))?,
            ))
        }
        cst::Value::BooleanValue(b) => GValue::Lit(Value::Bool(b.true_token().is_some())),
        cst::Value::NullValue(_) => GValue::Lit(Value::Null),
        // Enums as strings.
        cst::Value::EnumValue(e) => GValue::Lit(Value::String(name_of(e.name())?)),
        cst::Value::ListValue(list) => GValue::List(
            list.values()
                .map(|v| value_of(&v))
                .collect::<Result<_, _>>()?,
        ),
        cst::Value::ObjectValue(object) => GValue::Object(
            object
                .object_fields()
                .map(|f| {
                    let value = f.value().ok_or("expected a value")?;
                    Ok((name_of(f.name())?, value_of(&value)?))
                })
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// Shapes `value` (an object with a `__typename`, or a list of them) by `selections`.
pub fn project(selections: &[Selection], value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| project(selections, v)).collect()),
        Value::Object(obj) => {
            let mut out = Map::new();
            project_into(selections, obj, &mut out);
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn project_into(selections: &[Selection], obj: &Map<String, Value>, out: &mut Map<String, Value>) {
    let typename = obj
        .get("__typename")
        .and_then(Value::as_str)
        .unwrap_or_default();
    for s in selections {
        match s {
            Selection::Field(f) => {
                let v = obj.get(&f.name).cloned().unwrap_or(Value::Null);
                let v = if f.selections.is_empty() {
                    v
                } else {
                    project(&f.selections, &v)
                };
                out.insert(f.key().to_string(), v);
            }
            Selection::Inline(cond, inner) => {
                let applies = match cond.as_deref() {
                    None => true,
                    Some(t) => t == typename || matches!(t, "Node" | "Entity"),
                };
                if applies {
                    project_into(inner, obj, out);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_fields_aliases_arguments_and_inline_fragments() {
        let doc = r#"
            query Other { __typename }
            mutation Create($input: CreateUserInput!, $n: Int = 3) @dir(a: 1) {
              made: createUser(input: $input, list: [1, 2.5, "s", true, null, EMAIL], obj: {a: $n}) {
                user { id ... on User { standardAttributes } ... { isDisabled } }
              }
            }"#;
        let op = parse_operation(doc, Some("Create")).unwrap();
        assert_eq!(op.kind, OperationKind::Mutation);
        let Selection::Field(f) = &op.selections[0] else {
            panic!("a field")
        };
        assert_eq!((f.name.as_str(), f.key()), ("createUser", "made"));
        let vars: Map<String, Value> = json!({"input": {"x": 1}, "n": 7})
            .as_object()
            .cloned()
            .unwrap();
        let args: Vec<(String, Value)> = f
            .args
            .iter()
            .map(|(k, v)| (k.clone(), v.resolve(&vars)))
            .collect();
        assert_eq!(args[0], ("input".into(), json!({"x": 1})));
        assert_eq!(
            args[1],
            ("list".into(), json!([1, 2.5, "s", true, null, "EMAIL"]))
        );
        assert_eq!(args[2], ("obj".into(), json!({"a": 7})));
        let user = json!({"__typename": "User", "id": "U", "standardAttributes": {"email": "e"},
            "isDisabled": false, "extra": 1});
        let out = project(&f.selections, &json!({"__typename": "P", "user": user}));
        assert_eq!(
            out,
            json!({"user": {"id": "U", "standardAttributes": {"email": "e"}, "isDisabled": false}})
        );
    }

    #[test]
    fn picks_the_operation_and_refuses_what_the_fake_does_not_run() {
        let shorthand = parse_operation("{ __typename }", None).unwrap();
        assert_eq!(shorthand.kind, OperationKind::Query);
        let two = "query A { a } query B { b }";
        assert!(parse_operation(two, None).is_err());
        assert!(parse_operation(two, Some("C")).is_err());
        assert_eq!(
            parse_operation(two, Some("B")).unwrap().name.as_deref(),
            Some("B")
        );
        assert!(parse_operation("query { a ...F } fragment F on Query { b }", None).is_err());
        assert!(parse_operation("subscription { a }", None).is_err());
        assert!(parse_operation("query { a(x: ) }", None).is_err());
        assert!(parse_operation("query { a", None).is_err());
    }
}
