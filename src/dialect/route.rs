//! One route of a dialect: an operation mounted at a method and path, how
//! its request is read, and its answers.

use std::collections::BTreeMap;

use super::answer::{
    ErrorTable, Failure, Response, ResponseTemplate, compile_errors, compile_messages,
};
use super::binding::{BodyError, RequestView};
use super::credential::{Credential, TokenSource};
use super::decode::{
    self, AcceptedField, BodyRules, Encoding, Input, InputField, Inputs, Pattern, Problem,
};
use super::model::RouteSpec;
use super::operation::{Operation, Presented};
use super::params::route_pattern;
use super::template::{Node, Placeholder, TextShape, Values};
use crate::engine::{Call, CredentialKind, Detail, EngineError, ErrorCode, RevokeScope};

/// One operation of the dialect, mounted at a method and path.
#[derive(Debug)]
pub struct Route {
    pub operation: Operation,
    pub method: String,
    /// As the dialect file writes it (`/api/{version}/user/login`).
    pub path: String,
    /// The router's form of `path` (`/api/{version:v[0-9]+}/user/login`).
    pub pattern: String,
    pub encodings: Vec<Encoding>,
    pub strict: bool,
    pub inputs: Vec<InputField>,
    /// Body fields taken but not read (`accepts`).
    pub accepts: Vec<AcceptedField>,
    pub token: Option<Credential>,
    pub scope: RevokeScope,
    /// The values the success body shows.
    success_shows: Vec<Placeholder>,
    success: ResponseTemplate,
    pub(super) errors: ErrorTable,
}

impl Route {
    /// Checks a route of a dialect file.
    pub fn compile(
        spec: &RouteSpec,
        params: &BTreeMap<String, String>,
    ) -> Result<Self, (String, String)> {
        let rules = spec.operation.rules();
        let name = rules.name;
        let method = spec.method.to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            return Err((
                "method".into(),
                format!("unsupported method `{}`", spec.method),
            ));
        }
        let pattern = route_pattern(&spec.path, params).map_err(|e| ("path".to_string(), e))?;
        if crate::reserved::is_reserved(&spec.path) {
            return Err((
                "path".into(),
                format!(
                    "`{}` belongs to the gateway ({} and below)",
                    spec.path,
                    crate::reserved::listed()
                ),
            ));
        }

        let mut inputs = Vec::new();
        for (field, wire) in &spec.fields {
            let rule = Input::parse(field)
                .and_then(|input| rules.fields.iter().find(|(i, _)| *i == input))
                .ok_or_else(|| {
                    (
                        format!("fields.{field}"),
                        format!("`{name}` takes no field `{field}`"),
                    )
                })?;
            inputs.push(InputField {
                input: rule.0,
                wire: wire.clone(),
                required: rule.1,
            });
        }
        for (input, required) in rules.fields {
            if *required && !inputs.iter().any(|f| f.input == *input) {
                return Err((
                    "fields".into(),
                    format!("`{name}` needs `fields.{}`", input.name()),
                ));
            }
        }
        // Engine order, whatever the file's order.
        inputs.sort_by_key(|f| rules.fields.iter().position(|(i, _)| *i == f.input));

        let token = match (&spec.token, rules.token) {
            (Some(token), Some(default)) => {
                let credential =
                    Credential::compile(token, default).map_err(|e| ("token".to_string(), e))?;
                if let TokenSource::Field(name) = &credential.source {
                    inputs.push(InputField {
                        input: Input::Token,
                        wire: name.clone(),
                        required: true,
                    });
                }
                Some(credential)
            }
            (None, Some(_)) => {
                return Err((
                    "token".into(),
                    format!("`{name}` needs `token = {{ from = ... }}`"),
                ));
            }
            (Some(_), None) => return Err(("token".into(), format!("`{name}` reads no token"))),
            (None, None) => None,
        };
        let mut accepts = Vec::new();
        for (wire, accept) in &spec.accepts {
            if inputs.iter().any(|f| &f.wire == wire) {
                return Err((
                    format!("accepts.{wire}"),
                    format!("`{wire}` is already one of the route's `fields`"),
                ));
            }
            let pattern = accept
                .pattern
                .as_deref()
                .map(Pattern::compile)
                .transpose()
                .map_err(|e| (format!("accepts.{wire}.pattern"), e))?;
            accepts.push(AcceptedField {
                wire: wire.clone(),
                pattern,
            });
        }
        if inputs.is_empty() && !accepts.is_empty() {
            return Err(("accepts".into(), "this route reads no body".into()));
        }
        if !inputs.is_empty() && spec.encodings.is_empty() {
            return Err((
                "encodings".into(),
                "a route that reads a body needs `encodings`".into(),
            ));
        }
        if inputs.is_empty() && !spec.encodings.is_empty() {
            return Err(("encodings".into(), "this route reads no body".into()));
        }

