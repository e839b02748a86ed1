//! Dialects: the exact request and response shapes of a vendor's
//! authentication API, read from a TOML file. The engine never sees these
//! shapes; a dialect never touches a key or a hash.

pub mod decode;
pub mod model;
pub mod template;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use decode::{Input, InputField, Problem};
use model::{
    CredentialSpec, DialectFile, Encoding, Operation, ResponseSpec, RouteSpec, SourceKind,
};
use template::{Filled, Node, Placeholder, Text, TextShape, Values};

use crate::config::ConfigError;
use crate::engine::tokens::RESERVED_CLAIMS;
use crate::engine::{ClaimValue, CredentialKind, EngineError, RevokeScope};

/// The built-in dialect files, compiled into the binary.
const BUILTIN: &[(&str, &str)] = &[
    ("elyssa", include_str!("../../dialects/elyssa.toml")),
    ("oauth-form", include_str!("../../dialects/oauth-form.toml")),
    ("payhub", include_str!("../../dialects/payhub.toml")),
    ("pixyle", include_str!("../../dialects/pixyle.toml")),
    ("visualyze", include_str!("../../dialects/visualyze.toml")),
];

/// Every error code a dialect can answer: its usual HTTP status and the
/// message `{{message}}` takes when the dialect gives no text of its own.
const ERROR_CODES: &[(&str, u16, &str)] = &[
    ("malformed_request", 400, "Malformed request"),
    ("unknown_user", 401, "Invalid credentials"),
    ("wrong_password", 401, "Invalid credentials"),
    ("invalid_credentials", 401, "Invalid credentials"),
    ("account_inactive", 401, "Account is not activated"),
    ("email_unverified", 403, "Email is not verified"),
    ("missing_token", 401, "Missing credentials"),
    ("invalid_token", 401, "Invalid token"),
    ("forbidden", 403, "Forbidden"),
    (
        "locked_out",
        429,
        "Too many failed attempts, retry in {{retry_after}} seconds",
    ),
    ("unavailable", 503, "Service temporarily unavailable"),
    ("internal", 500, "Internal server error"),
    ("not_found", 404, "Not found"),
    ("method_not_allowed", 405, "Method not allowed"),
    ("payload_too_large", 413, "Request body too large"),
];

/// Finer message keys, more precise than an error code.
const MESSAGE_KEYS: &[(&str, &str)] = &[
    ("no_body", "Missing request body"),
    ("invalid_body", "Request body is not valid"),
    ("unsupported_encoding", "Unsupported content type"),
    ("missing_field", "Missing field: {{field}}"),
    ("unknown_field", "Unknown field: {{field}}"),
    ("wrong_type", "Field {{field}} must be a {{expected}}"),
    ("token_invalid", "Invalid token"),
    ("token_expired", "Token has expired"),
    ("token_revoked", "Token has been revoked"),
    ("token_wrong_type", "Wrong token type"),
];

/// Errors every route can meet, besides those of its operation.
const COMMON_ERRORS: &[&str] = &["payload_too_large", "unavailable", "internal"];
/// Errors the gateway itself answers in the dialect's shape.
const GATEWAY_ERRORS: &[&str] = &[
    "not_found",
    "method_not_allowed",
    "missing_token",
    "invalid_token",
    "forbidden",
    "unavailable",
    "internal",
];

/// The HTTP status an error code stands for. Forward-auth always answers
/// with it, whatever status a dialect's own routes use (PayHub's 200s).
pub fn usual_status(code: &str) -> u16 {
    ERROR_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or(500, |(_, status, _)| *status)
}

/// A literal URL path: `/`, then segments of letters, digits and `-._~`.
/// Nothing the router would read as a pattern (`{`, `}`, `*`).
pub fn is_plain_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
}

/// Paths every tenant mount answers itself: forward-auth and the API docs.
fn is_gateway_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    path == "/openapi.json"
        || path == "/docs"
        || path.starts_with("/docs/")
        || path == "/_polyauth"
        || path.starts_with("/_polyauth/")
}

