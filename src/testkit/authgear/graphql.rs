//! A small GraphQL executable-document parser for the Authgear fake: operations, fields,
//! aliases, arguments, variables, inline fragments. Fragment definitions are not supported.
//! (Validation against the SDL is done at test time by the test harness.)

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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Punct(char),
    Spread,
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '!' | '$' | '(' | ')' | ':' | '=' | '@' | '[' | ']' | '{' | '}' | '|' | '&' => {
                out.push(Tok::Punct(c));
                i += 1;
            }
            '.' => {
                if chars.get(i..i + 3) == Some(&['.', '.', '.']) {
                    out.push(Tok::Spread);
                    i += 3;
                } else {
                    return Err("unexpected '.'".into());
                }
            }
            '"' => {
                if chars.get(i..i + 3) == Some(&['"', '"', '"']) {
                    let start = i + 3;
                    let mut j = start;
                    while j + 2 < chars.len() && chars.get(j..j + 3) != Some(&['"', '"', '"']) {
                        j += 1;
                    }
                    if j + 2 >= chars.len() {
                        return Err("unterminated block string".into());
                    }
                    out.push(Tok::Str(chars[start..j].iter().collect()));
                    i = j + 3;
                    continue;
                }
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&ch) = chars.get(i) else {
                        return Err("unterminated string".into());
                    };
                    i += 1;
                    match ch {
                        '"' => break,
                        '\\' => {
                            let Some(&e) = chars.get(i) else {
                                return Err("bad escape".into());
                            };
                            i += 1;
                            match e {
                                'n' => s.push('\n'),
                                't' => s.push('\t'),
                                'r' => s.push('\r'),
                                'b' => s.push('\u{8}'),
                                'f' => s.push('\u{c}'),
                                'u' => {
                                    let hex: String =
                                        chars.get(i..i + 4).ok_or("bad \\u")?.iter().collect();
                                    let code =
                                        u32::from_str_radix(&hex, 16).map_err(|_| "bad \\u")?;
                                    s.push(char::from_u32(code).ok_or("bad \\u")?);
                                    i += 4;
                                }
                                other => s.push(other),
                            }
                        }
                        other => s.push(other),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c == '-' || c.is_ascii_digit() => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || matches!(chars[i], '.' | 'e' | 'E' | '+' | '-'))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                if let Ok(n) = text.parse::<i64>() {
                    out.push(Tok::Int(n));
                } else {
                    out.push(Tok::Float(
                        text.parse().map_err(|_| format!("bad number {text}"))?,
                    ));
                }
            }
            c if c == '_' || c.is_ascii_alphabetic() => {
                let start = i;
                while i < chars.len() && (chars[i] == '_' || chars[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                out.push(Tok::Name(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{c}' at token {}", self.pos))
        }
    }

    fn name(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Name(n)) => Ok(n),
            other => Err(format!("expected a name, found {other:?}")),
        }
    }

    fn document(&mut self) -> Result<Vec<Operation>, String> {
        let mut ops = Vec::new();
        while self.peek().is_some() {
            if self.peek() == Some(&Tok::Punct('{')) {
                ops.push(Operation {
                    kind: OperationKind::Query,
                    name: None,
                    selections: self.selection_set()?,
                });
                continue;
            }
            let kind = match self.name()?.as_str() {
                "query" => OperationKind::Query,
                "mutation" => OperationKind::Mutation,
                other => return Err(format!("unsupported definition `{other}`")),
            };
            let name = match self.peek() {
                Some(Tok::Name(_)) => Some(self.name()?),
                _ => None,
            };
            if self.eat('(') {
                while !self.eat(')') {
                    self.expect('$')?;
                    self.name()?;
                    self.expect(':')?;
                    self.type_ref()?;
                    if self.eat('=') {
                        self.value()?;
                    }
                    self.directives()?;
                }
            }
            self.directives()?;
            ops.push(Operation {
                kind,
                name,
                selections: self.selection_set()?,
            });
        }
        Ok(ops)
    }

    fn type_ref(&mut self) -> Result<(), String> {
        if self.eat('[') {
            self.type_ref()?;
            self.expect(']')?;
        } else {
            self.name()?;
        }
        self.eat('!');
        Ok(())
    }

    fn directives(&mut self) -> Result<(), String> {
        while self.eat('@') {
            self.name()?;
            if self.peek() == Some(&Tok::Punct('(')) {
                self.arguments()?;
            }
        }
        Ok(())
    }

    fn arguments(&mut self) -> Result<Vec<(String, GValue)>, String> {
        let mut args = Vec::new();
        self.expect('(')?;
        while !self.eat(')') {
            let n = self.name()?;
            self.expect(':')?;
            args.push((n, self.value()?));
        }
        Ok(args)
    }

    fn value(&mut self) -> Result<GValue, String> {
        match self.next() {
            Some(Tok::Punct('$')) => Ok(GValue::Var(self.name()?)),
            Some(Tok::Int(n)) => Ok(GValue::Lit(Value::from(n))),
            Some(Tok::Float(f)) => Ok(GValue::Lit(Value::from(f))),
            Some(Tok::Str(s)) => Ok(GValue::Lit(Value::String(s))),
            Some(Tok::Name(n)) => Ok(GValue::Lit(match n.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => Value::String(n),
            })),
            Some(Tok::Punct('[')) => {
                let mut items = Vec::new();
                while !self.eat(']') {
                    items.push(self.value()?);
                }
                Ok(GValue::List(items))
            }
            Some(Tok::Punct('{')) => {
                let mut fields = Vec::new();
                while !self.eat('}') {
                    let n = self.name()?;
                    self.expect(':')?;
                    fields.push((n, self.value()?));
                }
                Ok(GValue::Object(fields))
            }
            other => Err(format!("expected a value, found {other:?}")),
        }
    }

    fn selection_set(&mut self) -> Result<Vec<Selection>, String> {
        self.expect('{')?;
        let mut out = Vec::new();
        while !self.eat('}') {
            if self.peek() == Some(&Tok::Spread) {
                self.pos += 1;
                let cond = match self.peek() {
                    Some(Tok::Name(n)) if n == "on" => {
                        self.pos += 1;
                        Some(self.name()?)
                    }
                    Some(Tok::Name(_)) => {
                        return Err("fragment spreads are not supported by the fake".into());
                    }
                    _ => None,
                };
                self.directives()?;
                out.push(Selection::Inline(cond, self.selection_set()?));
                continue;
            }
            let first = self.name()?;
            let (alias, name) = if self.eat(':') {
                (Some(first), self.name()?)
            } else {
                (None, first)
            };
            let args = if self.peek() == Some(&Tok::Punct('(')) {
                self.arguments()?
            } else {
                Vec::new()
            };
            self.directives()?;
            let selections = if self.peek() == Some(&Tok::Punct('{')) {
                self.selection_set()?
            } else {
                Vec::new()
            };
            out.push(Selection::Field(Field {
                alias,
                name,
                args,
                selections,
            }));
        }
        Ok(out)
    }
}

/// Parses a document and picks the operation (by name, or the only one).
pub fn parse_operation(query: &str, operation_name: Option<&str>) -> Result<Operation, String> {
    let mut p = Parser {
        toks: lex(query)?,
        pos: 0,
    };
    let ops = p.document()?;
    match operation_name {
        Some(name) => ops
            .into_iter()
            .find(|o| o.name.as_deref() == Some(name))
            .ok_or_else(|| format!("unknown operation named \"{name}\"")),
        None if ops.len() == 1 => ops.into_iter().next().ok_or_else(|| "no operation".into()),
        None => Err("must provide operation name if query contains multiple operations".into()),
    }
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
