//! Dialects: the exact request and response shapes of a vendor's
//! authentication API, read from a TOML file. The engine never sees these
//! shapes; a dialect never touches a key or a hash.
//!
//! A route decodes a request view into a typed engine call
//! ([`Route::decode`]) and the dialect renders the typed outcome
//! ([`Dialect::answer`]); [`operation`] holds each operation's rules.

pub mod answer;
pub mod binding;
mod catalog;
pub mod credential;
pub mod decode;
pub mod model;
pub mod operation;
pub mod params;
pub mod route;
pub mod template;

use actix_web::http::header::HeaderMap;

use answer::{Answers, ErrorAnswer, ErrorTable};
use model::DialectFile;
use template::{Node, Placeholder};

pub use answer::{Failure, Response};
pub use binding::{BodyError, RequestView};
pub use catalog::Dialects;
pub use credential::{Credential, TokenSource};
pub use params::is_plain_path;
pub use route::Route;

use crate::cors::AllowedOrigins;
use crate::engine::tokens::RESERVED_CLAIMS;
use crate::engine::{ClaimValue, CredentialKind, Detail, EngineResult, ErrorCode, Outcome};

/// Errors the gateway itself answers in the dialect's shape.
const GATEWAY_ERRORS: &[ErrorCode] = &[
    ErrorCode::NotFound,
    ErrorCode::MethodNotAllowed,
    ErrorCode::MissingToken,
    ErrorCode::InvalidToken,
    ErrorCode::Forbidden,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
    ErrorCode::BadGateway,
    ErrorCode::GatewayTimeout,
];