/// Checks a route path and gives the router's pattern for it: literal
/// segments as [`is_plain_path`] allows, and whole `{name}` segments for
/// names declared in `[params]`, which become `{name:regex}`.
fn route_pattern(path: &str, params: &BTreeMap<String, String>) -> Result<String, String> {
    let shape = || {
        format!(
            "`{path}` must start with one `/` and hold only letters, digits and `-._~/`, \
             or whole `{{name}}` segments declared in `[params]`"
        )
    };
    if !path.starts_with('/') || path.contains("//") {
        return Err(shape());
    }
    let mut pattern = String::new();
    let mut used: Vec<&str> = Vec::new();
    for segment in path[1..].split('/') {
        pattern.push('/');
        let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            if !is_plain_path(&format!("/{segment}")) {
                return Err(shape());
            }
            pattern.push_str(segment);
            continue;
        };
        if !is_param_name(name) {
            return Err(shape());
        }
        let regex = params
            .get(name)
            .ok_or_else(|| format!("`{{{name}}}` in `{path}` is not declared in `[params]`"))?;
        if used.contains(&name) {
            return Err(format!("`{{{name}}}` appears twice in `{path}`"));
        }
        used.push(name);
        pattern.push_str(&format!("{{{name}:{regex}}}"));
    }
    Ok(pattern)
}

fn is_param_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks the `[params]` table. A regex may use only a subset the gateway
/// can vouch for: it can never match `/` (a parameter stays within its
/// segment) nor unbalance the router's `{name:regex}` braces. It is then
/// compiled by the same engine as the router's (`regex-lite`).
fn check_params(params: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    for (name, regex) in params {
        let key = format!("params.{name}");
        if !is_param_name(name) {
            return Err((
                key,
                "a parameter name is letters, digits and `_`, not starting with a digit".into(),
            ));
        }
        check_param_regex(regex).map_err(|e| (key.clone(), e))?;
        regex_lite::Regex::new(&format!("^(?P<{name}>{regex})$"))
            .map_err(|e| (key, format!("`{regex}` is not a valid regex: {e}")))?;
    }
    Ok(())
}

fn check_param_regex(regex: &str) -> Result<(), String> {
    let refuse = |what: String| {
        Err(format!(
            "{what} in `{regex}`: a parameter regex may hold letters, digits, `-_~`, \
             classes `[...]` of those (and `.` inside a class), groups `(...)`/`(?:...)`, `|`, and `? * + {{m,n}}`"
        ))
    };
    if regex.is_empty() {
        return refuse("nothing".into());
    }
    let is_literal = |c: char| c.is_ascii_alphanumeric() || "-_~".contains(c);
    let mut chars = regex.chars().peekable();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            c if is_literal(c) || "|?*+".contains(c) => {}
            '(' => {
                depth += 1;
                if chars.peek() == Some(&'?') {
                    chars.next();
                    if chars.next() != Some(':') {
                        return refuse("a group other than `(?:`".into());
                    }
                }
            }
            ')' => {
                depth = match depth.checked_sub(1) {
                    Some(d) => d,
                    None => return refuse("an unopened `)`".into()),
                };
            }
            '[' => {
                let mut class = Vec::new();
                loop {
                    match chars.next() {
                        Some(']') if !class.is_empty() => break,
                        Some(c) if is_literal(c) || c == '.' => class.push(c),
                        Some(c) => return refuse(format!("`{c}` in a class")),
                        None => return refuse("an unclosed `[`".into()),
                    }
                }
                // `[.-9]` would hold `/`: a range runs between letters or digits only.
                let bad_range = class.windows(3).find(|w| {
                    w[1] == '-' && !(w[0].is_ascii_alphanumeric() && w[2].is_ascii_alphanumeric())
                });
                if let Some(w) = bad_range {
                    return refuse(format!("the range `{}-{}`", w[0], w[2]));
                }
            }
            '{' => {
                let mut digits = false;
                loop {
                    match chars.next() {
                        Some('}') if digits => break,
                        Some(c) if c.is_ascii_digit() => digits = true,
                        Some(',') => {}
                        _ => return refuse("a `{` that is not a `{m,n}` repetition".into()),
                    }
                }
            }
            c => return refuse(format!("`{c}`")),
        }
    }
    if depth != 0 {
        return refuse("an unclosed `(`".into());
    }
    Ok(())
}

/// The codes tried for an error, most precise first.
fn fallback_chain(code: &str) -> Vec<&str> {
    let mut chain = vec![code];
    match code {
        "unknown_user" | "wrong_password" => chain.push("invalid_credentials"),
        "missing_token" => chain.push("invalid_token"),
        _ => {}
    }
    chain.push("default");
    chain
}

