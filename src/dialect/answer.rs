//! What a dialect answers: compiled response templates, the failures it
//! words, and how a failure finds its answer (route first, then the
//! dialect's table, most precise key first, then the code's fallbacks).

use std::collections::{BTreeMap, HashMap};

use super::credential::is_header_name;
use super::decode::{Echo, InputField, Problem};
use super::model::ResponseSpec;
use super::template::{FieldList, Filled, Node, Placeholder, Text, TextShape, Values};
use crate::engine::{Detail, EngineError, ErrorCode, MessageKey};

/// A rendered answer, ready for the HTTP layer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
}

#[derive(Debug)]
pub struct ResponseTemplate {
    status: Option<u16>,
    headers: Vec<(String, Text)>,
    body: Option<Node>,
}

impl ResponseTemplate {
    pub fn compile(spec: &ResponseSpec, allowed: &[Placeholder]) -> Result<Self, (String, String)> {
        if let Some(status) = spec.status {
            if !(100..=599).contains(&status) {
                return Err(("status".into(), format!("{status} is not an HTTP status")));
            }
        }
        let mut headers = Vec::new();
        for (name, value) in &spec.headers {
            if !is_header_name(name) {
                return Err(("headers".into(), format!("`{name}` is not a header name")));
            }
            let text = Text::compile(value).map_err(|e| (format!("headers.{name}"), e))?;
            check_allowed(text.placeholders(), allowed)
                .map_err(|e| (format!("headers.{name}"), e))?;
            headers.push((name.clone(), text));
        }
        let body = spec
            .body
            .as_ref()
            .map(|b| {
                let node = Node::compile(b).map_err(|e| ("body".to_string(), e))?;
                check_allowed(node.placeholders(), allowed).map_err(|e| ("body".to_string(), e))?;
                Ok::<Node, (String, String)>(node)
            })
            .transpose()?;
        Ok(Self {
            status: spec.status,
            headers,
            body,
        })
    }

    /// Its status, or `usual` when it names none.
    pub fn status_or(&self, usual: u16) -> u16 {
        self.status.unwrap_or(usual)
    }

    pub fn header_shapes(&self) -> Vec<(&str, TextShape)> {
        self.headers
            .iter()
            .map(|(name, text)| (name.as_str(), text.shape()))
            .collect()
    }

    pub fn body(&self) -> Option<&Node> {
        self.body.as_ref()
    }

    /// The field lists its body holds.
    pub fn lists(&self) -> Vec<FieldList> {
        self.body.as_ref().map(Node::lists).unwrap_or_default()
    }

    /// The placeholders its body names.
    pub fn body_placeholders(&self) -> Vec<Placeholder> {
        self.body
            .as_ref()
            .map(Node::placeholders)
            .unwrap_or_default()
    }

    pub fn render(&self, usual_status: u16, values: &Values) -> Response {
        Response {
            status: self.status_or(usual_status),
            headers: self
                .headers
                .iter()
                .map(|(name, text)| (name.clone(), text.render(values)))
                .collect(),
            body: self.body.as_ref().map(|b| b.render(values)),
        }
    }
}

fn check_allowed(
    used: impl IntoIterator<Item = Placeholder>,
    allowed: &[Placeholder],
) -> Result<(), String> {
    for placeholder in used {
        if placeholder != Placeholder::Null && !allowed.contains(&placeholder) {
            return Err(format!(
                "`{{{{{}}}}}` is not available here",
                placeholder.name()
            ));
        }
    }
    Ok(())
}

/// Something went wrong; what the dialect needs to word it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: ErrorCode,
    pub detail: Option<Detail>,
    pub field: Option<String>,
    /// Body fields the request lacked (all required ones when the body was
    /// missing or unreadable), for `each_missing_field` lists.
    pub missing_fields: Vec<String>,
    pub expected: Option<&'static str>,
    pub retry_after: Option<u64>,
    /// What the answer may quote of the body, for the failures that have it.
    pub quoted: Option<Box<Quoted>>,
}

/// What an answer may quote of a body (FastAPI's `input` and `ctx`).
#[derive(Debug, Clone, Default)]
pub struct Quoted {
    /// What the client sent for the failure's `field`.
    pub value: Option<Echo>,
    /// The pattern that value failed to match.
    pub pattern: Option<String>,
    /// Body fields a strict route does not take, for `each_unknown_field` lists.
    pub unknown_fields: Vec<(String, Echo)>,
}

impl Failure {
    pub fn of(code: ErrorCode) -> Self {
        Self {
            code,
            detail: None,
            field: None,
            missing_fields: Vec::new(),
            expected: None,
            retry_after: None,
            quoted: None,
        }
    }