/// A compiled dialect.
#[derive(Debug)]
pub struct Dialect {
    pub name: String,
    pub title: String,
    pub vendor_page: Option<String>,
    /// `built-in` or the file it was read from.
    pub origin: String,
    pub tokens: model::TokensConfig,
    pub verify: Vec<Credential>,
    /// Header naming the company a verify is for (lower case).
    pub company_header: Option<String>,
    /// Claims added to every token of this dialect's tenants.
    pub claims: Vec<(String, ClaimValue)>,
    /// Routes also match with (or without) a trailing slash.
    pub trailing_slash: bool,
    /// The vendor's CORS answer (`[cors] origins`), for tenants that set none.
    pub cors: Option<AllowedOrigins>,
    pub routes: Vec<Route>,
    answers: Answers,
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
        let messages = answer::compile_messages(&file.messages)?;
        let errors = answer::compile_errors(&file.errors)?;
        let answers = Answers::new(ErrorTable::new(errors, messages))?;
        params::check_params(&file.params)?;
        if file.tokens.max_sessions == Some(0) {
            return Err(("tokens.max_sessions".into(), "must be at least 1".into()));
        }
        let verify = file
            .verify
            .credentials
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                Credential::compile(spec, CredentialKind::AccessTokenOrApiKey)
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
        let mut routes: Vec<Route> = Vec::new();
        for (i, spec) in file.routes.iter().enumerate() {
            let route = Route::compile(spec, &file.params)
                .map_err(|(k, e)| (format!("routes[{i}].{k}"), e))?;
            // With trailing-slash tolerance, `/a` and `/a/` are one route.
            let mounted = |path: &str| match path.strip_suffix('/') {
                Some(bare) if file.trailing_slash && !bare.is_empty() => bare.to_owned(),
                _ => path.to_owned(),
            };
            if routes
                .iter()
                .any(|r| r.method == route.method && mounted(&r.path) == mounted(&route.path))
            {
                return Err((
                    format!("routes[{i}]"),
                    format!("duplicate route `{}`", route.label()),
                ));
            }
            routes.push(route);
        }
        let claims = compile_claims(&file.claims).map_err(|(k, e)| (format!("claims.{k}"), e))?;
        let cors = AllowedOrigins::parse(&file.cors.origins)
            .map_err(|(i, e)| (format!("cors.origins[{i}]"), e))?;
        let company_header = match &file.verify.company_header {
            Some(name) if credential::is_header_name(name) => Some(name.to_ascii_lowercase()),
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
            cors,
            name: file.name,
            title: file.title,
            vendor_page: file.vendor_page,
            origin: origin.to_owned(),
            tokens: file.tokens,
            verify,
            routes,
            answers,
        };
        dialect.check_answerable()?;
        Ok(dialect)
    }

    /// Every error a route (or the gateway) can raise must find a response,
    /// and none may be a list of fields the failure does not have (an
    /// unknown field answered `{"detail":[]}`).
    fn check_answerable(&self) -> Result<(), (String, String)> {
        for (i, route) in self.routes.iter().enumerate() {
            for code in route.raisable() {
                for detail in route.details(code) {
                    let Some(template) = self.answers.template(Some(&route.errors), code, detail)
                    else {
                        return Err((
                            format!("routes[{i}].errors"),
                            format!(
                                "`{}` ({}) can fail with `{}` but no response is mapped for it; \
                                 map it or give `[errors.default]`",
                                route.label(),
                                route.operation.as_str(),
                                code.as_str()
                            ),
                        ));
                    };
                    check_lists(template, code, detail).map_err(|e| {
                        (
                            format!("routes[{i}].errors"),
                            format!("`{}` {e}", route.label()),
                        )
                    })?;
                }
            }
        }
        for code in GATEWAY_ERRORS {
            let Some(template) = self.answers.template(None, *code, None) else {
                return Err((
                    "errors".into(),
                    format!(
                        "no response for `{}`; map it or give `[errors.default]`",
                        code.as_str()
                    ),
                ));
            };
            check_lists(template, *code, None)
                .map_err(|e| ("errors".to_string(), format!("the gateway {e}")))?;
        }
        Ok(())
    }

    /// Whether the dialect-wide table answers `code` (not every dialect
    /// can: one whose routes read no body may map no `payload_too_large`).
    pub fn answers(&self, code: ErrorCode) -> bool {
        self.answers.template(None, code, None).is_some()
    }

    /// The answer to what the engine made of a call on `route`.
    pub fn answer(&self, route: &Route, result: EngineResult<Outcome>) -> Response {
        match result {
            Ok(outcome) => route.render_success(&binding::values_of(outcome)),
            Err(error) => self.render_error(Some(route), &Failure::from(error)),
        }
    }

    /// The dialect's answer to a failure on `route` (or outside any route).
    pub fn render_error(&self, route: Option<&Route>, failure: &Failure) -> Response {
        self.answers.render(route.map(|r| &r.errors), failure)
    }

    /// Forward-auth's answer to a failure: the dialect's body with the
    /// code's real status, even where its own routes answer 200 for errors.
    pub fn verify_error(&self, failure: &Failure) -> Response {
        let mut answer = self.render_error(None, failure);
        answer.status = failure.code.usual_status();
        answer
    }

    /// Every credential a forward-auth request presents, in the dialect's
    /// order; one sent twice, unreadable or empty is refused.
    pub fn presented<'a>(
        &self,
        headers: &'a HeaderMap,
    ) -> EngineResult<Vec<(&'a str, CredentialKind)>> {
        let mut presented = Vec::new();
        for credential in &self.verify {
            if let Some(token) = credential.presented_in(headers)? {
                presented.push((token, credential.kind));
            }
        }
        Ok(presented)
    }

    /// The request headers (lower case) that carry a credential or a
    /// company id where this dialect's clients send them: a browser must be
    /// allowed to send these.
    pub fn credential_headers(&self) -> Vec<&str> {
        let route_tokens = self.routes.iter().filter_map(|r| r.token.as_ref());
        let sources = self.verify.iter().chain(route_tokens).map(|c| &c.source);
        let mut names: Vec<&str> = Vec::new();
        let headers = sources.filter_map(|source| match source {
            TokenSource::Header(name) => Some(name.as_str()),
            _ => None,
        });
        for name in headers.chain(self.company_header.as_deref()) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// The company a forward-auth caller acts for, where the dialect has
    /// clients say it (`forbidden`: said in a way that cannot be trusted).
    pub fn claimed_company<'a>(&self, headers: &'a HeaderMap) -> EngineResult<Option<&'a str>> {
        credential::claimed_company(headers, self.company_header.as_deref())
    }

    /// Every failure `route` can meet (verify's, when `None`) with the
    /// answer it gets: what an API document lists. The example is rendered
    /// with sample values.
    pub fn error_answers<'a>(&'a self, route: Option<&'a Route>) -> Vec<ErrorAnswer<'a>> {
        let codes = match route {
            Some(route) => {
                let mut codes = route.raisable();
                // Only a route that reads its body meets the body limit.
                if !route.reads_body() {
                    codes.retain(|code| *code != ErrorCode::PayloadTooLarge);
                }
                // A path parameter that does not match is no route at all.
                if !route.params().is_empty() {
                    codes.push(ErrorCode::NotFound);
                }
                codes
            }
            // Any tenant's access rules may deny, whatever its dialect.
            None => vec![
                ErrorCode::MissingToken,
                ErrorCode::InvalidToken,
                ErrorCode::Forbidden,
                ErrorCode::Unavailable,
                ErrorCode::Internal,
            ],
        };
        let inputs = route.map_or(&[][..], |r| r.inputs.as_slice());
        let patterned = route.and_then(|r| r.accepts.iter().find(|a| a.pattern.is_some()));
        let mut answers = Vec::new();
        for code in codes {
            // Gateway answers (no route matched) use the dialect-wide table.
            let answering = if code == ErrorCode::NotFound {
                None
            } else {
                route
            };
            let details = match route {
                Some(route) => route.details(code),
                None => match code.details() {
                    [] => vec![None],
                    details => details.iter().copied().map(Some).collect(),
                },
            };
            for detail in details {
                let table = answering.map(|r| &r.errors);
                let Some(template) = self.answers.template(table, code, detail) else {
                    continue;
                };
                let mut failure = Failure {
                    detail,
                    field: inputs.first().map(|f| f.wire.clone()),
                    missing_fields: inputs
                        .iter()
                        .filter(|f| f.required)
                        .map(|f| f.wire.clone())
                        .collect(),
                    expected: (detail == Some(Detail::WrongType)).then_some("string"),
                    retry_after: (code == ErrorCode::LockedOut).then_some(900),
                    ..Failure::of(code)
                };
                // Samples shaped like what a client's mistake would show.
                match detail {
                    Some(Detail::UnknownField) => {
                        let sample = ("unexpected".to_owned(), decode::Echo("value".into()));
                        failure.field = Some(sample.0.clone());
                        failure.quoted = Some(Box::new(answer::Quoted {
                            value: Some(sample.1.clone()),
                            pattern: None,
                            unknown_fields: vec![sample],
                        }));
                    }
                    Some(Detail::PatternMismatch) => {
                        if let Some(accepted) = patterned {
                            failure.field = Some(accepted.wire.clone());
                            failure.quoted = Some(Box::new(answer::Quoted {
                                value: Some(decode::Echo("invalid".into())),
                                pattern: accepted.pattern.as_ref().map(|p| p.source.clone()),
                                unknown_fields: Vec::new(),
                            }));
                        }
                    }
                    _ => {}
                }
                if !answer::fills(detail, template::FieldList::Missing) {
                    failure.missing_fields.clear();
                }
                let mut example = self.render_error(answering, &failure);
                if route.is_none() {
                    example.status = code.usual_status();
                }
                answers.push(ErrorAnswer {
                    code,
                    message_key: failure.message_key(),
                    status: example.status,
                    headers: template.header_shapes(),
                    body: template.body(),
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

/// A failure with `detail` answered by `template` lists only fields it has.
fn check_lists(
    template: &answer::ResponseTemplate,
    code: ErrorCode,
    detail: Option<Detail>,
) -> Result<(), String> {
    let Some(list) = template
        .lists()
        .into_iter()
        .find(|list| !answer::fills(detail, *list))
    else {
        return Ok(());
    };
    let key = detail.map_or(code.as_str(), Detail::as_str);
    let hint = match detail {
        Some(Detail::UnknownField) => {
            ": it is strict; `each_unknown_field` lists the unknown fields"
        }
        _ => "",
    };
    Err(format!(
        "answers `{key}` with `{}`, which would be an empty list for it; \
         map `{key}` with an answer of its own{hint}",
        list.key()
    ))
}

fn compile_claims(
    specs: &std::collections::BTreeMap<String, toml::Value>,
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

#[cfg(test)]
mod tests {
    use actix_web::dev::ResourceDef;

    use super::*;

    fn builtin(name: &str) -> Dialect {
        let (_, text) = catalog::BUILTIN.iter().find(|(n, _)| *n == name).unwrap();
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
    fn every_built_in_dialect_answers_the_proxy_s_failures_with_their_real_status() {
        for (name, _) in catalog::BUILTIN {
            let dialect = builtin(name);
            for (code, status) in [
                (ErrorCode::BadGateway, 502),
                (ErrorCode::GatewayTimeout, 504),
            ] {
                let answer = dialect.verify_error(&Failure::of(code));
                assert_eq!(answer.status, status, "{name}");
                let body = answer.body.unwrap_or_else(|| panic!("{name}: no body"));
                // Where a body states a status, it is the real one.
                for key in ["status", "statusCode", "responseCode"] {
                    if let Some(stated) = body.get(key) {
                        assert_eq!(stated, &serde_json::json!(status), "{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_visualyze_answer_states_its_http_status_in_the_body() {
        let dialect = builtin("visualyze");
        let routes = dialect.routes.iter().map(Some).chain([None]);
        for route in routes {
            for code in ErrorCode::ALL.iter().copied() {
                let failure = Failure {
                    retry_after: Some(7),
                    ..Failure::of(code)
                };
                let answer = dialect.render_error(route, &failure);
                let body = answer.body.expect("a body");
                assert_eq!(body["status"], serde_json::json!(answer.status), "{code:?}");
                assert_eq!(body["data"], serde_json::json!({}), "{code:?}");
                assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
                assert_eq!(answer.status, code.usual_status(), "{code:?}");
            }
        }
        let locked = dialect.render_error(
            None,
            &Failure {
                retry_after: Some(7),
                ..Failure::of(ErrorCode::LockedOut)
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