fn raisable(operation: Operation, reads_body: bool) -> Vec<&'static str> {
    let mut codes: Vec<&str> = match operation {
        Operation::Login => vec![
            "unknown_user",
            "wrong_password",
            "invalid_credentials",
            "account_inactive",
            "email_unverified",
            "locked_out",
        ],
        Operation::ClientLogin => vec!["unknown_user", "locked_out"],
        Operation::Refresh | Operation::Revoke | Operation::GenerateApiKey => {
            vec!["missing_token", "invalid_token"]
        }
    };
    if reads_body {
        codes.push("malformed_request");
    }
    codes.extend_from_slice(COMMON_ERRORS);
    codes
}

/// The finer message keys a failure of `code` can carry.
fn message_keys(code: &'static str, strict: bool) -> Vec<&'static str> {
    match code {
        "malformed_request" => {
            let mut keys = vec![
                "no_body",
                "invalid_body",
                "unsupported_encoding",
                "missing_field",
                "wrong_type",
            ];
            if strict {
                keys.push("unknown_field");
            }
            keys
        }
        "invalid_token" => vec![
            "token_invalid",
            "token_expired",
            "token_revoked",
            "token_wrong_type",
        ],
        code => vec![code],
    }
}

/// One way a route can fail, and its answer (see [`Dialect::error_answers`]).
pub struct ErrorAnswer<'a> {
    pub code: &'static str,
    pub message_key: &'static str,
    pub status: u16,
    pub headers: Vec<(&'a str, TextShape)>,
    pub body: Option<&'a Node>,
    pub example: Response,
}

/// A rendered answer, ready for the HTTP layer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
}

#[derive(Debug)]
struct ResponseTemplate {
    status: Option<u16>,
    headers: Vec<(String, Text)>,
    body: Option<Node>,
}

