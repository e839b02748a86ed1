//! Turns a request body into the named inputs of an engine operation, or a
//! precise problem the dialect answers in its own words.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::engine::Detail;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// `application/json` (or `+json`).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data`, text parts only.
    Multipart,
    /// JSON whatever the `Content-Type` says, when no other listed
    /// encoding matches it (PayHub's servers parse every body as JSON).
    JsonAny,
}

/// An input of an engine operation, read from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    Email,
    Password,
    Remember,
    CompanyId,
    /// A token sent in the body (`{ from = "field" }`).
    Token,
}

impl Input {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "email" => Self::Email,
            "password" => Self::Password,
            "remember" => Self::Remember,
            "company_id" => Self::CompanyId,
            _ => return None,
        })
    }

    /// The name a dialect file gives it (`fields.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Password => "password",
            Self::Remember => "remember",
            Self::CompanyId => "company_id",
            Self::Token => "token",
        }
    }

    pub fn is_bool(self) -> bool {
        self == Self::Remember
    }
}

/// One input as the wire names it.
#[derive(Debug, Clone)]
pub struct InputField {
    pub input: Input,
    pub wire: String,
    pub required: bool,
}

/// A body field the engine does not read but the route takes (the vendor's
/// own optional fields, `accepts` in a dialect file): it is no unknown
/// field, and when sent it must be text matching `pattern`, if any.
#[derive(Debug, Clone)]
pub struct AcceptedField {
    pub wire: String,
    pub pattern: Option<Pattern>,
}

/// A regex a field's value must match somewhere (anchor it with `^…$`),
/// as pydantic's `pattern` does.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    regex: regex_lite::Regex,
}

impl Pattern {
    pub fn compile(source: &str) -> Result<Self, String> {
        let regex = regex_lite::Regex::new(source)
            .map_err(|e| format!("`{source}` is not a regex ({e})"))?;
        Ok(Self {
            source: source.to_owned(),
            regex,
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

/// A value a client sent, which an answer may echo (FastAPI's `input`).
/// Its `Debug` never shows it: a misnamed field may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Echo(pub Value);

impl std::fmt::Debug for Echo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Echo(..)")
    }
}

/// What was wrong with a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NoBody,
    InvalidBody,
    UnsupportedEncoding,
    /// Every required field that is absent, in the route's order.
    MissingFields(Vec<String>),
    /// Every field a strict route does not take, in the body's order, with
    /// the values sent.
    UnknownFields(Vec<(String, Echo)>),
    WrongType {
        field: String,
        expected: &'static str,
    },
    /// An accepted field's value does not match its pattern.
    PatternMismatch {
        field: String,
        pattern: String,
        value: Echo,
    },
}

impl Problem {
    /// The detail a dialect gives its text for.
    pub fn detail(&self) -> Detail {
        match self {
            Self::NoBody => Detail::NoBody,
            Self::InvalidBody => Detail::InvalidBody,
            Self::UnsupportedEncoding => Detail::UnsupportedEncoding,
            Self::MissingFields(_) => Detail::MissingField,
            Self::UnknownFields(_) => Detail::UnknownField,
            Self::WrongType { .. } => Detail::WrongType,
            Self::PatternMismatch { .. } => Detail::PatternMismatch,
        }
    }

    /// The field the problem is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::MissingFields(fields) => fields.first().map(String::as_str),
            Self::UnknownFields(fields) => fields.first().map(|(field, _)| field.as_str()),
            Self::WrongType { field, .. } | Self::PatternMismatch { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The value sent for that field, where an answer may show it.
    pub fn value(&self) -> Option<&Echo> {
        match self {
            Self::UnknownFields(fields) => fields.first().map(|(_, value)| value),
            Self::PatternMismatch { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn pattern(&self) -> Option<&str> {
        match self {
            Self::PatternMismatch { pattern, .. } => Some(pattern),
            _ => None,
        }
    }

    pub fn expected(&self) -> Option<&'static str> {
        match self {
            Self::WrongType { expected, .. } => Some(expected),
            _ => None,
        }
    }
}

/// Decoded inputs, by engine name. Holds passwords and tokens: its `Debug`
/// shows which inputs are present, never their values.
#[derive(Default)]
pub struct Inputs {
    text: HashMap<Input, String>,
    flags: HashMap<Input, bool>,
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("text", &self.text.keys().collect::<Vec<_>>())
            .field("flags", &self.flags)
            .finish()
    }
}

impl Inputs {
    #[cfg(test)]
    pub fn text(&self, input: Input) -> Option<&str> {
        self.text.get(&input).map(String::as_str)
    }

    pub fn take_text(&mut self, input: Input) -> Option<String> {
        self.text.remove(&input)
    }

    pub fn flag(&self, input: Input) -> bool {
        self.flags.get(&input).copied().unwrap_or(false)
    }
}

/// What a route reads of a body: how it may be encoded, the engine's
/// inputs, the fields it takes besides, and whether any other is refused.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules<'a> {
    pub encodings: &'a [Encoding],
    pub fields: &'a [InputField],
    pub accepts: &'a [AcceptedField],
    pub strict: bool,
}

/// Decodes `body` as `rules` say.
pub fn decode(
    rules: BodyRules<'_>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Inputs, Problem> {
    let encodings = rules.encodings;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::NoBody);
    }
    let declared = content_type
        .and_then(encoding_of)
        .filter(|e| encodings.contains(e));
    // `json_any`: a body that is a JSON object is JSON whatever the
    // Content-Type says (curl -d labels it a form); anything else keeps the
    // declared encoding, or is read as JSON when none is declared.
    let json_anyway = (encodings.contains(&Encoding::JsonAny)
        && matches!(
            declared,
            None | Some(Encoding::Form) | Some(Encoding::Multipart)
        ))
    .then(|| serde_json::from_slice::<Value>(body).ok())
    .flatten();
    if let Some(Value::Object(object)) = json_anyway {
        return read_fields(object, rules, false);
    }
    let encoding = declared
        .or(encodings
            .contains(&Encoding::JsonAny)
            .then_some(Encoding::JsonAny))
        .ok_or(Problem::UnsupportedEncoding)?;
    let object = match encoding {
        Encoding::Json | Encoding::JsonAny => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => object,
            _ => return Err(Problem::InvalidBody),
        },
        Encoding::Form => {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(body).map_err(|_| Problem::InvalidBody)?;
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect()
        }
        Encoding::Multipart => multipart_fields(content_type.unwrap_or_default(), body)?
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    };
    let from_form = matches!(encoding, Encoding::Form | Encoding::Multipart);
    read_fields(object, rules, from_form)
}

