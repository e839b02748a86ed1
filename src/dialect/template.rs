//! Response templates: JSON-shaped TOML where a string that is exactly
//! `"{{name}}"` becomes the typed value, `"{{name|string}}"` its string form,
//! and `{{name}}` inside a longer string is interpolated.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// A value a template may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Placeholder {
    AccessToken,
    RefreshToken,
    TokenType,
    ExpiresIn,
    RefreshExpiresIn,
    ApiKey,
    Email,
    Subject,
    CompanyId,
    Message,
    RetryAfter,
    /// The body field a decoding problem is about (messages only).
    Field,
    /// The type that field should have had (messages only).
    Expected,
    /// The holder's first role (claims only).
    Role,
    /// The pattern a body field's value failed to match (errors only).
    Pattern,
    /// The value the client sent for the field a problem is about, as sent
    /// (errors only; FastAPI's `input`).
    Value,
    /// Always JSON `null` (TOML has no null of its own).
    Null,
}

impl Placeholder {
    const ALL: [(&'static str, Placeholder); 17] = [
        ("access_token", Self::AccessToken),
        ("refresh_token", Self::RefreshToken),
        ("token_type", Self::TokenType),
        ("expires_in", Self::ExpiresIn),
        ("refresh_expires_in", Self::RefreshExpiresIn),
        ("api_key", Self::ApiKey),
        ("email", Self::Email),
        ("subject", Self::Subject),
        ("company_id", Self::CompanyId),
        ("message", Self::Message),
        ("retry_after", Self::RetryAfter),
        ("field", Self::Field),
        ("expected", Self::Expected),
        ("role", Self::Role),
        ("pattern", Self::Pattern),
        ("value", Self::Value),
        ("null", Self::Null),
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// A typed value filled into a template.
#[derive(Clone)]
pub enum Filled {
    Text(String),
    Number(u64),
    /// A JSON value as a client sent it.
    Json(Value),
}

impl Filled {
    fn to_json(&self) -> Value {
        match self {
            Self::Text(text) => Value::String(text.clone()),
            Self::Number(n) => Value::from(*n),
            Self::Json(value) => value.clone(),
        }
    }

    fn write_to(&self, out: &mut String) {
        match self {
            Self::Text(text) | Self::Json(Value::String(text)) => out.push_str(text),
            Self::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Self::Json(value) => {
                let _ = write!(out, "{value}");
            }
        }
    }
}

/// The values at hand when a response is rendered.
#[derive(Default, Clone)]
pub struct Values {
    filled: Vec<(Placeholder, Filled)>,
    /// Body fields a request lacked, for `each_missing_field` lists.
    missing_fields: Vec<String>,
    /// Body fields a strict route does not take, with the values sent, for
    /// `each_unknown_field` lists.
    unknown_fields: Vec<(String, Value)>,
}

impl Values {
    pub fn set(&mut self, placeholder: Placeholder, value: Filled) -> &mut Self {
        self.filled.retain(|(p, _)| *p != placeholder);
        self.filled.push((placeholder, value));
        self
    }

    pub fn text(&mut self, placeholder: Placeholder, value: impl Into<String>) -> &mut Self {
        self.set(placeholder, Filled::Text(value.into()))
    }

    pub fn maybe_text(&mut self, placeholder: Placeholder, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.text(placeholder, value);
        }
        self
    }

    pub fn missing_fields(&mut self, fields: Vec<String>) -> &mut Self {
        self.missing_fields = fields;
        self
    }

    pub fn unknown_fields(&mut self, fields: Vec<(String, Value)>) -> &mut Self {
        self.unknown_fields = fields;
        self
    }

    pub fn number(&mut self, placeholder: Placeholder, value: u64) -> &mut Self {
        self.set(placeholder, Filled::Number(value))
    }

    fn get(&self, placeholder: Placeholder) -> Option<&Filled> {
        self.filled
            .iter()
            .find(|(p, _)| *p == placeholder)
            .map(|(_, v)| v)
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Value(Placeholder),
}

/// A string with `{{name}}` pieces in it.
#[derive(Debug, Clone)]
pub struct Text {
    pieces: Vec<Piece>,
}

/// What a header template can render, for documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextShape {
    /// Always this text.
    Literal(String),
    /// Exactly one number (`{{retry_after}}`).
    Number,
    Other,
}

impl Text {
    pub fn shape(&self) -> TextShape {
        match self.pieces.as_slice() {
            [] => TextShape::Literal(String::new()),
            [Piece::Literal(text)] => TextShape::Literal(text.clone()),
            [Piece::Value(Placeholder::RetryAfter | Placeholder::ExpiresIn)] => TextShape::Number,
            _ => TextShape::Other,
        }
    }

    /// Compiles `source`; unknown names are an error naming them.
    pub fn compile(source: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                return Err(format!("unclosed `{{{{` in `{source}`"));
            };
            if start > 0 {
                pieces.push(Piece::Literal(rest[..start].to_owned()));
            }
            let inner = rest[start + 2..start + len].trim();
            let name = inner
                .strip_suffix("|string")
                .map(str::trim)
                .unwrap_or(inner);
            let placeholder = Placeholder::parse(name)
                .ok_or_else(|| format!("unknown placeholder `{{{{{name}}}}}`"))?;
            pieces.push(Piece::Value(placeholder));
            rest = &rest[start + len + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_owned()));
        }
        Ok(Self { pieces })
    }

    pub fn placeholders(&self) -> impl Iterator<Item = Placeholder> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Value(v) => Some(*v),
            Piece::Literal(_) => None,
        })
    }

    /// Fills the string; a value that is not at hand renders as empty.
    pub fn render(&self, values: &Values) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Value(p) => {
                    if let Some(value) = values.get(*p) {
                        value.write_to(&mut out);
                    }
                }
            }
        }
        out
    }
}