impl ResponseTemplate {
    fn compile(spec: &ResponseSpec, allowed: &[Placeholder]) -> Result<Self, (String, String)> {
        if let Some(status) = spec.status {
            if !(100..=599).contains(&status) {
                return Err(("status".into(), format!("{status} is not an HTTP status")));
            }
        }
        let mut headers = Vec::new();
        for (name, value) in &spec.headers {
            if name.is_empty() || !name.bytes().all(is_token_char) {
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

    fn header_shapes(&self) -> Vec<(&str, TextShape)> {
        self.headers
            .iter()
            .map(|(name, text)| (name.as_str(), text.shape()))
            .collect()
    }

    fn uses(&self, placeholder: Placeholder) -> bool {
        self.body
            .as_ref()
            .is_some_and(|b| b.placeholders().contains(&placeholder))
    }

    fn render(&self, usual_status: u16, values: &Values) -> Response {
        Response {
            status: self.status.unwrap_or(usual_status),
            headers: self
                .headers
                .iter()
                .map(|(name, text)| (name.clone(), text.render(values)))
                .collect(),
            body: self.body.as_ref().map(|b| b.render(values)),
        }
    }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
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

/// Where a token is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Bearer,
    Header(String),
    Field(String),
}

/// A token source and what the token may be.
#[derive(Debug, Clone)]
pub struct Credential {
    pub source: TokenSource,
    pub kind: CredentialKind,
}

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
    pub token: Option<Credential>,
    pub scope: RevokeScope,
    /// The success body shows a new refresh token: refresh rotates.
    pub rotates_refresh: bool,
    /// The success body shows the user's API key: login hands it out.
    pub shows_api_key: bool,
    success: ResponseTemplate,
    errors: HashMap<String, ResponseTemplate>,
    messages: HashMap<String, Text>,
}

impl Route {
    pub fn reads_body(&self) -> bool {
        !self.inputs.is_empty()
    }

    pub fn render_success(&self, values: &Values) -> Response {
        self.success.render(200, values)
    }

    /// The success answer's status, headers and body template.
    pub fn success(&self) -> (u16, Vec<(&str, TextShape)>, Option<&Node>) {
        let template = &self.success;
        (
            template.status.unwrap_or(200),
            template.header_shapes(),
            template.body.as_ref(),
        )
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

/// Something went wrong; what the dialect needs to word it.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    pub code: &'static str,
    pub message_key: &'static str,
    pub field: Option<String>,
    /// Body fields the request lacked (all required ones when the body was
    /// missing or unreadable), for `each_missing_field` lists.
    pub missing_fields: Vec<String>,
    pub expected: Option<&'static str>,
    pub retry_after: Option<u64>,
}

impl Failure {
    pub fn gateway(code: &'static str) -> Self {
        Self {
            code,
            message_key: code,
            ..Self::default()
        }
    }
}

impl From<&EngineError> for Failure {
    fn from(error: &EngineError) -> Self {
        Self {
            code: error.code(),
            message_key: error.message_key(),
            retry_after: error.retry_after_secs(),
            ..Self::default()
        }
    }
}

impl Failure {
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
        Self {
            code: "malformed_request",
            message_key: problem.message_key(),
            field: problem
                .field()
                .or(missing_fields.first().map(String::as_str))
                .map(str::to_owned),
            missing_fields,
            expected: problem.expected(),
            retry_after: None,
        }
    }
}

/// A compiled dialect.
#[derive(Debug)]
pub struct Dialect {
    pub name: String,
    pub title: String,
    pub vendor_page: Option<String>,
    /// `built-in` or the file it was read from.
    pub origin: String,
    pub tokens: crate::config::tenant::TokensConfig,
    pub verify: Vec<Credential>,
    /// Header naming the company a verify is for (lower case).
    pub company_header: Option<String>,
    /// Claims added to every token of this dialect's tenants.
    pub claims: Vec<(String, ClaimValue)>,
    /// Routes also match with (or without) a trailing slash.
    pub trailing_slash: bool,
    pub routes: Vec<Route>,
    messages: HashMap<String, Text>,
    builtin_messages: HashMap<&'static str, Text>,
    errors: HashMap<String, ResponseTemplate>,
}

impl Dialect {
    /// Parses and checks a dialect file; errors are `(key, problem)`.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, (String, String)> {
        let deserializer = toml::Deserializer::new(text);
        let file: DialectFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            (key, e.into_inner().message().trim().to_owned())
        })?;
        Self::compile(file, origin)
    }

    fn compile(file: DialectFile, origin: &str) -> Result<Self, (String, String)> {
        let builtin_messages = ERROR_CODES
            .iter()
            .map(|(code, _, text)| (*code, *text))
            .chain(MESSAGE_KEYS.iter().copied())
            .map(|(key, text)| Ok((key, Text::compile(text)?)))
            .collect::<Result<_, String>>()
            .map_err(|e| ("messages".to_string(), e))?;
        let messages =
            compile_messages(&file.messages).map_err(|(k, e)| (format!("messages.{k}"), e))?;
        let errors = compile_errors(&file.errors).map_err(|(k, e)| (format!("errors.{k}"), e))?;
        check_params(&file.params)?;
        let verify = file
            .verify
            .credentials
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                compile_credential(spec, CredentialKind::AccessTokenOrApiKey)
                    .map_err(|e| (format!("verify.credentials[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if verify
            .iter()
            .any(|c| matches!(c.source, TokenSource::Field(_)))
        {
            return Err((
                "verify.credentials".into(),
                "verify reads headers only, not body fields".into(),
            ));
        }
        let mut routes = Vec::new();
        let mut seen = HashSet::new();
        for (i, spec) in file.routes.iter().enumerate() {
            let route = compile_route(spec, &file.params)
                .map_err(|(k, e)| (format!("routes[{i}].{k}"), e))?;
            // With trailing-slash tolerance, `/a` and `/a/` are one route.
            let mounted = match route.path.strip_suffix('/') {
                Some(bare) if file.trailing_slash && !bare.is_empty() => bare.to_owned(),
                _ => route.path.clone(),
            };
            if !seen.insert((route.method.clone(), mounted)) {
                return Err((
                    format!("routes[{i}]"),
                    format!("duplicate route `{}`", route.label()),
                ));
            }
            routes.push(route);
        }
        let claims = compile_claims(&file.claims).map_err(|(k, e)| (format!("claims.{k}"), e))?;
        let company_header = match &file.verify.company_header {
            Some(name) if !name.is_empty() && name.bytes().all(is_token_char) => {
                Some(name.to_ascii_lowercase())
            }
            Some(name) => {
                return Err((
                    "verify.company_header".into(),
                    format!("`{name}` is not a header name"),
                ));
            }
            None => None,
        };
        let dialect = Self {
            company_header,
            claims,
            trailing_slash: file.trailing_slash,
            name: file.name,
            title: file.title,
            vendor_page: file.vendor_page,
            origin: origin.to_owned(),
            tokens: file.tokens,
            verify,
            routes,
            messages,
            builtin_messages,
            errors,
        };
        dialect.check_answerable()?;
        Ok(dialect)
    }

    /// Every error a route (or the gateway) can raise must find a response.
    fn check_answerable(&self) -> Result<(), (String, String)> {
        for (i, route) in self.routes.iter().enumerate() {
            for code in raisable(route.operation, route.reads_body()) {
                if self.template_for(Some(route), code).is_none() {
                    return Err((
                        format!("routes[{i}].errors"),
                        format!(
                            "`{}` ({}) can fail with `{code}` but no response is mapped for it; \
                             map it or give `[errors.default]`",
                            route.label(),
                            route.operation.as_str()
                        ),
                    ));
                }
            }
        }
        for code in GATEWAY_ERRORS {
            if self.template_for(None, code).is_none() {
                return Err((
                    "errors".into(),
                    format!("no response for `{code}`; map it or give `[errors.default]`"),
                ));
            }
        }
        Ok(())
    }

    fn template_for<'a>(
        &'a self,
        route: Option<&'a Route>,
        code: &str,
    ) -> Option<&'a ResponseTemplate> {
        self.template_for_failure(route, code, code)
    }

    /// The answer for a failure: by its message key when the file maps that
    /// (`missing_field`, `token_expired`), else by its code and fallbacks.
    fn template_for_failure<'a>(
        &'a self,
        route: Option<&'a Route>,
        message_key: &str,
        code: &str,
    ) -> Option<&'a ResponseTemplate> {
        let precise = (message_key != code).then_some(message_key);
        let keys: Vec<&str> = precise.into_iter().chain(fallback_chain(code)).collect();
        // Whatever a route maps wins over the dialect-wide table.
        route
            .and_then(|r| keys.iter().find_map(|k| r.errors.get(*k)))
            .or_else(|| keys.iter().find_map(|k| self.errors.get(*k)))
    }

    fn message<'a>(&'a self, route: Option<&'a Route>, failure: &Failure) -> &'a Text {
        let own = |key: &str| {
            route
                .and_then(|r| r.messages.get(key))
                .or_else(|| self.messages.get(key))
        };
        own(failure.message_key)
            .or_else(|| own(failure.code))
            .or_else(|| self.builtin_messages.get(failure.message_key))
            .or_else(|| self.builtin_messages.get(failure.code))
            .or_else(|| self.builtin_messages.get("internal"))
            .expect("built-in messages cover every code")
    }

    /// The dialect's answer to a failure on `route` (or outside any route).
    pub fn render_error(&self, route: Option<&Route>, failure: &Failure) -> Response {
        let mut values = Values::default();
        values.maybe_text(Placeholder::Field, failure.field.as_deref());
        values.maybe_text(Placeholder::Expected, failure.expected);
        if let Some(secs) = failure.retry_after {
            values.number(Placeholder::RetryAfter, secs);
        }
        let message = self.message(route, failure).render(&values);
        values.set(Placeholder::Message, Filled::Text(message));
        values.missing_fields(failure.missing_fields.clone());
        let usual = usual_status(failure.code);
        match self.template_for_failure(route, failure.message_key, failure.code) {
            Some(template) => template.render(usual, &values),
            // Unreachable for a checked dialect; still an honest answer.
            None => Response {
                status: usual,
                headers: Vec::new(),
                body: None,
            },
        }
    }

    /// Every failure `route` can meet (verify's, when `None`) with the
    /// answer it gets: what an API document lists. The example is rendered
    /// with sample values.
    pub fn error_answers<'a>(&'a self, route: Option<&'a Route>) -> Vec<ErrorAnswer<'a>> {
        let codes = match route {
            Some(route) => {
                let mut codes = raisable(route.operation, route.reads_body());
                // Only a route that reads its body meets the body limit.
                if !route.reads_body() {
                    codes.retain(|code| *code != "payload_too_large");
                }
                // A path parameter that does not match is no route at all.
                if !route.params().is_empty() {
                    codes.push("not_found");
                }
                codes
            }
            None => {
                let mut codes = vec!["missing_token", "invalid_token"];
                if self.company_header.is_some() {
                    codes.push("forbidden");
                }
                codes.extend(["unavailable", "internal"]);
                codes
            }
        };
        let inputs = route.map_or(&[][..], |r| r.inputs.as_slice());
        let mut answers = Vec::new();
        for code in codes {
            // Gateway answers (no route matched) use the dialect-wide table.
            let answering = if code == "not_found" { None } else { route };
            for message_key in message_keys(code, route.is_some_and(|r| r.strict)) {
                let Some(template) = self.template_for_failure(answering, message_key, code) else {
                    continue;
                };
                let failure = Failure {
                    code,
                    message_key,
                    field: inputs.first().map(|f| f.wire.clone()),
                    missing_fields: inputs
                        .iter()
                        .filter(|f| f.required)
                        .map(|f| f.wire.clone())
                        .collect(),
                    expected: (message_key == "wrong_type").then_some("string"),
                    retry_after: (code == "locked_out").then_some(900),
                };
                let mut example = self.render_error(answering, &failure);
                if route.is_none() {
                    example.status = usual_status(code);
                }
                answers.push(ErrorAnswer {
                    code,
                    message_key,
                    status: example.status,
                    headers: template.header_shapes(),
                    body: template.body.as_ref(),
                    example,
                });
            }
        }
        answers
    }

    /// A summary line for `polyauth check`.
    pub fn describe(&self) -> String {
        let routes: Vec<String> = self.routes.iter().map(Route::label).collect();
        format!("{} ({}): {}", self.name, self.origin, routes.join(", "))
    }
}