/// The route's inputs out of a decoded body; `from_form` bodies carry
/// every value as text.
fn read_fields(
    object: serde_json::Map<String, Value>,
    rules: BodyRules<'_>,
    from_form: bool,
) -> Result<Inputs, Problem> {
    let fields = rules.fields;
    let missing: Vec<String> = fields
        .iter()
        .filter(|f| f.required && object.get(&f.wire).is_none_or(Value::is_null))
        .map(|f| f.wire.clone())
        .collect();
    if !missing.is_empty() {
        return Err(Problem::MissingFields(missing));
    }

    let mut inputs = Inputs::default();
    for field in fields {
        let Some(value) = object.get(&field.wire).filter(|v| !v.is_null()) else {
            continue;
        };
        let wrong = |expected| Problem::WrongType {
            field: field.wire.clone(),
            expected,
        };
        if field.input.is_bool() {
            let flag = match value {
                Value::Bool(b) => *b,
                Value::String(s) if from_form => parse_form_bool(s).ok_or(wrong("boolean"))?,
                _ => return Err(wrong("boolean")),
            };
            inputs.flags.insert(field.input, flag);
        } else {
            let Value::String(text) = value else {
                return Err(wrong("string"));
            };
            inputs.text.insert(field.input, text.clone());
        }
    }

    for accepted in rules.accepts {
        let Some(value) = object.get(&accepted.wire).filter(|v| !v.is_null()) else {
            continue;
        };
        let Value::String(text) = value else {
            return Err(Problem::WrongType {
                field: accepted.wire.clone(),
                expected: "string",
            });
        };
        // An empty form value is no value (FastAPI reads it as the default).
        if from_form && text.is_empty() {
            continue;
        }
        if let Some(pattern) = accepted.pattern.as_ref().filter(|p| !p.is_match(text)) {
            return Err(Problem::PatternMismatch {
                field: accepted.wire.clone(),
                pattern: pattern.source.clone(),
                value: Echo(value.clone()),
            });
        }
    }

    if rules.strict {
        let unknown: Vec<(String, Echo)> = object
            .into_iter()
            .filter(|(k, _)| {
                !fields.iter().any(|f| &f.wire == k) && !rules.accepts.iter().any(|a| &a.wire == k)
            })
            .map(|(k, v)| (k, Echo(v)))
            .collect();
        if !unknown.is_empty() {
            return Err(Problem::UnknownFields(unknown));
        }
    }
    Ok(inputs)
}

/// The text parts of a `multipart/form-data` body, in order. A file part
/// (one with a `filename`), a part without a name, a part that is not
/// UTF-8, or a body that does not parse is [`Problem::InvalidBody`].
fn multipart_fields(content_type: &str, body: &[u8]) -> Result<Vec<(String, String)>, Problem> {
    use futures_util::FutureExt as _;
    let boundary = multer::parse_boundary(content_type).map_err(|_| Problem::InvalidBody)?;
    let chunk = body.to_vec();
    let stream =
        futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(chunk) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let read = async move {
        let mut fields = Vec::new();
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|_| Problem::InvalidBody)?
        {
            if field.file_name().is_some() {
                return Err(Problem::InvalidBody);
            }
            let name = field.name().ok_or(Problem::InvalidBody)?.to_owned();
            let bytes = field.bytes().await.map_err(|_| Problem::InvalidBody)?;
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| Problem::InvalidBody)?;
            fields.push((name, text));
        }
        Ok(fields)
    };
    // The whole body is already in memory, so the parser never waits; a
    // pending answer would mean a body it cannot finish reading.
    read.now_or_never().unwrap_or(Err(Problem::InvalidBody))
}

fn encoding_of(content_type: &str) -> Option<Encoding> {
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Some(Encoding::Json),
        "application/x-www-form-urlencoded" => Some(Encoding::Form),
        "multipart/form-data" => Some(Encoding::Multipart),
        other if other.starts_with("application/") && other.ends_with("+json") => {
            Some(Encoding::Json)
        }
        _ => None,
    }
}

fn parse_form_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