/// The body fields a failure lists, one template item each (FastAPI's 422
/// `detail`): `{ each_missing_field = <item> }`, `{ each_unknown_field = <item> }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldList {
    /// Every required field the request lacked, `{{field}}` naming each.
    Missing,
    /// Every field a strict route does not take, `{{field}}` naming each
    /// and `{{value}}` the value sent.
    Unknown,
}

impl FieldList {
    const ALL: [FieldList; 2] = [Self::Missing, Self::Unknown];

    /// The key of the table that is such a list.
    pub fn key(self) -> &'static str {
        match self {
            Self::Missing => "each_missing_field",
            Self::Unknown => "each_unknown_field",
        }
    }

    fn of_table(table: &toml::Table) -> Option<Self> {
        let (key, _) = table.iter().next().filter(|_| table.len() == 1)?;
        Self::ALL.into_iter().find(|list| list.key() == key)
    }
}

/// A compiled JSON body template.
#[derive(Debug, Clone)]
pub enum Node {
    Literal(Value),
    Typed(Placeholder),
    Stringified(Placeholder),
    Text(Text),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    /// A list with one `item` per field of the failure's [`FieldList`].
    EachField(FieldList, Box<Node>),
}

impl Node {
    /// Whether `value` has the shape this template renders: its literals
    /// equal, a placeholder present (a stringified one or a text as a
    /// string), every object key there (others may be too), lists as lists.
    /// What tells a vendor's success from its failure.
    pub fn matches(&self, value: &Value) -> bool {
        match self {
            Self::Literal(literal) => literal == value,
            Self::Typed(_) => !value.is_null(),
            Self::Stringified(_) => value.is_string(),
            Self::Text(text) => match text.shape() {
                TextShape::Literal(literal) => value.as_str() == Some(literal.as_str()),
                TextShape::Number | TextShape::Other => value.is_string(),
            },
            Self::Object(fields) => value.as_object().is_some_and(|object| {
                fields
                    .iter()
                    .all(|(key, node)| object.get(key).is_some_and(|v| node.matches(v)))
            }),
            Self::Array(_) | Self::EachField(..) => value.is_array(),
        }
    }

    pub fn compile(value: &toml::Value) -> Result<Self, String> {
        Ok(match value {
            toml::Value::String(s) => compile_string(s)?,
            toml::Value::Integer(i) => Self::Literal(Value::from(*i)),
            toml::Value::Float(f) => Self::Literal(Value::from(*f)),
            toml::Value::Boolean(b) => Self::Literal(Value::from(*b)),
            toml::Value::Datetime(d) => Self::Literal(Value::from(d.to_string())),
            toml::Value::Array(items) => {
                Self::Array(items.iter().map(Self::compile).collect::<Result<_, _>>()?)
            }
            toml::Value::Table(table) => match FieldList::of_table(table) {
                Some(list) => Self::EachField(list, Box::new(Self::compile(&table[list.key()])?)),
                None => Self::Object(
                    table
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), Self::compile(v)?)))
                        .collect::<Result<_, String>>()?,
                ),
            },
        })
    }

    /// Every placeholder the template names.
    pub fn placeholders(&self) -> Vec<Placeholder> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<Placeholder>) {
        match self {
            Self::Literal(_) => {}
            Self::Typed(p) | Self::Stringified(p) => out.push(*p),
            Self::Text(text) => out.extend(text.placeholders()),
            Self::Object(fields) => fields.iter().for_each(|(_, n)| n.collect(out)),
            Self::Array(items) => items.iter().for_each(|n| n.collect(out)),
            Self::EachField(_, item) => item.collect(out),
        }
    }

    /// Every field list the template holds, outermost first.
    pub fn lists(&self) -> Vec<FieldList> {
        match self {
            Self::Literal(_) | Self::Typed(_) | Self::Stringified(_) | Self::Text(_) => Vec::new(),
            Self::Object(fields) => fields.iter().flat_map(|(_, n)| n.lists()).collect(),
            Self::Array(items) => items.iter().flat_map(Self::lists).collect(),
            Self::EachField(list, item) => std::iter::once(*list).chain(item.lists()).collect(),
        }
    }

    /// Renders to JSON; a typed value that is not at hand becomes `null`.
    pub fn render(&self, values: &Values) -> Value {
        match self {
            Self::Literal(value) => value.clone(),
            Self::Typed(Placeholder::Null) => Value::Null,
            Self::Typed(p) => values.get(*p).map_or(Value::Null, Filled::to_json),
            Self::Stringified(p) => values.get(*p).map_or(Value::Null, |v| {
                let mut out = String::new();
                v.write_to(&mut out);
                Value::String(out)
            }),
            Self::Text(text) => Value::String(text.render(values)),
            Self::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, n)| (k.clone(), n.render(values)))
                    .collect::<Map<_, _>>(),
            ),
            Self::Array(items) => Value::Array(items.iter().map(|n| n.render(values)).collect()),
            Self::EachField(FieldList::Missing, item) => Value::Array(
                values
                    .missing_fields
                    .iter()
                    .map(|field| {
                        let mut one = values.clone();
                        one.text(Placeholder::Field, field.clone());
                        item.render(&one)
                    })
                    .collect(),
            ),
            Self::EachField(FieldList::Unknown, item) => Value::Array(
                values
                    .unknown_fields
                    .iter()
                    .map(|(field, value)| {
                        let mut one = values.clone();
                        one.text(Placeholder::Field, field.clone())
                            .set(Placeholder::Value, Filled::Json(value.clone()));
                        item.render(&one)
                    })
                    .collect(),
            ),
        }
    }
}