fn compile_messages(
    specs: &BTreeMap<String, String>,
) -> Result<HashMap<String, Text>, (String, String)> {
    let allowed = [
        Placeholder::Field,
        Placeholder::Expected,
        Placeholder::RetryAfter,
    ];
    specs
        .iter()
        .map(|(key, text)| {
            let known = ERROR_CODES.iter().any(|(c, _, _)| c == key)
                || MESSAGE_KEYS.iter().any(|(k, _)| k == key);
            if !known {
                return Err((key.clone(), format!("unknown message key `{key}`")));
            }
            let text = Text::compile(text).map_err(|e| (key.clone(), e))?;
            check_allowed(text.placeholders(), &allowed).map_err(|e| (key.clone(), e))?;
            Ok((key.clone(), text))
        })
        .collect()
}

fn compile_errors(
    specs: &BTreeMap<String, ResponseSpec>,
) -> Result<HashMap<String, ResponseTemplate>, (String, String)> {
    let allowed = [
        Placeholder::Message,
        Placeholder::RetryAfter,
        Placeholder::Field,
    ];
    specs
        .iter()
        .map(|(code, spec)| {
            let known = code == "default"
                || ERROR_CODES.iter().any(|(c, _, _)| c == code)
                || MESSAGE_KEYS.iter().any(|(k, _)| k == code);
            if !known {
                return Err((
                    code.clone(),
                    format!("unknown error code or message key `{code}`"),
                ));
            }
            let template = ResponseTemplate::compile(spec, &allowed)
                .map_err(|(k, e)| (format!("{code}.{k}"), e))?;
            Ok((code.clone(), template))
        })
        .collect()
}

