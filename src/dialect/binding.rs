//! The binding between the wire and the engine: the view of a request a
//! route decodes into an engine call, and the values an engine outcome
//! fills into the route's answer.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;

use super::template::{Placeholder, Values};
use crate::engine::{ApiKey, Grant, Outcome};

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Broken,
    /// Not all of it arrived within `body_timeout`.
    TimedOut,
}

/// One request as a route sees it.
pub struct RequestView<'a> {
    pub headers: &'a HeaderMap,
    /// The body, as far as it was read (empty for a route that reads none).
    pub body: Result<&'a [u8], BodyError>,
    /// The client's address, behind trusted proxies included.
    pub client_ip: Option<IpAddr>,
}

impl RequestView<'_> {
    pub fn content_type(&self) -> Option<&str> {
        super::credential::header_text(self.headers, "content-type")
    }
}

/// What an outcome shows in an answer.
pub fn values_of(outcome: Outcome) -> Values {
    match outcome {
        Outcome::Grant(grant) => grant_values(grant),
        Outcome::ApiKey(key) => api_key_values(key),
        Outcome::Done => Values::default(),
    }
}

fn grant_values(grant: Grant) -> Values {
    let mut values = Values::default();
    values
        .text(Placeholder::AccessToken, grant.access_token)
        .text(Placeholder::TokenType, "Bearer")
        .number(Placeholder::ExpiresIn, grant.expires_in)
        .text(Placeholder::Subject, grant.subject)
        .maybe_text(Placeholder::RefreshToken, grant.refresh_token.as_deref())
        .maybe_text(Placeholder::ApiKey, grant.api_key.as_deref())
        .maybe_text(Placeholder::Email, grant.email.as_deref())
        .maybe_text(Placeholder::CompanyId, grant.company_id.as_deref());
    if let Some(secs) = grant.refresh_expires_in {
        values.number(Placeholder::RefreshExpiresIn, secs);
    }
    values
}

fn api_key_values(key: ApiKey) -> Values {
    let mut values = Values::default();
    values
        .text(Placeholder::ApiKey, key.key)
        .text(Placeholder::Subject, key.subject)
        .maybe_text(Placeholder::Email, key.email.as_deref());
    values
}
