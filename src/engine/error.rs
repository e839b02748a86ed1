//! The one error type of the engine; each dialect maps its codes to the
//! vendor's answers.

use std::time::Duration;

use crate::store::StoreError;

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Bad signature, unknown `kid`, wrong algorithm, issuer, audience or tenant, garbage.
    Invalid,
    Expired,
    Revoked,
    /// A refresh token where an access token was expected, or the reverse.
    WrongType,
}

impl TokenProblem {
    /// The message key a dialect can give its own text for.
    pub fn message_key(self) -> &'static str {
        match self {
            Self::Invalid => "token_invalid",
            Self::Expired => "token_expired",
            Self::Revoked => "token_revoked",
            Self::WrongType => "token_wrong_type",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("malformed request")]
    MalformedRequest,
    #[error("unknown user")]
    UnknownUser,
    #[error("wrong password")]
    WrongPassword,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("account inactive")]
    AccountInactive,
    #[error("email unverified")]
    EmailUnverified,
    #[error("missing token")]
    MissingToken,
    #[error("invalid token ({0:?})")]
    InvalidToken(TokenProblem),
    /// The credential is valid but not for this company.
    #[error("forbidden")]
    Forbidden,
    #[error("locked out for {retry_after:?}")]
    LockedOut { retry_after: Duration },
    /// The store cannot answer, or the gateway is saturated.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl EngineError {
    /// The code a dialect file maps (`[errors] <code> = ...`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed_request",
            Self::UnknownUser => "unknown_user",
            Self::WrongPassword => "wrong_password",
            Self::InvalidCredentials => "invalid_credentials",
            Self::AccountInactive => "account_inactive",
            Self::EmailUnverified => "email_unverified",
            Self::MissingToken => "missing_token",
            Self::InvalidToken(_) => "invalid_token",
            Self::Forbidden => "forbidden",
            Self::LockedOut { .. } => "locked_out",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The key of the message text, more precise than the code where it can be.
    pub fn message_key(&self) -> &'static str {
        match self {
            Self::InvalidToken(problem) => problem.message_key(),
            other => other.code(),
        }
    }

    /// Whole seconds to wait, rounded up, for `locked_out`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::LockedOut { retry_after } => Some(retry_after.as_millis().div_ceil(1000) as u64),
            _ => None,
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(error.0)
    }
}