fn compile_claims(
    specs: &BTreeMap<String, toml::Value>,
) -> Result<Vec<(String, ClaimValue)>, (String, String)> {
    specs
        .iter()
        .map(|(name, value)| {
            if RESERVED_CLAIMS.contains(&name.as_str()) {
                return Err((name.clone(), format!("`{name}` is one of polyauth's own claims")));
            }
            let claim = match Node::compile(value).map_err(|e| (name.clone(), e))? {
                Node::Typed(Placeholder::Subject) => ClaimValue::Subject,
                Node::Typed(Placeholder::Email) => ClaimValue::Email,
                Node::Typed(Placeholder::CompanyId) => ClaimValue::CompanyId,
                Node::Typed(Placeholder::Role) => ClaimValue::Role,
                Node::Literal(value) => ClaimValue::Fixed(value),
                _ => {
                    return Err((
                        name.clone(),
                        "a claim is `{{subject}}`, `{{email}}`, `{{company_id}}`, `{{role}}` or a literal"
                            .into(),
                    ));
                }
            };
            Ok((name.clone(), claim))
        })
        .collect()
}

fn compile_credential(
    spec: &CredentialSpec,
    default: CredentialKind,
) -> Result<Credential, String> {
    let source = match (spec.from, &spec.name) {
        (SourceKind::Bearer, None) => TokenSource::Bearer,
        (SourceKind::Bearer, Some(_)) => return Err("`bearer` takes no `name`".into()),
        (SourceKind::Header, Some(name)) if !name.is_empty() && name.bytes().all(is_token_char) => {
            TokenSource::Header(name.to_ascii_lowercase())
        }
        (SourceKind::Field, Some(name)) if !name.is_empty() => TokenSource::Field(name.clone()),
        (_, _) => return Err("`header` and `field` need a `name`".into()),
    };
    let kind = spec.kind.unwrap_or(default);
    Ok(Credential { source, kind })
}