    /// Its most precise message key.
    pub fn message_key(&self) -> MessageKey {
        self.detail
            .map_or(MessageKey::Code(self.code), MessageKey::Detail)
    }

    /// A decoding problem of a route reading `inputs`.
    pub fn from_problem(problem: &Problem, inputs: &[InputField]) -> Self {
        let required = || {
            inputs
                .iter()
                .filter(|f| f.required)
                .map(|f| f.wire.clone())
                .collect()
        };
        let missing_fields: Vec<String> = match problem {
            Problem::MissingFields(fields) => fields.clone(),
            Problem::NoBody | Problem::InvalidBody | Problem::UnsupportedEncoding => required(),
            _ => Vec::new(),
        };
        let quoted = Quoted {
            value: problem.value().cloned(),
            pattern: problem.pattern().map(str::to_owned),
            unknown_fields: match problem {
                Problem::UnknownFields(fields) => fields.clone(),
                _ => Vec::new(),
            },
        };
        Self {
            detail: Some(problem.detail()),
            field: problem
                .field()
                .or(missing_fields.first().map(String::as_str))
                .map(str::to_owned),
            missing_fields,
            expected: problem.expected(),
            quoted: (quoted.value.is_some() || !quoted.unknown_fields.is_empty())
                .then(|| Box::new(quoted)),
            ..Self::of(ErrorCode::MalformedRequest)
        }
    }
}

/// Whether a failure with `detail` has fields for `list`: an answer that
/// lists them for any other failure would list nothing (`polyauth check`
/// refuses it). [`Failure::from_problem`] fills the lists accordingly.
pub fn fills(detail: Option<Detail>, list: FieldList) -> bool {
    match list {
        FieldList::Missing => matches!(
            detail,
            Some(
                Detail::NoBody
                    | Detail::InvalidBody
                    | Detail::UnsupportedEncoding
                    | Detail::MissingField
            )
        ),
        FieldList::Unknown => detail == Some(Detail::UnknownField),
    }
}

/// The engine's failure, worded for the dialect. What the client is not
/// told is logged here, once.
impl From<EngineError> for Failure {
    fn from(error: EngineError) -> Self {
        match &error {
            EngineError::Internal(cause) => tracing::error!(error = ?cause, "engine failure"),
            EngineError::Unavailable(cause) => tracing::warn!(error = %cause, "store unavailable"),
            _ => {}
        }
        Self {
            detail: error.detail(),
            retry_after: error.retry_after_secs(),
            ..Self::of(error.code())
        }
    }
}

/// One way a route can fail, and its answer (see `Dialect::error_answers`).
pub struct ErrorAnswer<'a> {
    pub code: ErrorCode,
    pub message_key: MessageKey,
    pub status: u16,
    pub headers: Vec<(&'a str, TextShape)>,
    pub body: Option<&'a Node>,
    pub example: Response,
}

/// A key of an `[errors]` table: a message key, or `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum ErrorKey {
    Key(MessageKey),
    Default,
}

/// The `[errors]` and `[messages]` of a dialect file or of one route.
#[derive(Debug, Default)]
pub struct ErrorTable {
    errors: HashMap<ErrorKey, ResponseTemplate>,
    messages: HashMap<MessageKey, Text>,
}

/// Answers by key, as a file or route maps them in `[errors]`.
pub(super) type ErrorTemplates = HashMap<ErrorKey, ResponseTemplate>;
/// Texts by message key, as a file or route gives them in `[messages]`.
pub(super) type MessageTexts = HashMap<MessageKey, Text>;

impl ErrorTable {
    pub(super) fn new(errors: ErrorTemplates, messages: MessageTexts) -> Self {
        Self { errors, messages }
    }
}

/// Compiles `[messages]`; a problem names `messages.<key>`.
pub(super) fn compile_messages(
    specs: &BTreeMap<String, String>,
) -> Result<MessageTexts, (String, String)> {
    messages(specs).map_err(|(k, e)| (format!("messages.{k}"), e))
}

/// Compiles `[errors]`; a problem names `errors.<key>`.
pub(super) fn compile_errors(
    specs: &BTreeMap<String, ResponseSpec>,
) -> Result<ErrorTemplates, (String, String)> {
    errors(specs).map_err(|(k, e)| (format!("errors.{k}"), e))
}

