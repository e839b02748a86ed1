//! The operations a dialect route can serve, each one's rules in one row:
//! the body fields it reads, the values its answer may show, the token it
//! reads, the errors it can raise, and the engine call it makes.
//!
//! Adding an operation takes a variant here, its row, and the engine's side
//! (`engine::Call` and the function it runs); validation, decoding, the
//! OpenAPI documents and the HTTP layer follow from the row.

use std::net::IpAddr;

use secrecy::SecretString;
use serde::Deserialize;

use super::decode::{Input, Inputs};
use super::template::Placeholder;
use crate::engine::{Call, CredentialKind, ErrorCode, LoginRequest, RevokeScope};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Login,
    ClientLogin,
    Refresh,
    Revoke,
    GenerateApiKey,
}

impl Operation {
    pub fn rules(self) -> &'static Rules {
        match self {
            Self::Login => &LOGIN,
            Self::ClientLogin => &CLIENT_LOGIN,
            Self::Refresh => &REFRESH,
            Self::Revoke => &REVOKE,
            Self::GenerateApiKey => &GENERATE_API_KEY,
        }
    }

    /// The name a dialect file writes (`operation = "login"`).
    pub fn as_str(self) -> &'static str {
        self.rules().name
    }
}

/// What one operation is, for the dialect files that mount it.
pub struct Rules {
    pub name: &'static str,
    /// One line for API documents.
    pub summary: &'static str,
    /// Body fields a route may read (`fields.<input>`), and whether it must;
    /// in the engine's order.
    pub fields: &'static [(Input, bool)],
    /// Values its success answer may show, in groups.
    pub shows: &'static [&'static [Placeholder]],
    /// It reads a token (`token = { from = ... }`), by default of this kind.
    pub token: Option<CredentialKind>,
    /// What it can fail with, besides a malformed body and the failures
    /// every route can meet.
    pub raises: &'static [ErrorCode],
    /// The engine call for what a request presented.
    pub call: fn(Presented<'_>) -> Call,
}

/// What a request presented to a route, and what the route says of it.
pub struct Presented<'a> {
    pub inputs: Inputs,
    /// Empty for an operation that reads no token.
    pub token: String,
    pub token_kind: CredentialKind,
    pub scope: RevokeScope,
    pub client_ip: Option<IpAddr>,
    /// The values the route's success answer shows.
    pub success_shows: &'a [Placeholder],
}

impl Presented<'_> {
    fn text(&mut self, input: Input) -> String {
        self.inputs.take_text(input).unwrap_or_default()
    }

    fn shows(&self, placeholder: Placeholder) -> bool {
        self.success_shows.contains(&placeholder)
    }
}

use ErrorCode as E;
use Placeholder as P;

/// What every grant (login, client login, refresh) can show.
const GRANT: &[Placeholder] = &[
    P::AccessToken,
    P::RefreshToken,
    P::TokenType,
    P::ExpiresIn,
    P::RefreshExpiresIn,
    P::Subject,
    P::CompanyId,
];

const LOGIN: Rules = Rules {
    name: "login",
    summary: "Log in with email and password",
    fields: &[
        (Input::Email, true),
        (Input::Password, true),
        (Input::Remember, false),
    ],
    shows: &[GRANT, &[P::Email, P::ApiKey]],
    token: None,
    raises: &[
        E::UnknownUser,
        E::WrongPassword,
        E::InvalidCredentials,
        E::AccountInactive,
        E::EmailUnverified,
        E::LockedOut,
    ],
    call: |mut presented| {
        Call::Login(LoginRequest {
            email: presented.text(Input::Email),
            password: SecretString::from(presented.text(Input::Password)),
            remember: presented.inputs.flag(Input::Remember),
            client_ip: presented.client_ip,
            // A dialect that shows the key on login (PayHub) gets it.
            with_api_key: presented.shows(P::ApiKey),
            legacy: None,
        })
    },
};

const CLIENT_LOGIN: Rules = Rules {
    name: "client_login",
    summary: "Log in as a company",
    fields: &[(Input::CompanyId, true)],
    shows: &[GRANT],
    token: None,
    raises: &[E::UnknownUser, E::LockedOut],
    call: |mut presented| Call::ClientLogin {
        company_id: presented.text(Input::CompanyId),
        client_ip: presented.client_ip,
    },
};

const REFRESH: Rules = Rules {
    name: "refresh",
    summary: "Get a new access token",
    fields: &[],
    shows: &[GRANT, &[P::Email]],
    token: Some(CredentialKind::RefreshToken),
    raises: &[E::MissingToken, E::InvalidToken],
    call: |presented| match presented.token_kind {
        // Refreshing with an access token is a sliding session.
        CredentialKind::AccessToken => Call::Slide {
            token: presented.token,
        },
        _ => Call::Refresh {
            // A dialect that shows a new refresh token rotates it.
            rotate: presented.shows(P::RefreshToken),
            token: presented.token,
        },
    },
};

const REVOKE: Rules = Rules {
    name: "revoke",
    summary: "Revoke a token (log out)",
    fields: &[],
    shows: &[],
    token: Some(CredentialKind::AccessToken),
    raises: &[E::MissingToken, E::InvalidToken],
    call: |presented| Call::Revoke {
        token: presented.token,
        kind: presented.token_kind,
        scope: presented.scope,
    },
};

const GENERATE_API_KEY: Rules = Rules {
    name: "generate_api_key",
    summary: "Generate a new API key",
    fields: &[],
    shows: &[&[P::ApiKey, P::Email, P::Subject]],
    token: Some(CredentialKind::AccessToken),
    raises: &[E::MissingToken, E::InvalidToken],
    call: |presented| Call::GenerateApiKey {
        token: presented.token,
    },
};