        let shows = rules.shows.concat();
        let success = ResponseTemplate::compile(&spec.success, &shows)
            .map_err(|(k, e)| (format!("success.{k}"), e))?;
        let errors = compile_errors(&spec.errors)?;
        let messages = compile_messages(&spec.messages)?;
        let errors = ErrorTable::new(errors, messages);
        Ok(Self {
            operation: spec.operation,
            method,
            path: spec.path.clone(),
            pattern,
            encodings: spec.encodings.clone(),
            strict: spec.strict,
            inputs,
            accepts,
            token,
            scope: spec.scope,
            success_shows: success.body_placeholders(),
            success,
            errors,
        })
    }

    pub fn reads_body(&self) -> bool {
        !self.inputs.is_empty()
    }

    /// What the route's token is (access unless the file says otherwise).
    pub fn token_kind(&self) -> CredentialKind {
        self.token
            .as_ref()
            .map_or(CredentialKind::AccessToken, |t| t.kind)
    }

    /// The request as the engine call it stands for, or why it cannot be one.
    pub fn decode(&self, request: &RequestView<'_>) -> Result<Call, Failure> {
        let mut inputs = if self.reads_body() {
            let body = request.body.map_err(|e| match e {
                BodyError::TooLarge => Failure::of(ErrorCode::PayloadTooLarge),
                BodyError::Broken => Failure::from_problem(&Problem::InvalidBody, &self.inputs),
                BodyError::TimedOut => Failure::of(ErrorCode::RequestTimeout),
            })?;
            let rules = BodyRules {
                encodings: &self.encodings,
                fields: &self.inputs,
                accepts: &self.accepts,
                strict: self.strict,
            };
            decode::decode(rules, request.content_type(), body)
                .map_err(|problem| Failure::from_problem(&problem, &self.inputs))?
        } else {
            Inputs::default()
        };
        let token = match &self.token {
            Some(credential) => match &credential.source {
                TokenSource::Field(_) => inputs.take_text(Input::Token),
                _ => credential.from_headers(request.headers).map(str::to_owned),
            }
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Failure::from(EngineError::MissingToken))?,
            None => String::new(),
        };
        Ok((self.operation.rules().call)(Presented {
            inputs,
            token,
            token_kind: self.token_kind(),
            scope: self.scope,
            client_ip: request.client_ip,
            success_shows: &self.success_shows,
        }))
    }

    pub fn render_success(&self, values: &Values) -> Response {
        self.success.render(200, values)
    }

    /// Whether an answer has this route's success shape: its status, and a
    /// JSON body that [`Node::matches`] its body template.
    pub fn is_success(&self, status: u16, body: &[u8]) -> bool {
        if status != self.success.status_or(200) {
            return false;
        }
        match self.success.body() {
            None => true,
            Some(template) => serde_json::from_slice::<serde_json::Value>(body)
                .is_ok_and(|value| template.matches(&value)),
        }
    }

    /// The success answer's status, headers and body template.
    pub fn success(&self) -> (u16, Vec<(&str, TextShape)>, Option<&Node>) {
        let template = &self.success;
        (
            template.status_or(200),
            template.header_shapes(),
            template.body(),
        )
    }

    /// Every code the route can fail with, in the order documents list them.
    pub fn raisable(&self) -> Vec<ErrorCode> {
        let mut codes = self.operation.rules().raises.to_vec();
        if self.reads_body() {
            codes.extend([ErrorCode::MalformedRequest, ErrorCode::RequestTimeout]);
        }
        codes.extend(COMMON_ERRORS);
        codes
    }

    /// The message keys a failure of `code` on this route can carry: its
    /// details this route can meet (an unknown field only where strict, a
    /// pattern mismatch only where a field has a pattern), or `None` for a
    /// code that has none.
    pub fn details(&self, code: ErrorCode) -> Vec<Option<Detail>> {
        match code.details() {
            [] => vec![None],
            details => details
                .iter()
                .copied()
                .filter(|detail| match detail {
                    Detail::UnknownField => self.strict,
                    Detail::PatternMismatch => self.accepts.iter().any(|a| a.pattern.is_some()),
                    _ => true,
                })
                .map(Some)
                .collect(),
        }
    }

    /// Path parameters (`{name}` segments) and their segment regexes.
    pub fn params(&self) -> Vec<(&str, &str)> {
        self.pattern
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|inner| inner.split_once(':').unwrap_or((inner, "[^/]+")))
            .collect()
    }

    /// `POST /auth/v1/token`, for logs.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Errors every route can meet, besides those of its operation.
const COMMON_ERRORS: [ErrorCode; 3] = [
    ErrorCode::PayloadTooLarge,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];