fn messages(specs: &BTreeMap<String, String>) -> Result<MessageTexts, (String, String)> {
    let allowed = [
        Placeholder::Field,
        Placeholder::Expected,
        Placeholder::Pattern,
        Placeholder::RetryAfter,
    ];
    specs
        .iter()
        .map(|(key, text)| {
            let Some(message_key) = MessageKey::parse(key) else {
                return Err((key.clone(), format!("unknown message key `{key}`")));
            };
            let text = Text::compile(text).map_err(|e| (key.clone(), e))?;
            check_allowed(text.placeholders(), &allowed).map_err(|e| (key.clone(), e))?;
            Ok((message_key, text))
        })
        .collect()
}

fn errors(specs: &BTreeMap<String, ResponseSpec>) -> Result<ErrorTemplates, (String, String)> {
    let allowed = [
        Placeholder::Message,
        Placeholder::RetryAfter,
        Placeholder::Field,
        Placeholder::Pattern,
        Placeholder::Value,
    ];
    specs
        .iter()
        .map(|(code, spec)| {
            let key = match code.as_str() {
                "default" => ErrorKey::Default,
                other => ErrorKey::Key(MessageKey::parse(other).ok_or_else(|| {
                    (
                        code.clone(),
                        format!("unknown error code or message key `{code}`"),
                    )
                })?),
            };
            let template = ResponseTemplate::compile(spec, &allowed)
                .map_err(|(k, e)| (format!("{code}.{k}"), e))?;
            Ok((key, template))
        })
        .collect()
}

/// How a dialect words failures: its own table, then the built-in texts.
#[derive(Debug)]
pub struct Answers {
    own: ErrorTable,
    builtin: HashMap<MessageKey, Text>,
}

impl Answers {
    pub fn new(own: ErrorTable) -> Result<Self, (String, String)> {
        let builtin = MessageKey::all()
            .map(|key| Ok((key, Text::compile(key.default_message())?)))
            .collect::<Result<_, String>>()
            .map_err(|e| ("messages".to_string(), e))?;
        Ok(Self { own, builtin })
    }

    /// The answer for `code`, or a finer `detail` of it when a table maps
    /// that (`missing_field`, `token_expired`); whatever the route maps
    /// wins over the dialect-wide table.
    pub fn template<'a>(
        &'a self,
        route: Option<&'a ErrorTable>,
        code: ErrorCode,
        detail: Option<Detail>,
    ) -> Option<&'a ResponseTemplate> {
        let keys: Vec<ErrorKey> = detail
            .map(MessageKey::Detail)
            .into_iter()
            .chain([MessageKey::Code(code)])
            .chain(code.fallbacks().iter().copied().map(MessageKey::Code))
            .map(ErrorKey::Key)
            .chain([ErrorKey::Default])
            .collect();
        route
            .and_then(|r| keys.iter().find_map(|k| r.errors.get(k)))
            .or_else(|| keys.iter().find_map(|k| self.own.errors.get(k)))
    }

    fn message<'a>(&'a self, route: Option<&'a ErrorTable>, failure: &Failure) -> &'a Text {
        let own = |key: MessageKey| {
            route
                .and_then(|r| r.messages.get(&key))
                .or_else(|| self.own.messages.get(&key))
        };
        let precise = failure.message_key();
        let code = MessageKey::Code(failure.code);
        own(precise)
            .or_else(|| own(code))
            .or_else(|| self.builtin.get(&precise))
            .or_else(|| self.builtin.get(&code))
            .or_else(|| self.builtin.get(&MessageKey::Code(ErrorCode::Internal)))
            .expect("built-in messages cover every code")
    }

    /// The answer to a failure, with the route's table if it happened on one.
    pub fn render(&self, route: Option<&ErrorTable>, failure: &Failure) -> Response {
        let mut values = Values::default();
        values.maybe_text(Placeholder::Field, failure.field.as_deref());
        values.maybe_text(Placeholder::Expected, failure.expected);
        if let Some(quoted) = &failure.quoted {
            values.maybe_text(Placeholder::Pattern, quoted.pattern.as_deref());
            if let Some(Echo(value)) = &quoted.value {
                values.set(Placeholder::Value, Filled::Json(value.clone()));
            }
            values.unknown_fields(
                quoted
                    .unknown_fields
                    .iter()
                    .map(|(field, Echo(value))| (field.clone(), value.clone()))
                    .collect(),
            );
        }
        if let Some(secs) = failure.retry_after {
            values.number(Placeholder::RetryAfter, secs);
        }
        let message = self.message(route, failure).render(&values);
        values.set(Placeholder::Message, Filled::Text(message));
        values.missing_fields(failure.missing_fields.clone());
        let usual = failure.code.usual_status();
        match self.template(route, failure.code, failure.detail) {
            Some(template) => template.render(usual, &values),
            // Unreachable for a checked dialect; still an honest answer.
            None => Response {
                status: usual,
                headers: Vec::new(),
                body: None,
            },
        }
    }
}