fn compile_string(source: &str) -> Result<Node, String> {
    if let Some(inner) = source
        .strip_prefix("{{")
        .and_then(|s| s.strip_suffix("}}"))
        .filter(|inner| !inner.contains("{{") && !inner.contains("}}"))
    {
        let inner = inner.trim();
        let (name, stringify) = match inner.strip_suffix("|string") {
            Some(name) => (name.trim(), true),
            None => (inner, false),
        };
        let placeholder = Placeholder::parse(name)
            .ok_or_else(|| format!("unknown placeholder `{{{{{name}}}}}`"))?;
        return Ok(if stringify {
            Node::Stringified(placeholder)
        } else {
            Node::Typed(placeholder)
        });
    }
    if source.contains("{{") {
        return Text::compile(source).map(Node::Text);
    }
    Ok(Node::Literal(Value::String(source.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(toml_text: &str) -> Node {
        let value: toml::Value = toml::from_str(toml_text).unwrap();
        Node::compile(&value).unwrap()
    }

    #[test]
    fn typed_stringified_and_interpolated_values() {
        let node = body(
            r#"a = "{{expires_in}}"
               b = "{{expires_in|string}}"
               c = "retry in {{retry_after}} seconds"
               d = "{{company_id}}""#,
        );
        let mut values = Values::default();
        values
            .number(Placeholder::ExpiresIn, 3600)
            .number(Placeholder::RetryAfter, 7);
        let rendered = node.render(&values);
        assert_eq!(
            serde_json::to_string(&rendered).unwrap(),
            r#"{"a":3600,"b":"3600","c":"retry in 7 seconds","d":null}"#
        );
    }

    #[test]
    fn each_missing_field_renders_one_item_per_field() {
        let node = body(
            r#"detail = { each_missing_field = { type = "missing", loc = ["body", "{{field}}"], input = "{{null}}" } }"#,
        );
        let mut values = Values::default();
        values.missing_fields(vec!["username".into(), "password".into()]);
        assert_eq!(
            serde_json::to_string(&node.render(&values)).unwrap(),
            r#"{"detail":[{"type":"missing","loc":["body","username"],"input":null},{"type":"missing","loc":["body","password"],"input":null}]}"#
        );
    }

    #[test]
    fn each_unknown_field_renders_each_field_with_the_value_sent() {
        let node = body(
            r#"detail = { each_unknown_field = { type = "extra_forbidden", loc = ["body", "{{field}}"], input = "{{value}}" } }"#,
        );
        assert_eq!(node.lists(), [FieldList::Unknown]);
        let mut values = Values::default();
        values.unknown_fields(vec![
            ("scope".into(), Value::from("read")),
            ("n".into(), Value::from(7)),
        ]);
        assert_eq!(
            serde_json::to_string(&node.render(&values)).unwrap(),
            r#"{"detail":[{"type":"extra_forbidden","loc":["body","scope"],"input":"read"},{"type":"extra_forbidden","loc":["body","n"],"input":7}]}"#
        );
        // Nothing to list: an empty list (what `check` keeps a dialect from answering).
        values.unknown_fields(Vec::new());
        assert_eq!(
            serde_json::to_string(&node.render(&values)).unwrap(),
            r#"{"detail":[]}"#
        );
    }

    #[test]
    fn unknown_placeholder_is_an_error() {
        let value: toml::Value = toml::from_str(r#"a = "{{pasword}}""#).unwrap();
        assert!(Node::compile(&value).unwrap_err().contains("pasword"));
        assert!(Text::compile("x {{nope}} y").is_err());
    }
}