fn compile_route(
    spec: &RouteSpec,
    params: &BTreeMap<String, String>,
) -> Result<Route, (String, String)> {
    use Placeholder as P;
    let method = spec.method.to_ascii_uppercase();
    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
        return Err((
            "method".into(),
            format!("unsupported method `{}`", spec.method),
        ));
    }
    let pattern = route_pattern(&spec.path, params).map_err(|e| ("path".to_string(), e))?;
    if is_gateway_path(&spec.path) {
        return Err((
            "path".into(),
            format!(
                "`{}` belongs to the gateway (`/_polyauth/…`, `/openapi.json`, `/docs`)",
                spec.path
            ),
        ));
    }

    // What every grant (login, client login, refresh) can show.
    const GRANT: [P; 7] = [
        P::AccessToken,
        P::RefreshToken,
        P::TokenType,
        P::ExpiresIn,
        P::RefreshExpiresIn,
        P::Subject,
        P::CompanyId,
    ];
    let (allowed_fields, required_fields, allowed_values): (&[&str], &[&str], Vec<P>) =
        match spec.operation {
            Operation::Login => (
                &["email", "password", "remember"],
                &["email", "password"],
                [&GRANT[..], &[P::Email, P::ApiKey]].concat(),
            ),
            Operation::ClientLogin => (&["company_id"], &["company_id"], GRANT.to_vec()),
            Operation::Refresh => (&[], &[], [&GRANT[..], &[P::Email]].concat()),
            Operation::Revoke => (&[], &[], vec![]),
            Operation::GenerateApiKey => (&[], &[], vec![P::ApiKey, P::Email, P::Subject]),
        };

    let mut inputs = Vec::new();
    for (name, wire) in &spec.fields {
        if !allowed_fields.contains(&name.as_str()) {
            return Err((
                format!("fields.{name}"),
                format!("`{}` takes no field `{name}`", spec.operation.as_str()),
            ));
        }
        let input =
            Input::parse(name).ok_or_else(|| (format!("fields.{name}"), "unknown field".into()))?;
        inputs.push(InputField {
            input,
            wire: wire.clone(),
            required: required_fields.contains(&name.as_str()),
        });
    }
    for required in required_fields {
        if !spec.fields.contains_key(*required) {
            return Err((
                "fields".into(),
                format!("`{}` needs `fields.{required}`", spec.operation.as_str()),
            ));
        }
    }
    // Engine order: email before password, whatever the file's order.
    inputs.sort_by_key(|f| {
        ["email", "password", "remember", "company_id"]
            .iter()
            .position(|n| Input::parse(n) == Some(f.input))
    });

    let needs_token = matches!(
        spec.operation,
        Operation::Refresh | Operation::Revoke | Operation::GenerateApiKey
    );
    let token = match (&spec.token, needs_token) {
        (Some(token), true) => {
            let default = match spec.operation {
                Operation::Refresh => CredentialKind::RefreshToken,
                _ => CredentialKind::AccessToken,
            };
            let credential =
                compile_credential(token, default).map_err(|e| ("token".to_string(), e))?;
            if let TokenSource::Field(name) = &credential.source {
                inputs.push(InputField {
                    input: Input::Token,
                    wire: name.clone(),
                    required: true,
                });
            }
            Some(credential)
        }
        (None, true) => {
            return Err((
                "token".into(),
                format!(
                    "`{}` needs `token = {{ from = ... }}`",
                    spec.operation.as_str()
                ),
            ));
        }
        (Some(_), false) => {
            return Err((
                "token".into(),
                format!("`{}` reads no token", spec.operation.as_str()),
            ));
        }
        (None, false) => None,
    };
    if !inputs.is_empty() && spec.encodings.is_empty() {
        return Err((
            "encodings".into(),
            "a route that reads a body needs `encodings`".into(),
        ));
    }
    if inputs.is_empty() && !spec.encodings.is_empty() {
        return Err(("encodings".into(), "this route reads no body".into()));
    }

    let success = ResponseTemplate::compile(&spec.success, &allowed_values)
        .map_err(|(k, e)| (format!("success.{k}"), e))?;
    let errors = compile_errors(&spec.errors).map_err(|(k, e)| (format!("errors.{k}"), e))?;
    let messages =
        compile_messages(&spec.messages).map_err(|(k, e)| (format!("messages.{k}"), e))?;
    Ok(Route {
        operation: spec.operation,
        method,
        path: spec.path.clone(),
        pattern,
        encodings: spec.encodings.clone(),
        strict: spec.strict,
        rotates_refresh: spec.operation == Operation::Refresh && success.uses(P::RefreshToken),
        shows_api_key: spec.operation == Operation::Login && success.uses(P::ApiKey),
        inputs,
        token,
        scope: spec.scope,
        success,
        errors,
        messages,
    })
}

