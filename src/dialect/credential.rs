//! Where a dialect's clients present a token, and reading it from the
//! request headers.

use actix_web::http::header::HeaderMap;

use super::model::{CredentialSpec, SourceKind};
use crate::engine::{CredentialKind, EngineError, TokenProblem};

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

impl Credential {
    pub fn compile(spec: &CredentialSpec, default: CredentialKind) -> Result<Self, String> {
        let source = match (spec.from, &spec.name) {
            (SourceKind::Bearer, None) => TokenSource::Bearer,
            (SourceKind::Bearer, Some(_)) => return Err("`bearer` takes no `name`".into()),
            (SourceKind::Header, Some(name)) if is_header_name(name) => {
                TokenSource::Header(name.to_ascii_lowercase())
            }
            (SourceKind::Field, Some(name)) if !name.is_empty() => TokenSource::Field(name.clone()),
            (_, _) => return Err("`header` and `field` need a `name`".into()),
        };
        let kind = spec.kind.unwrap_or(default);
        Ok(Self { source, kind })
    }

    /// The token sent where this credential says, from the request's
    /// headers; `None` for a body field (the body decoder reads those) or
    /// when absent or empty.
    pub fn from_headers<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let token = match &self.source {
            TokenSource::Bearer => bearer(headers),
            TokenSource::Header(name) => header_text(headers, name).map(str::trim),
            TokenSource::Field(_) => None,
        };
        token.filter(|t| !t.is_empty())
    }
}

impl Credential {
    /// As [`Credential::from_headers`], for forward-auth, where an upstream
    /// may read any copy: a credential header sent twice, unreadable or
    /// empty is refused (`invalid_token`) rather than skipped.
    pub fn presented_in<'a>(&self, headers: &'a HeaderMap) -> Result<Option<&'a str>, EngineError> {
        let refused = || EngineError::InvalidToken(TokenProblem::Invalid);
        let name = match &self.source {
            TokenSource::Bearer => "authorization",
            TokenSource::Header(name) => name.as_str(),
            TokenSource::Field(_) => return Ok(None),
        };
        let mut values = headers.get_all(name);
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(refused());
        }
        let text = value.to_str().map_err(|_| refused())?.trim();
        match &self.source {
            // Another scheme is not a credential of this dialect.
            TokenSource::Bearer => match bearer_of(text) {
                Some("") => Err(refused()),
                token => Ok(token),
            },
            _ if text.is_empty() => Err(refused()),
            _ => Ok(Some(text)),
        }
    }
}

/// An HTTP header name (an RFC 9110 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value as text, if present and readable.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    bearer_of(header_text(headers, "authorization")?).filter(|t| !t.is_empty())
}

/// The token, maybe empty, of an `Authorization` value with the Bearer
/// scheme; `None` for another scheme.
fn bearer_of(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The company named by `header`: none when the header is absent. Sent
/// twice, empty or unreadable, it is refused (`forbidden`): an upstream
/// might read another copy than the one checked here.
pub fn claimed_company<'a>(
    headers: &'a HeaderMap,
    header: Option<&str>,
) -> Result<Option<&'a str>, EngineError> {
    let Some(header) = header else {
        return Ok(None);
    };
    let mut values = headers.get_all(header);
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => match value.to_str().map(str::trim) {
            Ok(company) if !company.is_empty() => Ok(Some(company)),
            _ => Err(EngineError::Forbidden),
        },
        (Some(_), Some(_)) => Err(EngineError::Forbidden),
    }
}
