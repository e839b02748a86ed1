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
    /// Always JSON `null` (TOML has no null of its own).
    Null,
}

impl Placeholder {
    const ALL: [(&'static str, Placeholder); 15] = [
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
}

impl Filled {
    fn to_json(&self) -> Value {
        match self {
            Self::Text(text) => Value::String(text.clone()),
            Self::Number(n) => Value::from(*n),
        }
    }

    fn write_to(&self, out: &mut String) {
        match self {
            Self::Text(text) => out.push_str(text),
            Self::Number(n) => {
                let _ = write!(out, "{n}");
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

/// The key of a list rendered once per missing body field.
pub const EACH_MISSING_FIELD: &str = "each_missing_field";

/// A compiled JSON body template.
#[derive(Debug, Clone)]
pub enum Node {
    Literal(Value),
    Typed(Placeholder),
    Stringified(Placeholder),
    Text(Text),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    /// `{ each_missing_field = <item> }`: a list with one `item` per missing
    /// body field, `{{field}}` naming it (FastAPI's 422 `detail`).
    EachMissingField(Box<Node>),
}

impl Node {
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
            toml::Value::Table(table)
                if table.len() == 1 && table.contains_key(EACH_MISSING_FIELD) =>
            {
                Self::EachMissingField(Box::new(Self::compile(&table[EACH_MISSING_FIELD])?))
            }
            toml::Value::Table(table) => Self::Object(
                table
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), Self::compile(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
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
            Self::EachMissingField(item) => item.collect(out),
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
            Self::EachMissingField(item) => Value::Array(
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
    fn unknown_placeholder_is_an_error() {
        let value: toml::Value = toml::from_str(r#"a = "{{pasword}}""#).unwrap();
        assert!(Node::compile(&value).unwrap_err().contains("pasword"));
        assert!(Text::compile("x {{nope}} y").is_err());
    }
}