/// Every dialect the gateway knows: the built-in ones, then files of
/// `dialects_dir` (which may override a built-in one by name).
#[derive(Debug, Default)]
pub struct Dialects {
    by_name: HashMap<String, Arc<Dialect>>,
}

impl Dialects {
    pub fn load(dir: Option<&Path>) -> Result<Self, ConfigError> {
        let mut by_name = HashMap::new();
        for (name, text) in BUILTIN {
            let file = format!("dialects/{name}.toml (built-in)");
            let dialect = Dialect::from_toml(text, "built-in")
                .map_err(|(key, problem)| ConfigError::new(&file, key, problem))?;
            by_name.insert(dialect.name.clone(), Arc::new(dialect));
        }
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                ConfigError::new(
                    dir.display(),
                    "dialects_dir",
                    format!("cannot read directory ({e})"),
                )
            })?;
            let mut paths: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let file = path.display().to_string();
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError::new(&file, "", format!("cannot read ({e})")))?;
                let dialect = Dialect::from_toml(&text, &file)
                    .map_err(|(key, problem)| ConfigError::new(&file, key, problem))?;
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                if dialect.name != stem {
                    return Err(ConfigError::new(
                        &file,
                        "name",
                        format!("`{}` must match the file name `{stem}`", dialect.name),
                    ));
                }
                by_name.insert(dialect.name.clone(), Arc::new(dialect));
            }
        }
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Dialect>> {
        self.by_name.get(name)
    }

    /// Names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests {
    use actix_web::dev::ResourceDef;

    use super::*;

    fn builtin(name: &str) -> Dialect {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name).unwrap();
        Dialect::from_toml(text, "built-in").unwrap()
    }

    #[test]
    fn param_segments_become_router_patterns_that_match_only_their_regex() {
        let dialect = builtin("visualyze");
        let login = &dialect.routes[0];
        assert_eq!(login.path, "/api/{version}/user/login");
        assert_eq!(login.pattern, "/api/{version:v[0-9]+}/user/login");
        let def = ResourceDef::new(login.pattern.as_str());
        for path in [
            "/api/v1/user/login",
            "/api/v2/user/login",
            "/api/v10/user/login",
        ] {
            assert!(def.is_match(path), "{path}");
        }
        for path in [
            "/api/vx/user/login",
            "/api/1/user/login",
            "/api/v/user/login",
            "/api/v1/v2/user/login",
            "/api/v1/user/login/",
        ] {
            assert!(!def.is_match(path), "{path}");
        }
        assert_eq!(builtin("pixyle").routes[0].pattern, "/auth/v1/token");
    }

    #[test]
    fn every_visualyze_answer_states_its_http_status_in_the_body() {
        let dialect = builtin("visualyze");
        let routes = dialect.routes.iter().map(Some).chain([None]);
        for route in routes {
            for (code, _, _) in ERROR_CODES {
                let failure = Failure {
                    code,
                    message_key: code,
                    retry_after: Some(7),
                    ..Failure::default()
                };
                let answer = dialect.render_error(route, &failure);
                let body = answer.body.expect("a body");
                assert_eq!(body["status"], serde_json::json!(answer.status), "{code}");
                assert_eq!(body["data"], serde_json::json!({}), "{code}");
                assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
                assert_eq!(answer.status, usual_status(code), "{code}");
            }
        }
        let locked = dialect.render_error(
            None,
            &Failure {
                code: "locked_out",
                message_key: "locked_out",
                retry_after: Some(7),
                ..Failure::default()
            },
        );
        assert_eq!(locked.status, 429);
        assert_eq!(locked.headers, vec![("Retry-After".into(), "7".into())]);
        assert_eq!(
            locked.body.unwrap()["message"],
            "Too many failed attempts, retry in 7 seconds"
        );
    }
}
